//! One unary gRPC method over raw bytes, as the receivers serve theirs (OTLP `Export`, Jaeger
//! `PostSpans`) on the shared axum server: the memory limiter's admission before a byte of the
//! message is read, tonic's framing, decompression and size bound, the sender's context, and
//! then the method's own handling of the bytes. A profiles request's declared schema version is
//! checked first of all (see [`crate::pdata::profiles`]).

use crate::pdata::grpc::RawCodec;
use crate::pdata::{RequestContext, Signal, profiles};
use crate::pipeline::{ConsumeError, Fanout};
use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::codec::CompressionEncoding;
use tonic::server::UnaryService;
use tonic::{Code, Status};

/// What a method does with a request's bytes: feed `fanout` and answer with the response's.
pub type Handle =
    fn(Arc<Fanout>, Bytes, RequestContext) -> BoxFuture<'static, Result<Bytes, Status>>;

/// A unary method feeding one [`Fanout`], as a tower service for an axum route.
#[derive(Clone)]
pub struct RawUnary {
    fanout: Arc<Fanout>,
    receiver: Arc<str>,
    max_message_bytes: usize,
    handle: Handle,
    /// The status a refusal becomes: each receiver answers as the collector's does.
    refusal: fn(ConsumeError) -> Status,
}

impl RawUnary {
    /// Receiver `receiver`'s method, refusing messages over `max_message_bytes`.
    pub fn new(
        fanout: Arc<Fanout>,
        receiver: &str,
        max_message_bytes: usize,
        handle: Handle,
        refusal: fn(ConsumeError) -> Status,
    ) -> RawUnary {
        RawUnary {
            fanout,
            receiver: Arc::from(receiver),
            max_message_bytes,
            handle,
            refusal,
        }
    }
}

/// `router` answering any other path as a gRPC server answers an unknown method.
pub fn with_unknown_method(router: axum::Router) -> axum::Router {
    router.fallback(|| async { Status::unimplemented("unknown method").into_http::<Body>() })
}

impl tower::Service<http::Request<Body>> for RawUnary {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if this.fanout.signal == Signal::Profiles {
                let declared = request.headers().get_all(profiles::VERSION_HEADER);
                if let Err(why) = profiles::check_version(declared.iter().map(|v| v.as_bytes())) {
                    this.fanout.metrics().malformed_requests.add(1);
                    return Ok(Status::invalid_argument(why).into_http());
                }
            }
            // Short of memory: refuse before reading a byte of the message.
            if let Err(e) = this.fanout.admit() {
                return Ok((this.refusal)(e).into_http());
            }
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(this.max_message_bytes);
            let response = grpc.unary(Method(this), request).await;
            Ok(oversize_is_resource_exhausted(response))
        })
    }
}

/// The method as tonic calls it, once the message is read.
struct Method(RawUnary);

impl UnaryService<Bytes> for Method {
    type Response = Bytes;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let method = &self.0;
        let forwarded_for = request
            .metadata()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let context = RequestContext::of_request(
            request.remote_addr(),
            forwarded_for,
            method.receiver.clone(),
        );
        let answer = (method.handle)(method.fanout.clone(), request.into_inner(), context);
        Box::pin(async move { Ok(tonic::Response::new(answer.await?)) })
    }
}

/// tonic refuses an oversize message with OUT_OF_RANGE; gRPC (and the collector) say
/// RESOURCE_EXHAUSTED, which clients know not to retry unchanged.
fn oversize_is_resource_exhausted(
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
