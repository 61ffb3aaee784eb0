//! Jaeger spans to an OTLP trace request, as the collector's translator (contrib
//! `pkg/translator/jaeger` v0.161.0) maps them. Both wire forms (thrift and api_v2 protobuf)
//! are first read into the one model here; the two paths then differ as the collector's do:
//!
//! - thrift (`ThriftToTraces`): one resource per batch, one empty scope, the parent from
//!   `parentSpanId` or else a reference; `otel.scope.*` and `w3c.tracestate` stay attributes;
//! - protobuf (`ProtoToTraces`): spans carrying their own process are regrouped by process, the
//!   scope comes from `otel.scope.name`/`otel.scope.version`, the trace state from
//!   `w3c.tracestate`, the parent only from a reference. The collector iterates a Go map to
//!   regroup, so its resource order is random; here it is the order first seen.
//!
//! Attributes follow pdata's map: a key put twice keeps its first place with the last value, a
//! removed key takes the last attribute into its place. That is what decides the order the
//! collector writes them in, so it is kept exactly.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};

/// A tag's value; `Unknown` holds the name of a type this translator does not know.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Str(String),
    Bool(bool),
    Long(i64),
    Double(f64),
    Binary(Vec<u8>),
    Unknown(String),
}

/// A Jaeger tag (a key and a typed value).
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: TagValue,
}

/// A reference to another span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRef {
    pub trace_id: (u64, u64),
    pub span_id: u64,
    pub follows_from: bool,
}

/// A span's log: when, and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub time_unix_nano: u64,
    pub fields: Vec<Tag>,
}

/// A process: a service name and its tags (`tags: None` when the sender sent none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Process {
    pub service_name: String,
    pub tags: Option<Vec<Tag>>,
}

/// A span, from either wire form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JaegerSpan {
    /// (high, low) 64 bits.
    pub trace_id: (u64, u64),
    pub span_id: u64,
    /// Thrift's `parentSpanId` (protobuf has none: 0).
    pub parent_span_id: u64,
    pub operation_name: String,
    pub flags: u32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub references: Vec<SpanRef>,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    /// Protobuf only: the span's own process, which takes precedence over the batch's.
    pub process: Option<Process>,
    /// Every field at its zero value, as the collector tests it (`reflect.DeepEqual` with a
    /// new span): such a span is skipped.
    pub blank: bool,
}

/// A batch: a process and its spans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JaegerBatch {
    pub process: Option<Process>,
    pub spans: Vec<JaegerSpan>,
}

const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// An attribute list with pdata `Map` semantics (see the module header).
#[derive(Default)]
struct Attributes(Vec<KeyValue>);

impl Attributes {
    fn get(&self, key: &str) -> Option<&any_value::Value> {
        let found = self.0.iter().find(|kv| kv.key == key)?;
        found.value.as_ref()?.value.as_ref()
    }

    fn put(&mut self, key: &str, value: any_value::Value) {
        let value = Some(AnyValue { value: Some(value) });
        match self.0.iter_mut().find(|kv| kv.key == key) {
            Some(kv) => kv.value = value,
            None => self.0.push(KeyValue {
                key: key.to_string(),
                value,
                ..Default::default()
            }),
        }
    }

