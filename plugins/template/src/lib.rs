//! plugin-template: a trailhead processor. It sets one attribute on every span that does not
//! have it yet. Config: `{"key": "team", "value": "lessons"}`.
//!
//! Start here: read columns with one call each (`span_names`, `span_attr_column`, …), decide,
//! then write in bulk (`set_span_attr`, `drop_spans`). Return `Err` to leave the batch as it
//! was; the operator's `on_failure` decides what happens to it.

use std::cell::RefCell;
use trailhead_plugin::{Plugin, PluginError, PluginInfo, Signal, SpanBatch, string};

thread_local! {
    static SETTING: RefCell<(String, String)> = RefCell::default();
}

struct Template;

/// The value of `"name": "…"` in a flat JSON object (add serde_json for anything richer).
fn field(config: &str, name: &str) -> Option<String> {
    let after = config.split(&format!("\"{name}\"")).nth(1)?;
    Some(after.split('"').nth(1)?.to_string())
}

impl Plugin for Template {
    fn init(config: &str) -> Result<PluginInfo, String> {
        let key = field(config, "key").ok_or("key: required")?;
        let value = field(config, "value").ok_or("value: required")?;
        SETTING.with(|s| *s.borrow_mut() = (key, value));
        Ok(PluginInfo {
            name: "plugin-template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            signals: vec![Signal::Traces],
        })
    }

    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        SETTING.with(|s| {
            let (key, value) = &*s.borrow();
            let missing: Vec<u32> = batch
                .span_attr_column(key)
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_none())
                .map(|(i, _)| i as u32)
                .collect();
            if !missing.is_empty() {
                batch.set_span_attr(&missing, key, &string(value.clone()));
            }
        });
        Ok(())
    }
}

trailhead_plugin::export!(Template);
