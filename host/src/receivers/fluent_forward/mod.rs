//! The `fluent_forward` receiver (the collector's contrib `fluentforwardreceiver`, v0.161):
//! fluentd's and fluent-bit's Forward protocol v1 over TCP or a Unix socket, and the
//! protocol's heartbeat over UDP on the TCP port. No TLS and no handshake, as in the collector.
//!
//! Each connection reads frames one after another ([`protocol`]) and hands each frame's log
//! records ([`to_otlp`]) to the logs pipelines before reading the next, so a slow pipeline
//! slows the sender down through TCP instead of filling memory. A frame with a `chunk` option
//! is acknowledged (`{"ack": chunk}`) only once the pipelines took it; when they refuse (the
//! memory limiter, a full queue) the connection is closed unacknowledged and the sender
//! resends, as with the collector. A frame without `chunk` cannot be refused to its sender:
//! where the collector drops it, trailhead keeps asking the pipelines (the sender waits
//! meanwhile), and drops it only for a failing processor or at shutdown, with a warning.
//! Bad input (not msgpack, no known mode, a wrong type) closes that connection, counted as
//! malformed; the others go on.
//!
//! At most 100 connections are served at once (the collector's bound); more wait in the
//! accept backlog. At shutdown the listener closes, each connection hands over the frames it
//! has whole, and shutdown waits for them.

pub mod protocol;
pub mod to_otlp;

use crate::pdata::{Batch, RequestContext};
use crate::pipeline::{ConsumeError, Fanout};
use crate::receivers::Listening;
use crate::telemetry::Telemetry;
use bytes::{Buf, BytesMut};
use protocol::{Event, MAX_FRAME_BYTES, next_frame};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The collector's bound on connections served at once.
const MAX_CONNECTIONS: usize = 100;

/// How long a frame waits for room (memory, a full queue) before it is refused: under the 3 s
/// fluent-logger waits for an ack by default.
const ROOM_WAIT: Duration = Duration::from_secs(1);

/// The read buffer's first size (the collector's); it grows to hold a larger frame.
const READ_BUFFER: usize = 10 * 1024;

/// `receivers: fluent_forward:` (or `fluentforward:`, the collector's deprecated name).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FluentForwardReceiverConfig {
    /// Where to listen: `host:port` (TCP, with heartbeats answered over UDP on the same port)
    /// or a Unix socket, `unix://PATH` or `/PATH`. Required: the collector's empty default
    /// listens on ports nobody is told of.
    #[serde(deserialize_with = "endpoint")]
    pub endpoint: Option<Endpoint>,
}

/// Where the receiver listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Reads `endpoint` as the collector does: a path (`unix://` or a leading `/`) is a Unix
/// socket, anything else a TCP `host:port`.
fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Endpoint>, D::Error> {
    let text = String::deserialize(d)?;
    if let Some(path) = text.strip_prefix("unix://") {
        return Ok(Some(Endpoint::Unix(PathBuf::from(path))));
    }
    if text.starts_with('/') {
        return Ok(Some(Endpoint::Unix(PathBuf::from(text))));
    }
    let address =
        crate::config::values::parse_listen_address(&text).map_err(serde::de::Error::custom)?;
    Ok(Some(Endpoint::Tcp(address)))
}

/// What every connection of one receiver shares.
struct Shared {
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
    stop: CancellationToken,
}

/// Listens on `endpoint` until `stop`, feeding `fanout`; with TCP, answers heartbeats on the
/// same port over UDP. Returns the listeners, whose tasks end once their connections have.
pub async fn start(
    id: &str,
    endpoint: &Endpoint,
    fanout: Arc<Fanout>,
    telemetry: &Telemetry,
    stop: CancellationToken,
) -> std::io::Result<Vec<Listening>> {
    let shared = Arc::new(Shared {
        fanout,
        receiver: Arc::from(id),
        stop: stop.clone(),
    });
    match endpoint {
        Endpoint::Tcp(address) => start_tcp(id, *address, shared, telemetry).await,
        Endpoint::Unix(path) => start_unix(id, path, shared, telemetry),
    }
}

