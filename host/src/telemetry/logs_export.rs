//! `service.telemetry.logs.processors`: trailhead's log events also sent as OTLP logs. A
//! `tracing` layer turns each event into a record (severity, the message as body, the other
//! fields as attributes, the target as scope) and holds it; a task sends what is held every
//! `schedule_delay`, or at once for `simple`, through an exporter of its own.
//!
//! Bounded: at most `max_queue_size` records wait; more are dropped and counted (as the log
//! exporter's failed items), the layer never blocks. It never feeds itself: events about the log exporter (those naming it in
//! their `exporter` field) and the HTTP/gRPC stack's own events are not turned into records,
//! so a failing export cannot make the records that report it.
//!
//! The layer is installed when logging starts, before the service exists; the service finds
//! the held records through [`installed`] and starts the sender.

use super::metrics::{Counter, Registry};
use super::traces::SpanSink;
use crate::pdata::{Batch, RequestContext, Signal};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use tracing::field::{Field, Visit};

/// The id of the exporter the records leave through, in its own metrics and log lines.
pub const EXPORTER_ID: &str = "service.telemetry.logs";

/// Targets whose events are the sending itself: never made into records.
const TRANSPORT: [&str; 6] = ["h2", "hyper", "tonic", "tower", "reqwest", "rustls"];

