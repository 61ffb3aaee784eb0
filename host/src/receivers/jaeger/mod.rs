//! The `jaeger` receiver, as the collector's (contrib `receiver/jaegerreceiver` v0.161.0): the
//! collector API over gRPC (`PostSpans`, [`grpc`]) and thrift over HTTP (`POST /api/traces`,
//! here), and the agent API over UDP (`Agent.emitBatch` in thrift compact or binary, [`udp`]).
//! Every protocol present is enabled; a protocol with no settings listens on its default
//! endpoint. Spans are mapped to OTLP as the collector's translator does ([`to_otlp`]).

pub mod grpc;
pub mod thrift;
pub mod to_otlp;
pub mod udp;

#[cfg(test)]
mod tests;

use crate::auth::AuthConfig;
use crate::config::values::enabled_section;
use crate::pdata::{Batch, Signal};
use crate::pipeline::Fanout;
use crate::receivers::body::media_type;
use crate::receivers::ingest::{Refused, ingest};
use crate::receivers::keepalive::{GoDuration, Lifetime, http_lifetime};
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::otlp::grpc::GrpcConfig;
use crate::receivers::tls::TlsServerConfig;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// `receivers: jaeger:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JaegerReceiverConfig {
    /// Which protocols to serve; a protocol key with no value takes its defaults. At least one.
    pub protocols: Protocols,
    /// Refused, as by the collector since it became a no-op: use the `jaegerremotesampling`
    /// extension (not in trailhead) instead.
    pub remote_sampling: Option<serde::de::IgnoredAny>,
}

/// `protocols:` — a protocol is on when its key is present, even with no settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    /// The collector API over gRPC, `localhost:14250` by default.
    #[serde(deserialize_with = "enabled_section")]
    pub grpc: Option<GrpcConfig<grpc::JaegerGrpcEndpoint>>,
    /// The collector API, thrift over HTTP, `localhost:14268` by default.
    #[serde(deserialize_with = "enabled_section")]
    pub thrift_http: Option<ThriftHttpConfig>,
    /// The agent API, thrift binary over UDP, `localhost:6832` by default.
    #[serde(deserialize_with = "enabled_section")]
    pub thrift_binary: Option<udp::UdpConfig<udp::BinaryEndpoint>>,
    /// The agent API, thrift compact over UDP, `localhost:6831` by default.
    #[serde(deserialize_with = "enabled_section")]
    pub thrift_compact: Option<udp::UdpConfig<udp::CompactEndpoint>>,
}

impl JaegerReceiverConfig {
    /// What the collector's `Validate` refuses, in its words.
    pub fn problem(&self) -> Option<String> {
        let p = &self.protocols;
        if p.grpc.is_none()
            && p.thrift_http.is_none()
            && p.thrift_binary.is_none()
            && p.thrift_compact.is_none()
        {
            return Some(
                "must specify at least one protocol when using the Jaeger receiver".into(),
            );
        }
        let endpoints = [
            ("gRPC", p.grpc.as_ref().map(|g| &g.endpoint)),
            ("Thrift HTTP", p.thrift_http.as_ref().map(|h| &h.endpoint)),
            (
                "Thrift UDP Binary",
                p.thrift_binary.as_ref().map(|u| &u.endpoint),
            ),
            (
                "Thrift UDP Compact",
                p.thrift_compact.as_ref().map(|u| &u.endpoint),
            ),
        ];
        for (name, endpoint) in endpoints {
            if let Some(Err(why)) = endpoint.map(|e| check_port(e)) {
                return Some(format!(
                    "invalid port number for the {name} endpoint: {why}"
                ));
            }
        }
        if self.remote_sampling.is_some() {
            return Some("remote sampling config detected in the Jaeger receiver; use the `jaegerremotesampling` extension instead".into());
        }
        let udp = [
            p.thrift_binary.as_ref().map(|u| u.problem()),
            p.thrift_compact.as_ref().map(|u| u.problem()),
        ];
        udp.into_iter().flatten().flatten().next()
    }
}

