//! The Jaeger agent API over UDP: each datagram is one `Agent.emitBatch` thrift message
//! (compact on 6831, binary on 6832). As the collector's UDP server: one reader puts packets
//! on a queue of `queue_size` (a packet that finds it full is dropped), `workers` tasks decode
//! and send them on, a packet longer than `max_packet_size` is cut there (and so fails to
//! decode), and `socket_buffer_size` sets the socket's receive buffer. UDP has no answer: a
//! packet that does not decode is counted as malformed and logged at debug level, a batch the
//! pipelines refuse is counted as refused by them.

use super::thrift::{Protocol, read_agent_message};
use super::to_otlp::{Form, to_otlp};
use crate::config::values::parse_listen_address;
use crate::pdata::{Batch, RequestContext};
use crate::pipeline::Fanout;
use crate::receivers::Listening;
use crate::telemetry::Telemetry;
use serde::Deserialize;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// The largest UDP payload there can be: a larger `max_packet_size` needs no larger buffer.
const LARGEST_DATAGRAM: usize = 65_536;

/// Where a UDP protocol listens when its `endpoint` is not given.
pub trait DefaultEndpoint {
    const ENDPOINT: &'static str;
}

/// thrift_compact's default endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompactEndpoint;

impl DefaultEndpoint for CompactEndpoint {
    const ENDPOINT: &'static str = "localhost:6831";
}

/// thrift_binary's default endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinaryEndpoint;

impl DefaultEndpoint for BinaryEndpoint {
    const ENDPOINT: &'static str = "localhost:6832";
}

/// `protocols: thrift_compact:` / `thrift_binary:` — the collector's UDP server options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct UdpConfig<E: DefaultEndpoint> {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Packets waiting for a worker; a packet that finds the queue full is dropped.
    pub queue_size: i64,
    /// Longest packet read, in bytes; the rest of a longer one is cut off.
    pub max_packet_size: i64,
    /// Tasks decoding packets.
    pub workers: i64,
    /// The socket's receive buffer (`SO_RCVBUF`) in bytes; 0 leaves the system's.
    pub socket_buffer_size: i64,
    #[serde(skip)]
    default_endpoint: PhantomData<E>,
}

impl<E: DefaultEndpoint> Default for UdpConfig<E> {
    fn default() -> Self {
        UdpConfig {
            endpoint: E::ENDPOINT.into(),
            queue_size: 1_000,
            max_packet_size: 65_000,
            workers: 10,
            socket_buffer_size: 0,
            default_endpoint: PhantomData,
        }
    }
}

impl<E: DefaultEndpoint> UdpConfig<E> {
    /// Values the collector fails on (at start, or by panicking or spinning): refused here.
    pub fn problem(&self) -> Option<String> {
        if self.workers <= 0 {
            return Some(format!(
                "number of processors must be greater than 0, called with {}",
                self.workers
            ));
        }
        if self.queue_size < 0 {
            return Some(format!(
                "queue_size must not be negative, got {}",
                self.queue_size
            ));
        }
        if self.max_packet_size <= 0 {
            return Some(format!(
                "max_packet_size must be greater than 0, got {}",
                self.max_packet_size
            ));
        }
        None
    }
}

/// Binds the socket, with the receive buffer asked for.
fn bind<E: DefaultEndpoint>(config: &UdpConfig<E>) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let address: SocketAddr = parse_listen_address(&config.endpoint)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, None)?;
    if config.socket_buffer_size > 0 {
        socket.set_recv_buffer_size(config.socket_buffer_size as usize)?;
    }
    socket.bind(&address.into()).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", config.endpoint),
        )
    })?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Serves one UDP protocol until `stop`; its task ends when the queue has been drained.
pub fn start<E: DefaultEndpoint>(
    name: String,
    config: &UdpConfig<E>,
    protocol: Protocol,
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
    telemetry: &Telemetry,
    stop: CancellationToken,
) -> std::io::Result<Listening> {
    let socket = bind(config)?;
    let address = socket.local_addr()?;
    // tokio's queue needs room for one; the collector's `queue_size: 0` hands a packet over
    // only to a waiting worker, which one slot matches but for that one packet.
    let (queue, packets) =
        mpsc::channel::<(Vec<u8>, SocketAddr)>(config.queue_size.max(1) as usize);
    let packets = Arc::new(Mutex::new(packets));
    let workers: Vec<_> = (0..config.workers)
        .map(|_| {
            let worker = Worker {
                packets: packets.clone(),
                protocol,
                fanout: fanout.clone(),
                receiver: receiver.clone(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    let buffer_size = (config.max_packet_size as usize).min(LARGEST_DATAGRAM);
    let task = telemetry
        .supervisor
        .spawn(format!("server {name}"), async move {
            read_packets(socket, buffer_size, queue, &receiver, stop).await;
            // The queue is closed: the workers drain it and end.
            for worker in workers {
                let _ = worker.await;
            }
        });
    Ok(Listening {
        name,
        address,
        task,
    })
}

/// Reads datagrams onto the queue until `stop`, dropping those that find it full.
async fn read_packets(
    socket: UdpSocket,
    buffer_size: usize,
    queue: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    receiver: &str,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; buffer_size];
    loop {
        let (length, peer) = tokio::select! {
            read = socket.recv_from(&mut buffer) => match read {
                Ok(read) => read,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP read failed");
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // As the collector, a packet that finds the queue full is dropped unread (its
        // spans are not known, so it is not counted as refused items).
        if queue.try_send((buffer[..length].to_vec(), peer)).is_err() {
            tracing::debug!(receiver = %receiver, %peer, "Jaeger agent queue full: dropped a packet");
        }
    }
}

/// One of the tasks decoding packets.
struct Worker {
    packets: Arc<Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>>,
    protocol: Protocol,
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
}

impl Worker {
    async fn run(self) {
        loop {
            let next = self.packets.lock().await.recv().await;
            let Some((packet, peer)) = next else {
                return;
            };
            self.process(&packet, peer).await;
        }
    }

    async fn process(&self, packet: &[u8], peer: SocketAddr) {
        let batch = match read_agent_message(packet, self.protocol) {
            Ok(Some(batch)) => batch,
            Ok(None) => return,
            Err(e) => {
                self.fanout.metrics().malformed_requests.add(1);
                tracing::debug!(receiver = %self.receiver, %peer, error = %e, "dropped a Jaeger agent packet that does not decode");
                return;
            }
        };
        let (request, _) = to_otlp(batch, Form::Thrift);
        let context = RequestContext::of_request(Some(peer), None, self.receiver.clone());
        let batch = Batch::from_message(self.fanout.signal, &request, context);
        if let Err(e) = self.fanout.consume(batch).await {
            tracing::debug!(receiver = %self.receiver, error = %e, "the pipelines refused a Jaeger agent batch");
        }
    }
}
