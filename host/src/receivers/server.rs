//! The one server loop every listener runs (OTLP gRPC and HTTP, Zipkin, and the admin
//! servers): accept under a connection limit, TLS (mTLS with a client CA), HTTP/1.1 and HTTP/2
//! on the same port, then per request the authenticator (bearer token, basic, OIDC) and the
//! rate limit, before the router.
//!
//! Doing this in one place means every receiver refuses the same way: HTTP 401 / 429, gRPC
//! UNAUTHENTICATED / RESOURCE_EXHAUSTED with RetryInfo, and a closed connection past the limit.
//! Each connection's lifetime (idle and age bounds, server pings; [`super::keepalive`]) is
//! kept here too, by a driver that watches the requests in flight on it ([`Activity`]).

use super::cors::{CorsPolicy, is_preflight};
use super::keepalive::{Activity, Lifetime, drive};
use super::limits::{ConnectionLimits, RateLimiter};
use super::pings::PingWatch;
use crate::auth::ServerAuth;
use crate::secrets::Rotating;
use crate::telemetry::{ServerMetrics, Telemetry};
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpConnectInfo;
use tower::ServiceExt;

/// The largest HTTP/2 frame a client may send. A client that honours it (tonic, grpc C-core,
/// grpc-java) sends a 150 KB export in a few frames instead of ten 16 KiB ones, so it is read
/// in fewer syscalls; h2 holds at most one such frame per connection while reading.
const MAX_FRAME_SIZE: u32 = 256 * 1024;

/// A client that does not finish its TLS handshake in this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How one listener serves, resolved from its config.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Re-read when its files change: each new connection takes the current one.
    pub tls: Option<Arc<Rotating<rustls::ServerConfig>>>,
    /// The receiver's authenticator: each request is checked against its current state.
    pub auth: Option<Arc<ServerAuth>>,
    pub limits: ConnectionLimits,
    pub max_concurrent_streams: Option<u32>,
    /// Idle and age bounds and server pings, for every connection.
    pub lifetime: Lifetime,
    /// The receiver's `cors` with allowed origins, answered around every check: preflights
    /// pass without a token, and refusals carry the allowing headers, as rs/cors wrapping
    /// confighttp's handler does.
    pub cors: Option<Arc<CorsPolicy>>,
}