/// The collector's `checkPortFromEndpoint`: `host:port` with a port from 1 to 65535.
fn check_port(endpoint: &str) -> Result<(), String> {
    let (_, port) = endpoint.rsplit_once(':').ok_or_else(|| {
        format!("endpoint is not formatted correctly: missing port in address `{endpoint}`")
    })?;
    let port: i64 = port
        .parse()
        .map_err(|_| format!("endpoint port is not a number: `{port}`"))?;
    if !(1..=65535).contains(&port) {
        return Err("port number must be between 1 and 65535".into());
    }
    Ok(())
}

/// `protocols: thrift_http:` — the collector's HTTP server settings, with its Jaeger defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThriftHttpConfig {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest body accepted, in bytes, both as sent and after decompression.
    pub max_request_body_size: usize,
    /// Serve TLS; with `client_ca_file`, mutual TLS.
    pub tls: Option<TlsServerConfig>,
    /// Require a bearer token (`authenticator: bearertokenauth/NAME`).
    pub auth: Option<AuthConfig>,
    /// The collector's `include_metadata`: accepted, changes nothing (as for `otlp`).
    pub include_metadata: bool,
    /// Cross-origin requests from browsers, as the collector's `cors`.
    pub cors: Option<crate::receivers::cors::CorsConfig>,
    /// Connection and request-rate limits.
    pub limits: ConnectionLimits,
    /// The collector's `idle_timeout`; the Jaeger receiver's default is 0: never.
    pub idle_timeout: GoDuration,
    /// The collector's `keep_alives_enabled`; the Jaeger receiver's default is false: every
    /// HTTP/1.1 response says `Connection: close`.
    pub keep_alives_enabled: bool,
}

impl Default for ThriftHttpConfig {
    fn default() -> Self {
        ThriftHttpConfig {
            endpoint: "localhost:14268".into(),
            max_request_body_size: 20 << 20,
            tls: None,
            auth: None,
            include_metadata: false,
            cors: None,
            limits: ConnectionLimits::default(),
            idle_timeout: GoDuration::default(),
            keep_alives_enabled: false,
        }
    }
}

impl ThriftHttpConfig {
    /// How long each connection is kept.
    pub fn lifetime(&self) -> Lifetime {
        http_lifetime(
            self.idle_timeout,
            self.keep_alives_enabled,
            Duration::ZERO,
            Duration::ZERO,
        )
    }
}

/// The content types `POST /api/traces` takes, as the collector's.
const THRIFT_TYPES: [&str; 2] = [
    "application/x-thrift",
    "application/vnd.apache.thrift.binary",
];

/// The thrift-over-HTTP route, `POST /api/traces`, feeding `fanout`.
pub fn thrift_http_router(
    id: &str,
    config: &ThriftHttpConfig,
    fanout: Arc<Fanout>,
) -> axum::Router {
    let receiver: Arc<str> = Arc::from(id);
    let limit = config.max_request_body_size;
    let router = axum::Router::new().route(
        "/api/traces",
        axum::routing::post(move |request: Request| {
            post_traces(fanout.clone(), receiver.clone(), limit, request)
        }),
    );
    router
}

async fn post_traces(
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
    limit: usize,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let media = media_type(&parts.headers);
    if media.is_empty() {
        fanout.metrics().malformed_requests.add(1);
        return reply(
            StatusCode::BAD_REQUEST,
            "Cannot parse content type: mime: no media type".into(),
        );
    }
    if !THRIFT_TYPES.contains(&media.as_str()) {
        fanout.metrics().malformed_requests.add(1);
        return reply(
            StatusCode::BAD_REQUEST,
            format!("Unsupported content type: {media}"),
        );
    }
    let decode = |body: bytes::Bytes, context| {
        let batch = thrift::read_batch(&body)
            .map_err(|e| format!("Unable to process request body: {e}"))?;
        let (request, _) = to_otlp::to_otlp(batch, to_otlp::Form::Thrift);
        Ok(Batch::from_message(Signal::Traces, &request, context))
    };
    // Jaeger clients do not retry: answer at once.
    match ingest(
        &fanout,
        receiver,
        (&parts, body),
        limit,
        Instant::now(),
        decode,
    )
    .await
    {
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        // The collector answers every pipeline error with 500.
        Err(Refused::Pipelines(e)) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Cannot submit Jaeger batch: {e}"),
        ),
        Err(Refused::Malformed(status, message)) => reply(status, message),
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
