//! What running a processor as Wasm costs, measured in one process over 10,000-span batches:
//!
//! - the built-in `filter` plugin against the same logic compiled natively (the same OTTL
//!   crate, the same batch read from its encoding, the same drops), so the difference is
//!   the component boundary alone;
//! - what both would cost over fully decoded spans: decoding every span and encoding the rest;
//! - a resource-attribute-only plugin (`resource-stamp`), which never decodes a span;
//! - `k8sattributes` enriching by the connection's IP from a cache of 10,000 pods: the pod
//!   lookup through the host import plus the resource attributes it writes;
//! - what reading one span column costs through contract 0.1 and through 0.2 (the probes
//!   `columns-v1` and `columns-v2`, each reading one column and nothing else, less the same
//!   probe reading none).
//!
//! Variants run interleaved, round after round, and each reports its median round, so drift
//! on a shared machine hits them alike. Prints one JSON object.

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trailhead::kubernetes::{self, Store};
use trailhead::pdata::{Batch, Payload, RequestContext, Signal};
use trailhead::processors::wasm::batch::SpanWork;
use trailhead::processors::wasm::encoded;
use trailhead::processors::wasm::{Limits, Runtime};
use trailhead_bench::{resource, string_kv, traces_request};
use trailhead_ottl::{Columns, Path, Value};

// The allocator trailhead itself runs with, so the decode/encode floor is the production one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Spans per batch: 10,000, or `SPANS` from the environment (512 is a typical request).
fn spans() -> usize {
    std::env::var("SPANS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}
const CONDITIONS: [&str; 2] = [
    r#"attributes["http.route"] == "/healthz""#,
    r#"IsMatch(name, "^GET /static/")"#,
];

/// One resource with 8 attributes; spans with 10 attributes each. One span in ten is a health
/// probe and one in twenty a static file: the filter drops ~15%.
fn payload() -> Bytes {
    let spans = (0..spans())
        .map(|i| {
            let route = if i % 10 == 0 {
                "/healthz".to_string()
            } else {
                format!("/lessons/{}", i % 50)
            };
            let name = if i % 20 == 1 {
                format!("GET /static/{i}.js")
            } else {
                format!("GET {route}")
            };
            let mut attributes = vec![string_kv("http.route", route)];
            attributes
                .extend((1..10).map(|a| string_kv(format!("attr.{a}"), format!("value-{a}-{i}"))));
            Span {
                trace_id: vec![1; 16],
                span_id: (i as u64).to_be_bytes().to_vec(),
                name,
                attributes,
                ..Default::default()
            }
        })
        .collect();
    traces_request(resource(8, []), spans)
}

/// The filter's columns read from the spans' encodings, as the host reads them for a plugin.
struct NativeSpans<'a>(&'a mut SpanWork, usize);

fn otlp_value(v: Option<&[u8]>) -> Value<'static> {
    let Some(encoded) = v else { return Value::Nil };
    match AnyValue::decode(encoded).ok().and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.into()),
        Some(any_value::Value::IntValue(i)) => Value::Int(i),
        Some(any_value::Value::DoubleValue(d)) => Value::Double(d),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::BytesValue(b)) => Value::Bytes(b.into()),
        Some(_) => Value::Composite("a map"),
        None => Value::Nil,
    }
}

impl<'a> Columns<'a> for NativeSpans<'_> {
    fn item_count(&self) -> usize {
        self.1
    }
    fn column(&mut self, path: &Path) -> Rc<[Value<'a>]> {
        let items = self.0.encoded_items();
        match (path.dotted().as_str(), path.key.as_deref()) {
            ("name", None) => items
                .map(|(_, s)| Value::Str(encoded::string(s, encoded::SPAN_NAME).into()))
                .collect(),
            ("attributes", Some(key)) => items
                .map(|(_, s)| otlp_value(encoded::attribute(s, encoded::SPAN_ATTRIBUTES, key)))
                .collect(),
            _ => vec![Value::Nil; self.1].into(),
        }
    }
}

