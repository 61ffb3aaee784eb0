//! A test plugin that misbehaves on purpose. Config `{"fault": "…"}` picks how, on every span
//! batch: `loop` (never returns), `alloc` (allocates until memory runs out), `panic`, `recurse`
//! (overflows the stack), `error` (returns a plugin error), `half` (renames half the spans,
//! then panics: the host must discard the half-done change), or `none` (tags every span with
//! `touched`, proving it ran).
//!
//! Faults spare the host's canary batch (one span named `canary`) unless the config also says
//! `"canary": true`, so a test can choose between a version the canary rejects and one that
//! only fails on real traffic.

use std::cell::Cell;
use trailhead_plugin_v0_1::{Plugin, PluginError, PluginInfo, Signal, SpanBatch};

thread_local! {
    static FAULT: Cell<&'static str> = const { Cell::new("none") };
    static FAIL_CANARY: Cell<bool> = const { Cell::new(false) };
}

struct Faults;

/// Unbounded recursion whose frames stay live (the array is used after the call), so it
/// cannot be turned into a loop.
#[inline(never)]
#[allow(unconditional_recursion, reason = "the stack overflow is the point")]
fn recurse(depth: u64) -> u64 {
    let padding = std::hint::black_box([depth; 64]);
    let deeper = recurse(std::hint::black_box(depth + 1));
    std::hint::black_box(&padding);
    deeper.wrapping_add(padding[(depth % 64) as usize])
}

impl Plugin for Faults {
    fn init(config: &str) -> Result<PluginInfo, String> {
        let fault = ["loop", "alloc", "panic", "recurse", "error", "half", "none"]
            .into_iter()
            .find(|f| config.contains(&format!("\"{f}\"")))
            .ok_or_else(|| format!("unknown fault in {config}"))?;
        FAULT.with(|f| f.set(fault));
        FAIL_CANARY.with(|c| c.set(config.contains("\"canary\":true")));
        Ok(PluginInfo {
            name: "faults".into(),
            version: "0.1.0".into(),
            signals: vec![Signal::Traces],
        })
    }

    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        let all: Vec<u32> = (0..batch.span_count()).collect();
        let canary = batch.span_names() == ["canary"];
        if canary && !FAIL_CANARY.with(Cell::get) {
            return Ok(());
        }
        match FAULT.with(Cell::get) {
            "loop" => loop {
                std::hint::black_box(&all);
            },
            "alloc" => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("the faults plugin panics as asked"),
            "recurse" => {
                std::hint::black_box(recurse(0));
                Ok(())
            }
            "error" => Err(PluginError {
                message: "the faults plugin reports an error as asked".into(),
            }),
            "half" => {
                batch.set_span_attr(
                    &all[..all.len() / 2],
                    "touched",
                    &trailhead_plugin_v0_1::string("yes"),
                );
                panic!("half-way through the batch");
            }
            _ => {
                batch.set_span_attr(&all, "touched", &trailhead_plugin_v0_1::string("yes"));
                Ok(())
            }
        }
    }
}

trailhead_plugin_v0_1::export!(Faults);
