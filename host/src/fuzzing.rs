//! What the `cargo fuzz` targets in `fuzz/` run, one function per input format trailhead takes
//! from outside. They live here so `host/tests/integration/fuzz_corpus.rs` replays every corpus file (the
//! seeds, and each crash ever found) in a plain `cargo test`, without the fuzzer.
//!
//! Each returns normally for any input; a panic is the bug. The first byte of the input picks
//! the signal or format where there is a choice.

use crate::pdata::{Batch, RequestContext, Signal};
use prost::Message;

/// OTLP protobuf as the gRPC and HTTP receivers get it: the wire walk that validates and
/// counts, then the full decode a processor or the debug exporter does.
pub fn otlp_protobuf(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(first) % Signal::ALL.len()];
    let payload = bytes::Bytes::copy_from_slice(body);
    if let Ok(batch) = Batch::from_protobuf(signal, payload, RequestContext::internal("fuzz")) {
        let _ = crate::pdata::json::to_json(signal, &batch.payload.to_bytes());
    }
}

/// OTLP/JSON as the HTTP receiver gets it; what it accepts must encode to a request that walks
/// cleanly with the same item count.
pub fn otlp_json(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let signal = Signal::ALL[usize::from(first) % Signal::ALL.len()];
    if let Ok(batch) =
        crate::pdata::json::batch_from_json(signal, body, RequestContext::internal("fuzz"))
    {
        let counted = crate::pdata::wire::count_items(signal, &batch.payload.to_bytes()).ok();
        assert_eq!(
            counted,
            Some(batch.items),
            "our own encoding must walk cleanly"
        );
    }
}

/// Zipkin v2 JSON, v2 protobuf or v1 JSON (first byte), with or without `parse_string_tags`
/// (second byte), mapped to OTLP.
pub fn zipkin(data: &[u8]) {
    use crate::receivers::zipkin::{model, to_otlp};
    let [format, tags, body @ ..] = data else {
        return;
    };
    let parsed = match format % 3 {
        0 => model::parse_v2_json(body),
        1 => model::parse_v2_proto(body),
        _ => model::parse_v1_json(body),
    };
    let Ok(spans) = parsed else { return };
    let count = spans.len();
    if let Ok(payload) = to_otlp::to_otlp(spans, tags % 2 == 1) {
        // trailhead's own encoding: well framed, holding every span, and what prost reads.
        assert_eq!(
            crate::pdata::wire::count_items(Signal::Traces, &payload),
            Ok(count)
        );
        assert!(<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest as Message>::decode(payload.as_slice()).is_ok());
    }
}

/// Config text: parse, expand, validate and locate every problem.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::components::Config::from_text(text, std::path::Path::new("fuzz.yaml"));
    }
}
