//! Each carrier mode, the mapping to OTLP, and how bad frames are refused.

use super::protocol::{Event, MAX_FRAME_BYTES, ack, next_frame};
use super::to_otlp::{TAG_ATTRIBUTE, any_value, timestamp};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use rmpv::Value as Mp;
use std::io::Write;

fn encode(value: &Mp) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).unwrap();
    bytes
}

fn s(text: &str) -> Mp {
    Mp::from(text)
}

fn map(pairs: &[(&str, Mp)]) -> Mp {
    Mp::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn event_time(seconds: u32, nanos: u32) -> Mp {
    let mut data = seconds.to_be_bytes().to_vec();
    data.extend(nanos.to_be_bytes());
    Mp::Ext(0, data)
}

/// The one whole frame in `bytes`, which must take all of them.
fn frame(bytes: &[u8]) -> Event {
    let (event, used) = next_frame(bytes).unwrap().expect("a whole frame");
    assert_eq!(used, bytes.len());
    event
}

fn refused(bytes: &[u8]) -> String {
    match next_frame(bytes) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("accepted: {other:?}"),
    }
}

fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a Option<Value>> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value.as_ref().unwrap().value)
}

fn keys(record: &LogRecord) -> Vec<&str> {
    record.attributes.iter().map(|kv| kv.key.as_str()).collect()
}

fn body(record: &LogRecord) -> Option<&Value> {
    record.body.as_ref().and_then(|b| b.value.as_ref())
}

fn text(value: &str) -> Option<Value> {
    Some(Value::StringValue(value.into()))
}

#[test]
fn message_mode_with_an_integer_time() {
    let bytes = encode(&Mp::Array(vec![
        s("app.web"),
        Mp::from(1_700_000_000u64),
        map(&[("message", s("hello")), ("level", s("info"))]),
    ]));
    let event = frame(&bytes);
    assert_eq!(event.chunk, None);
    let [record] = &event.log_records[..] else {
        panic!("one record")
    };
    assert_eq!(record.time_unix_nano, 1_700_000_000 * 1_000_000_000);
    assert_eq!(body(record), text("hello").as_ref());
    // Message mode writes the tag first, then the record's keys.
    assert_eq!(keys(record), [TAG_ATTRIBUTE, "level"]);
    assert_eq!(attribute(record, TAG_ATTRIBUTE), Some(&text("app.web")));
}

#[test]
fn message_mode_with_event_time_and_a_chunk() {
    let bytes = encode(&Mp::Array(vec![
        s("t"),
        event_time(1_700_000_000, 123_456_789),
        map(&[("log", s("from fluent-bit"))]),
        map(&[("chunk", s("Y2h1bmsx")), ("size", Mp::from(1))]),
    ]));
    let event = frame(&bytes);
    assert_eq!(event.chunk.as_deref(), Some(&b"Y2h1bmsx"[..]));
    let record = &event.log_records[0];
    assert_eq!(record.time_unix_nano, 1_700_000_000_123_456_789);
    assert_eq!(body(record), text("from fluent-bit").as_ref());
}

#[test]
fn forward_mode_writes_the_tag_after_the_record() {
    let entries = Mp::Array(vec![
        Mp::Array(vec![
            Mp::from(1),
            map(&[("fluent.tag", s("mine")), ("a", Mp::from(1))]),
        ]),
        Mp::Array(vec![event_time(2, 5), map(&[("message", s("second"))])]),
    ]);
    let event = frame(&encode(&Mp::Array(vec![s("fwd"), entries])));
    let [first, second] = &event.log_records[..] else {
        panic!("two records")
    };
    // The tag replaces a record key of its name, in that key's place.
    assert_eq!(keys(first), [TAG_ATTRIBUTE, "a"]);
    assert_eq!(attribute(first, TAG_ATTRIBUTE), Some(&text("fwd")));
    assert_eq!(first.time_unix_nano, 1_000_000_000);
    assert_eq!(second.time_unix_nano, 2_000_000_005);
    assert_eq!(body(second), text("second").as_ref());
}

#[test]
fn message_mode_lets_a_record_key_replace_the_tag() {
    let bytes = encode(&Mp::Array(vec![
        s("tag"),
        Mp::from(1),
        map(&[("fluent.tag", s("mine"))]),
    ]));
    let record = &frame(&bytes).log_records[0];
    assert_eq!(attribute(record, TAG_ATTRIBUTE), Some(&text("mine")));
}

