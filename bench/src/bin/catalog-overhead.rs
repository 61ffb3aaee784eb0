//! What each catalog plugin costs as a Wasm component against the same plugin source compiled
//! natively, in one process over the same 512-span OTLP request (`SPANS` to change it; spans
//! shaped as the load generator sends them: 10 attributes each, 9 on the resource).
//!
//! Both sides start from the same encoded request and end with the same result encoding, and
//! the bench refuses to report unless the two results decode to the same request:
//!
//! - **wasm**: `target/plugins/NAME.wasm` loaded by trailhead's `Runtime` and run with
//!   `Plugin::process`, exactly as a pipeline runs it: take an idle instance, arm the CPU
//!   deadline, lend the batch (items stay encoded; the host reads the columns the plugin asks
//!   for from the encoding and re-encodes only what it edits), call the component, journal and
//!   apply its edits, hand back the new encoding (as parts, as the next stage takes it).
//! - **native**: the plugin's own `src/lib.rs` built as an rlib (`bench/native/NAME`), the same
//!   `Plugin` impl, over the SDK's native harness (`trailhead_plugin::testing::Spans`):
//!   prost-decode the whole request, split it into the harness's tree, `process_spans`, then
//!   `to_otlp` (clone the tree, apply the removals, prost-encode every span). The harness decodes and re-encodes every span whatever the
//!   plugin touches, so it pays more for reading and writing than the host does; `native_floor`
//!   is that cost alone (the same steps with no plugin), reported so the plugin's own share
//!   can be read off. A native run over the host's lazily decoded batch would be the fairer
//!   floor, but the SDK's batch traits have no implementation over it outside the component.
//!
//! Plugins and sides run interleaved, round after round, and each reports its median round, so
//! drift on a shared machine hits them alike. Prints one JSON object.

use anyhow::{Context, anyhow, ensure};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::processors::wasm::{Limits, Plugin as WasmPlugin, Runtime};
use trailhead_bench::{resource, string_kv, traces_request};
use trailhead_plugin::Batch as _;
use trailhead_plugin::Plugin as NativePlugin;
use trailhead_plugin::testing::Spans;

// The allocator trailhead itself runs with, so the native side allocates as the host does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Spans per request: 512 (the scenarios' request size), or `SPANS` from the environment.
fn spans() -> usize {
    env_or("SPANS", 512)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// The load generator's request (bench/src/main.rs): `attribute.0` … `attribute.9` =
/// `value-A-(id % 97)` on every span, `resource.0` … `resource.7` and `service.name` on the
/// resource, so bench/run.py's transform statements match what they match under load.
fn payload() -> Bytes {
    let spans = (1..=spans() as u64)
        .map(|id| Span {
            trace_id: [7u64.to_be_bytes(), id.to_be_bytes()].concat(),
            span_id: id.to_be_bytes().to_vec(),
            name: "GET /api/lessons/{id}".into(),
            kind: 2,
            start_time_unix_nano: 1_764_000_000_000_000_000,
            end_time_unix_nano: 1_764_000_000_001_000_000,
            attributes: (0..10)
                .map(|a| string_kv(format!("attribute.{a}"), format!("value-{a}-{}", id % 97)))
                .collect(),
            ..Default::default()
        })
        .collect();
    traces_request(resource(8, [string_kv("service.name", "lessons")]), spans)
}

/// One catalog plugin: its component, its config, and its crate built natively.
struct Case {
    name: &'static str,
    config: serde_json::Value,
    native: fn(&str) -> anyhow::Result<Box<dyn RunNative>>,
}

/// The configs bench/run.py's scenarios give these plugins (S_TRANSFORM's five statements,
/// S10's resource actions), and for the others a config of the same weight.
fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "transform",
            config: json!({"error_mode": "ignore", "trace_statements": [{"context": "span", "statements": [
                r#"set(attributes["deployment.environment"], "production")"#,
                r#"delete_key(attributes, "attribute.9")"#,
                r#"replace_pattern(attributes["attribute.0"], "value-", "v-")"#,
                r#"set(attributes["lesson.tier"], "gold") where attributes["attribute.1"] == "value-1-0""#,
                "truncate_all(attributes, 64)",
            ]}]}),
            native: native::<transform::Transform>,
        },
        Case {
            name: "attributes",
            config: json!({"actions": [
                {"key": "deployment.environment", "value": "production", "action": "insert"},
                {"key": "attribute.3", "action": "hash"},
                {"key": "attribute.9", "action": "delete"},
            ]}),
            native: native::<attributes::Attributes>,
        },
        Case {
            name: "resource",
            config: json!({"attributes": [
                {"key": "deployment.environment", "value": "production", "action": "upsert"},
                {"key": "k8s.cluster.name", "value": "mathtrail", "action": "insert"},
            ]}),
            native: native::<resource_processor::Resource>,
        },
        Case {
            name: "redaction",
            config: json!({
                "allowed_keys": ["service.name", "attribute.0", "attribute.1", "attribute.2",
                                 "attribute.3", "attribute.4", "attribute.5", "attribute.6"],
                "blocked_key_patterns": ["^attribute\\.[56]$"],
                "summary": "silent",
            }),
            native: native::<redaction::Redaction>,
        },
        Case {
            name: "probabilistic_sampler",
            config: json!({"sampling_percentage": 25}),
            native: native::<probabilistic_sampler::ProbabilisticSampler>,
        },
    ]
}

