//! The hand-written Prometheus exposition (`trailhead::telemetry::metrics`) against
//! `prometheus-client`, the maintained crate that would replace it, on the same series: those a
//! gateway with two receivers, two exporters and three processors exports (about 300 lines of
//! exposition). Measures, side by side in one run: a scrape's encoding time, a counter add and
//! a histogram observation, and the heap each registry holds. Prints one JSON object.

use cap::Cap;
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;
use prometheus_client::registry::Registry as PcRegistry;
use std::hint::black_box;
use std::time::Instant;
use trailhead::telemetry::catalog::{self, Kind, Metric};
use trailhead::telemetry::metrics::{Counter, Histogram, Registry};

#[global_allocator]
static ALLOCATOR: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

const BATCH_BOUNDS: &[f64] = &[10.0, 100.0, 512.0, 1024.0, 4096.0, 8192.0, 16384.0, 65536.0];
const DURATION_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every series: its metric, label values and, for a histogram, its bounds.
fn series() -> Vec<(&'static Metric, Vec<String>, &'static [f64])> {
    let signals = ["traces", "metrics", "logs"];
    let mut all = Vec::new();
    let mut add = |metric: &'static Metric, values: &[&str], bounds: &'static [f64]| {
        all.push((
            metric,
            values.iter().map(|v| v.to_string()).collect(),
            bounds,
        ));
    };
    for receiver in ["otlp", "zipkin"] {
        for signal in signals {
            for m in [
                &catalog::RECEIVER_ACCEPTED,
                &catalog::RECEIVER_REFUSED,
                &catalog::RECEIVER_MALFORMED,
            ] {
                add(m, &[receiver, signal], &[]);
            }
        }
    }
    for exporter in ["otlp/alloy", "otlphttp/pyroscope"] {
        for signal in signals {
            for m in [
                &catalog::EXPORTER_SENT,
                &catalog::EXPORTER_FAILED,
                &catalog::EXPORTER_PEER_REJECTED,
                &catalog::EXPORTER_RETRIES,
                &catalog::EXPORTER_SIZE_SPLITS,
            ] {
                add(m, &[exporter, signal], &[]);
            }
            add(
                &catalog::EXPORTER_BATCH_ITEMS,
                &[exporter, signal],
                BATCH_BOUNDS,
            );
        }
    }
    for processor in ["k8sattributes", "filter/health", "filter/debug-logs"] {
        for m in [
            &catalog::PROCESSOR_CALLS,
            &catalog::PROCESSOR_DROPPED,
            &catalog::PROCESSOR_SKIPPED,
        ] {
            add(m, &[processor], &[]);
        }
        add(&catalog::PROCESSOR_DURATION, &[processor], DURATION_BOUNDS);
        for kind in ["timeout", "out_of_memory", "panic", "trap", "plugin_error"] {
            add(&catalog::PROCESSOR_FAILURES, &[processor, kind], &[]);
        }
        for result in ["applied", "rejected", "rolled_back"] {
            add(&catalog::PROCESSOR_SWAPS, &[processor, result], &[]);
        }
    }
    for server in ["otlp grpc", "otlp http", "zipkin"] {
        for m in [
            &catalog::SERVER_REFUSED_CONNECTIONS,
            &catalog::SERVER_UNAUTHENTICATED,
            &catalog::SERVER_RATE_LIMITED,
        ] {
            add(m, &[server], &[]);
        }
    }
    for result in ["applied", "unchanged", "rejected"] {
        add(&catalog::CONFIG_RELOADS, &[result], &[]);
    }
    all
}

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, PcHistogram, fn() -> PcHistogram>;

/// prometheus-client's counter family names lose the `_total` it appends itself.
fn base_name(metric: &Metric) -> &str {
    metric.name.strip_suffix("_total").unwrap_or(metric.name)
}

struct Handles {
    ours: (Vec<Counter>, Vec<Histogram>),
    theirs: (Vec<PcCounter>, Vec<PcHistogram>),
}

fn build_ours(
    all: &[(&'static Metric, Vec<String>, &'static [f64])],
) -> (Registry, Vec<Counter>, Vec<Histogram>) {
    let registry = Registry::default();
    let (mut counters, mut histograms) = (Vec::new(), Vec::new());
    for (metric, values, bounds) in all {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        match metric.kind {
            Kind::Histogram => histograms.push(registry.histogram(metric, &values, bounds)),
            _ => counters.push(registry.counter(metric, &values)),
        }
    }
    (registry, counters, histograms)
}

fn histogram_for(bounds: &'static [f64]) -> fn() -> PcHistogram {
    if bounds.len() == BATCH_BOUNDS.len() {
        || PcHistogram::new(BATCH_BOUNDS.iter().copied())
    } else {
        || PcHistogram::new(DURATION_BOUNDS.iter().copied())
    }
}