fn packed(entries: &[Mp]) -> Vec<u8> {
    entries.iter().flat_map(encode).collect()
}

#[test]
fn packed_forward_as_bin_and_as_str() {
    let entries = packed(&[
        Mp::Array(vec![Mp::from(10), map(&[("message", s("one"))])]),
        Mp::Array(vec![Mp::from(11), map(&[("message", s("two"))])]),
    ]);
    // As `str`, the bytes are not UTF-8 (fluentd writes them so): encoded by hand.
    let mut as_str = vec![0x92];
    rmp::encode::write_str(&mut as_str, "p").unwrap();
    rmp::encode::write_str_len(&mut as_str, entries.len() as u32).unwrap();
    as_str.extend(&entries);
    let as_bin = encode(&Mp::Array(vec![s("p"), Mp::Binary(entries)]));
    for bytes in [as_bin, as_str] {
        let event = frame(&bytes);
        let bodies: Vec<_> = event.log_records.iter().map(body).collect();
        assert_eq!(bodies, [text("one").as_ref(), text("two").as_ref()]);
        assert!(event.log_records.iter().all(|r| keys(r) == [TAG_ATTRIBUTE]));
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn compressed_packed_forward_reads_every_gzip_member() {
    let one = packed(&[Mp::Array(vec![Mp::from(1), map(&[("message", s("a"))])])]);
    let two = packed(&[Mp::Array(vec![Mp::from(2), map(&[("message", s("b"))])])]);
    let mut members = gzip(&one);
    members.extend(gzip(&two));
    let bytes = encode(&Mp::Array(vec![
        s("z"),
        Mp::Binary(members),
        map(&[("compressed", s("gzip")), ("chunk", s("c1"))]),
    ]));
    let event = frame(&bytes);
    assert_eq!(event.log_records.len(), 2);
    assert_eq!(event.chunk.as_deref(), Some(&b"c1"[..]));
    // Without the option, the same bytes are read as plain entries, and are not msgpack.
    let plain = encode(&Mp::Array(vec![s("z"), Mp::Binary(gzip(&one))]));
    assert!(next_frame(&plain).is_err());
}

#[test]
fn a_cut_short_frame_waits_for_more_bytes() {
    let bytes = encode(&Mp::Array(vec![
        s("t"),
        Mp::from(1),
        map(&[("message", s("x".repeat(300).as_str()))]),
    ]));
    for cut in [1, 2, 5, bytes.len() - 1] {
        assert!(next_frame(&bytes[..cut]).unwrap().is_none(), "cut at {cut}");
    }
    let mut two = bytes.clone();
    two.extend(&bytes);
    let (_, used) = next_frame(&two).unwrap().unwrap();
    assert_eq!(used, bytes.len());
}

#[test]
fn garbage_is_refused_at_its_first_bytes() {
    assert!(refused(b"GET / HTTP/1.1\r\n").contains("0x47"));
    // An array whose first element is no string: refused before its claimed length arrives.
    assert!(refused(&[0x93, 0xdd, 0xff, 0xff]).contains("tag"));
    // A 4-billion-element array of entries is waited for, not allocated.
    let huge = [0x92, 0xa1, b't', 0xdd, 0xff, 0xff, 0xff, 0xff];
    assert!(next_frame(&huge).unwrap().is_none());
}

#[test]
fn frames_of_no_mode_or_the_wrong_shape_are_refused() {
    let cases = [
        (Mp::Array(vec![s("t"), Mp::Nil]), "no event mode"),
        (Mp::Array(vec![s("t"), Mp::from(1)]), "Message event has 2"),
        (
            Mp::Array(vec![s("t"), Mp::from(1), s("not a map")]),
            "not a map",
        ),
        (
            Mp::Array(vec![s("t"), Mp::F64(1.5), map(&[])]),
            "no event mode",
        ),
        (
            Mp::Array(vec![s("t"), Mp::Array(vec![Mp::from(1)])]),
            "not a [time, record]",
        ),
        (
            Mp::Array(vec![
                s("t"),
                Mp::Array(vec![Mp::Array(vec![s("x"), map(&[])])]),
            ]),
            "neither an integer",
        ),
        (
            Mp::Array(vec![s("t"), Mp::Ext(0, vec![1, 2]), map(&[])]),
            "8 bytes",
        ),
        (
            Mp::Array(vec![s("t"), Mp::from(1), map(&[]), s("opts")]),
            "options are not a map",
        ),
        (
            Mp::Array(vec![
                s("t"),
                Mp::from(1),
                Mp::Map(vec![(Mp::from(1), Mp::from(2))]),
            ]),
            "record key",
        ),
    ];
    for (value, why) in cases {
        let message = refused(&encode(&value));
        assert!(message.contains(why), "{value}: {message}");
    }
}

#[test]
fn packed_entries_cut_short_are_refused_whole() {
    let mut entries = packed(&[Mp::Array(vec![Mp::from(1), map(&[("message", s("a"))])])]);
    entries.extend(&[0x92, 0x01]);
    let message = refused(&encode(&Mp::Array(vec![s("t"), Mp::Binary(entries)])));
    assert!(message.contains("entry 1"), "{message}");
}

#[test]
fn nesting_deeper_than_the_bound_is_refused() {
    let mut deep = Mp::from(1);
    for _ in 0..40 {
        deep = Mp::Array(vec![deep]);
    }
    let bytes = encode(&Mp::Array(vec![
        s("t"),
        Mp::from(1),
        map(&[("deep", deep)]),
    ]));
    assert!(refused(&bytes).contains("msgpack"));
}

#[test]
fn gzip_bombs_are_refused() {
    let zeros = vec![0u8; MAX_FRAME_BYTES + 1];
    let bytes = encode(&Mp::Array(vec![
        s("t"),
        Mp::Binary(gzip(&zeros)),
        map(&[("compressed", s("gzip"))]),
    ]));
    assert!(refused(&bytes).contains("more than"));
}

#[test]
fn values_keep_their_types() {
    let value = |v: Mp| any_value(&v.as_ref()).unwrap();
    assert_eq!(value(Mp::Nil), None);
    assert_eq!(value(Mp::from(true)), Some(Value::BoolValue(true)));
    assert_eq!(value(Mp::from(-5)), Some(Value::IntValue(-5)));
    assert_eq!(value(Mp::from(u64::MAX)), text("18446744073709551615"));
    assert_eq!(value(Mp::F32(1.5)), Some(Value::DoubleValue(1.5)));
    assert_eq!(value(Mp::Binary(b"bytes".to_vec())), text("bytes"));
    assert_eq!(value(Mp::Ext(5, vec![1, 2, 3])), text("&{5 [1 2 3]}"));
    let Some(Value::ArrayValue(array)) = value(Mp::Array(vec![Mp::from(1), Mp::Nil])) else {
        panic!("an array")
    };
    assert_eq!(array.values[1], AnyValue { value: None });
    // A repeated key keeps its first place and its last value, as pdata's map does.
    let repeated = Mp::Map(vec![
        (s("a"), Mp::from(1)),
        (s("b"), Mp::from(2)),
        (s("a"), Mp::from(3)),
    ]);
    let Some(Value::KvlistValue(list)) = value(repeated) else {
        panic!("a map")
    };
    let expected: Vec<KeyValue> = [("a", 3), ("b", 2)]
        .into_iter()
        .map(|(key, n)| KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(n)),
            }),
            ..KeyValue::default()
        })
        .collect();
    assert_eq!(list.values, expected);
}

#[test]
fn nil_attributes_are_empty_and_a_nil_body_keeps_the_last_one() {
    let bytes = encode(&Mp::Array(vec![
        s("t"),
        Mp::from(1),
        map(&[("message", s("kept")), ("log", Mp::Nil), ("gone", Mp::Nil)]),
    ]));
    let record = &frame(&bytes).log_records[0];
    assert_eq!(body(record), text("kept").as_ref());
    assert_eq!(attribute(record, "gone"), Some(&None));
}

#[test]
fn timestamps_wrap_as_go_does() {
    let time = |v: Mp| timestamp(&v.as_ref()).unwrap();
    assert_eq!(time(Mp::from(-1)), (-1_000_000_000i64) as u64);
    assert_eq!(
        time(Mp::from(u64::MAX)),
        (-1i64).wrapping_mul(1_000_000_000) as u64
    );
}

#[test]
fn the_ack_echoes_the_chunk() {
    let acked = ack(b"Y2h1bmsx");
    let value = rmpv::decode::read_value(&mut &acked[..]).unwrap();
    assert_eq!(value, map(&[("ack", s("Y2h1bmsx"))]));
}
