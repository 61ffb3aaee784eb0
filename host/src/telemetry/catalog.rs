//! Every metric trailhead exports, declared once: its name, kind, labels and meaning. The
//! registry takes only these declarations, so a metric cannot be exported without being listed
//! here, and the README's table of own metrics is generated from this list (a test fails when
//! they drift; `TRAILHEAD_BLESS=1 cargo test -p trailhead readme_metric_table` rewrites it).

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric: what the exposition's `# HELP` and the README say about it.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    /// Label names, in the order their values are given when a series is made.
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};

const RECEIVER: &[&str] = &["receiver", "signal"];
const EXPORTER: &[&str] = &["exporter", "signal"];
const PROCESSOR: &[&str] = &["processor"];
const SERVER: &[&str] = &["server"];

pub const RECEIVER_ACCEPTED: Metric = metric(
    "trailhead_receiver_accepted_items_total",
    Counter,
    RECEIVER,
    "Items accepted and queued for export.",
);
pub const RECEIVER_REFUSED: Metric = metric(
    "trailhead_receiver_refused_items_total",
    Counter,
    RECEIVER,
    "Items refused with a retryable error (pipeline full or shutting down).",
);
pub const RECEIVER_MALFORMED: Metric = metric(
    "trailhead_receiver_malformed_requests_total",
    Counter,
    RECEIVER,
    "Requests rejected as malformed.",
);
pub const RECEIVER_ACCEPTED_BYTES: Metric = metric(
    "trailhead_receiver_accepted_bytes_total",
    Counter,
    RECEIVER,
    "Bytes of the requests accepted, as OTLP protobuf (what the exporters queue; a profiles request's samples are its items).",
);
pub const EXPORTER_SENT_BYTES: Metric = metric(
    "trailhead_exporter_sent_bytes_total",
    Counter,
    EXPORTER,
    "Bytes delivered, as OTLP protobuf before compression (an exporter that sends another format puts other bytes on the wire).",
);
pub const EXPORTER_SENT: Metric = metric(
    "trailhead_exporter_sent_items_total",
    Counter,
    EXPORTER,
    "Items delivered.",
);
pub const EXPORTER_FAILED: Metric = metric(
    "trailhead_exporter_send_failed_items_total",
    Counter,
    EXPORTER,
    "Items dropped: a permanent error, retries used up, or the shutdown deadline.",
);
pub const EXPORTER_PEER_REJECTED: Metric = metric(
    "trailhead_exporter_peer_rejected_items_total",
    Counter,
    EXPORTER,
    "Items the peer rejected in a partial success response.",
);
pub const EXPORTER_RETRIES: Metric = metric(
    "trailhead_exporter_retries_total",
    Counter,
    EXPORTER,
    "Send attempts that failed with a retryable error and will be retried.",
);
pub const EXPORTER_SIZE_SPLITS: Metric = metric(
    "trailhead_exporter_size_splits_total",
    Counter,
    EXPORTER,
    "Requests the peer refused as too large and that were sent again in halves.",
);
pub const EXPORTER_BATCH_ITEMS: Metric = metric(
    "trailhead_exporter_batch_items",
    Histogram,
    EXPORTER,
    "Items per batch sent.",
);
pub const EXPORTER_QUEUE_SIZE: Metric = metric(
    "trailhead_exporter_queue_size",
    Gauge,
    EXPORTER,
    "Requests waiting in the exporter queue, in memory or on disk.",
);
pub const EXPORTER_QUEUE_CAPACITY: Metric = metric(
    "trailhead_exporter_queue_capacity",
    Gauge,
    EXPORTER,
    "Requests the exporter queue can hold.",
);
pub const EXPORTER_READ_AHEAD: Metric = metric(
    "trailhead_exporter_read_ahead_bytes",
    Gauge,
    EXPORTER,
    "Bytes read back from the persistent queue and held in memory (batching, sending, retrying); bounded, so an outage fills the disk, not memory.",
);
pub const PROCESSOR_CALLS: Metric = metric(
    "trailhead_processor_calls_total",
    Counter,
    PROCESSOR,
    "Batches handed to a plugin.",
);
pub const PROCESSOR_DURATION: Metric = metric(
    "trailhead_processor_duration_seconds",
    Histogram,
    PROCESSOR,
    "Time a plugin spent on a batch, failed calls included.",
);
pub const PROCESSOR_FAILURES: Metric = metric(
    "trailhead_processor_failures_total",
    Counter,
    &["processor", "kind"],
    "Plugin calls that failed, by kind: timeout, out_of_memory, panic, trap, plugin_error.",
);
pub const PROCESSOR_DROPPED: Metric = metric(
    "trailhead_processor_dropped_items_total",
    Counter,
    PROCESSOR,
    "Items a processor removed, by its own decision or by `on_failure: drop`.",
);
pub const PROCESSOR_SWAPS: Metric = metric(
    "trailhead_processor_swaps_total",
    Counter,
    &["processor", "result"],
    "Plugin version changes: applied, rejected (the old version kept serving) or rolled_back.",
);
pub const PROCESSOR_SKIPPED: Metric = metric(
    "trailhead_processor_skipped_batches_total",
    Counter,
    PROCESSOR,
    "Batches not handed to a plugin because it kept failing (its circuit was open); `on_failure` applied.",
);
pub const TAIL_SAMPLING_DECISIONS: Metric = metric(
    "trailhead_tail_sampling_policy_decisions_total",
    Counter,
    &["processor", "policy", "decision"],
    "Traces a tail_sampling policy evaluated, by its own decision: sampled, not_sampled or dropped.",
);
pub const TAIL_SAMPLING_TRACES: Metric = metric(
    "trailhead_tail_sampling_traces_total",
    Counter,
    &["processor", "decision"],
    "Traces a tail_sampling processor decided, by final decision: sampled, not_sampled or dropped.",
);
pub const TAIL_SAMPLING_LATE_SPANS: Metric = metric(
    "trailhead_tail_sampling_late_spans_total",
    Counter,
    &["processor", "decision"],
    "Spans that arrived after their trace was decided and followed that decision.",
);
pub const TAIL_SAMPLING_EVICTED: Metric = metric(
    "trailhead_tail_sampling_evicted_traces_total",
    Counter,
    &["processor", "reason"],
    "Traces evicted before a decision (their spans lost) to stay within num_traces or max_held_bytes.",
);
pub const TAIL_SAMPLING_LOST_SPANS: Metric = metric(
    "trailhead_tail_sampling_lost_spans_total",
    Counter,
    &["processor", "reason"],
    "Held spans that never went on: evicted early, too large, downstream refused (full past the wait), or dropped at shutdown.",
);
pub const TAIL_SAMPLING_HELD_BYTES: Metric = metric(
    "trailhead_tail_sampling_held_bytes",
    Gauge,
    PROCESSOR,
    "Bytes of spans a tail_sampling processor holds waiting for decisions.",
);
pub const TAIL_SAMPLING_HELD_TRACES: Metric = metric(
    "trailhead_tail_sampling_held_traces",
    Gauge,
    PROCESSOR,
    "Traces a tail_sampling processor keeps (waiting, or decided and kept for late spans).",
);
pub const TAIL_SAMPLING_PLUGIN_FAILURES: Metric = metric(
    "trailhead_tail_sampling_plugin_failures_total",
    Counter,
    &["processor", "policy", "kind"],
    "Traces a `plugin` policy failed to decide, by kind: trap, timeout or out_of_memory; that policy counted them not_sampled.",
);
pub const CONFIG_RELOADS: Metric = metric(
    "trailhead_config_reloads_total",
    Counter,
    &["result"],
    "Config reloads (SIGHUP, POST /reload): applied, unchanged, or rejected (the running config kept).",
);
pub const SERVER_REFUSED_CONNECTIONS: Metric = metric(
    "trailhead_server_refused_connections_total",
    Counter,
    SERVER,
    "Connections closed at once because the server had `limits.max_connections` open.",
);
pub const SERVER_UNAUTHENTICATED: Metric = metric(
    "trailhead_server_unauthenticated_requests_total",
    Counter,
    SERVER,
    "Requests refused for a missing or wrong bearer token.",
);
pub const SERVER_RATE_LIMITED: Metric = metric(
    "trailhead_server_rate_limited_requests_total",
    Counter,
    SERVER,
    "Requests refused because the server's `limits.requests_per_second` was reached.",
);
pub const SELF_TRACES_DROPPED: Metric = metric(
    "trailhead_self_traces_dropped_spans_total",
    Counter,
    &[],
    "trailhead's own spans dropped because the self-trace exporter could not keep up.",
);
pub const KUBERNETES_PODS: Metric = metric(
    "trailhead_kubernetes_pods",
    Gauge,
    &[],
    "Pods in the metadata cache, including deleted ones kept for their grace period.",
);
pub const KUBERNETES_WATCH_FAILURES: Metric = metric(
    "trailhead_kubernetes_watch_failures_total",
    Counter,
    &["kind"],
    "Failed list or watch calls to the Kubernetes API server (retried with backoff).",
);
pub const KUBERNETES_LISTED: Metric = metric(
    "trailhead_kubernetes_listed_timestamp_seconds",
    Gauge,
    &["kind"],
    "When each kind's watch last finished a full list of the API server, in seconds since the Unix epoch (0 before the first).",
);
pub const MEMORY_LIMITER_REFUSED: Metric = metric(
    "trailhead_memory_limiter_refused_requests_total",
    Counter,
    &[],
    "Requests refused, before their body was read, because memory was above the memory limiter's soft limit.",
);
pub const MEMORY_LIMITER_USED: Metric = metric(
    "trailhead_memory_limiter_used_bytes",
    Gauge,
    &[],
    "Memory in use at the memory limiter's last check: the heap trailhead's allocator has out.",
);
pub const SECRET_RELOADS: Metric = metric(
    "trailhead_secret_reloads_total",
    Counter,
    &["secret"],
    "Times changed TLS or token files were re-read and put to use.",
);
pub const SECRET_RELOAD_FAILURES: Metric = metric(
    "trailhead_secret_reload_failures_total",
    Counter,
    &["secret"],
    "Changed TLS or token files that could not be used; the previous ones kept serving.",
);

