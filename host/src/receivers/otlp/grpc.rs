//! OTLP/gRPC: the three `Export` methods, received as raw bytes (no decode) and validated by the
//! wire walk.

use crate::auth::AuthConfig;
use crate::pdata::grpc::export_path;
use crate::pdata::{Batch, RequestContext, Signal};
use crate::pipeline::{ConsumeError, Fanout};
use crate::receivers::grpc_unary::{RawUnary, with_unknown_method};
use crate::receivers::keepalive::GrpcKeepalive;
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::otlp::response;
use crate::receivers::tls::TlsServerConfig;
use crate::receivers::{Consumers, RETRY_AFTER_SECONDS};
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status};

/// Where a gRPC protocol listens when its `endpoint` is not given: the receivers that serve
/// gRPC (OTLP, Jaeger) share [`GrpcConfig`] and differ only in that.
pub trait DefaultEndpoint {
    const ENDPOINT: &'static str;
}

/// OTLP/gRPC's default endpoint.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpEndpoint;

impl DefaultEndpoint for OtlpEndpoint {
    const ENDPOINT: &'static str = "0.0.0.0:4317";
}

/// `protocols: grpc:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct GrpcConfig<E: DefaultEndpoint = OtlpEndpoint> {
    /// `host:port` to listen on.
    pub endpoint: String,
    /// Largest request accepted, in MiB (after gRPC decompression); larger requests get
    /// RESOURCE_EXHAUSTED.
    pub max_recv_msg_size_mib: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: Option<u32>,
    /// Serve TLS; with `client_ca_file`, mutual TLS.
    pub tls: Option<TlsServerConfig>,
    /// Require a bearer token (`authenticator: bearertokenauth/NAME`).
    pub auth: Option<AuthConfig>,
    /// The collector's `include_metadata`: keep the request's headers as client metadata for
    /// later components. trailhead keeps none; what reads it in the collector (the batch
    /// processor's `metadata_keys`, `from_context: metadata.*`, a `headers_setter` context
    /// source behind this receiver) is refused, so the flag changes nothing accepted.
    pub include_metadata: bool,
    /// Connection and request-rate limits.
    pub limits: ConnectionLimits,
    /// The collector's `keepalive:` (configgrpc): idle and age bounds, server pings and the
    /// client ping policy, with grpc-go's meanings; the age bound makes senders reconnect now
    /// and then and spread over replicas.
    pub keepalive: GrpcKeepalive,
    #[serde(skip)]
    default_endpoint: std::marker::PhantomData<E>,
}

impl<E: DefaultEndpoint> Default for GrpcConfig<E> {
    fn default() -> Self {
        GrpcConfig {
            endpoint: E::ENDPOINT.into(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: None,
            tls: None,
            auth: None,
            include_metadata: false,
            limits: ConnectionLimits::default(),
            keepalive: GrpcKeepalive::default(),
            default_endpoint: std::marker::PhantomData,
        }
    }
}

/// The gRPC routes for every signal `consumers` has, served by [`crate::receivers::serve`].
pub fn router(id: &str, config: &GrpcConfig, consumers: &Consumers) -> axum::Router {
    let mut router = axum::Router::new();
    let max_message_bytes = config.max_recv_msg_size_mib << 20;
    for signal in Signal::ALL {
        if let Some(fanout) = consumers.get(signal) {
            let export = RawUnary::new(fanout.clone(), id, max_message_bytes, export, status_of);
            router = router.route_service(export_path(signal), export);
        }
    }
    with_unknown_method(router)
}

/// One signal's `Export`: the bytes are checked by the wire walk, not decoded.
fn export(
    fanout: Arc<Fanout>,
    body: Bytes,
    context: RequestContext,
) -> BoxFuture<'static, Result<Bytes, Status>> {
    Box::pin(async move {
        let batch = Batch::from_protobuf(fanout.signal, body, context).map_err(|e| {
            fanout.metrics().malformed_requests.add(1);
            Status::invalid_argument(format!("{} request: {e}", fanout.signal))
        })?;
        let accepted = fanout.consume(batch).await.map_err(status_of)?;
        Ok(Bytes::from(response::protobuf(fanout.signal, &accepted)))
    })
}

/// The gRPC status for a refused batch: retryable refusals carry RetryInfo.
fn status_of(error: ConsumeError) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    if error.is_too_large() {
        return Status::invalid_argument(error.to_string());
    }
    if !error.is_retryable() {
        return Status::internal(error.to_string());
    }
    Status::with_error_details(
        Code::Unavailable,
        error.to_string(),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(RETRY_AFTER_SECONDS))),
    )
}
