//! The mapping on payloads encoded with the real libraries: thrift with the Apache `thrift`
//! crate's output protocols (compact and binary), protobuf with prost.

use super::grpc::{
    PostSpansRequest, ProtoBatch, ProtoKeyValue, ProtoProcess, ProtoSpan, read_request,
};
use super::thrift::{Protocol, read_agent_message, read_batch};
use super::to_otlp::{Form, to_otlp};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message;
use thrift::protocol::{
    TBinaryOutputProtocol, TCompactOutputProtocol, TFieldIdentifier, TListIdentifier,
    TMessageIdentifier, TMessageType, TOutputProtocol, TStructIdentifier, TType,
};

/// A thrift value to write.
enum V {
    I32(i32),
    I64(i64),
    Str(&'static str),
    Bool(bool),
    Struct(Vec<(i16, V)>),
    List(Vec<V>),
}

fn ttype(v: &V) -> TType {
    match v {
        V::I32(_) => TType::I32,
        V::I64(_) => TType::I64,
        V::Str(_) => TType::String,
        V::Bool(_) => TType::Bool,
        V::Struct(_) => TType::Struct,
        V::List(_) => TType::List,
    }
}

fn write(o: &mut dyn TOutputProtocol, v: &V) {
    match v {
        V::I32(i) => o.write_i32(*i).unwrap(),
        V::I64(i) => o.write_i64(*i).unwrap(),
        V::Str(s) => o.write_string(s).unwrap(),
        V::Bool(b) => o.write_bool(*b).unwrap(),
        V::Struct(fields) => {
            o.write_struct_begin(&TStructIdentifier::new("s")).unwrap();
            for (id, value) in fields {
                let field = TFieldIdentifier::new("f", ttype(value), *id);
                o.write_field_begin(&field).unwrap();
                write(o, value);
                o.write_field_end().unwrap();
            }
            o.write_field_stop().unwrap();
            o.write_struct_end().unwrap();
        }
        V::List(items) => {
            let element = items.first().map_or(TType::Struct, ttype);
            let list = TListIdentifier::new(element, items.len() as i32);
            o.write_list_begin(&list).unwrap();
            items.iter().for_each(|item| write(o, item));
            o.write_list_end().unwrap();
        }
    }
}

fn tag(key: &'static str, value: V) -> V {
    let (kind, field) = match value {
        V::Str(_) => (0, 3),
        V::Bool(_) => (2, 5),
        V::I64(_) => (3, 6),
        _ => unreachable!(),
    };
    V::Struct(vec![(1, V::Str(key)), (2, V::I32(kind)), (field, value)])
}

/// A batch of one span with a parent, tags, a log and two references.
fn batch() -> V {
    let span = V::Struct(vec![
        (1, V::I64(0x1111)),
        (2, V::I64(0x2222)),
        (3, V::I64(0x33)),
        (4, V::I64(0x44)),
        (5, V::Str("GET /cart")),
        (
            6,
            V::List(vec![
                V::Struct(vec![
                    (1, V::I32(0)),
                    (2, V::I64(0x1111)),
                    (3, V::I64(0x2222)),
                    (4, V::I64(0x44)),
                ]),
                V::Struct(vec![
                    (1, V::I32(1)),
                    (2, V::I64(9)),
                    (3, V::I64(0)),
                    (4, V::I64(0x55)),
                ]),
            ]),
        ),
        (7, V::I32(1)),
        (8, V::I64(1_700_000_000_000_000)),
        (9, V::I64(1_500)),
        (
            10,
            V::List(vec![
                tag("span.kind", V::Str("client")),
                tag("http.status_code", V::I64(503)),
                tag("otel.scope.name", V::Str("kept")),
            ]),
        ),
        (
            11,
            V::List(vec![V::Struct(vec![
                (1, V::I64(1_700_000_000_000_100)),
                (
                    2,
                    V::List(vec![
                        tag("event", V::Str("retry")),
                        tag("attempt", V::I64(2)),
                    ]),
                ),
            ])]),
        ),
    ]);
    let process = V::Struct(vec![
        (1, V::Str("cart")),
        (
            2,
            V::List(vec![
                tag("hostname", V::Str("node-1")),
                tag("up", V::Bool(true)),
            ]),
        ),
    ]);
    V::Struct(vec![(1, process), (2, V::List(vec![span]))])
}

fn agent_packet(o: &mut dyn TOutputProtocol, method: &str) {
    let message = TMessageIdentifier::new(method, TMessageType::OneWay, 1);
    o.write_message_begin(&message).unwrap();
    write(o, &V::Struct(vec![(1, batch())]));
    o.write_message_end().unwrap();
    o.flush().unwrap();
}

fn compact_packet(method: &str) -> Vec<u8> {
    let mut packet = Vec::new();
    agent_packet(&mut TCompactOutputProtocol::new(&mut packet), method);
    packet
}

fn keys(attributes: &[KeyValue]) -> Vec<&str> {
    attributes.iter().map(|a| a.key.as_str()).collect()
}

fn value<'a>(attributes: &'a [KeyValue], key: &str) -> &'a any_value::Value {
    let found = attributes.iter().find(|a| a.key == key).unwrap();
    found.value.as_ref().unwrap().value.as_ref().unwrap()
}

