//! Zipkin spans as they arrive: v2 JSON, v2 protobuf (`zipkin.proto`) and v1 JSON, all read into
//! one v2-shaped [`ZipkinSpan`]. v2 JSON, what Dapr sends, is read borrowing its strings from the
//! body (checked as UTF-8 once, up front), with tags in a sorted list rather than a map: an
//! owned string per field and a tree per span were most of the Zipkin path's cost.

use serde::Deserialize;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

/// A string of the body, or one made from it (unescaped JSON, a v1 or protobuf value).
pub type Text<'a> = Cow<'a, str>;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub service_name: Option<Text<'a>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub ipv4: Option<Text<'a>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub ipv6: Option<Text<'a>>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Annotation<'a> {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    #[serde(borrow, deserialize_with = "text")]
    pub value: Text<'a>,
}

/// One span in the v2 model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan<'a> {
    #[serde(borrow, deserialize_with = "text")]
    pub trace_id: Text<'a>,
    #[serde(borrow, deserialize_with = "text")]
    pub id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub parent_id: Option<Text<'a>>,
    pub kind: Option<Kind>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub name: Option<Text<'a>>,
    /// Start, in microseconds since the epoch.
    pub timestamp: Option<u64>,
    /// Microseconds.
    pub duration: Option<u64>,
    #[serde(borrow)]
    pub local_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow)]
    pub remote_endpoint: Option<Endpoint<'a>>,
    #[serde(borrow, default)]
    pub annotations: Vec<Annotation<'a>>,
    #[serde(borrow, default)]
    pub tags: Tags<'a>,
    pub debug: Option<bool>,
    pub shared: Option<bool>,
}

/// A span's tags, sorted by key, each key once (the last one given wins, as in a JSON map).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tags<'a>(Vec<(Text<'a>, Text<'a>)>);

impl<'a> Tags<'a> {
    /// Removes and returns the value of `key`.
    pub fn remove(&mut self, key: &str) -> Option<Text<'a>> {
        let at = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(self.0.remove(at).1)
    }

    /// Sets `key`, replacing what it had.
    pub fn insert(&mut self, key: Text<'a>, value: Text<'a>) {
        match self.0.binary_search_by(|(k, _)| k.as_ref().cmp(&key)) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let at = self.0.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok()?;
        Some(&self.0[at].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Moves out the tags whose key `wanted` picks (still sorted, so still `Tags`).
    pub fn take_if(&mut self, mut wanted: impl FnMut(&str) -> bool) -> Tags<'a> {
        if !self.0.iter().any(|(k, _)| wanted(k)) {
            return Tags::default();
        }
        let (taken, kept) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(k, _)| wanted(k));
        self.0 = kept;
        Tags(taken)
    }

    /// From pairs in any order; a repeated key keeps its last value.
    fn from_pairs(mut pairs: Vec<(Text<'a>, Text<'a>)>) -> Self {
        // Go's encoding/json (Dapr's exporter) writes map keys sorted: nothing to do then.
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return Tags(pairs);
        }
        pairs.reverse(); // a stable sort then keeps the last given of a key first
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|later, kept| later.0 == kept.0);
        Tags(pairs)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Tags<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Pairs<'a> {
            type Value = Tags<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of string tags")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Tags<'a>, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(pair) = map.next_entry::<Borrowed<'a>, Borrowed<'a>>()? {
                    pairs.push((pair.0.0, pair.1.0));
                }
                Ok(Tags::from_pairs(pairs))
            }
        }
        deserializer.deserialize_map(Pairs(std::marker::PhantomData))
    }
}