fn native_filter(payload: &Bytes, conditions: &[trailhead_ottl::Expr]) -> Payload {
    let mut work = SpanWork::lend(payload.clone().into()).expect("lends");
    let n = work.item_count() as usize;
    let mut dropped = vec![false; n];
    for condition in conditions {
        let outcome = condition.eval(&mut NativeSpans(&mut work, n));
        for (d, m) in dropped.iter_mut().zip(outcome.matched) {
            *d |= m;
        }
    }
    let drops: Vec<u32> = (0..n as u32).filter(|&i| dropped[i as usize]).collect();
    work.drop_items(&drops);
    work.into_encoded()
}

/// What lazy reading saves: decode every span, drop one, encode the rest (the cost of a
/// filter over fully decoded spans, as before items stayed encoded).
fn decode_encode(payload: &Bytes) -> Bytes {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    let mut request = ExportTraceServiceRequest::decode(payload.clone()).expect("decodes");
    request.resource_spans[0].scope_spans[0].spans.remove(0);
    Bytes::from(request.encode_to_vec())
}

/// Pods `lessons-00000000`… with IPs 10.0.x.y, in a cache as the watcher would fill it.
fn pod_cache(n: u32) -> Arc<Store> {
    let store = Arc::new(Store::default());
    let now = Instant::now();
    for i in 0..n {
        store.apply_pod(
            kubernetes::Pod {
                name: format!("lessons-{i:08}").into(),
                namespace: store.intern("mathtrail"),
                uid: format!("3f1c2a9e-8d4b-4c1e-9a55-{i:012x}").into(),
                start_time: "2026-11-25T09:58:12Z".into(),
                node_name: store.intern("node-7"),
                ip: format!("10.0.{}.{}", i / 256, i % 256).into(),
                owners: vec![
                    kubernetes::Owner {
                        kind: "ReplicaSet",
                        name: "lessons-7c9f8b6d4".into(),
                        uid: "rs-uid".into(),
                    },
                    kubernetes::Owner {
                        kind: "Deployment",
                        name: "lessons".into(),
                        uid: "".into(),
                    },
                ]
                .into(),
                ..kubernetes::Pod::default()
            },
            now,
        );
    }
    store
}

/// The span columns both contracts have, as the column probes name them.
const COLUMNS: [&str; 4] = ["names", "attr", "kinds", "status"];

