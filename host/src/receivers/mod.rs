//! Receivers: where telemetry enters. Each validates what it gets, tags it with the sender's
//! address, and hands it to its per-signal [`Fanout`]; a full pipeline becomes a retryable
//! refusal (HTTP 503 + `Retry-After`, gRPC UNAVAILABLE), never an unbounded buffer.

pub mod body;
pub mod cors;
pub mod fluent_forward;
pub mod grpc_unary;
pub mod ingest;
pub mod jaeger;
pub mod keepalive;
pub mod limits;
pub mod otlp;
pub mod pings;
pub mod prometheus;
pub mod server;
pub mod tls;
pub mod zipkin;

pub use server::{Listening, ServeOptions, serve};

use crate::pdata::Signal;
use crate::pipeline::Fanout;
use std::sync::Arc;

/// How long a refused sender is asked to wait before retrying.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The fanouts one receiver feeds, per signal (`None` when no pipeline of that signal lists it).
#[derive(Clone, Default)]
pub struct Consumers {
    pub traces: Option<Arc<Fanout>>,
    pub metrics: Option<Arc<Fanout>>,
    pub logs: Option<Arc<Fanout>>,
    pub profiles: Option<Arc<Fanout>>,
}

impl Consumers {
    pub fn get(&self, signal: Signal) -> Option<&Arc<Fanout>> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
            Signal::Profiles => self.profiles.as_ref(),
        }
    }

    pub fn set(&mut self, signal: Signal, fanout: Arc<Fanout>) {
        let slot = match signal {
            Signal::Traces => &mut self.traces,
            Signal::Metrics => &mut self.metrics,
            Signal::Logs => &mut self.logs,
            Signal::Profiles => &mut self.profiles,
        };
        *slot = Some(fanout);
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

/// The `X-Forwarded-For` header of an HTTP request, if it is text.
pub fn forwarded_for(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
}