/// A string borrowed from the body when it has no escapes. (`#[serde(borrow)]` alone would
/// not borrow here: serde borrows only a field spelled `Cow<str>`, and through the `Text` alias
/// or an `Option` every string was copied into its own allocation.)
struct Borrowed<'a>(Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Borrowed<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Borrowed<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Borrowed<'a>, E> {
                Ok(Borrowed(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Borrowed<'a>, E> {
                Ok(Borrowed(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Borrowed<'a>, E> {
                Ok(Borrowed(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

/// `deserialize_with` for a string field, borrowed where it can be.
fn text<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Text<'a>, D::Error> {
    Borrowed::deserialize(d).map(|b| b.0)
}

/// `deserialize_with` for an optional string field, borrowed where it can be.
fn optional_text<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Text<'a>>, D::Error> {
    Option::<Borrowed>::deserialize(d).map(|b| b.map(|b| b.0))
}

/// Why a Zipkin body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    #[error("invalid Zipkin v2 JSON: {0}")]
    V2Json(serde_json::Error),
    #[error("invalid Zipkin JSON: not UTF-8 ({0})")]
    Utf8(std::str::Utf8Error),
    #[error("invalid Zipkin v1 JSON: {0}")]
    V1Json(serde_json::Error),
    #[error("invalid Zipkin v2 protobuf (ListOfSpans): {0}")]
    Proto(prost::DecodeError),
    #[error("span[{index}]: {message}")]
    Span { index: usize, message: String },
}

/// Reads a v2 JSON array of spans, borrowing from `body`.
pub fn parse_v2_json(body: &[u8]) -> Result<Vec<ZipkinSpan<'_>>, ZipkinError> {
    let mut spans = Vec::new();
    for_each_v2_json(body, |span| {
        spans.push(span);
        Ok(())
    })?;
    Ok(spans)
}

/// Reads a v2 JSON array of spans, borrowing from `body`, and hands each to `each` as soon as
/// it is read: no list of spans is built (growing one moved every span's fields twice over).
/// The first error `each` returns stops the reading and is returned.
pub fn for_each_v2_json<'a>(
    body: &'a [u8],
    each: impl FnMut(ZipkinSpan<'a>) -> Result<(), ZipkinError>,
) -> Result<(), ZipkinError> {
    use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};
    struct Spans<'f, F> {
        each: F,
        failed: &'f mut Option<ZipkinError>,
    }
    impl<'de, F: FnMut(ZipkinSpan<'de>) -> Result<(), ZipkinError>> Visitor<'de> for Spans<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of spans")
        }
        fn visit_seq<S: SeqAccess<'de>>(mut self, mut seq: S) -> Result<(), S::Error> {
            while let Some(span) = seq.next_element::<ZipkinSpan<'de>>()? {
                if let Err(e) = (self.each)(span) {
                    *self.failed = Some(e);
                    return Err(S::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    impl<'de, F: FnMut(ZipkinSpan<'de>) -> Result<(), ZipkinError>> DeserializeSeed<'de>
        for Spans<'_, F>
    {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    // One UTF-8 check of the whole body instead of one per string.
    let text = std::str::from_utf8(body).map_err(ZipkinError::Utf8)?;
    let mut failed = None;
    let mut reader = serde_json::Deserializer::from_str(text);
    let read = Spans {
        each,
        failed: &mut failed,
    }
    .deserialize(&mut reader)
    .and_then(|()| reader.end());
    match (failed, read) {
        (Some(e), _) => Err(e),
        (None, read) => read.map_err(ZipkinError::V2Json),
    }
}

/// `zipkin.proto` messages, for `application/x-protobuf` bodies.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub kind: i32,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub annotations: Vec<Annotation>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub tags: std::collections::BTreeMap<String, String>,
        #[prost(bool, tag = "12")]
        pub debug: bool,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub timestamp: u64,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

pub use proto::{Endpoint as ProtoEndpoint, ListOfSpans, Span as ProtoSpan};

/// Reads a v2 protobuf `ListOfSpans`.
pub fn parse_v2_proto(body: &[u8]) -> Result<Vec<ZipkinSpan<'static>>, ZipkinError> {
    let list = <ListOfSpans as prost::Message>::decode(body).map_err(ZipkinError::Proto)?;
    let endpoint = |e: proto::Endpoint| Endpoint {
        service_name: Some(e.service_name)
            .filter(|s| !s.is_empty())
            .map(Cow::Owned),
        ipv4: <[u8; 4]>::try_from(e.ipv4.as_slice())
            .ok()
            .map(|ip| std::net::Ipv4Addr::from(ip).to_string().into()),
        ipv6: <[u8; 16]>::try_from(e.ipv6.as_slice())
            .ok()
            .map(|ip| std::net::Ipv6Addr::from(ip).to_string().into()),
        port: u16::try_from(e.port).ok().filter(|&p| p != 0),
    };
    Ok(list
        .spans
        .into_iter()
        .map(|s| ZipkinSpan {
            trace_id: hex::encode(&s.trace_id).into(),
            id: hex::encode(&s.id).into(),
            parent_id: Some(hex::encode(&s.parent_id))
                .filter(|p| !p.is_empty())
                .map(Cow::Owned),
            kind: match s.kind {
                1 => Some(Kind::Client),
                2 => Some(Kind::Server),
                3 => Some(Kind::Producer),
                4 => Some(Kind::Consumer),
                _ => None,
            },
            name: Some(s.name).filter(|n| !n.is_empty()).map(Cow::Owned),
            timestamp: Some(s.timestamp).filter(|&t| t != 0),
            duration: Some(s.duration).filter(|&d| d != 0),
            local_endpoint: s.local_endpoint.map(endpoint),
            remote_endpoint: s.remote_endpoint.map(endpoint),
            annotations: s
                .annotations
                .into_iter()
                .map(|a| Annotation {
                    timestamp: a.timestamp,
                    value: a.value.into(),
                })
                .collect(),
            tags: Tags::from_pairs(
                s.tags
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
            debug: Some(s.debug),
            shared: Some(s.shared),
        })
        .collect())
}

/// A v1 span: core annotations (`cs`, `sr`, `ss`, `cr`, `ms`, `mr`) carry kind, timing and
/// the local endpoint; binary annotations carry tags and (`ca`, `sa`, `ma`) the remote endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Span<'a> {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    #[serde(borrow, default)]
    annotations: Vec<V1Annotation<'a>>,
    #[serde(borrow, default)]
    binary_annotations: Vec<V1BinaryAnnotation<'a>>,
    debug: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct V1Annotation<'a> {
    timestamp: u64,
    value: String,
    #[serde(borrow)]
    endpoint: Option<Endpoint<'a>>,
}

