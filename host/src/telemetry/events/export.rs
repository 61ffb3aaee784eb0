//! An exporter's events: a request delivered, retried, split, given up or kept on disk, and
//! the span of one outgoing batch's whole delivery.

use super::Event;
use crate::pdata::Signal;
use crate::telemetry::catalog;
use crate::telemetry::metrics::{Counter, Histogram, Recent, Registry};
use crate::telemetry::traces::SelfTracer;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const BATCH_BOUNDS: &[f64] = &[10.0, 100.0, 512.0, 1024.0, 4096.0, 8192.0, 16384.0, 65536.0];

/// The counters and the self-tracer of one exporter for one signal.
#[derive(Clone)]
pub struct ExporterInstruments {
    exporter: String,
    signal: Signal,
    pub sent: Counter,
    /// Bytes delivered, as OTLP protobuf.
    pub sent_bytes: Counter,
    /// Items given up on: permanent rejection, retries exhausted, or shutdown deadline.
    pub failed: Counter,
    /// Items the peer reported as rejected in a partial success.
    pub rejected_by_peer: Counter,
    /// Send attempts that will be retried.
    pub retries: Counter,
    /// Requests the peer refused as too large, and sent again in halves.
    pub size_splits: Counter,
    pub batch_items: Histogram,
    /// The last errors, with their time, for the console.
    pub errors: Arc<Recent>,
    tracer: Option<Arc<SelfTracer>>,
}

impl ExporterInstruments {
    pub fn new(
        registry: &Registry,
        tracer: Option<Arc<SelfTracer>>,
        exporter: &str,
        signal: Signal,
    ) -> Self {
        let values = [exporter, signal.as_str()];
        ExporterInstruments {
            exporter: exporter.to_string(),
            signal,
            sent: registry.counter(&catalog::EXPORTER_SENT, &values),
            sent_bytes: registry.counter(&catalog::EXPORTER_SENT_BYTES, &values),
            failed: registry.counter(&catalog::EXPORTER_FAILED, &values),
            rejected_by_peer: registry.counter(&catalog::EXPORTER_PEER_REJECTED, &values),
            retries: registry.counter(&catalog::EXPORTER_RETRIES, &values),
            size_splits: registry.counter(&catalog::EXPORTER_SIZE_SPLITS, &values),
            batch_items: registry.histogram(&catalog::EXPORTER_BATCH_ITEMS, &values, BATCH_BOUNDS),
            errors: registry.recent(&format!("exporter/{exporter}/{signal}")),
            tracer,
        }
    }
}

/// The peer took a request; it may have rejected part of it (OTLP's partial success).
pub struct ExportDelivered<'a> {
    pub items: usize,
    /// The request's size, as OTLP protobuf.
    pub bytes: usize,
    pub rejected: u64,
    /// The peer's partial-success message, empty if it gave none.
    pub message: &'a str,
}

impl Event for ExportDelivered<'_> {
    type Instruments = ExporterInstruments;

    fn emit(self, to: &ExporterInstruments) {
        let rejected = self.rejected.min(self.items as u64);
        to.sent.add(self.items as u64 - rejected);
        to.sent_bytes.add(self.bytes as u64);
        if self.rejected > 0 || !self.message.is_empty() {
            to.rejected_by_peer.add(self.rejected);
            tracing::warn!(exporter = %to.exporter, signal = %to.signal, rejected = self.rejected, message = %self.message, "peer accepted the request partially");
        }
    }
}

/// A send failed in a way that may pass; it is tried again after `wait`.
pub struct ExportRetrying<'a> {
    pub items: usize,
    pub error: &'a str,
    pub wait: Duration,
}

impl Event for ExportRetrying<'_> {
    type Instruments = ExporterInstruments;

    fn emit(self, to: &ExporterInstruments) {
        to.retries.add(1);
        to.errors.note("retrying", self.error);
        tracing::warn!(exporter = %to.exporter, signal = %to.signal, items = self.items, error = %self.error, wait_ms = self.wait.as_millis() as u64, "send failed; retrying");
    }
}

/// The peer refused a request as too large; it is sent again in halves.
pub struct ExportSplit<'a> {
    pub items: usize,
    pub bytes: usize,
    pub error: &'a str,
}

impl Event for ExportSplit<'_> {
    type Instruments = ExporterInstruments;

    fn emit(self, to: &ExporterInstruments) {
        to.size_splits.add(1);
        to.errors.note("split", self.error);
        tracing::warn!(exporter = %to.exporter, signal = %to.signal, items = self.items, bytes = self.bytes, error = %self.error, "the peer refused a request as too large; sending it again in halves");
    }
}

/// Items are dropped: `why` they were given up, and the peer's last `error`.
pub struct ExportGaveUp<'a> {
    pub items: usize,
    pub why: &'a str,
    pub error: &'a str,
}

impl Event for ExportGaveUp<'_> {
    type Instruments = ExporterInstruments;

    fn emit(self, to: &ExporterInstruments) {
        to.failed.add(self.items as u64);
        let detail = format!("{} items dropped: {}: {}", self.items, self.why, self.error);
        to.errors.note("gave_up", detail);
        tracing::error!(exporter = %to.exporter, signal = %to.signal, items = self.items, error = %self.error, "dropping data: {}", self.why);
    }
}

/// At shutdown, items whose requests are on disk stay there for the next start.
pub struct ExportKeptOnDisk<'a> {
    pub items: usize,
    pub why: &'a str,
}

impl Event for ExportKeptOnDisk<'_> {
    type Instruments = ExporterInstruments;

    fn emit(self, to: &ExporterInstruments) {
        tracing::warn!(exporter = %to.exporter, signal = %to.signal, items = self.items, "{}; kept in the persistent queue for the next start", self.why);
    }
}

/// One outgoing batch's delivery ended: its span, from the first send to the last.
pub struct ExportFinished<'a> {
    pub started: SystemTime,
    pub items: usize,
    pub attempts: u32,
    /// "delivered", "dropped", "partly dropped" or "kept on disk".
    pub outcome: &'static str,
    /// The last reason something was given up, which marks the span failed.
    pub error: Option<&'a str>,
}

impl Event for ExportFinished<'_> {
    type Instruments = ExporterInstruments;

    fn emit(self, to: &ExporterInstruments) {
        let Some(tracer) = &to.tracer else { return };
        let attributes = [
            (
                "trailhead.exporter",
                Value::StringValue(to.exporter.clone()),
            ),
            (
                "trailhead.signal",
                Value::StringValue(to.signal.to_string()),
            ),
            ("trailhead.items", Value::IntValue(self.items as i64)),
            (
                "trailhead.attempts",
                Value::IntValue(i64::from(self.attempts)),
            ),
            ("trailhead.outcome", Value::StringValue(self.outcome.into())),
        ];
        let name = format!("export {}", to.signal);
        tracer.record(
            &name,
            self.started,
            SystemTime::now(),
            &attributes,
            self.error,
        );
    }
}
