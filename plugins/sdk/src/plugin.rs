//! The [`Plugin`] trait, and how its config is read: the same way in the component's `init`
//! and in the native harness, so a config a test accepts is one trailhead accepts.

use crate::{LogBatch, MetricBatch, PluginError, PluginInfo, ProfileBatch, Signal, SpanBatch};
use serde::de::DeserializeOwned;

/// What a `process_*` method returns on failure: the batch is left as it was, the processor's
/// `on_failure` policy applies, and the instance (with its state) is kept.
pub type Error = PluginError;

impl PluginError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        PluginError {
            message: message.into(),
        }
    }
}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        PluginError { message }
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> Self {
        PluginError::new(message)
    }
}

/// A processor plugin: its config, its state (the implementing struct), and what it does to
/// each signal. Signals it does not override pass through unchanged.
///
/// A method takes its batch as `&impl SpanBatch` (not a concrete type) so the same code runs
/// over the host's lent batch in the component and over [`crate::testing`]'s in-memory one.
pub trait Plugin: Sized + 'static {
    /// The processor's config, deserialized from the JSON in trailhead's config file.
    type Config: DeserializeOwned;
    /// The plugin's name, as trailhead reports it.
    const NAME: &'static str;
    /// The plugin's version, e.g. `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// Builds an instance from its config. An `Err` is reported to the operator as a config
    /// error, so name the field: `keep_percent: must be between 0 and 100`.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// The signals trailhead calls the plugin for; it passes the others through.
    fn signals(&self) -> Vec<Signal>;

    /// Changes spans in place.
    fn process_spans(&mut self, _batch: &impl SpanBatch) -> Result<(), Error> {
        Ok(())
    }

    /// Changes log records in place.
    fn process_logs(&mut self, _batch: &impl LogBatch) -> Result<(), Error> {
        Ok(())
    }

    /// Changes metrics in place.
    fn process_metrics(&mut self, _batch: &impl MetricBatch) -> Result<(), Error> {
        Ok(())
    }

    /// Changes the resource attributes of a profiles request in place (resource level only:
    /// see [`ProfileBatch`]). Called only when [`Plugin::signals`] lists
    /// [`Signal::Profiles`]; trailhead refuses to start a profiles pipeline whose plugin does
    /// not. By default it leaves the request as it came.
    fn process_profiles(&mut self, _batch: &impl ProfileBatch) -> Result<(), Error> {
        Ok(())
    }
}

/// Deserializes a config from JSON, where an empty (or blank) config means `{}`. The error
/// names the path of the field at fault: `paths[2]: invalid type: integer `1`, expected a
/// string at line 1 column 13`.
pub fn parse_config<C: DeserializeOwned>(json: &str) -> Result<C, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        // At the root the path is ".", which names nothing.
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// Builds a plugin from its JSON config exactly as the component's `init` does.
pub fn init<P: Plugin>(config: &str) -> Result<P, String> {
    P::new(parse_config(config)?)
}

/// What `init` tells trailhead about an instance.
pub fn info<P: Plugin>(plugin: &P) -> PluginInfo {
    PluginInfo {
        name: P::NAME.into(),
        version: P::VERSION.into(),
        signals: plugin.signals(),
    }
}

/// What [`crate::export!`] expands to call: the instance kept between calls.
pub mod export {
    use super::{Error, Plugin, info};
    use crate::PluginInfo;
    use std::any::Any;
    use std::cell::RefCell;

    thread_local! {
        // One instance per component instance; statics cannot be generic, hence `Any`.
        static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    /// The export's `init`: builds the instance and keeps it.
    pub fn init<P: Plugin>(config: &str) -> Result<PluginInfo, String> {
        let plugin = super::init::<P>(config)?;
        let info = info(&plugin);
        INSTANCE.with(|i| *i.borrow_mut() = Some(Box::new(plugin)));
        Ok(info)
    }

    /// Runs `call` on the instance `init` kept.
    pub fn with<P: Plugin>(call: impl FnOnce(&mut P) -> Result<(), Error>) -> Result<(), Error> {
        INSTANCE.with(|i| {
            let mut instance = i.borrow_mut();
            match instance.as_mut().and_then(|p| p.downcast_mut::<P>()) {
                Some(plugin) => call(plugin),
                None => Err(Error::new("the plugin was called before init")),
            }
        })
    }
}
