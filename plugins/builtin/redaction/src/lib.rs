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
//! point attributes. The one idea: each attribute map is read whole (spans' from one
//! `to_otlp` ([`read`]), others with `attrs`), redacted as plain values ([`redact`]), and what changed is written back per level in a few batched
//! calls ([`write`]): one removal for all entries dropping the same keys, one set per masked
//! value, so a batch with nothing to redact costs reads only. A map whose new order those
//! edits cannot give (the collector's removal moves the last attribute into the removed one's
//! place) is written whole.

mod config;
mod goregex;
mod redact;
mod write;

use config::Config;
use pdata_text::Tree;
use redact::{Rules, SUMMARY_KEYS};
use trailhead_plugin::{
    Batch, Error, KeyValue, Level, LogBatch, MetricBatch, Plugin, Signal, SpanBatch,
};
use write::Writes;

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
                classes: Default::default(),
            },
        })
    }

    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces, Signal::Logs, Signal::Metrics]
    }

    fn process_spans(&mut self, b: &impl SpanBatch) -> Result<(), Error> {
        // Read before any write, so the encoding is the one the lent batch came as.
        // Field 9: `Span.attributes`.
        let spans = pdata_text::pb::item_attributes(&b.to_otlp(), 9)
            .filter(|maps| maps.len() == b.count(Level::Item) as usize);
        self.level(b, Level::Resource);
        self.level(b, Level::Scope);
        match spans {
            Some(maps) => self.maps(b, Level::Item, (0..).zip(maps)),
            None => self.level(b, Level::Item),
        }
        self.level(b, Level::Event);
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
        let mut writes = Writes::default();
        for i in 0..b.count(Level::Item) {
            let before = decode(&b.attrs(Level::Item, i));
            let mut attrs = before.clone();
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
                writes.add(i, &before, &attrs);
            }
        }
        writes.flush(b, Level::Item);
        Ok(())
    }
}

impl Redaction {
    /// Redacts every attribute map of one level, each read with `attrs`.
    fn level(&self, b: &impl Batch, level: Level) {
        let maps = (0..b.count(level)).map(|i| (i, decode(&b.attrs(level, i))));
        self.maps(b, level, maps);
    }

    /// Redacts the given maps of `level`'s entries and writes back what changed.
    fn maps(
        &self,
        b: &impl Batch,
        level: Level,
        maps: impl Iterator<Item = (u32, Vec<(String, Tree)>)>,
    ) {
        let mut writes = Writes::default();
        for (i, before) in maps {
            if before.is_empty() {
                continue;
            }
            let mut attrs = before.clone();
            if self.rules.attributes(&mut attrs) {
                writes.add(i, &before, &attrs);
            }
        }
        writes.flush(b, level);
    }
}

fn decode(attrs: &[KeyValue]) -> Vec<(String, Tree)> {
    attrs
        .iter()
        .map(|kv| (kv.key.clone(), Tree::from_any(&kv.value)))
        .collect()
}

trailhead_plugin::export!(Redaction);

#[cfg(test)]
mod tests;
