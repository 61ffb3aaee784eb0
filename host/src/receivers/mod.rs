//! Receivers: where telemetry enters. Each validates what it gets, tags it with the sender's
//! address, and hands it to its per-signal [`Fanout`]; a full pipeline becomes a retryable
//! refusal (HTTP 503 + `Retry-After`, gRPC UNAVAILABLE), never an unbounded buffer.

pub mod body;
pub mod otlp;
pub mod zipkin;

use crate::pdata::Signal;
use crate::pipeline::Fanout;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a refused sender is asked to wait before retrying.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The fanouts one receiver feeds, per signal (`None` when no pipeline of that signal lists it).
#[derive(Clone, Default)]
pub struct Consumers {
    pub traces: Option<Arc<Fanout>>,
    pub metrics: Option<Arc<Fanout>>,
    pub logs: Option<Arc<Fanout>>,
}

impl Consumers {
    pub fn get(&self, signal: Signal) -> Option<&Arc<Fanout>> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
        }
    }

    pub fn set(&mut self, signal: Signal, fanout: Arc<Fanout>) {
        let slot = match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
        };
        *slot = Some(fanout);
    }
}

/// A listening server: where it listens and the task that ends after graceful shutdown.
pub struct Listening {
    pub name: String,
    pub address: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `endpoint` (`host:port`; port 0 picks a free port) and serves `router` on it with the
/// peer address available to handlers, until `shutdown`.
pub async fn serve_http(
    name: String,
    endpoint: &str,
    router: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<Listening> {
    let listener = bind(endpoint).await?;
    let address = listener.local_addr()?;
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(shutdown.cancelled_owned());
    Ok(Listening::spawn(name, address, server.into_future()))
}

impl Listening {
    /// Runs a server to completion in its own task, logging how it failed if it does.
    pub fn spawn<E: std::fmt::Display>(
        name: String,
        address: SocketAddr,
        server: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    ) -> Listening {
        let task_name = name.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(server = %task_name, error = %e, "server failed");
            }
        });
        Listening {
            name,
            address,
            task,
        }
    }
}

/// Marks a refusal as retryable for HTTP senders: come back in `RETRY_AFTER_SECONDS`.
pub fn retry_later(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(RETRY_AFTER_SECONDS),
    );
    response
}

/// Binds a TCP listener, naming the endpoint in the error.
pub async fn bind(endpoint: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(endpoint)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {endpoint}: {e}")))
}

/// The `X-Forwarded-For` header of an HTTP request, if it is text.
pub fn forwarded_for(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
}