    fn remove(&mut self, key: &str) -> bool {
        match self.0.iter().position(|kv| kv.key == key) {
            Some(at) => {
                self.0.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// pdata's `Value.Str()`: the text of a string value, "" for any other type.
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| match v {
            any_value::Value::StringValue(s) => s.clone(),
            _ => String::new(),
        })
    }

    fn put_tags(&mut self, tags: &[Tag]) {
        for tag in tags {
            let value = match &tag.value {
                TagValue::Str(s) => any_value::Value::StringValue(s.clone()),
                TagValue::Bool(b) => any_value::Value::BoolValue(*b),
                TagValue::Long(i) => any_value::Value::IntValue(*i),
                TagValue::Double(d) => any_value::Value::DoubleValue(*d),
                TagValue::Binary(b) => any_value::Value::BytesValue(b.clone()),
                TagValue::Unknown(name) => {
                    any_value::Value::StringValue(format!("<Unknown Jaeger TagType {name:?}>"))
                }
            };
            // Both HTTP status keys are written as the old one (the collector's feature
            // gates for the new conventions are alpha, off).
            let key = match tag.key.as_str() {
                "http.response.status_code" => "http.status_code",
                key => key,
            };
            self.put(key, value);
        }
    }
}

/// Which wire form a batch came in; the two map a few things differently.
#[derive(Clone, Copy, PartialEq)]
pub enum Form {
    Thrift,
    Proto,
}

/// One batch as the collector maps it, and how many spans it holds.
pub fn to_otlp(batch: JaegerBatch, form: Form) -> (ExportTraceServiceRequest, usize) {
    let groups = match form {
        Form::Thrift if batch.process.is_none() && batch.spans.is_empty() => Vec::new(),
        Form::Thrift => vec![batch],
        Form::Proto => regroup(batch),
    };
    let mut count = 0;
    let mut resource_spans = Vec::new();
    for group in groups {
        if form == Form::Proto && group.process.is_none() && group.spans.is_empty() {
            continue;
        }
        let resource = resource(group.process.as_ref(), form);
        let mut scopes: Vec<ScopeSpans> = Vec::new();
        if form == Form::Thrift && !group.spans.is_empty() {
            scopes.push(scope_spans(InstrumentationScope::default()));
        }
        for mut jaeger in group.spans.into_iter().filter(|s| !s.blank) {
            let at = match form {
                Form::Thrift => 0,
                Form::Proto => {
                    let scope = take_scope(&mut jaeger.tags);
                    let found = scopes.iter().position(|s| s.scope.as_ref() == Some(&scope));
                    found.unwrap_or_else(|| {
                        scopes.push(scope_spans(scope));
                        scopes.len() - 1
                    })
                }
            };
            scopes[at].spans.push(span(jaeger, form));
            count += 1;
        }
        resource_spans.push(ResourceSpans {
            resource: Some(resource),
            scope_spans: scopes,
            schema_url: String::new(),
        });
    }
    (ExportTraceServiceRequest { resource_spans }, count)
}

fn scope_spans(scope: InstrumentationScope) -> ScopeSpans {
    ScopeSpans {
        scope: Some(scope),
        ..Default::default()
    }
}

/// Spans with a process of their own go to the group of that process; equal processes (and
/// a missing one with an empty one, as their hashes are equal in the collector) share one.
fn regroup(batch: JaegerBatch) -> Vec<JaegerBatch> {
    let key = |p: &Option<Process>| {
        p.as_ref()
            .map(|p| (p.service_name.clone(), p.tags.clone().unwrap_or_default()))
            .unwrap_or_default()
    };
    let mut groups: Vec<((String, Vec<Tag>), JaegerBatch)> = Vec::new();
    let group_of = |process: Option<Process>, groups: &mut Vec<_>| {
        let k = key(&process);
        match groups.iter().position(|(g, _)| *g == k) {
            Some(at) => at,
            None => {
                groups.push((
                    k,
                    JaegerBatch {
                        process,
                        spans: Vec::new(),
                    },
                ));
                groups.len() - 1
            }
        }
    };
    let batch_group = group_of(batch.process, &mut groups);
    for mut span in batch.spans {
        let at = match span.process.take() {
            None => batch_group,
            Some(process) => group_of(Some(process), &mut groups),
        };
        groups[at].1.spans.push(span);
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

fn resource(process: Option<&Process>, form: Form) -> Resource {
    let mut attributes = Attributes::default();
    if let Some(process) = process
        && !(form == Form::Proto && process.service_name == NO_SERVICE_NAME)
        && !(process.service_name.is_empty() && process.tags.is_none())
    {
        if !process.service_name.is_empty() {
            let name = any_value::Value::StringValue(process.service_name.clone());
            attributes.put("service.name", name);
        }
        attributes.put_tags(process.tags.as_deref().unwrap_or_default());
        if let Some(hostname) = attributes.get("hostname").cloned()
            && attributes.get("host.name").is_none()
        {
            attributes.put("host.name", hostname);
            attributes.remove("hostname");
        }
        if let Some(version) = attributes.text("jaeger.version")
            && attributes.get("opencensus.exporterversion").is_none()
        {
            let version = any_value::Value::StringValue(format!("Jaeger-{version}"));
            attributes.put("opencensus.exporterversion", version);
            attributes.remove("jaeger.version");
        }
    }
    Resource {
        attributes: attributes.0,
        ..Default::default()
    }
}

/// `otel.scope.name` (and, only with it, `otel.scope.version`) taken out of the tags.
fn take_scope(tags: &mut Vec<Tag>) -> InstrumentationScope {
    let mut take = |key: &str| {
        let at = tags.iter().position(|t| t.key == key)?;
        Some(match tags.remove(at).value {
            TagValue::Str(s) => s,
            _ => String::new(),
        })
    };
    let mut scope = InstrumentationScope::default();
    if let Some(name) = take("otel.scope.name") {
        scope.name = name;
        scope.version = take("otel.scope.version").unwrap_or_default();
    }
    scope
}

fn trace_id((high, low): (u64, u64)) -> Vec<u8> {
    if (high, low) == (0, 0) {
        return Vec::new();
    }
    [high.to_be_bytes(), low.to_be_bytes()].concat()
}

fn span_id(id: u64) -> Vec<u8> {
    match id {
        0 => Vec::new(),
        id => id.to_be_bytes().to_vec(),
    }
}

/// The parent: thrift's `parentSpanId`, else a reference in the same trace (CHILD_OF first,
/// else the first FOLLOWS_FROM).
fn parent_of(jaeger: &JaegerSpan) -> u64 {
    if jaeger.parent_span_id != 0 {
        return jaeger.parent_span_id;
    }
    let same_trace = || {
        jaeger
            .references
            .iter()
            .filter(|r| r.trace_id == jaeger.trace_id)
    };
    same_trace()
        .find(|r| !r.follows_from)
        .or_else(|| same_trace().find(|r| r.follows_from))
        .map_or(0, |r| r.span_id)
}

fn span(jaeger: JaegerSpan, form: Form) -> Span {
    let parent = parent_of(&jaeger);
    let mut attributes = Attributes::default();
    attributes.put_tags(&jaeger.tags);
    let mut kind = span::SpanKind::Unspecified;
    if let Some(text) = attributes.text("span.kind") {
        kind = match text.as_str() {
            "client" => span::SpanKind::Client,
            "server" => span::SpanKind::Server,
            "producer" => span::SpanKind::Producer,
            "consumer" => span::SpanKind::Consumer,
            "internal" => span::SpanKind::Internal,
            _ => span::SpanKind::Unspecified,
        };
        attributes.remove("span.kind");
    }
    let status = status_of(&mut attributes, kind);
    let trace_state = match form {
        Form::Proto => attributes.text("w3c.tracestate").inspect(|_| {
            attributes.remove("w3c.tracestate");
        }),
        Form::Thrift => None,
    };
    let events = jaeger.logs.iter().map(event).collect();
    let links = links(&jaeger.references, parent);
    Span {
        trace_id: trace_id(jaeger.trace_id),
        span_id: span_id(jaeger.span_id),
        trace_state: trace_state.unwrap_or_default(),
        parent_span_id: span_id(parent),
        flags: jaeger.flags & 1,
        name: jaeger.operation_name,
        kind: kind as i32,
        start_time_unix_nano: jaeger.start_unix_nano,
        end_time_unix_nano: jaeger.end_unix_nano,
        attributes: attributes.0,
        events,
        links,
        // Written even when unset, as the collector's pdata always writes it.
        status: Some(status.unwrap_or_default()),
        ..Default::default()
    }
}

/// The status from `error`, `otel.status_code`/`otel.status_description`, or else the HTTP
/// status code, as the collector's `setInternalSpanStatus`.
fn status_of(attributes: &mut Attributes, kind: span::SpanKind) -> Option<Status> {
    let mut code = status::StatusCode::Unset;
    let mut message = String::new();
    let mut exists = false;
    let take_description = |attributes: &mut Attributes| {
        let text = attributes.text("otel.status_description")?;
        attributes.remove("otel.status_description");
        Some(text)
    };
    if let Some(any_value::Value::BoolValue(true)) = attributes.get("error") {
        code = status::StatusCode::Error;
        attributes.remove("error");
        exists = true;
        message = take_description(attributes)
            .or_else(|| attributes.text("http.status_message"))
            .unwrap_or_default();
    }
    if let Some(text) = attributes.text("otel.status_code") {
        if !exists {
            exists = true;
            code = match text.to_uppercase().as_str() {
                "OK" => status::StatusCode::Ok,
                "ERROR" => status::StatusCode::Error,
                _ => code,
            };
            message = take_description(attributes).unwrap_or_default();
        }
        attributes.remove("otel.status_code");
    } else if !exists && let Some(http) = http_status(attributes, kind) {
        if http != status::StatusCode::Unset {
            exists = true;
            code = http;
        }
        if let Some(text) = attributes.text("http.status_message") {
            message = text;
        }
    }
    exists.then(|| Status {
        code: code as i32,
        message,
    })
}

/// The span status an HTTP status code attribute means; `None` when it is not a number.
fn http_status(attributes: &Attributes, kind: span::SpanKind) -> Option<status::StatusCode> {
    let value = attributes.get("http.status_code")?;
    let code = match value {
        any_value::Value::IntValue(i) => *i,
        any_value::Value::StringValue(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(match (code, kind) {
        (400..=499, span::SpanKind::Client) => status::StatusCode::Error,
        (400..=499, span::SpanKind::Server) => status::StatusCode::Unset,
        (100..=398, _) => status::StatusCode::Unset,
        _ => status::StatusCode::Error,
    })
}

fn event(log: &Log) -> span::Event {
    let mut attributes = Attributes::default();
    attributes.put_tags(&log.fields);
    let name = attributes.text("event").inspect(|_| {
        attributes.remove("event");
    });
    span::Event {
        time_unix_nano: log.time_unix_nano,
        name: name.unwrap_or_default(),
        attributes: attributes.0,
        dropped_attributes_count: 0,
    }
}

/// Every reference but the CHILD_OF one naming the parent.
fn links(references: &[SpanRef], parent: u64) -> Vec<span::Link> {
    let is_parent = |r: &SpanRef| r.span_id == parent && !r.follows_from;
    references
        .iter()
        .filter(|r| !is_parent(r))
        .map(|r| {
            let ref_type = if r.follows_from {
                "follows_from"
            } else {
                "child_of"
            };
            span::Link {
                trace_id: trace_id(r.trace_id),
                span_id: span_id(r.span_id),
                attributes: vec![KeyValue {
                    key: "opentracing.ref_type".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(ref_type.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
}
