use super::sink::{encode_body, to_json};
use super::*;
use crate::exporters::{ExportError, Payload};
use bytes::Bytes;

fn parse(text: &str) -> OtlpHttpExporterConfig {
    crate::config::tree::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn parse_error(text: &str) -> String {
    match crate::config::tree::from_str::<OtlpHttpExporterConfig>(text) {
        Ok(config) => panic!("{text} parsed: {config:?}"),
        Err(e) => e.to_string(),
    }
}

// The collector's defaults, but for compression (none, as the gRPC exporter, and why is
// documented on the field) and the pool's Go-derived numbers.
#[test]
fn defaults() {
    let config = parse("endpoint: http://alloy:4318");
    assert_eq!(config.encoding, Encoding::Proto);
    assert_eq!(config.compression, Compression::None);
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.idle_conn_timeout, Duration::from_secs(90));
    assert_eq!(config.idle_per_host(), 2);
    assert!(config.headers.is_empty() && config.auth.is_none());
    assert_eq!(
        config.batch_settings().max_request_bytes,
        crate::exporters::DEFAULT_MAX_REQUEST_BYTES
    );
    assert!(config.problems().is_empty(), "{:?}", config.problems());
}

// `endpoint` gets `/v1/<signal>` (one slash, whatever it ends with); a signal's own endpoint
// is used as given, even without that suffix.
#[test]
fn per_signal_urls() {
    let config =
        parse("endpoint: https://otlp.example.com/otlp/\nlogs_endpoint: http://logs:9000/ingest");
    assert_eq!(
        config.url(Signal::Traces).unwrap(),
        "https://otlp.example.com/otlp/v1/traces"
    );
    assert_eq!(
        config.url(Signal::Metrics).unwrap(),
        "https://otlp.example.com/otlp/v1/metrics"
    );
    assert_eq!(config.url(Signal::Logs).unwrap(), "http://logs:9000/ingest");
    let config = parse("endpoint: http://alloy:4318");
    assert_eq!(
        config.url(Signal::Logs).unwrap(),
        "http://alloy:4318/v1/logs"
    );
    // Only traces has a URL: the others cannot be built, as in the collector.
    let config = parse("traces_endpoint: http://tempo:4318/v1/traces");
    assert!(config.problems().is_empty());
    let error = config.url(Signal::Metrics).unwrap_err().to_string();
    assert!(
        error.contains("either endpoint or metrics_endpoint must be specified"),
        "{error}"
    );
}

// What the collector refuses and what could never be sent to, each under its key.
#[test]
fn bad_values_are_named() {
    let keys = |text: &str| -> Vec<&'static str> {
        parse(text).problems().into_iter().map(|(k, _)| k).collect()
    };
    assert_eq!(keys("{}"), ["endpoint"]);
    assert_eq!(
        parse("{}").problems()[0].1,
        "at least one endpoint must be specified"
    );
    assert_eq!(keys("endpoint: alloy:4318"), ["endpoint"]);
    assert_eq!(
        keys("endpoint: http://a:1\ntraces_endpoint: ftp://x/y"),
        ["traces_endpoint"]
    );
    assert_eq!(
        keys("endpoint: http://a:1\nretry_on_failure: {randomization_factor: 2}"),
        ["retry_on_failure"]
    );
    assert_eq!(
        keys("endpoint: http://a:1\nsending_queue: {num_consumers: 0}"),
        ["sending_queue"]
    );
    assert_eq!(
        keys("endpoint: http://a:1\ntls: {cert_file: c.pem}"),
        ["tls"]
    );
    assert_eq!(
        keys("endpoint: https://a:1\ntls: {insecure_skip_verify: true}"),
        ["tls"]
    );
    // Over plain text the collector loads no TLS settings, so the key means nothing there.
    assert!(keys("endpoint: http://a:1\ntls: {insecure_skip_verify: true}").is_empty());
    let mixed =
        "endpoint: http://a:1\nlogs_endpoint: https://b:1\ntls: {insecure_skip_verify: true}";
    assert_eq!(keys(mixed), ["tls"]);
    assert_eq!(
        keys("endpoint: http://a:1\nheaders: {\"bad header\": x}"),
        ["headers"]
    );
    let error = parse_error("endpoint: http://a:1\nencoding: xml");
    assert!(
        error.contains("encoding") && error.contains("xml"),
        "{error}"
    );
    let error = parse_error("endpoint: http://a:1\ncompression: snappy");
    assert!(error.contains("compression"), "{error}");
    let error = parse_error("endpoint: http://a:1\ntimeout: -1s");
    assert!(
        error.contains("timeout") && error.contains("negative"),
        "{error}"
    );
    let error = parse_error("endpoint: http://a:1\nproxy_url: http://proxy:3128");
    assert!(error.contains("proxy_url"), "{error}");
    // Zero is the collector's "no deadline" and "no limit".
    let config = parse("endpoint: http://a:1\ntimeout: 0\nidle_conn_timeout: 0\nmax_idle_conns: 0");
    assert!(config.timeout.is_zero() && config.idle_conn_timeout.is_zero());
    assert_eq!(config.idle_per_host(), 2);
    let config = parse("endpoint: http://a:1\nmax_idle_conns_per_host: 50\nmax_idle_conns: 8");
    assert_eq!(config.idle_per_host(), 8);
    let config = parse("endpoint: http://a:1\ndisable_keep_alives: true");
    assert_eq!(config.idle_per_host(), 0);
}