/// Per column, the CPU µs per span of reading it through 0.1 and through 0.2, each less the
/// same probe reading no column, over interleaved rounds.
fn column_costs(
    runtime: &Arc<Runtime>,
    plugins: &std::path::Path,
    limits: Limits,
    batch: &Batch,
    rounds: usize,
) -> anyhow::Result<serde_json::Value> {
    let load = |version: &str, column: &str| {
        let name = format!("columns-{version}");
        let config = format!(r#"{{"column":"{column}"}}"#);
        runtime.load(
            &name,
            &plugins.join(format!("{name}.wasm")),
            None,
            &config,
            limits,
        )
    };
    let mut report = serde_json::Map::new();
    let (none_v1, none_v2) = (load("v1", "none")?, load("v2", "none")?);
    for column in COLUMNS {
        let (v1, v2) = (load("v1", column)?, load("v2", column)?);
        let probes = [&none_v1, &v1, &none_v2, &v2];
        let mut times: [Vec<Duration>; 4] = Default::default();
        for _ in 0..rounds {
            for (probe, times) in probes.iter().zip(times.iter_mut()) {
                let start = Instant::now();
                for _ in 0..5 {
                    probe.process(batch).expect("reads");
                }
                times.push(start.elapsed() / 5);
            }
        }
        let [none_v1, v1, none_v2, v2] = times.map(median);
        let per_span = |d: Duration| d.as_secs_f64() * 1e6 / spans() as f64;
        let (cost_v1, cost_v2) = (
            per_span(v1.saturating_sub(none_v1)),
            per_span(v2.saturating_sub(none_v2)),
        );
        report.insert(
            column.to_string(),
            serde_json::json!({
                "v0_1_us_per_span": (cost_v1 * 1000.0).round() / 1000.0,
                "v0_2_us_per_span": (cost_v2 * 1000.0).round() / 1000.0,
                "v0_2_vs_v0_1_pct": ((cost_v2 / cost_v1 - 1.0) * 1000.0).round() / 10.0,
            }),
        );
    }
    Ok(report.into())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let plugins = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/plugins"));
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let payload = payload();
    let batch = Batch {
        signal: Signal::Traces,
        payload: payload.clone().into(),
        items: spans(),
        context: RequestContext::internal("bench"),
    };
    let pods = pod_cache(10_000);
    let runtime = Runtime::with_metadata(pods).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let limits = Limits {
        memory_bytes: 256 << 20,
        timeout: Duration::from_secs(5),
    };
    let config =
        serde_json::json!({"error_mode": "ignore", "traces": {"span": CONDITIONS}}).to_string();
    let filter = runtime.load(
        "filter",
        &plugins.join("filter.wasm"),
        None,
        &config,
        limits,
    )?;
    let stamp = runtime.load(
        "resource-stamp",
        &plugins.join("resource-stamp.wasm"),
        None,
        r#"{"attributes":{"k8s.namespace.name":"lessons"}}"#,
        limits,
    )?;
    let k8s = runtime.load(
        "k8sattributes",
        &plugins.join("k8sattributes.wasm"),
        None,
        "{}",
        limits,
    )?;
    // From pod 4242's IP, as a pod's SDK would send it.
    let from_pod = Batch {
        context: RequestContext::of_request(
            Some(([10, 0, 16, 146], 53122).into()),
            None,
            "bench".into(),
        ),
        ..batch.clone()
    };
    let enriched = k8s.call(&from_pod).map_err(|f| anyhow::anyhow!("{f:?}"))?;
    anyhow::ensure!(
        String::from_utf8_lossy(&enriched).contains("lessons-00004242"),
        "k8sattributes did not find the sending pod"
    );
    let conditions: Vec<_> = CONDITIONS
        .iter()
        .map(|c| trailhead_ottl::parse(c).expect("parses"))
        .collect();

    // Same answer both ways, or the comparison means nothing.
    let wasm_out = filter.call(&batch).map_err(|f| anyhow::anyhow!("{f:?}"))?;
    let native_out = native_filter(&payload, &conditions);
    anyhow::ensure!(
        wasm_out == native_out.to_bytes(),
        "the Wasm and native filters disagree"
    );
    let kept = trailhead::pdata::wire::count_items(Signal::Traces, &native_out.to_bytes())?;

    let per_round = 5;
    let (mut wasm, mut native, mut floor, mut resource, mut enrich) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let time = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            for _ in 0..per_round {
                f();
            }
            start.elapsed() / per_round
        };
        wasm.push(time(&mut || {
            filter.process(&batch).expect("filters");
        }));
        native.push(time(&mut || {
            native_filter(&payload, &conditions);
        }));
        floor.push(time(&mut || {
            decode_encode(&payload);
        }));
        resource.push(time(&mut || {
            stamp.process(&batch).expect("stamps");
        }));
        enrich.push(time(&mut || {
            k8s.process(&from_pod).expect("enriches");
        }));
    }
    let columns = column_costs(&runtime, &plugins, limits, &batch, rounds)?;
    let us_per_span =
        |d: Duration| (d.as_secs_f64() * 1e6 / spans() as f64 * 1000.0).round() / 1000.0;
    let (wasm, native, floor, resource, enrich) = (
        median(wasm),
        median(native),
        median(floor),
        median(resource),
        median(enrich),
    );
    let report = serde_json::json!({
        "spans_per_batch": spans(),
        "kept": kept,
        "filter_wasm_us_per_span": us_per_span(wasm),
        "filter_native_us_per_span": us_per_span(native),
        "wasm_overhead_pct": ((wasm.as_secs_f64() / native.as_secs_f64() - 1.0) * 1000.0).round() / 10.0,
        "decode_encode_us_per_span": us_per_span(floor),
        "resource_only_wasm_us_per_span": us_per_span(resource),
        "k8sattributes_wasm_us_per_span": us_per_span(enrich),
        "columns": columns,
    });
    println!("{report}");
    Ok(())
}
