//! Jaeger's gRPC collector API: `jaeger.api_v2.CollectorService/PostSpans`, served as an axum
//! route on the shared server (so TLS, auth, limits and keepalive apply as for OTLP/gRPC).
//!
//! The messages are jaeger-idl's `proto/api_v2/model.proto` and `collector.proto` written as
//! prost structs (what prost-build generates, with the gogoproto options dropped: they only
//! change Go's generated types). The gogoproto custom types are kept as their Go code reads
//! them: a trace id is 16 bytes (or 8, the low half), a span id 8, any other length an error.

use super::to_otlp::{self, Form, JaegerBatch, JaegerSpan, Log, Process, SpanRef, Tag, TagValue};
use crate::pdata::{Batch, RequestContext};
use crate::pipeline::Fanout;
use crate::receivers::grpc_unary::{RawUnary, with_unknown_method};
use crate::receivers::otlp::grpc::{DefaultEndpoint, GrpcConfig};
use bytes::Bytes;
use futures::future::BoxFuture;
use prost::Message;
use std::sync::Arc;
use tonic::Status;

/// The gRPC path of `PostSpans`.
pub const POST_SPANS: &str = "/jaeger.api_v2.CollectorService/PostSpans";

/// Jaeger gRPC's default endpoint, as the collector's v0.161.0.
#[derive(Debug, Clone, Copy, Default)]
pub struct JaegerGrpcEndpoint;

impl DefaultEndpoint for JaegerGrpcEndpoint {
    const ENDPOINT: &'static str = "localhost:14250";
}