fn only_span(request: &ExportTraceServiceRequest) -> &opentelemetry_proto::tonic::trace::v1::Span {
    &request.resource_spans[0].scope_spans[0].spans[0]
}

#[test]
fn compact_agent_packet_maps_as_the_collector() {
    let batch = read_agent_message(&compact_packet("emitBatch"), Protocol::Compact)
        .unwrap()
        .unwrap();
    let (request, count) = to_otlp(batch, Form::Thrift);
    assert_eq!(count, 1);
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    // hostname is renamed in its place.
    assert_eq!(
        keys(&resource.attributes),
        ["service.name", "host.name", "up"]
    );
    let span = only_span(&request);
    assert_eq!(
        span.trace_id,
        [0x2222u64.to_be_bytes(), 0x1111u64.to_be_bytes()].concat()
    );
    assert_eq!(span.parent_span_id, 0x44u64.to_be_bytes());
    assert_eq!(span.kind, 3); // client
    assert_eq!(span.flags, 1);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(
        span.end_time_unix_nano - span.start_time_unix_nano,
        1_500_000
    );
    // 5xx is an error; the thrift path keeps otel.scope.name as an attribute.
    assert_eq!(span.status.as_ref().unwrap().code, 2);
    assert_eq!(
        keys(&span.attributes),
        ["otel.scope.name", "http.status_code"]
    );
    assert_eq!(span.events[0].name, "retry");
    assert_eq!(keys(&span.events[0].attributes), ["attempt"]);
    // The CHILD_OF reference to the parent is not a link; the FOLLOWS_FROM one is.
    assert_eq!(span.links.len(), 1);
    assert_eq!(span.links[0].span_id, 0x55u64.to_be_bytes());
    let ref_type = value(&span.links[0].attributes, "opentracing.ref_type");
    assert_eq!(
        ref_type,
        &any_value::Value::StringValue("follows_from".into())
    );
}

#[test]
fn binary_body_and_packet_read_the_same_batch() {
    let mut body = Vec::new();
    let mut o = TBinaryOutputProtocol::new(&mut body, true);
    write(&mut o, &batch());
    let mut packet = Vec::new();
    agent_packet(
        &mut TBinaryOutputProtocol::new(&mut packet, true),
        "emitBatch",
    );
    let from_body = read_batch(&body).unwrap();
    let from_packet = read_agent_message(&packet, Protocol::Binary)
        .unwrap()
        .unwrap();
    assert_eq!(from_body, from_packet);
    let compact = read_agent_message(&compact_packet("emitBatch"), Protocol::Compact);
    assert_eq!(from_body, compact.unwrap().unwrap());
}

#[test]
fn bad_thrift_is_an_error_not_a_panic() {
    let packet = compact_packet("emitBatch");
    for cut in 0..packet.len() {
        assert!(
            read_agent_message(&packet[..cut], Protocol::Compact).is_err(),
            "cut at {cut}"
        );
    }
    let zipkin = read_agent_message(&compact_packet("emitZipkinBatch"), Protocol::Compact);
    assert!(zipkin.unwrap_err().contains("emitZipkinBatch"));
    // A span without its required operationName.
    let mut body = Vec::new();
    let span = V::Struct(vec![
        (1, V::I64(1)),
        (2, V::I64(0)),
        (3, V::I64(2)),
        (4, V::I64(0)),
    ]);
    let missing = V::Struct(vec![
        (1, V::Struct(vec![(1, V::Str("s"))])),
        (2, V::List(vec![span])),
    ]);
    write(&mut TBinaryOutputProtocol::new(&mut body, true), &missing);
    let error = read_batch(&body).unwrap_err();
    assert!(error.contains("Span.operationName"), "{error}");
    // A string that claims 2 GB in a 20-byte body is refused before anything is allocated.
    let forged = [0x0c, 0, 1, 0x0b, 0, 1, 0x7f, 0xff, 0xff, 0xff, b'x'];
    assert!(read_batch(&forged).is_err());
}

