//! Write a trailhead processor in Rust, against contract 0.2.1, and test it with `cargo test`.
//!
//! # The one idea
//!
//! The telemetry stays in trailhead. Your plugin gets a *lent* batch and reads it in
//! **columns**: one call returns one field of every entry of a [`Level`] (every span's start
//! time, every resource's `service.name`), so a plugin pays one boundary crossing per field,
//! not per span. It then writes **by index**: "set this attribute on spans 3, 7 and 9",
//! "remove spans 1 and 4". Indexes are flat across the whole batch, per level, and stay the
//! same for the whole call, even after a removal.
//!
//! # A plugin
//!
//! Implement [`Plugin`] for a struct that holds your state, and [`export!`] it:
//!
//! ```
//! use trailhead_plugin::{Error, Level, Plugin, Signal, SpanBatch, string};
//!
//! /// Config, deserialized from the processor's JSON config by the SDK.
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     team: String,
//! }
//!
//! struct Stamp {
//!     team: String,
//! }
//!
//! impl Plugin for Stamp {
//!     type Config = Config;
//!     const NAME: &'static str = "stamp";
//!     const VERSION: &'static str = "1.0.0";
//!
//!     fn new(config: Config) -> Result<Self, String> {
//!         Ok(Stamp { team: config.team })
//!     }
//!     fn signals(&self) -> Vec<Signal> {
//!         vec![Signal::Traces]
//!     }
//!     fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
//!         let all: Vec<u32> = (0..batch.count(Level::Item)).collect();
//!         batch.set_attr(Level::Item, &all, "team", &string(&self.team));
//!         Ok(())
//!     }
//! }
//!
//! trailhead_plugin::export!(Stamp);
//! ```
//!
//! The config arrives as JSON (an empty config is `{}`) and is deserialized into
//! [`Plugin::Config`]; a bad one is refused with the path of the field at fault, e.g.
//! `min_duration_ms: invalid type: string "x", expected u64 at line 1 column 24`.
//!
//! # State and failure
//!
//! Your struct lives as long as its instance: trailhead keeps an instance's memory from call to
//! call, and runs one instance per concurrent call (one per worker thread; more once a plugin writes to
//! stdout or stderr, which moves its calls to a blocking pool), each with its own `new`. Returning
//! `Err` leaves the batch as it was (changes are journalled and applied only on `Ok`) and keeps
//! the instance; a panic, a bad index or a list of the wrong length traps, and the next call
//! starts a fresh instance.
//!
//! # Testing natively
//!
//! Plugin code is written against the traits [`SpanBatch`], [`LogBatch`], [`MetricBatch`] and
//! [`ProfileBatch`] (`&impl SpanBatch`), which the component's lent batches implement, and so
//! do the in-memory batches of [`testing`], built from OTLP JSON.
//!
//! # Profiles
//!
//! A plugin that lists [`Signal::Profiles`] in [`Plugin::signals`] gets
//! [`Plugin::process_profiles`] with a [`ProfileBatch`]: the request's resources, to read and
//! change their attributes (a profile's samples index into a dictionary the whole request
//! shares, so a plugin sees the rest only encoded, through `to_otlp`). Only a plugin that
//! declares profiles may sit in a profiles pipeline. Profiles are new in contract 0.2.1; a
//! component built with this SDK needs a trailhead that links 0.2.1. The same logic runs in a plain `cargo test`
//! on your machine (see [`testing`] for an example).

mod batch;
mod column;
mod ids;
mod plugin;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

/// The bindings wit-bindgen generates from `wit/` (the contract 0.2.1). Plugins use the
/// re-exports at the crate root; these are public for [`export!`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "processor",
        pub_export_macro: true,
        export_macro_name: "export_processor",
        default_bindings_module: "trailhead_plugin::bindings",
    });
}

pub use batch::{Batch, LogBatch, MetricBatch, ProfileBatch, SpanBatch};
pub use bindings::mathtrail::trailhead::types::{
    AnyValue, Buckets, ExponentialBuckets, KeyValue, Level, MetricType, PluginError, PluginInfo,
    Quantile, Signal, SpanEvent, SpanKind, SpanLink, StatusCode, StringColumn, Temporality,
    ValueColumn, ValueKind,
};
pub use column::{Value, indexes_where};
pub use ids::{SpanId, TraceId};
#[doc(hidden)]
pub use plugin::export as __export;
pub use plugin::{Error, Plugin, info, init, parse_config};

