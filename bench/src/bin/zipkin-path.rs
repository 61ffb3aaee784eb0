//! The Zipkin receiver's conversion, for profiling and counting instructions: what every Dapr
//! sidecar's spans cost before they join the OTLP path.
//!
//! `zipkin-path ROUNDS` builds the body the `zipkin-json` bench scenario sends (100 spans, 10
//! tags each, a local endpoint, as Dapr's exporter writes them) and, ROUNDS times, reads it,
//! maps it to OTLP and encodes the export request, as the receiver does. It prints the rounds
//! and the wall time per span (for a quick look; `make bench` counts instructions instead).

use std::time::Instant;
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::receivers::zipkin::{model, to_otlp};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS: usize = 100;

fn body() -> Vec<u8> {
    let spans: Vec<serde_json::Value> = (0..SPANS as u64)
        .map(|i| {
            let tags: serde_json::Map<String, serde_json::Value> = (0..10)
                .map(|a| {
                    (
                        format!("attribute.{a}"),
                        format!("value-{a}-{}", i % 97).into(),
                    )
                })
                .collect();
            serde_json::json!({
                "traceId": format!("{:032x}", 0x5b8e_fff7_9803_8103_u128 << 64 | i as u128),
                "id": format!("{:016x}", i + 1), "name": "GET /api/lessons/{id}", "kind": "SERVER",
                "timestamp": 1_764_000_000_000_000u64 + i, "duration": 1000,
                "localEndpoint": {"serviceName": "lessons", "ipv4": "10.244.0.12"}, "tags": tags,
            })
        })
        .collect();
    serde_json::to_vec(&spans).expect("serialises")
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let body = body();
    let started = Instant::now();
    let mut check = 0;
    for _ in 0..rounds {
        let mut converter = to_otlp::Converter::new(false, 0);
        model::for_each_v2_json(&body, |span| converter.push(span)).expect("valid Zipkin");
        let (request, count) = converter.finish();
        let context = RequestContext::internal("z");
        let batch = Batch::from_encoded(Signal::Traces, request, count, context);
        check += batch.items;
    }
    let ns_per_span = started.elapsed().as_nanos() as f64 / (rounds * SPANS) as f64;
    println!(
        "{{\"rounds\":{rounds},\"spans\":{SPANS},\"check\":{check},\"ns_per_span\":{ns_per_span:.0}}}"
    );
}