#[derive(Clone, PartialEq, Message)]
pub struct PostSpansRequest {
    #[prost(message, optional, tag = "1")]
    pub batch: Option<ProtoBatch>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoBatch {
    #[prost(message, repeated, tag = "1")]
    pub spans: Vec<ProtoSpan>,
    #[prost(message, optional, tag = "2")]
    pub process: Option<ProtoProcess>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub operation_name: String,
    #[prost(message, repeated, tag = "4")]
    pub references: Vec<ProtoSpanRef>,
    #[prost(uint32, tag = "5")]
    pub flags: u32,
    #[prost(message, optional, tag = "6")]
    pub start_time: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "7")]
    pub duration: Option<prost_types::Duration>,
    #[prost(message, repeated, tag = "8")]
    pub tags: Vec<ProtoKeyValue>,
    #[prost(message, repeated, tag = "9")]
    pub logs: Vec<ProtoLog>,
    #[prost(message, optional, tag = "10")]
    pub process: Option<ProtoProcess>,
    #[prost(string, tag = "11")]
    pub process_id: String,
    #[prost(string, repeated, tag = "12")]
    pub warnings: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoSpanRef {
    #[prost(bytes = "vec", tag = "1")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub span_id: Vec<u8>,
    /// CHILD_OF = 0, FOLLOWS_FROM = 1.
    #[prost(int32, tag = "3")]
    pub ref_type: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoProcess {
    #[prost(string, tag = "1")]
    pub service_name: String,
    #[prost(message, repeated, tag = "2")]
    pub tags: Vec<ProtoKeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoKeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    /// STRING = 0, BOOL = 1, INT64 = 2, FLOAT64 = 3, BINARY = 4.
    #[prost(int32, tag = "2")]
    pub v_type: i32,
    #[prost(string, tag = "3")]
    pub v_str: String,
    #[prost(bool, tag = "4")]
    pub v_bool: bool,
    #[prost(int64, tag = "5")]
    pub v_int64: i64,
    #[prost(double, tag = "6")]
    pub v_float64: f64,
    #[prost(bytes = "vec", tag = "7")]
    pub v_binary: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProtoLog {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<prost_types::Timestamp>,
    #[prost(message, repeated, tag = "2")]
    pub fields: Vec<ProtoKeyValue>,
}

/// A decoded request in the translator's model.
pub fn read_request(body: &[u8]) -> Result<JaegerBatch, String> {
    let request = PostSpansRequest::decode(body).map_err(|e| e.to_string())?;
    let batch = request.batch.unwrap_or_default();
    let spans = batch
        .spans
        .into_iter()
        .map(span)
        .collect::<Result<_, _>>()?;
    Ok(JaegerBatch {
        process: batch.process.map(process),
        spans,
    })
}

fn trace_id(bytes: &[u8]) -> Result<(u64, u64), String> {
    let half = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    match bytes.len() {
        0 => Ok((0, 0)),
        8 => Ok((0, half(bytes))),
        16 => Ok((half(&bytes[..8]), half(&bytes[8..]))),
        _ => Err("invalid length for TraceID".into()),
    }
}

fn span_id(bytes: &[u8]) -> Result<u64, String> {
    match bytes.len() {
        0 => Ok(0),
        8 => Ok(u64::from_be_bytes(bytes.try_into().unwrap_or_default())),
        _ => Err("invalid length for SpanID".into()),
    }
}

fn nanos(seconds: i64, nanos: i32) -> u64 {
    (seconds as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(nanos as i64 as u64)
}

fn tags(tags: Vec<ProtoKeyValue>) -> Vec<Tag> {
    tags.into_iter()
        .map(|kv| {
            let value = match kv.v_type {
                0 => TagValue::Str(kv.v_str),
                1 => TagValue::Bool(kv.v_bool),
                2 => TagValue::Long(kv.v_int64),
                3 => TagValue::Double(kv.v_float64),
                4 => TagValue::Binary(kv.v_binary),
                // gogoproto names an unknown enum value by its number.
                other => TagValue::Unknown(other.to_string()),
            };
            Tag { key: kv.key, value }
        })
        .collect()
}

fn process(process: ProtoProcess) -> Process {
    Process {
        service_name: process.service_name,
        tags: (!process.tags.is_empty()).then(|| tags(process.tags)),
    }
}

fn span(span: ProtoSpan) -> Result<JaegerSpan, String> {
    let blank = span == ProtoSpan::default();
    let start = span.start_time.unwrap_or_default();
    let duration = span.duration.unwrap_or_default();
    let start_unix_nano = nanos(start.seconds, start.nanos);
    let references = span
        .references
        .into_iter()
        .map(|r| {
            Ok(SpanRef {
                trace_id: trace_id(&r.trace_id)?,
                span_id: span_id(&r.span_id)?,
                follows_from: r.ref_type == 1,
            })
        })
        .collect::<Result<_, String>>()?;
    let logs = span
        .logs
        .into_iter()
        .map(|log| {
            let at = log.timestamp.unwrap_or_default();
            Log {
                time_unix_nano: nanos(at.seconds, at.nanos),
                fields: tags(log.fields),
            }
        })
        .collect();
    Ok(JaegerSpan {
        trace_id: trace_id(&span.trace_id)?,
        span_id: span_id(&span.span_id)?,
        parent_span_id: 0,
        operation_name: span.operation_name,
        flags: span.flags,
        start_unix_nano,
        end_unix_nano: start_unix_nano.wrapping_add(nanos(duration.seconds, duration.nanos)),
        references,
        tags: tags(span.tags),
        logs,
        process: span.process.map(process),
        blank,
    })
}

/// The `PostSpans` route, feeding `fanout`.
pub fn router<E: DefaultEndpoint>(
    id: &str,
    config: &GrpcConfig<E>,
    fanout: Arc<Fanout>,
) -> axum::Router {
    let max_message_bytes = config.max_recv_msg_size_mib << 20;
    let post_spans = RawUnary::new(fanout, id, max_message_bytes, post_spans, refusal);
    with_unknown_method(axum::Router::new().route_service(POST_SPANS, post_spans))
}

fn post_spans(
    fanout: Arc<Fanout>,
    body: Bytes,
    context: RequestContext,
) -> BoxFuture<'static, Result<Bytes, Status>> {
    Box::pin(async move {
        // grpc-go answers a message it cannot unmarshal with INTERNAL.
        let batch = read_request(&body).map_err(|e| {
            fanout.metrics().malformed_requests.add(1);
            Status::internal(format!("grpc: error unmarshalling request: {e}"))
        })?;
        // Batch::from_message counts the spans itself.
        let (request, _) = to_otlp::to_otlp(batch, Form::Proto);
        let batch = Batch::from_message(fanout.signal, &request, context);
        fanout.consume(batch).await.map_err(refusal)?;
        // PostSpansResponse is empty.
        Ok(Bytes::new())
    })
}

/// The collector's Jaeger receiver returns the pipeline's error as it is, which grpc-go sends
/// as UNKNOWN with its text (for a memory limiter refusal as for any other).
fn refusal(error: crate::pipeline::ConsumeError) -> Status {
    Status::unknown(error.to_string())
}
