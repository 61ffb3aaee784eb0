//! Self-traces, when `service.telemetry.traces` names an OTLP endpoint: a span for every export
//! (how many items, how many attempts, how it ended) and every config reload, so an operator
//! sees in Tempo where time goes and what failed.
//!
//! They leave through an exporter of their own, never through a pipeline, so tracing an export
//! cannot feed itself. Spans wait at most a second, up to 512 at a time (or what the collector
//! shape's `batch` processor says); when the self-trace exporter cannot keep up they are
//! dropped and counted, never queued without a bound.

use crate::pdata::{Batch, RequestContext};
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Registry};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

const FLUSH_EVERY: Duration = Duration::from_secs(1);
const MAX_PENDING: usize = 512;

/// The scope of everything trailhead says about itself.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "trailhead".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..InstrumentationScope::default()
    }
}

/// What one span says, besides its name and times.
pub type Attributes<'a> = &'a [(&'a str, any_value::Value)];

/// Where self-traces leave: the self-trace exporter's queue. `offer` answers whether it took
/// the batch; what it refuses is counted as dropped.
pub trait SpanSink: Send + Sync {
    fn offer(&self, batch: Batch) -> futures::future::BoxFuture<'_, bool>;
}

/// Collects trailhead's own spans and hands them to the self-trace exporter.
pub struct SelfTracer {
    exporter: Box<dyn SpanSink>,
    pending: Mutex<Vec<Span>>,
    dropped: Counter,
    resource: Vec<KeyValue>,
    flush_every: Duration,
    max_pending: usize,
    /// Wakes the sender early: a full batch, or every span when `flush_every` is zero.
    wake: tokio::sync::Notify,
}

impl SelfTracer {
    pub fn new(exporter: impl SpanSink + 'static, registry: &Registry) -> SelfTracer {
        SelfTracer {
            exporter: Box::new(exporter),
            pending: Mutex::new(Vec::new()),
            dropped: registry.counter(&catalog::SELF_TRACES_DROPPED, &[]),
            resource: vec![attribute(
                "service.name",
                any_value::Value::StringValue("trailhead".into()),
            )],
            flush_every: FLUSH_EVERY,
            max_pending: MAX_PENDING,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The same tracer with the config's resource, how long spans wait and how many are held.
    pub fn with(
        mut self,
        resource: Vec<KeyValue>,
        flush_every: Duration,
        max_pending: usize,
    ) -> Self {
        (self.resource, self.flush_every, self.max_pending) = (resource, flush_every, max_pending);
        self
    }

    /// Records one span; `error` marks it failed with that message.
    pub fn record(
        &self,
        name: &str,
        start: SystemTime,
        end: SystemTime,
        attributes: Attributes<'_>,
        error: Option<&str>,
    ) {
        let nanos = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        };
        let span = Span {
            trace_id: random_bytes(16),
            span_id: random_bytes(8),
            name: name.to_string(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(end),
            attributes: attributes
                .iter()
                .map(|(key, value)| attribute(key, value.clone()))
                .collect(),
            status: error.map(|message| Status {
                code: status::StatusCode::Error as i32,
                message: message.to_string(),
            }),
            ..Span::default()
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= self.max_pending {
            self.dropped.add(1);
        } else {
            pending.push(span);
        }
        if self.flush_every.is_zero() || pending.len() >= self.max_pending {
            self.wake.notify_one();
        }
    }

    /// Sends what is pending every `flush_every` (or when woken) until `stop`, then once more.
    pub async fn run(self: std::sync::Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(self.flush_every.max(Duration::from_millis(1))) => false,
                () = self.wake.notified() => false,
                () = stop.cancelled() => true,
            };
            self.flush().await;
            if stopping {
                return;
            }
        }
    }

    async fn flush(&self) {
        let spans = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if spans.is_empty() {
            return;
        }
        let count = spans.len() as u64;
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: self.resource.clone(),
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope()),
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        let batch = Batch::from_message(
            crate::pdata::Signal::Traces,
            &request,
            RequestContext::internal("self-traces"),
        );
        if !self.exporter.offer(batch).await {
            self.dropped.add(count);
        }
    }
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// Ids only need to be unique enough to tell spans apart, not unpredictable.
fn random_bytes(n: usize) -> Vec<u8> {
    use std::hash::{BuildHasher, RandomState};
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let word = RandomState::new().hash_one(SystemTime::now());
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.truncate(n);
    out
}