fn kv(key: &str, text: &str) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.into(),
        v_str: text.into(),
        ..Default::default()
    }
}

#[test]
fn protobuf_regroups_processes_and_reads_scope_and_state() {
    let span = |id: u8, tags: Vec<ProtoKeyValue>, process: Option<ProtoProcess>| ProtoSpan {
        trace_id: vec![0, 0, 0, 0, 0, 0, 0, 7],
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        operation_name: format!("op{id}"),
        start_time: Some(prost_types::Timestamp {
            seconds: 2,
            nanos: 5,
        }),
        duration: Some(prost_types::Duration {
            seconds: 1,
            nanos: 0,
        }),
        tags,
        process,
        ..Default::default()
    };
    let own = ProtoProcess {
        service_name: "proxy".into(),
        tags: vec![kv("jaeger.version", "Go-2.30"), kv("ip", "10.0.0.1")],
    };
    let scoped = vec![
        kv("otel.scope.name", "lib"),
        kv("otel.scope.version", "1.0"),
        kv("w3c.tracestate", "a=b"),
        kv("otel.status_code", "ok"),
    ];
    let request = PostSpansRequest {
        batch: Some(ProtoBatch {
            process: Some(ProtoProcess {
                service_name: "cart".into(),
                tags: Vec::new(),
            }),
            spans: vec![
                span(1, scoped, None),
                span(2, Vec::new(), Some(own)),
                span(3, Vec::new(), None),
            ],
        }),
    };
    let (otlp, count) = to_otlp(read_request(&request.encode_to_vec()).unwrap(), Form::Proto);
    assert_eq!(count, 3);
    assert_eq!(otlp.resource_spans.len(), 2);
    let cart = &otlp.resource_spans[0];
    let scopes: Vec<_> = cart
        .scope_spans
        .iter()
        .map(|s| s.scope.clone().unwrap())
        .collect();
    assert_eq!(
        (scopes[0].name.as_str(), scopes[0].version.as_str()),
        ("lib", "1.0")
    );
    assert_eq!(scopes[1].name, "");
    let first = &cart.scope_spans[0].spans[0];
    assert_eq!(first.trace_state, "a=b");
    assert_eq!(first.status.as_ref().unwrap().code, 1);
    assert!(first.attributes.is_empty());
    assert_eq!(first.trace_id, [[0; 8], 7u64.to_be_bytes()].concat());
    assert_eq!(first.start_time_unix_nano, 2_000_000_005);
    assert_eq!(first.end_time_unix_nano, 3_000_000_005);
    let proxy = otlp.resource_spans[1].resource.as_ref().unwrap();
    // jaeger.version becomes the exporter version, in its place.
    assert_eq!(
        keys(&proxy.attributes),
        ["service.name", "opencensus.exporterversion", "ip"]
    );
    let version = value(&proxy.attributes, "opencensus.exporterversion");
    assert_eq!(
        version,
        &any_value::Value::StringValue("Jaeger-Go-2.30".into())
    );
}

#[test]
fn protobuf_ids_of_a_wrong_length_are_refused() {
    let request = PostSpansRequest {
        batch: Some(ProtoBatch {
            spans: vec![ProtoSpan {
                trace_id: vec![1, 2, 3],
                ..Default::default()
            }],
            process: None,
        }),
    };
    let error = read_request(&request.encode_to_vec()).unwrap_err();
    assert!(error.contains("TraceID"), "{error}");
}

#[test]
fn error_tag_outranks_otel_status_code() {
    let tags = vec![
        ProtoKeyValue {
            key: "error".into(),
            v_type: 1,
            v_bool: true,
            ..Default::default()
        },
        kv("otel.status_code", "OK"),
        kv("http.status_message", "teapot"),
        kv("kept", "yes"),
    ];
    let request = PostSpansRequest {
        batch: Some(ProtoBatch {
            spans: vec![ProtoSpan {
                span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
                tags,
                ..Default::default()
            }],
            process: None,
        }),
    };
    let (otlp, _) = to_otlp(read_request(&request.encode_to_vec()).unwrap(), Form::Proto);
    let span = only_span(&otlp);
    let status = span.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "teapot"));
    // error and otel.status_code are removed; each removal moves the last attribute in.
    assert_eq!(keys(&span.attributes), ["kept", "http.status_message"]);
}
