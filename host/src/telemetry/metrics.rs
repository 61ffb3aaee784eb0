//! trailhead's own metrics on `prometheus-client`: counters, histograms, and gauges read on
//! scrape, exposed in the Prometheus text format. Handles are made when a component is built,
//! so the hot path is one atomic add. Series are made only from the catalog's declarations
//! (`telemetry::catalog`), with their label values in the declared order. BENCHMARKS.md has
//! the measurement against the hand-written encoder this replaced.

use super::catalog::{Kind, Metric};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(prometheus_client::metrics::counter::Counter);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A distribution over fixed bucket bounds.
#[derive(Clone, Debug)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

impl Histogram {
    pub fn observe(&self, value: f64) {
        self.0.observe(value);
    }
}

/// Label names and values, in the catalog's order.
type Labels = Vec<(&'static str, String)>;

/// Makes a histogram family's series, all with the family's bounds.
#[derive(Clone, Copy)]
struct Buckets(&'static [f64]);

impl MetricConstructor<prometheus_client::metrics::histogram::Histogram> for Buckets {
    fn new_metric(&self) -> prometheus_client::metrics::histogram::Histogram {
        prometheus_client::metrics::histogram::Histogram::new(self.0.iter().copied())
    }
}

type GaugeFn = Box<dyn Fn() -> f64 + Send + Sync>;

/// One gauge metric's series: how to read each, by label values.
type GaugeSeries = (&'static Metric, BTreeMap<Vec<String>, GaugeFn>);

/// The gauges read at scrape time, by metric name.
#[derive(Default)]
struct Gauges(Mutex<BTreeMap<&'static str, GaugeSeries>>);

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

impl Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (metric, series) in gauges.values() {
            let mut family =
                encoder.encode_descriptor(metric.name, metric.help, None, MetricType::Gauge)?;
            for (values, read) in series {
                let labels = labels(metric, values);
                family.encode_family(&labels)?.encode_gauge(&read())?;
            }
        }
        Ok(())
    }
}

struct Families {
    registry: prometheus_client::registry::Registry,
    counters: HashMap<&'static str, Family<Labels, prometheus_client::metrics::counter::Counter>>,
    histograms: HashMap<
        &'static str,
        Family<Labels, prometheus_client::metrics::histogram::Histogram, Buckets>,
    >,
}

/// How many notes a [`Recent`] keeps: enough for an operator to see a pattern, bounded so a
/// failing exporter's notes cannot grow.
const RECENT_NOTES: usize = 16;

/// One thing that happened to a component, for the console: a plugin swap's outcome and
/// reason, an exporter's last error.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Note {
    /// Seconds since the Unix epoch.
    pub at_unix: f64,
    /// `applied`, `rejected`, `rolled_back`, `retrying`, `gave_up`, …
    pub outcome: String,
    pub detail: String,
}

/// Now, in seconds since the Unix epoch (0 on a clock set before it): the time notes, the
/// console's snapshots and the Kubernetes watches' last lists are stamped with.
pub fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The last notes of one component, newest last. Written only when something happens (a swap,
/// a failed send), so it costs nothing on the hot path.
#[derive(Debug, Default)]
pub struct Recent(Mutex<std::collections::VecDeque<Note>>);

impl Recent {
    pub fn note(&self, outcome: &str, detail: impl Into<String>) {
        let at_unix = unix_seconds();
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if notes.len() == RECENT_NOTES {
            notes.pop_front();
        }
        let (outcome, detail) = (outcome.to_string(), detail.into());
        notes.push_back(Note {
            at_unix,
            outcome,
            detail,
        });
    }

    pub fn notes(&self) -> Vec<Note> {
        let notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        notes.iter().cloned().collect()
    }
}

/// All of trailhead's own metrics, and each component's recent notes.
pub struct Registry {
    families: Mutex<Families>,
    gauges: Arc<Gauges>,
    recent: Mutex<BTreeMap<String, Arc<Recent>>>,
}

impl Default for Registry {
    fn default() -> Self {
        let gauges = Arc::<Gauges>::default();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(gauges.clone()));
        Registry {
            families: Mutex::new(Families {
                registry,
                counters: HashMap::new(),
                histograms: HashMap::new(),
            }),
            gauges,
            recent: Mutex::default(),
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

/// The series' labels; a series made with the wrong number of values is a bug, caught where it
/// is made.
fn labels(metric: &Metric, values: &[impl AsRef<str>]) -> Labels {
    assert_eq!(
        values.len(),
        metric.labels.len(),
        "{} takes the labels {:?}",
        metric.name,
        metric.labels
    );
    let values = values.iter().map(|v| v.as_ref().to_string());
    metric.labels.iter().copied().zip(values).collect()
}

/// The help as prometheus-client takes it: it adds the closing period itself.
fn help(metric: &Metric) -> &'static str {
    metric.help.strip_suffix('.').unwrap_or(metric.help)
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Families> {
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counter `metric{values}`, label values in the order the catalog names them; asking
    /// twice returns the same counter.
    pub fn counter(&self, metric: &'static Metric, values: &[&str]) -> Counter {
        debug_assert_eq!(metric.kind, Kind::Counter, "{}", metric.name);
        let labels = labels(metric, values);
        let families = &mut *self.lock();
        let family = families.counters.entry(metric.name).or_insert_with(|| {
            let family = Family::default();
            // The library adds `_total` to a counter's name itself.
            let name = metric.name.strip_suffix("_total").unwrap_or(metric.name);
            families
                .registry
                .register(name, help(metric), family.clone());
            family
        });
        Counter(family.get_or_create(&labels).clone())
    }

    /// A gauge whose value is read by `read` at scrape time; it replaces one with the same
    /// labels.
    pub fn gauge_fn(
        &self,
        metric: &'static Metric,
        values: &[&str],
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        debug_assert_eq!(metric.kind, Kind::Gauge, "{}", metric.name);
        labels(metric, values);
        let mut gauges = self.gauges.0.lock().unwrap_or_else(|e| e.into_inner());
        let (_, series) = gauges
            .entry(metric.name)
            .or_insert_with(|| (metric, BTreeMap::new()));
        let values = values.iter().map(|v| v.to_string()).collect();
        series.insert(values, Box::new(read));
    }

    /// A histogram with the given upper bucket bounds (the first series of a metric sets
    /// them for all).
    pub fn histogram(
        &self,
        metric: &'static Metric,
        values: &[&str],
        bounds: &'static [f64],
    ) -> Histogram {
        debug_assert_eq!(metric.kind, Kind::Histogram, "{}", metric.name);
        let labels = labels(metric, values);
        let families = &mut *self.lock();
        let family = families.histograms.entry(metric.name).or_insert_with(|| {
            let family = Family::new_with_constructor(Buckets(bounds));
            families
                .registry
                .register(metric.name, help(metric), family.clone());
            family
        });
        Histogram(family.get_or_create(&labels).clone())
    }

    /// The Prometheus text exposition (version 0.0.4) of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.lock().registry);
        out
    }

    /// The notes of the component named `key` (`processor/ID`, `exporter/ID/SIGNAL`); asking
    /// twice returns the same notes.
    pub fn recent(&self, key: &str) -> Arc<Recent> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.entry(key.to_string()).or_default().clone()
    }

    /// Every component's notes that has any, by key.
    pub fn recent_notes(&self) -> BTreeMap<String, Vec<Note>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .iter()
            .map(|(key, notes)| (key.clone(), notes.notes()))
            .filter(|(_, notes)| !notes.is_empty())
            .collect()
    }

    /// The `Content-Type` of [`Registry::render`]'s text.
    pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::telemetry::catalog;

    // Counters with the same labels are one series; output follows the text format.
    #[test]
    fn renders_prometheus_text() {
        const ITEMS: Metric = Metric {
            name: "t_items_total",
            kind: Kind::Counter,
            labels: &["receiver"],
            help: "Items.",
        };
        const QUEUE: Metric = Metric {
            name: "t_queue",
            kind: Kind::Gauge,
            labels: &[],
            help: "Queue.",
        };
        const BATCH: Metric = Metric {
            name: "t_batch",
            kind: Kind::Histogram,
            labels: &["e"],
            help: "Batch.",
        };
        let registry = Registry::default();
        let a = registry.counter(&ITEMS, &["otlp"]);
        registry.counter(&ITEMS, &["otlp"]).add(2);
        a.add(1);
        registry.gauge_fn(&QUEUE, &[], || 7.0);
        let h = registry.histogram(&BATCH, &["x"], &[10.0, 100.0]);
        h.observe(5.0);
        h.observe(50.0);
        let text = registry.render();
        assert!(text.contains("# HELP t_items_total Items.\n"), "{text}");
        assert!(
            text.contains("t_items_total{receiver=\"otlp\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_queue 7.0\n"), "{text}");
        assert!(
            text.contains("t_batch_bucket{e=\"x\",le=\"10\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_batch_bucket{e=\"x\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("t_batch_count{e=\"x\"} 2\n"), "{text}");
    }

    // A component's notes keep the newest few, in order, and only components with notes show.
    #[test]
    fn recent_notes_are_bounded() {
        let registry = Registry::default();
        let notes = registry.recent("exporter/otlp/traces");
        registry.recent("processor/quiet");
        for n in 0..RECENT_NOTES + 3 {
            notes.note("retrying", format!("error {n}"));
        }
        let all = registry.recent_notes();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["exporter/otlp/traces"]);
        let kept = &all["exporter/otlp/traces"];
        assert_eq!(kept.len(), RECENT_NOTES);
        assert_eq!(kept[0].detail, "error 3");
        assert_eq!(
            kept[RECENT_NOTES - 1].detail,
            format!("error {}", RECENT_NOTES + 2)
        );
    }

    // A series made with the wrong number of label values is a bug, caught where it is made.
    #[test]
    #[should_panic(expected = "takes the labels")]
    fn label_values_must_match_the_catalog() {
        Registry::default().counter(&catalog::CONFIG_RELOADS, &[]);
    }
}
