//! The `zipkin` receiver: what Dapr sidecars send. v2 JSON or protobuf on every path that does
//! not contain `api/v1/spans` (Dapr posts to whatever URL it is given), v1 JSON on
//! `/api/v1/spans`. **202** on success — Dapr treats anything else as a failure.

pub mod model;
pub mod to_otlp;

use crate::auth::AuthConfig;
use crate::pdata::{Batch, Signal};
use crate::pipeline::{ConsumeError, Fanout};
use crate::receivers::body::media_type;
use crate::receivers::ingest::{Refused, ingest};
use crate::receivers::keepalive::{GoDuration, Lifetime, http_lifetime};
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::tls::TlsServerConfig;
use crate::receivers::{Consumers, retry_later};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// `receivers: zipkin:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZipkinReceiverConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Turn tag strings that look like bools or numbers into typed attributes.
    pub parse_string_tags: bool,
    /// Largest body accepted, in bytes, both as sent and after decompression.
    pub max_request_body_size: usize,
    /// Serve TLS; with `client_ca_file`, mutual TLS.
    pub tls: Option<TlsServerConfig>,
    /// Require a bearer token (`authenticator: bearertokenauth/NAME`).
    pub auth: Option<AuthConfig>,
    /// The collector's `include_metadata`: keep the request's headers as client metadata for
    /// later components. trailhead keeps none; what reads it in the collector (the batch
    /// processor's `metadata_keys`, `from_context: metadata.*`, a `headers_setter` context
    /// source behind this receiver) is refused, so the flag changes nothing accepted.
    pub include_metadata: bool,
    /// Cross-origin requests from browsers, as the collector's `cors`.
    pub cors: Option<crate::receivers::cors::CorsConfig>,
    /// Connection and request-rate limits.
    pub limits: ConnectionLimits,
    /// How long a request refused for room (memory, a full queue or disk) waits for it before
    /// the 503 (trailhead's key). Dapr's exporter drops a refused batch and never retries; its
    /// batcher exports one batch at a time and queues 2,048 spans meanwhile, so a wait longer
    /// than a second or two overflows the sidecar instead. `0s` answers at once.
    #[serde(deserialize_with = "crate::config::values::duration")]
    pub wait_for_room: Duration,
    /// The collector's `idle_timeout`: a connection with no request in flight for this long is
    /// closed (HTTP/2 with a GOAWAY). Default 1m; zero or negative: never (trailhead has no
    /// `read_timeout` for the collector's zero to fall back to).
    pub idle_timeout: GoDuration,
    /// The collector's `keep_alives_enabled`: `false` answers every HTTP/1.1 request with
    /// `Connection: close`. Default true.
    pub keep_alives_enabled: bool,
    /// Trailhead's own (the collector has no such key): a connection this old (±10% jitter)
    /// gets `Connection: close` on its next HTTP/1.1 response, or a GOAWAY on HTTP/2 while
    /// requests in flight finish, so senders reconnect and spread over replicas. `0`: never.
    #[serde(deserialize_with = "crate::config::values::duration")]
    pub max_connection_age: Duration,
    /// Trailhead's own: after the age's GOAWAY, how long HTTP/2 requests in flight may take
    /// before the connection is closed under them. `0`: as long as they need.
    #[serde(deserialize_with = "crate::config::values::duration")]
    pub max_connection_age_grace: Duration,
}

impl Default for ZipkinReceiverConfig {
    fn default() -> Self {
        ZipkinReceiverConfig {
            endpoint: "0.0.0.0:9411".into(),
            parse_string_tags: false,
            max_request_body_size: 20 << 20,
            tls: None,
            auth: None,
            include_metadata: false,
            cors: None,
            limits: ConnectionLimits::default(),
            wait_for_room: Duration::from_secs(1),
            idle_timeout: GoDuration::from_secs(60),
            keep_alives_enabled: true,
            max_connection_age: Duration::ZERO,
            max_connection_age_grace: Duration::ZERO,
        }
    }
}

impl ZipkinReceiverConfig {
    /// How long each connection is kept.
    pub fn lifetime(&self) -> Lifetime {
        http_lifetime(
            self.idle_timeout,
            self.keep_alives_enabled,
            self.max_connection_age,
            self.max_connection_age_grace,
        )
    }
}

/// The Zipkin routes: every path. `None` when no traces pipeline lists this receiver.
pub fn router(
    id: &str,
    config: &ZipkinReceiverConfig,
    consumers: &Consumers,
) -> Option<axum::Router> {
    let fanout = consumers.get(Signal::Traces)?.clone();
    let receiver: Arc<str> = Arc::from(id);
    let config = config.clone();
    let router = axum::Router::new().fallback(move |request: Request| {
        handle(fanout.clone(), receiver.clone(), config.clone(), request)
    });
    Some(router)
}

async fn handle(
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
    config: ZipkinReceiverConfig,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    if parts.method != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {} is not allowed; POST spans", parts.method),
        );
    }
    let bad = |status: StatusCode, message: String| {
        fanout.metrics().malformed_requests.add(1);
        reply(status, message)
    };
    let v1 = parts.uri.path().contains("api/v1/spans");
    let media = media_type(&parts.headers);
    let protobuf = media == "application/x-protobuf";
    if media == "application/x-thrift" || (v1 && protobuf) {
        return bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type `{media}` on {}: send JSON{}",
                parts.uri.path(),
                if v1 { "" } else { " or application/x-protobuf" }
            ),
        );
    }
    let decode = |body: bytes::Bytes, context| {
        let mut converter = to_otlp::Converter::new(config.parse_string_tags, 0);
        let read = if v1 {
            model::parse_v1_json(&body)
                .and_then(|s| s.into_iter().try_for_each(|s| converter.push(s)))
        } else if protobuf {
            model::parse_v2_proto(&body)
                .and_then(|s| s.into_iter().try_for_each(|s| converter.push(s)))
        } else {
            model::for_each_v2_json(&body, |span| converter.push(span))
        };
        let (request, count) = read
            .map(|()| converter.finish())
            .map_err(|e| e.to_string())?;
        Ok(Batch::from_encoded(Signal::Traces, request, count, context))
    };
    // Short of memory or room: wait a little (Dapr never retries), then refuse.
    let deadline = Instant::now() + config.wait_for_room;
    let limit = config.max_request_body_size;
    match ingest(&fanout, receiver, (&parts, body), limit, deadline, decode).await {
        // Zipkin has no partial success: a failing processor's drops are only counted.
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(Refused::Pipelines(e)) => refused(e),
        Err(Refused::Malformed(status, message)) => reply(status, message),
    }
}

/// A refusal: 503 + `Retry-After` when the sender should retry, else 500.
fn refused(e: ConsumeError) -> Response {
    match e.is_retryable() {
        true => retry_later(reply(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        false => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn reply(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}
