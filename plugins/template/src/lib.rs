//! plugin-template: a trailhead processor. It sets one attribute on every span that does not
//! have it yet. Config: `{"key": "team", "value": "lessons"}`.
//!
//! Start here: read a column with one call (`attr_column`, `names`, `durations`, …), decide,
//! then write to many entries at once by index (`set_attr`, `remove`). Return `Err` to leave
//! the batch as it was; the operator's `on_failure` decides what happens to it.

use serde::Deserialize;
use trailhead_plugin::{Error, Level, Plugin, Signal, SpanBatch, indexes_where, string};

/// The processor's config, read from trailhead's config file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The attribute to set.
    key: String,
    /// Its value, where a span has none.
    value: String,
}

/// The plugin's state, kept from call to call: here, just its config.
struct Template {
    key: String,
    value: String,
}

impl Plugin for Template {
    type Config = Config;
    const NAME: &'static str = "plugin-template";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn new(config: Config) -> Result<Self, String> {
        if config.key.is_empty() {
            return Err("key: must not be empty".into());
        }
        Ok(Template { key: config.key, value: config.value })
    }

    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces]
    }

    fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
        let column = batch.attr_column(Level::Item, &self.key);
        let missing = indexes_where(column.iter(), |value| value.is_none());
        if !missing.is_empty() {
            batch.set_attr(Level::Item, &missing, &self.key, &string(&self.value));
        }
        Ok(())
    }
}

trailhead_plugin::export!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use trailhead_plugin::Batch;
    use trailhead_plugin::testing::{self, Spans};

    const CONFIG: &str = r#"{"key": "team", "value": "lessons"}"#;

    /// Two spans, the second already owned by team `payments`.
    const SPANS: &str = r#"{"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "a"},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175", "name": "b",
         "attributes": [{"key": "team", "value": {"stringValue": "payments"}}]}
    ]}]}]}"#;

    // A span without the attribute gets it; one that has it keeps its own value.
    #[test]
    fn sets_the_attribute_where_missing() {
        let mut plugin: Template = testing::init(CONFIG).unwrap();
        let mut spans = Spans::from_json(SPANS).unwrap();
        spans.run(&mut plugin).unwrap();

        let teams = spans.attr_column(Level::Item, "team");
        assert_eq!(teams.str(0), Some("lessons"));
        assert_eq!(teams.str(1), Some("payments"));
    }

    // A config without its key is refused, naming what is missing.
    #[test]
    fn refuses_a_config_without_key() {
        let error = testing::init::<Template>(r#"{"value": "x"}"#).err().unwrap();
        assert!(error.contains("missing field `key`"), "{error}");
    }
}