/// Every metric, in the order the README lists them.
pub const ALL: &[&Metric] = &[
    &RECEIVER_ACCEPTED,
    &RECEIVER_ACCEPTED_BYTES,
    &RECEIVER_REFUSED,
    &RECEIVER_MALFORMED,
    &EXPORTER_SENT,
    &EXPORTER_SENT_BYTES,
    &EXPORTER_FAILED,
    &EXPORTER_PEER_REJECTED,
    &EXPORTER_RETRIES,
    &EXPORTER_SIZE_SPLITS,
    &EXPORTER_BATCH_ITEMS,
    &EXPORTER_QUEUE_SIZE,
    &EXPORTER_QUEUE_CAPACITY,
    &EXPORTER_READ_AHEAD,
    &PROCESSOR_CALLS,
    &PROCESSOR_DURATION,
    &PROCESSOR_FAILURES,
    &PROCESSOR_DROPPED,
    &PROCESSOR_SWAPS,
    &PROCESSOR_SKIPPED,
    &TAIL_SAMPLING_DECISIONS,
    &TAIL_SAMPLING_TRACES,
    &TAIL_SAMPLING_LATE_SPANS,
    &TAIL_SAMPLING_EVICTED,
    &TAIL_SAMPLING_LOST_SPANS,
    &TAIL_SAMPLING_HELD_BYTES,
    &TAIL_SAMPLING_HELD_TRACES,
    &TAIL_SAMPLING_PLUGIN_FAILURES,
    &CONFIG_RELOADS,
    &SERVER_REFUSED_CONNECTIONS,
    &SERVER_UNAUTHENTICATED,
    &SERVER_RATE_LIMITED,
    &SELF_TRACES_DROPPED,
    &KUBERNETES_PODS,
    &KUBERNETES_WATCH_FAILURES,
    &KUBERNETES_LISTED,
    &MEMORY_LIMITER_REFUSED,
    &MEMORY_LIMITER_USED,
    &SECRET_RELOADS,
    &SECRET_RELOAD_FAILURES,
];

