//! OTLP/HTTP: `POST /v1/{traces,metrics,logs}` and `/v1development/profiles` (the collector's
//! fixed path: it has no `profiles_url_path`) with protobuf or JSON bodies, compressed or not.
//! A profiles request with an unsupported `OTLP-Profiles-Development-Version` gets 400 before
//! its body is read (see [`crate::pdata::profiles`]).
//! Status codes follow the collector: 405 wrong method, 415 wrong content type, 400 bad body
//! (with a `google.rpc.Status` in the request's encoding), 413 too large, 503 + `Retry-After`
//! when full, 200 with an empty response on success, or `partial_success` when a failing
//! processor dropped items it had accepted.

use crate::auth::AuthConfig;
use crate::pdata::json::batch_from_json;
use crate::pdata::{Batch, Signal, profiles};
use crate::pipeline::{Accepted, ConsumeError, Fanout};
use crate::receivers::body::media_type;
use crate::receivers::cors::CorsConfig;
use crate::receivers::ingest::{Refused, ingest};
use crate::receivers::keepalive::{GoDuration, Lifetime, http_lifetime};
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::otlp::response;
use crate::receivers::tls::TlsServerConfig;
use crate::receivers::{Consumers, retry_later};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use prost::Message;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// `protocols: http:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest body accepted, in bytes, both as sent and after decompression.
    pub max_request_body_size: usize,
    /// The path traces are posted to; `/v1/traces` by default.
    pub traces_url_path: String,
    /// The path metrics are posted to; `/v1/metrics` by default.
    pub metrics_url_path: String,
    /// The path logs are posted to; `/v1/logs` by default.
    pub logs_url_path: String,
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
    pub cors: Option<CorsConfig>,
    /// Connection and request-rate limits.
    pub limits: ConnectionLimits,
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

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "0.0.0.0:4318".into(),
            max_request_body_size: 20 << 20,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
            tls: None,
            auth: None,
            include_metadata: false,
            cors: None,
            limits: ConnectionLimits::default(),
            idle_timeout: GoDuration::from_secs(60),
            keep_alives_enabled: true,
            max_connection_age: Duration::ZERO,
            max_connection_age_grace: Duration::ZERO,
        }
    }
}

impl HttpConfig {
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

/// Where profiles are posted: fixed in the collector (v0.161.0), as here.
const PROFILES_URL_PATH: &str = "/v1development/profiles";

/// The encodings OTLP/HTTP speaks; a response uses the request's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The OTLP/HTTP routes for every signal `consumers` has. A function, so tests drive it
/// without sockets.
pub fn router(id: &str, config: &HttpConfig, consumers: &Consumers) -> axum::Router {
    let mut router = axum::Router::new();
    let receiver: Arc<str> = Arc::from(id);
    for signal in Signal::ALL {
        let Some(fanout) = consumers.get(signal).cloned() else {
            continue;
        };
        let path = match signal {
            Signal::Traces => config.traces_url_path.as_str(),
            Signal::Metrics => config.metrics_url_path.as_str(),
            Signal::Logs => config.logs_url_path.as_str(),
            Signal::Profiles => PROFILES_URL_PATH,
        };
        let (receiver, limit) = (receiver.clone(), config.max_request_body_size);
        router = router.route(
            path,
            axum::routing::any(move |request: Request| {
                handle(fanout.clone(), receiver.clone(), limit, request)
            }),
        );
    }
    router
}

async fn handle(
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
    limit: usize,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let encoding = match media_type(&parts.headers).as_str() {
        "application/x-protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other if parts.method == Method::POST => {
            let shown = if other.is_empty() {
                "none".to_string()
            } else {
                format!("`{other}`")
            };
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Type {shown}: use application/x-protobuf or application/json"
                ),
            );
        }
        _ => Encoding::Json,
    };
    if parts.method != Method::POST {
        let mut response = error(
            encoding,
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method {} is not allowed on {}; use POST",
                parts.method,
                parts.uri.path()
            ),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("POST"));
        return response;
    }
    let signal = fanout.signal;
    if signal == Signal::Profiles {
        let declared = parts.headers.get_all(profiles::VERSION_HEADER);
        if let Err(why) = profiles::check_version(declared.iter().map(|v| v.as_bytes())) {
            fanout.metrics().malformed_requests.add(1);
            return error(encoding, StatusCode::BAD_REQUEST, why);
        }
    }
    let decode = |body, context| match encoding {
        Encoding::Protobuf => {
            Batch::from_protobuf(signal, body, context).map_err(|e| e.to_string())
        }
        Encoding::Json => batch_from_json(signal, &body, context)
            .map_err(|e| format!("invalid OTLP/JSON {signal} request: {e}")),
    };
    // Short of memory, refused at once: OTLP senders retry.
    let now = tokio::time::Instant::now();
    match ingest(&fanout, receiver, (&parts, body), limit, now, decode).await {
        Ok(accepted) => success(signal, encoding, &accepted),
        Err(Refused::Pipelines(e)) => refused(encoding, e),
        Err(Refused::Malformed(status, message)) => error(encoding, status, message),
    }
}

/// A refusal: 503 + `Retry-After` when the sender should retry, 413 for a request no
/// exporter could send, else 500.
fn refused(encoding: Encoding, e: ConsumeError) -> Response {
    if e.is_too_large() {
        return error(encoding, StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
    }
    match e.is_retryable() {
        true => retry_later(error(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
        )),
        false => error(encoding, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// 200 with the `Export*ServiceResponse`: empty, or with `partial_success`.
fn success(signal: Signal, encoding: Encoding, accepted: &Accepted) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response::protobuf(signal, accepted),
        )
            .into_response(),
        Encoding::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            response::json(signal, accepted),
        )
            .into_response(),
    }
}

/// An error with a `google.rpc.Status` body in `encoding`.
fn error(encoding: Encoding, status: StatusCode, message: String) -> Response {
    let code = grpc_code(status) as i32;
    match encoding {
        Encoding::Protobuf => {
            let body = RpcStatus { code, message }.encode_to_vec();
            (
                status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                body,
            )
                .into_response()
        }
        Encoding::Json => {
            let body = serde_json::json!({ "code": code, "message": message }).to_string();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    }
}

/// A plain-text error, for requests whose encoding is unknown.
fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}

/// The gRPC code that corresponds to an HTTP status, for the `google.rpc.Status` body.
fn grpc_code(status: StatusCode) -> tonic::Code {
    match status {
        StatusCode::BAD_REQUEST => tonic::Code::InvalidArgument,
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            tonic::Code::Unimplemented
        }
        _ => tonic::Code::Internal,
    }
}
