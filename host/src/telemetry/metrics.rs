//! A small Prometheus registry: counters, gauges read on scrape, and histograms. Handles are
//! created when a component is built, so the hot path is one atomic add.

use super::catalog::{Kind, Metric};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution over fixed bucket bounds.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCells>);

#[derive(Debug)]
struct HistogramCells {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_bits: Mutex<f64>,
}

impl Histogram {
    pub fn observe(&self, value: f64) {
        let cells = &self.0;
        if let Some(i) = cells.bounds.iter().position(|&b| value <= b) {
            cells.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        cells.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sum) = cells.sum_bits.lock() {
            *sum += value;
        }
    }
}

type GaugeFn = Box<dyn Fn() -> f64 + Send + Sync>;

enum Series {
    Counter(Counter),
    Gauge(GaugeFn),
    Histogram(Histogram),
}

struct Family {
    help: &'static str,
    kind: &'static str,
    series: BTreeMap<String, Series>,
}

/// All of trailhead's own metrics, rendered in the Prometheus text format.
#[derive(Default)]
pub struct Registry {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

fn label_text(labels: &[(&str, &str)]) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    parts.join(",")
}

impl Registry {
    fn insert<T>(
        &self,
        metric: &'static Metric,
        values: &[&str],
        make: impl FnOnce() -> (T, Series),
        existing: impl FnOnce(&Series) -> Option<T>,
    ) -> T {
        assert_eq!(
            values.len(),
            metric.labels.len(),
            "{} takes the labels {:?}",
            metric.name,
            metric.labels
        );
        let labels: Vec<(&str, &str)> = metric
            .labels
            .iter()
            .copied()
            .zip(values.iter().copied())
            .collect();
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(metric.name).or_insert_with(|| Family {
            help: metric.help,
            kind: metric.kind.as_str(),
            series: BTreeMap::new(),
        });
        let key = label_text(&labels);
        if let Some(found) = family.series.get(&key).and_then(existing) {
            return found;
        }
        let (handle, series) = make();
        family.series.insert(key, series);
        handle
    }

    /// The counter `metric{values}`, label values in the order the catalog names them; asking
    /// twice returns the same counter.
    pub fn counter(&self, metric: &'static Metric, values: &[&str]) -> Counter {
        debug_assert_eq!(metric.kind, Kind::Counter, "{}", metric.name);
        self.insert(
            metric,
            values,
            || {
                let c = Counter::default();
                (c.clone(), Series::Counter(c))
            },
            |s| match s {
                Series::Counter(c) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// A gauge whose value is read by `read` at scrape time.
    pub fn gauge_fn(
        &self,
        metric: &'static Metric,
        values: &[&str],
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        debug_assert_eq!(metric.kind, Kind::Gauge, "{}", metric.name);
        self.insert(
            metric,
            values,
            || ((), Series::Gauge(Box::new(read))),
            |_| None,
        );
    }

    /// A histogram with the given upper bucket bounds.
    pub fn histogram(
        &self,
        metric: &'static Metric,
        values: &[&str],
        bounds: &'static [f64],
    ) -> Histogram {
        debug_assert_eq!(metric.kind, Kind::Histogram, "{}", metric.name);
        self.insert(
            metric,
            values,
            || {
                let h = Histogram(Arc::new(HistogramCells {
                    bounds,
                    buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
                    count: AtomicU64::new(0),
                    sum_bits: Mutex::new(0.0),
                }));
                (h.clone(), Series::Histogram(h))
            },
            |s| match s {
                Series::Histogram(h) => Some(h.clone()),
                _ => None,
            },
        )
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(
                out,
                "# HELP {name} {}\n# TYPE {name} {}",
                family.help, family.kind
            );
            for (labels, series) in &family.series {
                let braces = |extra: &str| {
                    let all = [labels.as_str(), extra]
                        .iter()
                        .filter(|s| !s.is_empty())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(",");
                    if all.is_empty() {
                        String::new()
                    } else {
                        format!("{{{all}}}")
                    }
                };
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", braces(""), c.get());
                    }
                    Series::Gauge(read) => {
                        let _ = writeln!(out, "{name}{} {}", braces(""), read());
                    }
                    Series::Histogram(h) => {
                        let mut cumulative = 0;
                        for (bound, bucket) in h.0.bounds.iter().zip(&h.0.buckets) {
                            cumulative += bucket.load(Ordering::Relaxed);
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                braces(&format!("le=\"{bound}\""))
                            );
                        }
                        let count = h.0.count.load(Ordering::Relaxed);
                        let sum = *h.0.sum_bits.lock().unwrap_or_else(|e| e.into_inner());
                        let _ = writeln!(out, "{name}_bucket{} {count}", braces("le=\"+Inf\""));
                        let _ = writeln!(
                            out,
                            "{name}_sum{} {sum}\n{name}_count{} {count}",
                            braces(""),
                            braces("")
                        );
                    }
                }
            }
        }
        out
    }
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
        assert!(text.contains("t_queue 7\n"), "{text}");
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

    // A series made with the wrong number of label values is a bug, caught where it is made.
    #[test]
    #[should_panic(expected = "takes the labels")]
    fn label_values_must_match_the_catalog() {
        Registry::default().counter(&catalog::CONFIG_RELOADS, &[]);
    }
}
