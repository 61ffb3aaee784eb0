//! Stamps `key=value` pairs from its config on every resource of every signal, without
//! overwriting attributes that are already set. It reads and writes resource attributes only,
//! so the host never decodes a span for it.
//!
//! Config (JSON from the processor entry): `{"attributes": {"deployment.environment": "prod"}}`.
//! The config is parsed by hand to keep the component small.

use std::cell::RefCell;
use trailhead_plugin_v0_1::{
    KeyValue, LogBatch, MetricBatch, Plugin, PluginError, PluginInfo, Resources, Signal, SpanBatch,
};

thread_local! {
    static ATTRIBUTES: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

struct ResourceStamp;

/// `"key": "value"` pairs inside the `attributes` object. Enough for flat string maps.
fn parse(config: &str) -> Result<Vec<(String, String)>, String> {
    let Some(start) = config.find("\"attributes\"") else {
        return Ok(Vec::new());
    };
    let body = &config[start..];
    let open = body.find('{').ok_or("attributes must be an object")?;
    let close = body.find('}').ok_or("attributes is not closed")?;
    let strings: Vec<&str> = body[open + 1..close]
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    if !strings.len().is_multiple_of(2) {
        return Err("attributes must map strings to strings".into());
    }
    Ok(strings
        .chunks(2)
        .map(|kv| (kv[0].to_string(), kv[1].to_string()))
        .collect())
}

/// Sets each configured attribute on every resource that lacks it.
fn stamp(batch: &impl Resources) -> Result<(), PluginError> {
    ATTRIBUTES.with(|attributes| {
        for res in 0..batch.resource_count() {
            let missing: Vec<KeyValue> = attributes
                .borrow()
                .iter()
                .filter(|(key, _)| batch.resource_attr(res, key).is_none())
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: trailhead_plugin_v0_1::string(value.clone()),
                })
                .collect();
            if !missing.is_empty() {
                batch.set_resource_attrs(res, &missing);
            }
        }
    });
    Ok(())
}

impl Plugin for ResourceStamp {
    fn init(config: &str) -> Result<PluginInfo, String> {
        let parsed = parse(config)?;
        ATTRIBUTES.with(|a| *a.borrow_mut() = parsed);
        Ok(PluginInfo {
            name: "resource-stamp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            signals: vec![Signal::Traces, Signal::Metrics, Signal::Logs],
        })
    }
    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        stamp(batch)
    }
    fn process_logs(batch: &LogBatch) -> Result<(), PluginError> {
        stamp(batch)
    }
    fn process_metrics(batch: &MetricBatch) -> Result<(), PluginError> {
        stamp(batch)
    }
}

trailhead_plugin_v0_1::export!(ResourceStamp);
