//! OTLP/gRPC: the three `Export` methods, received as raw bytes (no decode) and validated by the
//! wire walk.

use crate::auth::AuthConfig;
use crate::pdata::grpc::{RawCodec, export_path};
use crate::pdata::{Batch, RequestContext, Signal};
use crate::pipeline::{ConsumeError, Fanout};
use crate::receivers::keepalive::GrpcKeepalive;
use crate::receivers::limits::ConnectionLimits;
use crate::receivers::otlp::response;
use crate::receivers::tls::TlsServerConfig;
use crate::receivers::{Consumers, RETRY_AFTER_SECONDS};
use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::server::UnaryService;
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
    /// later components. Accepted: in the collector only the batch processor's
    /// `metadata_keys`, `from_context: metadata.*` and `headers_setter` read that metadata,
    /// and trailhead refuses each of them, so the flag changes nothing either way.
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
    for signal in Signal::ALL {
        if let Some(fanout) = consumers.get(signal) {
            let service = ExportService {
                handler: ExportHandler {
                    fanout: fanout.clone(),
                    receiver: Arc::from(id),
                },
                max_message_bytes: config.max_recv_msg_size_mib << 20,
            };
            router = router.route_service(export_path(signal), service);
        }
    }
    // Any other path is an unknown method, as a gRPC server answers it.
    router.fallback(|| async { Status::unimplemented("unknown method").into_http::<Body>() })
}

/// One signal's `Export` method as a tower service.
#[derive(Clone)]
struct ExportService {
    handler: ExportHandler,
    max_message_bytes: usize,
}

impl tower::Service<http::Request<Body>> for ExportService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            // Short of memory: refuse before reading a byte of the message.
            if let Err(e) = this.handler.fanout.admit() {
                return Ok(status_of(e).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(this.max_message_bytes);
            let response = grpc.unary(this.handler, request).await;
            Ok(oversize_is_resource_exhausted(response))
        })
    }
}

/// tonic refuses an oversize message with OUT_OF_RANGE; gRPC (and the collector) say
/// RESOURCE_EXHAUSTED, which clients know not to retry unchanged.
pub fn oversize_is_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v == "11");
    let oversize = response
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| {
            m.contains("message%20length%20too%20large") || m.contains("message length too large")
        });
    if out_of_range && oversize {
        response.headers_mut().insert(
            "grpc-status",
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    response
}

#[derive(Clone)]
struct ExportHandler {
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
}

impl UnaryService<Bytes> for ExportHandler {
    type Response = Bytes;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let fanout = self.fanout.clone();
        let forwarded_for = request
            .metadata()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let context =
            RequestContext::of_request(request.remote_addr(), forwarded_for, self.receiver.clone());
        Box::pin(async move {
            let batch = Batch::from_protobuf(fanout.signal, request.into_inner(), context)
                .map_err(|e| {
                    fanout.metrics().malformed_requests.add(1);
                    Status::invalid_argument(format!("{} request: {e}", fanout.signal))
                })?;
            let accepted = fanout.consume(batch).await.map_err(status_of)?;
            let body = response::protobuf(fanout.signal, &accepted);
            Ok(tonic::Response::new(Bytes::from(body)))
        })
    }
}

/// The gRPC status for a refused batch: retryable refusals carry RetryInfo.
fn status_of(error: ConsumeError) -> Status {
    use tonic_types::{ErrorDetails, StatusExt};
    if !error.is_retryable() {
        return Status::internal(error.to_string());
    }
    Status::with_error_details(
        Code::Unavailable,
        error.to_string(),
        ErrorDetails::with_retry_info(Some(Duration::from_secs(RETRY_AFTER_SECONDS))),
    )
}
