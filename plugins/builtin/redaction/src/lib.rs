//! The built-in `redaction` processor: removes every attribute whose key is not allowed, masks
//! blocked values, and writes the collector's summary attributes, exactly as the collector's
//! redactionprocessor (v0.161.0) does.
//!
//! ```yaml
//! processors:
//!   redaction:
//!     allowed_keys: [description, group, id, name]
//!     blocked_values: ['4[0-9]{12}(?:[0-9]{3})?']
//!     summary: debug
//! ```
//!
//! Where it applies, as in the collector: resource and scope attributes of every signal, span
//! and span event attributes (not links), log record attributes and bodies, and metric data
//! point attributes. The one idea: each attribute map is read whole (`attrs`), redacted as
//! plain values ([`redact`]) and written back only when it changed, so a batch with nothing
//! to redact costs reads only. A map that lost a key is written whole, because the collector's
//! removal moves the last attribute into the removed one's place, and the order is kept too.

mod config;
mod goregex;
mod redact;

use config::Config;
use pdata_text::Tree;
use redact::{Rules, SUMMARY_KEYS};
use trailhead_plugin::{
    Batch, Error, KeyValue, Level, LogBatch, MetricBatch, Plugin, Signal, SpanBatch,
};

/// The processor: its compiled rules.
pub struct Redaction {
    rules: Rules,
}

fn patterns(list: &Option<Vec<String>>, key: &str) -> Result<Vec<regex::Regex>, String> {
    list.iter()
        .flatten()
        .enumerate()
        .map(|(i, p)| goregex::compile(p).map_err(|e| format!("{key}[{i}]: {e}")))
        .collect()
}

impl Plugin for Redaction {
    type Config = Config;
    const NAME: &'static str = "redaction";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        config.refuse_sanitizers()?;
        let mut allowed: std::collections::HashSet<String> =
            config.allowed_keys.iter().flatten().cloned().collect();
        allowed.extend(SUMMARY_KEYS.iter().map(|k| k.to_string()));
        Ok(Redaction {
            rules: Rules {
                allow_all_keys: config.allow_all_keys,
                allowed,
                ignored: config.ignored_keys.iter().flatten().cloned().collect(),
                ignored_patterns: patterns(&config.ignored_key_patterns, "ignored_key_patterns")?,
                blocked_values: patterns(&config.blocked_values, "blocked_values")?,
                allowed_values: patterns(&config.allowed_values, "allowed_values")?,
                blocked_keys: patterns(&config.blocked_key_patterns, "blocked_key_patterns")?,
                hash: config.hash()?,
                hmac_key: config.hmac_key.clone().into_bytes(),
                redact_all_types: config.redact_all_types,
                summary: config.summary()?,
                mask_all: goregex::compile(".*").expect("a valid pattern"),
            },
        })
    }

    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces, Signal::Logs, Signal::Metrics]
    }

    fn process_spans(&mut self, b: &impl SpanBatch) -> Result<(), Error> {
        for level in [Level::Resource, Level::Scope, Level::Item, Level::Event] {
            self.level(b, level);
        }
        Ok(())
    }

    fn process_metrics(&mut self, b: &impl MetricBatch) -> Result<(), Error> {
        for level in [Level::Resource, Level::Scope, Level::Point] {
            self.level(b, level);
        }
        Ok(())
    }

    fn process_logs(&mut self, b: &impl LogBatch) -> Result<(), Error> {
        self.level(b, Level::Resource);
        self.level(b, Level::Scope);
        let bodies = b.bodies();
        for i in 0..b.count(Level::Item) {
            let original = b.attrs(Level::Item, i);
            let mut attrs = decode(&original);
            let mut changed = self.rules.attributes(&mut attrs);
            let mut body = bodies
                .get(i as usize)
                .map_or(Tree::Empty, |v| Tree::from_value(&v));
            let (body_changed, attrs_changed) = self.rules.body(&mut body, &mut attrs);
            changed |= attrs_changed;
            if body_changed {
                b.set_bodies(&[i], &[body.to_any_value()]);
            }
            if changed {
                write(b, Level::Item, i, &original, &attrs);
            }
        }
        Ok(())
    }
}

impl Redaction {
    /// Redacts every attribute map of one level.
    fn level(&self, b: &impl Batch, level: Level) {
        for i in 0..b.count(level) {
            let original = b.attrs(level, i);
            if original.is_empty() {
                continue;
            }
            let mut attrs = decode(&original);
            if self.rules.attributes(&mut attrs) {
                write(b, level, i, &original, &attrs);
            }
        }
    }
}

fn decode(attrs: &[KeyValue]) -> Vec<(String, Tree)> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), Tree::from_any(&kv.value)))
        .collect()
}

/// Writes a redacted map back: its changed and new entries in place when that gives the
/// collector's order (the original keys first, as they were, then the new ones), else the
/// whole map in its new order (a removal moves pdata's last entry into the gap, and a summary
/// key that was removed and written again goes to the end).
fn write(b: &impl Batch, level: Level, i: u32, original: &[KeyValue], attrs: &[(String, Tree)]) {
    let in_place = original.len() <= attrs.len()
        && original
            .iter()
            .zip(attrs)
            .all(|(kv, (key, _))| kv.key == *key);
    let all: Vec<KeyValue> = attrs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: v.to_any_value(),
        })
        .collect();
    if in_place {
        let before = decode(original);
        let changed: Vec<KeyValue> = all
            .into_iter()
            .zip(attrs)
            .filter(|(_, entry)| !before.contains(entry))
            .map(|(kv, _)| kv)
            .collect();
        b.set_attrs(level, i, &changed);
    } else {
        let keys: Vec<String> = original.iter().map(|kv| kv.key.clone()).collect();
        b.remove_attrs(level, &[i], &keys);
        if !all.is_empty() {
            b.set_attrs(level, i, &all);
        }
    }
}

trailhead_plugin::export!(Redaction);

#[cfg(test)]
mod tests;
