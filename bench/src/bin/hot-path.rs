//! The per-batch hot path, for counting instructions under valgrind (`make bench` runs
//! `valgrind --tool=cachegrind --cache-sim=no` on it): a noise-free regression signal where
//! CPU time on a shared machine moves by ±15%.
//!
//! `hot-path ROUNDS` builds one 512-span request (10 attributes per span, 8 per resource) and,
//! ROUNDS times: checks and counts it as a receiver does, then lends it as to a span filter
//! (read one attribute of every span, drop every tenth, encode the rest). Running it with two
//! round counts and subtracting cancels the setup; the bench divides by spans.

use bytes::Bytes;
use opentelemetry_proto::tonic::trace::v1::Span;
use trailhead::pdata::{Signal, wire};
use trailhead::processors::wasm::batch::SpanWork;
use trailhead::processors::wasm::encoded;
use trailhead_bench::{resource, string_kv, traces_request};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS: usize = 512;

fn request() -> Bytes {
    let spans = (0..SPANS)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: (i as u64).to_be_bytes().to_vec(),
            name: "GET /api/lessons/{id}".into(),
            kind: 2,
            attributes: (0..10)
                .map(|a| string_kv(format!("attribute.{a}"), format!("value-{a}-{i}")))
                .collect(),
            ..Default::default()
        })
        .collect();
    traces_request(resource(8, []), spans)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let payload = request();
    let mut kept = 0;
    for _ in 0..rounds {
        kept += wire::count_items(Signal::Traces, &payload).expect("well formed");
        let mut work = SpanWork::lend(payload.clone().into()).expect("lends");
        let drops: Vec<u32> = work
            .encoded_items()
            .enumerate()
            .filter(|(i, (_, span))| {
                encoded::attribute(span, encoded::SPAN_ATTRIBUTES, "attribute.3").is_some()
                    && i % 10 == 0
            })
            .map(|(i, _)| i as u32)
            .collect();
        work.drop_items(&drops);
        kept += work.into_encoded().len() % 2;
    }
    println!("{{\"rounds\":{rounds},\"spans\":{SPANS},\"check\":{kept}}}");
}