/// An encoded one-span trace request with every kind of field JSON maps specially.
fn one_span() -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let attribute = |key: &str, value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let span = Span {
        trace_id: (1..=16).collect(),
        span_id: vec![0xab; 8],
        name: "GET /".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_001,
        end_time_unix_nano: 1_700_000_000_000_000_002,
        attributes: vec![
            attribute("count", Value::IntValue(-9_007_199_254_740_993)),
            attribute("raw", Value::BytesValue(vec![0, 1, 2])),
        ],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&request)
}

// OTLP/JSON as the specification maps it: lowerCamelCase, hex ids, enums as integers, 64-bit
// integers as strings, bytes as base64.
#[test]
fn json_encoding_follows_the_spec() {
    let json: serde_json::Value =
        serde_json::from_slice(&to_json(Signal::Traces, &one_span()).unwrap()).unwrap();
    let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["traceId"], "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(span["spanId"], "abababababababab");
    assert_eq!(span["kind"], 2);
    assert_eq!(span["startTimeUnixNano"], "1700000000000000001");
    assert_eq!(
        span["attributes"][0]["value"]["intValue"],
        "-9007199254740993"
    );
    assert_eq!(span["attributes"][1]["value"]["bytesValue"], "AAEC");
    // It decodes back to the same request (trailhead's own OTLP/JSON reader).
    let context = crate::pdata::RequestContext::internal("test");
    let body = serde_json::to_vec(&json).unwrap();
    let back = crate::pdata::json::batch_from_json(Signal::Traces, &body, context).unwrap();
    assert_eq!(back.payload.to_bytes(), one_span());
    // Not protobuf: refused for good, since no retry would encode it.
    let error = encode_body(
        Signal::Traces,
        Encoding::Json,
        Compression::None,
        Payload::from(Bytes::from_static(b"\xff")),
    );
    assert!(matches!(error, Err(ExportError::Permanent { .. })));
}

// Protobuf goes as its parts, or compressed whole; both decompress to the request.
#[test]
fn bodies_compress_to_the_request() {
    use std::io::Read;
    let request = one_span();
    let (head, tail) = request.split_at(10);
    let payload = || {
        Payload::new(vec![
            Bytes::copy_from_slice(head),
            Bytes::copy_from_slice(tail),
        ])
    };
    let body = encode_body(
        Signal::Traces,
        Encoding::Proto,
        Compression::None,
        payload(),
    )
    .unwrap();
    assert_eq!(body.concat(), request);
    let gzip = encode_body(
        Signal::Traces,
        Encoding::Proto,
        Compression::Gzip,
        payload(),
    )
    .unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gzip.concat()[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, request);
    let zstd = encode_body(
        Signal::Traces,
        Encoding::Proto,
        Compression::Zstd,
        payload(),
    )
    .unwrap();
    assert_eq!(zstd::decode_all(&zstd.concat()[..]).unwrap(), request);
}