/// The README's table of own metrics, as Markdown.
pub fn readme_table() -> String {
    let mut table =
        String::from("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n");
    for metric in ALL {
        let labels = metric.labels.join(", ");
        let (name, kind, help) = (metric.name, metric.kind.as_str(), metric.help);
        table += &format!("| `{name}` | {kind} | {labels} | {help} |\n");
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = "<!-- own metrics: generated from host/src/telemetry/catalog.rs -->\n";
    const END: &str = "<!-- end of own metrics -->";

    // The README's table is this catalog's; with TRAILHEAD_BLESS=1 the test writes it.
    #[test]
    fn readme_metric_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let start = readme
            .find(START)
            .expect("the README marks its metric table")
            + START.len();
        let end = start + readme[start..].find(END).expect("the table's end marker");
        let wanted = readme_table();
        if readme[start..end] == wanted {
            return;
        }
        if std::env::var_os("TRAILHEAD_BLESS").is_some() {
            let updated = format!("{}{wanted}{}", &readme[..start], &readme[end..]);
            std::fs::write(path, updated).expect("README.md is writable");
            return;
        }
        panic!("README.md's metric table is out of date; it should read:\n{wanted}");
    }

    // Every metric declared here is in `ALL`, so in the README.
    #[test]
    fn all_lists_every_metric() {
        // Split so that this line is not counted as a declaration.
        let declaration = concat!(": Metric ", "= metric(");
        let declared = include_str!("catalog.rs").matches(declaration).count();
        assert_eq!(declared, ALL.len());
    }

    #[test]
    fn names_are_unique_and_prometheus_shaped() {
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a metric is listed twice");
        for metric in ALL {
            assert!(metric.name.starts_with("trailhead_"), "{}", metric.name);
            let counter = metric.name.ends_with("_total");
            assert_eq!(counter, metric.kind == Kind::Counter, "{}", metric.name);
        }
    }
}
