//! Zipkin spans as they arrive: v2 JSON, v2 protobuf (`zipkin.proto`) and v1 JSON, all read into
//! one v2-shaped [`ZipkinSpan`].

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Annotation {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    pub value: String,
}

/// One span in the v2 model.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    pub trace_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub kind: Option<Kind>,
    pub name: Option<String>,
    /// Start, in microseconds since the epoch.
    pub timestamp: Option<u64>,
    /// Microseconds.
    pub duration: Option<u64>,
    pub local_endpoint: Option<Endpoint>,
    pub remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub debug: Option<bool>,
    pub shared: Option<bool>,
}

/// Why a Zipkin body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    #[error("invalid Zipkin v2 JSON: {0}")]
    V2Json(serde_json::Error),
    #[error("invalid Zipkin v1 JSON: {0}")]
    V1Json(serde_json::Error),
    #[error("invalid Zipkin v2 protobuf (ListOfSpans): {0}")]
    Proto(prost::DecodeError),
    #[error("span[{index}]: {message}")]
    Span { index: usize, message: String },
}

/// Reads a v2 JSON array of spans.
pub fn parse_v2_json(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    serde_json::from_slice(body).map_err(ZipkinError::V2Json)
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
pub fn parse_v2_proto(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    let list = <ListOfSpans as prost::Message>::decode(body).map_err(ZipkinError::Proto)?;
    let endpoint = |e: proto::Endpoint| Endpoint {
        service_name: Some(e.service_name).filter(|s| !s.is_empty()),
        ipv4: <[u8; 4]>::try_from(e.ipv4.as_slice())
            .ok()
            .map(|ip| std::net::Ipv4Addr::from(ip).to_string()),
        ipv6: <[u8; 16]>::try_from(e.ipv6.as_slice())
            .ok()
            .map(|ip| std::net::Ipv6Addr::from(ip).to_string()),
        port: u16::try_from(e.port).ok().filter(|&p| p != 0),
    };
    Ok(list
        .spans
        .into_iter()
        .map(|s| ZipkinSpan {
            trace_id: hex::encode(&s.trace_id),
            id: hex::encode(&s.id),
            parent_id: Some(hex::encode(&s.parent_id)).filter(|p| !p.is_empty()),
            kind: match s.kind {
                1 => Some(Kind::Client),
                2 => Some(Kind::Server),
                3 => Some(Kind::Producer),
                4 => Some(Kind::Consumer),
                _ => None,
            },
            name: Some(s.name).filter(|n| !n.is_empty()),
            timestamp: Some(s.timestamp).filter(|&t| t != 0),
            duration: Some(s.duration).filter(|&d| d != 0),
            local_endpoint: s.local_endpoint.map(endpoint),
            remote_endpoint: s.remote_endpoint.map(endpoint),
            annotations: s
                .annotations
                .into_iter()
                .map(|a| Annotation {
                    timestamp: a.timestamp,
                    value: a.value,
                })
                .collect(),
            tags: s.tags,
            debug: Some(s.debug),
            shared: Some(s.shared),
        })
        .collect())
}

/// A v1 span: core annotations (`cs`, `sr`, `ss`, `cr`, `ms`, `mr`) carry kind, timing and
/// the local endpoint; binary annotations carry tags and (`ca`, `sa`, `ma`) the remote endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1Span {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    #[serde(default)]
    annotations: Vec<V1Annotation>,
    #[serde(default)]
    binary_annotations: Vec<V1BinaryAnnotation>,
    debug: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct V1Annotation {
    timestamp: u64,
    value: String,
    endpoint: Option<Endpoint>,
}

#[derive(Debug, Deserialize)]
struct V1BinaryAnnotation {
    key: String,
    value: serde_json::Value,
    endpoint: Option<Endpoint>,
}

/// Reads a v1 JSON array of spans into the v2 model.
pub fn parse_v1_json(body: &[u8]) -> Result<Vec<ZipkinSpan>, ZipkinError> {
    let spans: Vec<V1Span> = serde_json::from_slice(body).map_err(ZipkinError::V1Json)?;
    Ok(spans.into_iter().map(v1_to_v2).collect())
}

fn v1_to_v2(v1: V1Span) -> ZipkinSpan {
    let mut span = ZipkinSpan {
        trace_id: v1.trace_id,
        id: v1.id,
        parent_id: v1.parent_id,
        name: v1.name,
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
                value: annotation.value.clone(),
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
                span.tags.insert(binary.key, value);
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
        assert_eq!(span.tags["http.status_code"], "500");
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