/// The host's own services: its log, the request's context, the Kubernetes cache.
pub mod host {
    pub use crate::bindings::mathtrail::trailhead::context::RequestContext;
    pub use crate::bindings::mathtrail::trailhead::kubernetes;
    pub use crate::bindings::mathtrail::trailhead::log::Severity;

    /// Writes a line to trailhead's log, tagged with the processor's id.
    #[cfg(target_arch = "wasm32")]
    pub fn log(severity: Severity, message: &str) {
        crate::bindings::mathtrail::trailhead::log::write(severity, message);
    }

    /// Writes a line to stderr: natively (in tests) there is no host log to write to.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn log(severity: Severity, message: &str) {
        eprintln!("[{severity:?}] {message}");
    }

    /// Where the batch being processed came from (in `new`, an empty context).
    #[cfg(target_arch = "wasm32")]
    pub fn context() -> RequestContext {
        crate::bindings::mathtrail::trailhead::context::current()
    }

    /// Natively (in tests), an empty context from receiver `test`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn context() -> RequestContext {
        RequestContext {
            peer_address: None,
            forwarded_for: None,
            receiver: "test".into(),
        }
    }
}

/// A string attribute value.
pub fn string(value: impl Into<String>) -> AnyValue {
    AnyValue::Str(value.into())
}

/// An integer attribute value.
pub fn int(value: i64) -> AnyValue {
    AnyValue::Int(value)
}

/// A floating-point attribute value.
pub fn double(value: f64) -> AnyValue {
    AnyValue::Double(value)
}

/// A boolean attribute value.
pub fn boolean(value: bool) -> AnyValue {
    AnyValue::Boolean(value)
}

/// One attribute, for [`Batch::set_attrs`] and new events and links.
pub fn kv(key: impl Into<String>, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
    }
}

impl Level {
    /// The level's name in the WIT (`resource`, `scope`, `item`, …), as trap messages say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Resource => "resource",
            Level::Scope => "scope",
            Level::Item => "item",
            Level::Event => "event",
            Level::Link => "link",
            Level::Point => "point",
            Level::Exemplar => "exemplar",
        }
    }
}

/// Exports a [`Plugin`] as the component's `processor` world. Call it once, at the crate's
/// root: `trailhead_plugin::export!(MyPlugin);`.
///
/// `init` deserializes the config into the plugin's `Config`, calls [`Plugin::new`] and keeps
/// the instance for the `process-*` calls that follow.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        // Only a component has the ABI's exports; natively (`cargo test`, benches that link
        // several plugins into one binary) their unmangled names would collide.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct TrailheadExport;
            impl $crate::bindings::Guest for TrailheadExport {
                fn init(config: String) -> Result<$crate::PluginInfo, String> {
                    $crate::__export::init::<$plugin>(&config)
                }
                fn process_spans(
                    batch: &$crate::bindings::mathtrail::trailhead::batch::SpanBatch,
                ) -> Result<(), $crate::PluginError> {
                    $crate::__export::with::<$plugin>(|p| $crate::Plugin::process_spans(p, batch))
                }
                fn process_logs(
                    batch: &$crate::bindings::mathtrail::trailhead::batch::LogBatch,
                ) -> Result<(), $crate::PluginError> {
                    $crate::__export::with::<$plugin>(|p| $crate::Plugin::process_logs(p, batch))
                }
                fn process_metrics(
                    batch: &$crate::bindings::mathtrail::trailhead::batch::MetricBatch,
                ) -> Result<(), $crate::PluginError> {
                    $crate::__export::with::<$plugin>(|p| $crate::Plugin::process_metrics(p, batch))
                }
                fn process_profiles(
                    batch: &$crate::bindings::mathtrail::trailhead::batch::ProfileBatch,
                ) -> Result<(), $crate::PluginError> {
                    $crate::__export::with::<$plugin>(|p| {
                        $crate::Plugin::process_profiles(p, batch)
                    })
                }
            }
    $crate::bindings::export_processor!(TrailheadExport with_types_in $crate::bindings);
        };
    };
}