/// A listening server: where it listens and the task that ends after graceful shutdown.
pub struct Listening {
    pub name: String,
    pub address: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `endpoint` (`host:port`; port 0 picks a free port) and serves `router` on it until
/// `shutdown`, then lets requests in flight finish.
pub async fn serve(
    name: String,
    endpoint: &str,
    router: axum::Router,
    options: ServeOptions,
    telemetry: &Telemetry,
    shutdown: CancellationToken,
) -> std::io::Result<Listening> {
    let listener = bind(endpoint).await?;
    let address = listener.local_addr()?;
    let refusals = ServerMetrics::new(&telemetry.registry, &name);
    let task = telemetry.supervisor.spawn(
        format!("server {name}"),
        accept_loop(listener, router, options, refusals, name.clone(), shutdown),
    );
    Ok(Listening {
        name,
        address,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    router: axum::Router,
    options: ServeOptions,
    refusals: ServerMetrics,
    name: String,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(http_builder(&options));
    // Each connection holds a sender; when all are dropped, every connection has ended.
    let (open_connections, mut all_closed) = mpsc::channel::<()>(1);
    let open = options
        .limits
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    let rate = options.limits.rate_limiter().map(Arc::new);
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(server = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let permit = match &open {
            None => None,
            Some(open) => match open.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    refusals.refused_connections.add(1);
                    continue; // dropping the stream closes it
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            peer,
            local,
            guard: Arc::new(Guard {
                cors: options.cors.clone(),
                auth: options.auth.clone(),
                rate: rate.clone(),
                refusals: refusals.clone(),
            }),
            router: router.clone(),
            tls: options.tls.clone(),
            builder: builder.clone(),
            name: name.clone(),
            lifetime: options.lifetime.clone(),
            shutdown: shutdown.clone(),
            _open: open_connections.clone(),
            _permit: permit,
        };
        tokio::spawn(connection.serve(stream));
    }
    drop(listener);
    drop(open_connections);
    // Connections saw `shutdown` too: they finish what is in flight and close.
    let _ = all_closed.recv().await;
}

/// HTTP/1.1 and HTTP/2 on one port, with the listener's stream limit, large frames and, when
/// configured, server pings (hyper pings after `time` without reads, as grpc-go does, and
/// closes the connection when the answer takes longer than `timeout`).
fn http_builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(options.lifetime.http1_keep_alive);
    let mut http2 = builder.http2();
    http2
        .max_concurrent_streams(options.max_concurrent_streams)
        .max_frame_size(MAX_FRAME_SIZE);
    if let Some((interval, timeout)) = options.lifetime.ping {
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(interval)
            .keep_alive_timeout(timeout);
    }
    builder
}

/// One accepted connection and what serving it needs.
struct Connection {
    peer: SocketAddr,
    local: Option<SocketAddr>,
    guard: Arc<Guard>,
    router: axum::Router,
    tls: Option<Arc<Rotating<rustls::ServerConfig>>>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    name: String,
    lifetime: Lifetime,
    /// The server's: cancelled, the connection finishes what is in flight and closes.
    shutdown: CancellationToken,
    /// Dropped when the connection ends, so the server knows when all have.
    _open: mpsc::Sender<()>,
    /// Held while the connection is open, under `limits.max_connections`.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Connection {
    /// TLS first when configured, then every request through the guard to the router, until
    /// the peer closes or graceful shutdown ends the connection.
    async fn serve(self, stream: tokio::net::TcpStream) {
        let Connection {
            peer,
            local,
            guard,
            router,
            tls,
            builder,
            name,
            lifetime,
            shutdown,
            _open,
            _permit,
        } = self;
        // Plain or TLS, the connection is then served the same way.
        let stream = match tls {
            None => Either::Left(stream),
            Some(tls) => {
                let acceptor = TlsAcceptor::from(tls.load_full());
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => Either::Right(stream),
                    Ok(Err(e)) => {
                        tracing::debug!(server = %name, peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                }
            }
        };
        let activity = Arc::new(Activity::default());
        // grpc-go's ping policy watches the frames; other listeners skip the wrapper.
        let stream = match lifetime.pings {
            Some(policy) => Either::Left(PingWatch::new(stream, policy, activity.clone())),
            None => Either::Right(stream),
        };
        let connect_info = TcpConnectInfo {
            local_addr: local,
            remote_addr: Some(peer),
        };
        let requests = activity.clone();
        let service =
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(connect_info.clone());
                let in_flight = requests.begin(request.version());
                let guard = guard.clone();
                let router = router.clone();
                async move {
                    let Some(cors) = guard.cors.clone() else {
                        let response = guard.serve(request, router).await?;
                        return Ok(in_flight.finish(response));
                    };
                    if is_preflight(&request) {
                        return Ok(in_flight.finish(cors.preflight(request.headers())));
                    }
                    let asked = CorsPolicy::asked(&request);
                    let mut response = guard.serve(request, router).await?;
                    cors.decorate(asked, &mut response);
                    Ok::<_, std::convert::Infallible>(in_flight.finish(response))
                }
            });
        let connection = std::pin::pin!(builder.serve_connection(TokioIo::new(stream), service));
        let graceful = |connection: std::pin::Pin<&mut _>| {
            hyper_util::server::conn::auto::Connection::graceful_shutdown(connection)
        };
        let served = drive(connection, graceful, &activity, &lifetime, &shutdown).await;
        if let Some(Err(e)) = served {
            tracing::debug!(server = %name, peer = %peer, error = %e, "connection ended with an error");
        }
    }
}

/// The checks made on every request before it reaches the router.
struct Guard {
    cors: Option<Arc<CorsPolicy>>,
    auth: Option<Arc<ServerAuth>>,
    rate: Option<Arc<RateLimiter>>,
    refusals: ServerMetrics,
}

impl Guard {
    /// `request` answered by `router` when it passes the checks; only its headers are held
    /// while an authenticator may wait (OIDC keys).
    async fn serve(
        &self,
        request: http::Request<hyper::body::Incoming>,
        router: axum::Router,
    ) -> Result<Response, std::convert::Infallible> {
        match self.check(request.headers()).await {
            Some(refusal) => Ok(refusal),
            None => router.oneshot(request.map(axum::body::Body::new)).await,
        }
    }

    /// The refusal for a request with `headers`, if it is refused.
    async fn check(&self, headers: &http::HeaderMap) -> Option<Response> {
        // Only a refusal needs to know how to answer.
        let grpc = || {
            headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
        };
        if let Some(auth) = &self.auth
            && let Err(refusal) = auth.check(headers).await
        {
            self.refusals.unauthenticated_requests.add(1);
            return Some(if grpc() {
                tonic::Status::unauthenticated(refusal.message).into_http()
            } else {
                let mut response =
                    (http::StatusCode::UNAUTHORIZED, refusal.message).into_response();
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static(refusal.challenge),
                );
                response
            });
        }
        if let Some(rate) = &self.rate
            && let Err(wait) = rate.try_acquire()
        {
            self.refusals.rate_limited_requests.add(1);
            let message = "request rate limit reached; retry later";
            return Some(if grpc() {
                use tonic_types::{ErrorDetails, StatusExt};
                tonic::Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    message,
                    ErrorDetails::with_retry_info(Some(wait)),
                )
                .into_http()
            } else {
                let mut response = (http::StatusCode::TOO_MANY_REQUESTS, message).into_response();
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(wait.as_secs().max(1)),
                );
                response
            });
        }
        None
    }
}

/// Binds a TCP listener, naming the endpoint in the error.
async fn bind(endpoint: &str) -> std::io::Result<TcpListener> {
    // Go's `:4317` (every interface), which the collector's configs write.
    let every_interface = endpoint
        .starts_with(':')
        .then(|| format!("0.0.0.0{endpoint}"));
    TcpListener::bind(every_interface.as_deref().unwrap_or(endpoint))
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {endpoint}: {e}")))
}