/// A plugin run natively from an encoded request to the encoded result.
trait RunNative {
    fn run(&mut self, request: &[u8]) -> Vec<u8>;
}

struct Native<P>(P);

impl<P: NativePlugin> RunNative for Native<P> {
    fn run(&mut self, request: &[u8]) -> Vec<u8> {
        let batch =
            Spans::from_request(ExportTraceServiceRequest::decode(request).expect("decodes"));
        // `NativeBatch::run` would also clone the whole tree first, to roll back on `Err`; the
        // host journals instead, so the Ok path is the one compared.
        self.0.process_spans(&batch).expect("processes");
        batch.to_otlp()
    }
}

/// The harness with no plugin: what the native side pays to read and write the request.
struct Floor;

impl RunNative for Floor {
    fn run(&mut self, request: &[u8]) -> Vec<u8> {
        let batch =
            Spans::from_request(ExportTraceServiceRequest::decode(request).expect("decodes"));
        batch.to_otlp()
    }
}

fn native<P: NativePlugin>(config: &str) -> anyhow::Result<Box<dyn RunNative>> {
    let plugin = trailhead_plugin::init::<P>(config).map_err(|e| anyhow!("native init: {e}"))?;
    Ok(Box::new(Native(plugin)))
}

/// One case made ready: the component loaded and the native plugin built, same config.
struct Loaded {
    name: &'static str,
    wasm: WasmPlugin,
    native: Box<dyn RunNative>,
}

fn load(runtime: &Arc<Runtime>, plugins: &Path, case: Case) -> anyhow::Result<Loaded> {
    let limits = Limits {
        memory_bytes: 256 << 20,
        timeout: Duration::from_secs(5),
    };
    let file = plugins.join(format!("{}.wasm", case.name.replace('_', "-")));
    let config = case.config.to_string();
    let wasm = runtime
        .load(case.name, &file, None, &config, limits)
        .with_context(|| format!("loading {}", file.display()))?;
    Ok(Loaded {
        name: case.name,
        wasm,
        native: (case.native)(&config)?,
    })
}

/// Same answer both ways, or the comparison means nothing: the two results decode to the
/// same request. Returns the spans kept.
fn check_same(loaded: &mut Loaded, batch: &Batch, payload: &Bytes) -> anyhow::Result<usize> {
    let wasm = loaded
        .wasm
        .call(batch)
        .map_err(|f| anyhow!("{}: {f:?}", loaded.name))?;
    let native = loaded.native.run(payload);
    let (wasm, native) = (
        ExportTraceServiceRequest::decode(wasm)?,
        ExportTraceServiceRequest::decode(native.as_slice())?,
    );
    ensure!(
        wasm == native,
        "{}: the Wasm and native results differ",
        loaded.name
    );
    ensure!(
        wasm != ExportTraceServiceRequest::decode(payload.clone())?,
        "{}: changed nothing, so measures nothing",
        loaded.name
    );
    Ok(wasm
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us_per_span(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6 / spans() as f64 * 1000.0).round() / 1000.0
}

/// Times `calls` runs of `f`, per run.
fn time(calls: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed() / calls
}

fn main() -> anyhow::Result<()> {
    let plugins = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/plugins"));
    let rounds = env_or("ROUNDS", 21);
    // About 5 ms of work a timing at 512 spans, whatever the batch size.
    let calls = (10_240 / spans()).max(1) as u32;
    let payload = payload();
    let batch = Batch {
        signal: Signal::Traces,
        payload: payload.clone().into(),
        items: spans(),
        context: RequestContext::internal("bench"),
    };
    let runtime = Runtime::new().map_err(|e| anyhow!("{e:#}"))?;
    let mut loaded = cases()
        .into_iter()
        .map(|case| load(&runtime, &plugins, case))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kept = loaded
        .iter_mut()
        .map(|l| check_same(l, &batch, &payload))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut floor = Vec::new();
    let mut times = vec![(Vec::new(), Vec::new()); loaded.len()];
    for _ in 0..rounds {
        floor.push(time(calls, || {
            Floor.run(&payload);
        }));
        for (l, (wasm, native)) in loaded.iter_mut().zip(times.iter_mut()) {
            wasm.push(time(calls, || {
                l.wasm.process(&batch).expect("runs");
            }));
            native.push(time(calls, || {
                l.native.run(&payload);
            }));
        }
    }
    let mut catalog = serde_json::Map::new();
    for ((l, (wasm, native)), kept) in loaded.iter().zip(times).zip(kept) {
        let (wasm, native) = (median(wasm), median(native));
        catalog.insert(
            l.name.to_string(),
            json!({
                "wasm_us_per_span": us_per_span(wasm),
                "native_us_per_span": us_per_span(native),
                "ratio": (wasm.as_secs_f64() / native.as_secs_f64() * 100.0).round() / 100.0,
                "kept": kept,
            }),
        );
    }
    let report = json!({
        "spans_per_batch": spans(),
        "rounds": rounds,
        "native_floor_us_per_span": us_per_span(median(floor)),
        "catalog": catalog,
    });
    println!("{report}");
    Ok(())
}