/// Records waiting to be sent, shared by the layer and the sender.
pub struct HeldLogs {
    records: Mutex<Vec<(&'static str, LogRecord)>>,
    max_queue: usize,
    /// Records dropped before the service counted them in its registry.
    dropped_early: std::sync::atomic::AtomicU64,
    dropped: OnceLock<Counter>,
    wake: tokio::sync::Notify,
    wake_every_record: bool,
}

static INSTALLED: OnceLock<Arc<HeldLogs>> = OnceLock::new();

/// The records the installed layer holds, when logs are sent over OTLP.
pub fn installed() -> Option<Arc<HeldLogs>> {
    INSTALLED.get().cloned()
}

/// The layer that holds records for `batching`; the first call installs it for [`installed`].
pub fn layer(max_queue: usize, delay: std::time::Duration) -> LogLayer {
    let held = Arc::new(HeldLogs {
        records: Mutex::new(Vec::new()),
        max_queue,
        dropped_early: Default::default(),
        dropped: OnceLock::new(),
        wake: tokio::sync::Notify::new(),
        wake_every_record: delay.is_zero(),
    });
    let _ = INSTALLED.set(held.clone());
    LogLayer { held }
}

impl HeldLogs {
    fn hold(&self, target: &'static str, record: LogRecord) {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= self.max_queue {
            drop(records);
            match self.dropped.get() {
                Some(counter) => counter.add(1),
                None => {
                    use std::sync::atomic::Ordering;
                    self.dropped_early.fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        records.push((target, record));
        drop(records);
        if self.wake_every_record {
            self.wake.notify_one();
        }
    }

    /// Counts drops in `registry` from now on, with those before, as the log exporter's
    /// failed items (`trailhead_exporter_send_failed_items_total`).
    fn count_in(&self, registry: &Registry) -> Counter {
        let values = [EXPORTER_ID, Signal::Logs.as_str()];
        let counter = self
            .dropped
            .get_or_init(|| registry.counter(&super::catalog::EXPORTER_FAILED, &values));
        counter.add(
            self.dropped_early
                .swap(0, std::sync::atomic::Ordering::Relaxed),
        );
        counter.clone()
    }

    /// Sends what is held every `delay` (or when woken) until `stop`, then once more; at most
    /// `max_batch` records a request.
    pub async fn run(
        self: Arc<Self>,
        exporter: Box<dyn SpanSink>,
        settings: (Duration, usize, Vec<KeyValue>),
        registry: Arc<Registry>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let (delay, max_batch, resource) = settings;
        let dropped = self.count_in(&registry);
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(delay.max(Duration::from_millis(1))) => false,
                () = self.wake.notified() => false,
                () = stop.cancelled() => true,
            };
            let held = std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
            for chunk in held.chunks(max_batch.max(1)) {
                let count = chunk.len() as u64;
                let request = request(chunk.to_vec(), &resource);
                let batch = Batch::from_message(
                    Signal::Logs,
                    &request,
                    RequestContext::internal("self-logs"),
                );
                if !exporter.offer(batch).await {
                    dropped.add(count);
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// Records grouped by target, each target a scope.
fn request(
    records: Vec<(&'static str, LogRecord)>,
    resource: &[KeyValue],
) -> ExportLogsServiceRequest {
    let mut scopes: BTreeMap<&str, Vec<LogRecord>> = BTreeMap::new();
    for (target, record) in records {
        scopes.entry(target).or_default().push(record);
    }
    let scope_logs = scopes
        .into_iter()
        .map(|(target, log_records)| ScopeLogs {
            scope: Some(InstrumentationScope {
                name: target.to_string(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..InstrumentationScope::default()
            }),
            log_records,
            ..ScopeLogs::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource.to_vec(),
                ..Resource::default()
            }),
            scope_logs,
            ..ResourceLogs::default()
        }],
    }
}

/// The `tracing` layer that makes records.
pub struct LogLayer {
    held: Arc<HeldLogs>,
}

/// An event's fields: the message as body, the rest as attributes.
#[derive(Default)]
struct Fields {
    body: Option<String>,
    attributes: Vec<KeyValue>,
    about_own_exporter: bool,
}

impl Fields {
    fn put(&mut self, field: &Field, value: any_value::Value) {
        match (field.name(), value) {
            ("message", any_value::Value::StringValue(text)) => self.body = Some(text),
            (name, value) => {
                if name == "exporter"
                    && matches!(&value, any_value::Value::StringValue(s) if s == EXPORTER_ID)
                {
                    self.about_own_exporter = true;
                }
                self.attributes.push(super::push::key_value(name, value));
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, any_value::Value::StringValue(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, any_value::Value::StringValue(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, any_value::Value::IntValue(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, any_value::Value::IntValue(value as i64));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, any_value::Value::DoubleValue(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, any_value::Value::BoolValue(value));
    }
}

/// The OTLP severity of a `tracing` level, and its text as the collector's zap logs write it.
fn severity(level: &tracing::Level) -> (SeverityNumber, &'static str) {
    match *level {
        tracing::Level::TRACE => (SeverityNumber::Trace, "trace"),
        tracing::Level::DEBUG => (SeverityNumber::Debug, "debug"),
        tracing::Level::INFO => (SeverityNumber::Info, "info"),
        tracing::Level::WARN => (SeverityNumber::Warn, "warn"),
        tracing::Level::ERROR => (SeverityNumber::Error, "error"),
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        let target = meta.target();
        if TRANSPORT.iter().any(|t| target.starts_with(t)) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.about_own_exporter {
            return;
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (number, text) = severity(meta.level());
        let record = LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number: number as i32,
            severity_text: text.into(),
            body: fields
                .body
                .map(|b| opentelemetry_proto::tonic::common::v1::AnyValue {
                    value: Some(any_value::Value::StringValue(b)),
                }),
            attributes: fields.attributes,
            ..LogRecord::default()
        };
        self.held.hold(meta.target(), record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    fn held(max_queue: usize) -> LogLayer {
        LogLayer {
            held: Arc::new(HeldLogs {
                records: Mutex::new(Vec::new()),
                max_queue,
                dropped_early: Default::default(),
                dropped: OnceLock::new(),
                wake: tokio::sync::Notify::new(),
                wake_every_record: false,
            }),
        }
    }

    // An event becomes a record: severity, message as body, fields as typed attributes; events
    // about the log exporter itself and from the transport are left out; past the bound,
    // records are dropped and counted.
    #[test]
    fn events_become_bounded_records() {
        let layer = held(2);
        let logs = layer.held.clone();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(items = 3, exporter = "otlp", "send failed; retrying");
            tracing::error!(exporter = EXPORTER_ID, "send failed; retrying");
            tracing::info!(target: "h2::proto", "frame");
            tracing::info!("second");
            tracing::info!("third, past the bound");
        });
        let records = logs.records.lock().unwrap().clone();
        assert_eq!(records.len(), 2, "{records:?}");
        let (target, first) = &records[0];
        assert!(target.starts_with("trailhead"), "{target}");
        assert_eq!(first.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(first.severity_text, "warn");
        let body = format!("{:?}", first.body);
        assert!(body.contains("send failed; retrying"), "{body}");
        let items = first
            .attributes
            .iter()
            .find(|kv| kv.key == "items")
            .unwrap();
        assert_eq!(
            items.value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(3))
        );
        let registry = Registry::default();
        assert_eq!(logs.count_in(&registry).get(), 1);
        let request = request(records, &[]);
        assert_eq!(request.resource_logs[0].scope_logs.len(), 1);
    }
}