#[derive(Debug, Deserialize)]
struct V1BinaryAnnotation<'a> {
    key: String,
    value: serde_json::Value,
    #[serde(borrow)]
    endpoint: Option<Endpoint<'a>>,
}

/// Reads a v1 JSON array of spans into the v2 model.
pub fn parse_v1_json(body: &[u8]) -> Result<Vec<ZipkinSpan<'_>>, ZipkinError> {
    let spans: Vec<V1Span> = serde_json::from_slice(body).map_err(ZipkinError::V1Json)?;
    Ok(spans.into_iter().map(v1_to_v2).collect())
}

fn v1_to_v2(v1: V1Span<'_>) -> ZipkinSpan<'_> {
    let mut span = ZipkinSpan {
        trace_id: v1.trace_id.into(),
        id: v1.id.into(),
        parent_id: v1.parent_id.map(Cow::Owned),
        name: v1.name.map(Cow::Owned),
        timestamp: v1.timestamp,
        duration: v1.duration,
        debug: v1.debug,
        ..ZipkinSpan::default()
    };
    let find = |value: &str| v1.annotations.iter().find(|a| a.value == value);
    // The first pair found decides the kind; its start and end give timing if none was set.
    let pairs = [
        ("cs", "cr", Kind::Client),
        ("sr", "ss", Kind::Server),
        ("ms", "ws", Kind::Producer),
        ("mr", "wr", Kind::Consumer),
    ];
    if let Some((start, end, kind)) = pairs
        .iter()
        .find_map(|(s, e, k)| find(s).map(|s| (s, find(e), *k)))
    {
        span.kind = Some(kind);
        span.local_endpoint = start.endpoint.clone();
        span.timestamp = span.timestamp.or(Some(start.timestamp));
        if let (None, Some(end)) = (span.duration, end) {
            span.duration = Some(end.timestamp.saturating_sub(start.timestamp));
        }
    }
    const CORE: [&str; 8] = ["cs", "cr", "sr", "ss", "ms", "ws", "mr", "wr"];
    for annotation in &v1.annotations {
        if !CORE.contains(&annotation.value.as_str()) {
            span.annotations.push(Annotation {
                timestamp: annotation.timestamp,
                value: annotation.value.clone().into(),
            });
        }
        if span.local_endpoint.is_none() {
            span.local_endpoint = annotation.endpoint.clone();
        }
    }
    for binary in v1.binary_annotations {
        match binary.key.as_str() {
            "ca" | "sa" | "ma" => span.remote_endpoint = binary.endpoint,
            _ => {
                if span.local_endpoint.is_none() {
                    span.local_endpoint = binary.endpoint;
                }
                let value = match binary.value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                span.tags.insert(binary.key.into(), value.into());
            }
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    // A v1 client span: kind, timing and endpoints come from its core annotations.
    #[test]
    fn v1_core_annotations() {
        let body = br#"[{"traceId":"0000000000000001","id":"0000000000000002","name":"get",
            "annotations":[{"timestamp":10,"value":"cs","endpoint":{"serviceName":"web","ipv4":"10.0.0.1"}},
                           {"timestamp":30,"value":"cr","endpoint":{"serviceName":"web"}},
                           {"timestamp":20,"value":"retry"}],
            "binaryAnnotations":[{"key":"sa","value":true,"endpoint":{"serviceName":"db","port":5432}},
                                 {"key":"http.status_code","value":500}]}]"#;
        let span = &parse_v1_json(body).unwrap()[0];
        assert_eq!(span.kind, Some(Kind::Client));
        assert_eq!((span.timestamp, span.duration), (Some(10), Some(20)));
        assert_eq!(
            span.local_endpoint
                .as_ref()
                .unwrap()
                .service_name
                .as_deref(),
            Some("web")
        );
        assert_eq!(span.remote_endpoint.as_ref().unwrap().port, Some(5432));
        assert_eq!(
            span.annotations,
            vec![Annotation {
                timestamp: 20,
                value: "retry".into()
            }]
        );
        assert_eq!(span.tags.get("http.status_code"), Some("500"));
    }

    // Tags come out sorted by key, and a key given twice keeps its last value, as a JSON map
    // read into a map would; sorted input (Go writes map keys sorted) is taken as it is.
    #[test]
    fn tags_sorted_and_last_wins() {
        let body = br#"[{"traceId":"0000000000000001","id":"0000000000000002",
            "tags":{"b":"1","a":"2","b":"3","c\u0041":"escaped"}},
            {"traceId":"0000000000000001","id":"0000000000000003","tags":{"a":"x","b":"y"}}]"#;
        let spans = parse_v2_json(body).unwrap();
        let tags: Vec<(&str, &str)> = spans[0].tags.iter().collect();
        assert_eq!(tags, [("a", "2"), ("b", "3"), ("cA", "escaped")]);
        let sorted: Vec<(&str, &str)> = spans[1].tags.iter().collect();
        assert_eq!(sorted, [("a", "x"), ("b", "y")]);
        assert!(matches!(spans[1].tags.get("a"), Some("x")));
        assert!(parse_v2_json(b"[{\"traceId\":\"\xff\"}]").is_err());
    }

    // Strings without escapes are borrowed from the body, not copied; an escaped one is
    // unescaped into its own.
    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let body = br#"[{"traceId":"0000000000000001","id":"0000000000000002","name":"get\u0020x",
            "parentId":"0000000000000009","localEndpoint":{"serviceName":"api"},"tags":{"k":"v"}}]"#;
        let spans = parse_v2_json(body).unwrap();
        let span = &spans[0];
        let borrowed = |t: &Text| matches!(t, Cow::Borrowed(_));
        assert!(borrowed(&span.trace_id) && borrowed(&span.id));
        assert!(borrowed(span.parent_id.as_ref().unwrap()));
        let service = span.local_endpoint.as_ref().unwrap().service_name.as_ref();
        assert!(borrowed(service.unwrap()));
        assert!(span.tags.0.iter().all(|(k, v)| borrowed(k) && borrowed(v)));
        let name = span.name.as_ref().unwrap();
        assert_eq!((name.as_ref(), borrowed(name)), ("get x", false));
    }

    // Protobuf endpoints carry raw IP bytes; they become text addresses.
    #[test]
    fn proto_endpoints() {
        let list = ListOfSpans {
            spans: vec![ProtoSpan {
                trace_id: vec![1; 16],
                id: vec![2; 8],
                kind: 2,
                local_endpoint: Some(ProtoEndpoint {
                    service_name: "api".into(),
                    ipv4: vec![10, 1, 2, 3],
                    port: 80,
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let spans = parse_v2_proto(&prost::Message::encode_to_vec(&list)).unwrap();
        assert_eq!(spans[0].kind, Some(Kind::Server));
        assert_eq!(
            spans[0].local_endpoint.as_ref().unwrap().ipv4.as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(spans[0].trace_id, "01".repeat(16));
    }
}