fn build_theirs(
    all: &[(&'static Metric, Vec<String>, &'static [f64])],
) -> (PcRegistry, Vec<PcCounter>, Vec<PcHistogram>) {
    let mut registry = PcRegistry::default();
    let mut counter_families: Vec<(&str, Family<Labels, PcCounter>)> = Vec::new();
    let mut histogram_families: Vec<(&str, HistogramFamily)> = Vec::new();
    let (mut counters, mut histograms) = (Vec::new(), Vec::new());
    for (metric, values, bounds) in all {
        let labels: Labels = metric
            .labels
            .iter()
            .map(|k| k.to_string())
            .zip(values.iter().cloned())
            .collect();
        match metric.kind {
            Kind::Histogram => {
                let at = match histogram_families
                    .iter()
                    .position(|(n, _)| *n == metric.name)
                {
                    Some(at) => at,
                    None => {
                        let family = Family::new_with_constructor(histogram_for(bounds));
                        registry.register(metric.name, metric.help, family.clone());
                        histogram_families.push((metric.name, family));
                        histogram_families.len() - 1
                    }
                };
                histograms.push(histogram_families[at].1.get_or_create(&labels).clone());
            }
            _ => {
                let at = match counter_families.iter().position(|(n, _)| *n == metric.name) {
                    Some(at) => at,
                    None => {
                        let family = Family::<Labels, PcCounter>::default();
                        registry.register(base_name(metric), metric.help, family.clone());
                        counter_families.push((metric.name, family));
                        counter_families.len() - 1
                    }
                };
                counters.push(counter_families[at].1.get_or_create(&labels).clone());
            }
        }
    }
    (registry, counters, histograms)
}

/// The median of `rounds` timings of `f`, in microseconds per call of it.
fn median_us(rounds: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                f();
            }
            started.elapsed().as_secs_f64() * 1e6 / calls as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[rounds / 2]
}

fn main() {
    let all = series();
    let before = ALLOCATOR.allocated();
    let (ours, counters, histograms) = build_ours(&all);
    let ours_heap = ALLOCATOR.allocated() - before;
    let before = ALLOCATOR.allocated();
    let (theirs, pc_counters, pc_histograms) = build_theirs(&all);
    let theirs_heap = ALLOCATOR.allocated() - before;
    let handles = Handles {
        ours: (counters, histograms),
        theirs: (pc_counters, pc_histograms),
    };
    for (i, c) in handles.ours.0.iter().enumerate() {
        c.add(i as u64 * 1000);
        handles.theirs.0[i].inc_by(i as u64 * 1000);
    }
    for (i, h) in handles.ours.1.iter().enumerate() {
        for v in [0.0003, 7.0, 600.0, 0.02] {
            h.observe(v * (i + 1) as f64);
            handles.theirs.1[i].observe(v * (i + 1) as f64);
        }
    }
    let ours_text = ours.render();
    let mut theirs_text = String::new();
    encode(&mut theirs_text, &theirs).expect("writing to a String");
    // Alternate the two, so drift on a shared machine falls on both.
    let (mut ours_scrape, mut theirs_scrape) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ours_scrape.push(median_us(21, 200, || drop(black_box(ours.render()))));
        theirs_scrape.push(median_us(21, 200, || {
            let mut out = String::with_capacity(theirs_text.len());
            encode(&mut out, &theirs).expect("writing to a String");
            drop(black_box(out));
        }));
    }
    ours_scrape.sort_by(f64::total_cmp);
    theirs_scrape.sort_by(f64::total_cmp);
    let (ours_counter, theirs_counter) = (&handles.ours.0[0], &handles.theirs.0[0]);
    let add_ns = |f: &dyn Fn()| median_us(21, 1_000_000, f) * 1000.0;
    let ours_add = add_ns(&|| ours_counter.add(black_box(1)));
    let theirs_add = add_ns(&|| {
        theirs_counter.inc_by(black_box(1));
    });
    let (ours_hist, theirs_hist) = (&handles.ours.1[0], &handles.theirs.1[0]);
    let ours_observe = add_ns(&|| ours_hist.observe(black_box(700.0)));
    let theirs_observe = add_ns(&|| theirs_hist.observe(black_box(700.0)));
    let report = serde_json::json!({"metrics_exposition": {
        "series": all.len(),
        "lines": [ours_text.lines().count(), theirs_text.lines().count()],
        "bytes": [ours_text.len(), theirs_text.len()],
        "scrape_us": [ours_scrape[2], theirs_scrape[2]],
        "counter_add_ns": [ours_add, theirs_add],
        "histogram_observe_ns": [ours_observe, theirs_observe],
        "heap_bytes": [ours_heap, theirs_heap],
    }});
    println!("{report}");
}