/// The listener's error, naming where it could not listen.
fn cannot_listen(what: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {what}: {e}"))
}

/// TCP on `address`, and heartbeats over UDP on the same port (also when TCP's was picked:
/// the collector binds UDP to the configured `:0`, a different port).
async fn start_tcp(
    id: &str,
    address: SocketAddr,
    shared: Arc<Shared>,
    telemetry: &Telemetry,
) -> std::io::Result<Vec<Listening>> {
    let tcp = TcpListener::bind(address)
        .await
        .map_err(|e| cannot_listen(&address.to_string(), e))?;
    let address = tcp.local_addr()?;
    let udp = UdpSocket::bind(address)
        .await
        .map_err(|e| cannot_listen(&format!("{address} (UDP heartbeats)"), e))?;
    let heartbeats = answer_heartbeats(udp, shared.stop.clone());
    let task = telemetry
        .supervisor
        .spawn(format!("server {id}"), accept_loop(tcp, shared));
    let heartbeat_name = format!("{id} (heartbeat)");
    let heartbeat_task = telemetry
        .supervisor
        .spawn(format!("server {heartbeat_name}"), heartbeats);
    Ok(vec![
        Listening {
            name: id.to_string(),
            address,
            task,
        },
        Listening {
            name: heartbeat_name,
            address,
            task: heartbeat_task,
        },
    ])
}

/// A Unix socket at `path`, removed again at shutdown as Go's listener removes it.
fn start_unix(
    id: &str,
    path: &Path,
    shared: Arc<Shared>,
    telemetry: &Telemetry,
) -> std::io::Result<Vec<Listening>> {
    let unix =
        UnixListener::bind(path).map_err(|e| cannot_listen(&path.display().to_string(), e))?;
    tracing::info!(server = %id, path = %path.display(), "listening on a Unix socket");
    let path = path.to_path_buf();
    let accepting = async move {
        accept_loop(unix, shared).await;
        let _ = std::fs::remove_file(&path);
    };
    let task = telemetry
        .supervisor
        .spawn(format!("server {id}"), accepting);
    Ok(vec![Listening {
        name: format!("{id} (unix)"),
        // A Unix socket has no IP address: `Listening` shows the unspecified one.
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        task,
    }])
}

/// A TCP or Unix listener: what the accept loop needs of either.
trait Accept: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_one(
        &self,
    ) -> impl Future<Output = std::io::Result<(Self::Stream, Option<SocketAddr>)>> + Send;
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Option<SocketAddr>)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Some(peer)))
    }
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Option<SocketAddr>)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, None))
    }
}

/// Accepts connections, at most [`MAX_CONNECTIONS`] at once, until `stop`; then waits for the
/// connections to end.
async fn accept_loop<L: Accept>(listener: L, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Each connection holds a sender; when all are dropped, every connection has ended.
    let (open_connections, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        // A slot first: past the bound, connections wait in the backlog, as the collector's.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = shared.stop.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept_one() => accepted,
            () = shared.stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(server = %shared.receiver, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let open = open_connections.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, &shared).await;
            drop((slot, open));
        });
    }
    drop(listener);
    drop(open_connections);
    let _ = all_closed.recv().await;
}

/// Why a connection is closed early.
enum Closed {
    /// Bad input: counted as malformed.
    Malformed(String),
    /// The pipelines refused a chunked frame, or its ack could not be written.
    Unacknowledged(String),
}

/// Reads frames until the sender closes, bad input, a refusal of a chunked frame, or `stop`.
async fn serve_connection<S>(mut stream: S, peer: Option<SocketAddr>, shared: &Shared)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buffer = BytesMut::with_capacity(READ_BUFFER);
    let outcome = loop {
        match take_frames(&mut stream, &mut buffer, peer, shared).await {
            Ok(()) => {}
            Err(closed) => break Some(closed),
        }
        if buffer.len() > MAX_FRAME_BYTES {
            let message = format!("a frame is larger than {MAX_FRAME_BYTES} bytes");
            break Some(Closed::Malformed(message));
        }
        let read = tokio::select! {
            biased;
            // Frames already whole were handed over above; a partial one is never acked.
            () = shared.stop.cancelled() => break None,
            read = stream.read_buf(&mut buffer) => read,
        };
        match read {
            Ok(0) | Err(_) => break None,
            Ok(_) => {}
        }
    };
    match outcome {
        Some(Closed::Malformed(why)) => {
            shared.fanout.metrics().malformed_requests.add(1);
            tracing::debug!(receiver = %shared.receiver, peer = ?peer, error = %why, "closing a connection that sent a bad frame");
        }
        Some(Closed::Unacknowledged(why)) => {
            tracing::debug!(receiver = %shared.receiver, peer = ?peer, error = %why, "closing a connection without acknowledging its chunk");
        }
        None => {}
    }
    let _ = stream.shutdown().await;
}

/// Hands over every whole frame at the start of `buffer`, acknowledging chunks.
async fn take_frames<S>(
    stream: &mut S,
    buffer: &mut BytesMut,
    peer: Option<SocketAddr>,
    shared: &Shared,
) -> Result<(), Closed>
where
    S: AsyncWrite + Unpin,
{
    loop {
        let (event, used) = match next_frame(buffer) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Closed::Malformed(e.to_string())),
        };
        buffer.advance(used);
        let Event { log_records, chunk } = event;
        let context = RequestContext::of_request(peer, None, shared.receiver.clone());
        let batch = to_otlp::batch(log_records, context);
        match chunk {
            Some(chunk) => {
                let deadline = Instant::now() + ROOM_WAIT;
                deliver(&shared.fanout, batch, deadline)
                    .await
                    .map_err(|e| Closed::Unacknowledged(e.to_string()))?;
                stream
                    .write_all(&protocol::ack(&chunk))
                    .await
                    .map_err(|e| Closed::Unacknowledged(format!("writing the ack: {e}")))?;
            }
            None => deliver_unacknowledged(batch, shared).await,
        }
    }
}

/// Room first (the memory limiter), then the pipelines, each tried again until `deadline`.
async fn deliver(fanout: &Fanout, batch: Batch, deadline: Instant) -> Result<(), ConsumeError> {
    fanout.admit_within(deadline).await?;
    fanout.consume_within(batch, deadline).await.map(drop)
}

/// A frame its sender cannot be told was refused: asked again until taken, as long as a
/// retry can help and trailhead is not stopping.
async fn deliver_unacknowledged(batch: Batch, shared: &Shared) {
    let items = batch.items;
    loop {
        let deadline = Instant::now() + ROOM_WAIT;
        let error = match deliver(&shared.fanout, batch.clone(), deadline).await {
            Ok(()) => return,
            Err(e) => e,
        };
        if !error.is_retryable() || shared.stop.is_cancelled() {
            tracing::warn!(receiver = %shared.receiver, items, error = %error, "dropping log records sent without a chunk option: the pipelines refused them");
            return;
        }
        // A refusal that was not for room (a queue closing) answers at once: pace the retries.
        tokio::select! {
            () = tokio::time::sleep(ROOM_WAIT) => {}
            () = shared.stop.cancelled() => {}
        }
    }
}

/// Echoes each heartbeat datagram's first byte to its sender, as the collector does.
async fn answer_heartbeats(socket: UdpSocket, stop: CancellationToken) {
    // One byte: a longer datagram is cut to it.
    let mut heartbeat = [0u8; 1];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut heartbeat) => received,
            () = stop.cancelled() => return,
        };
        match received {
            Ok((1, sender)) => {
                if let Err(e) = socket.send_to(&heartbeat, sender).await {
                    tracing::debug!(sender = %sender, error = %e, "cannot answer a heartbeat");
                }
            }
            // Empty datagrams, and errors ICMP reports from earlier answers: nothing to do.
            Ok(_) | Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
