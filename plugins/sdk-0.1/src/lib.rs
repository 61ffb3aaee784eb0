//! Write a trailhead processor in Rust.
//!
//! Implement [`Plugin`] (only `init` is required; every signal passes through untouched by
//! default) and call [`export!`] once:
//!
//! ```ignore
//! struct Stamp;
//! impl trailhead_plugin_v0_1::Plugin for Stamp {
//!     fn init(_config: &str) -> Result<PluginInfo, String> {
//!         Ok(PluginInfo { name: "stamp".into(), version: "1.0.0".into(), signals: vec![Signal::Traces] })
//!     }
//!     fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> { … }
//! }
//! trailhead_plugin::export!(Stamp);
//! ```
//!
//! The batch is owned by the host: reading a column costs one call, and nothing is decoded
//! until you ask for it. Changes count only if you return `Ok`.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/0.1.0",
        world: "processor",
        pub_export_macro: true,
        export_macro_name: "export_processor",
        default_bindings_module: "trailhead_plugin_v0_1::bindings",
    });
}

pub use bindings::mathtrail::trailhead::batch::{LogBatch, MetricBatch, SpanBatch};
pub use bindings::mathtrail::trailhead::host;
pub use bindings::mathtrail::trailhead::types::{
    AnyValue, KeyValue, PluginError, PluginInfo, Signal, StringColumn, ValueColumn,
};

/// A processor. Signals the plugin does not override pass through unchanged.
pub trait Plugin {
    /// Reads the processor's config (JSON) and says who the plugin is.
    fn init(config: &str) -> Result<PluginInfo, String>;

    fn process_spans(_batch: &SpanBatch) -> Result<(), PluginError> {
        Ok(())
    }
    fn process_logs(_batch: &LogBatch) -> Result<(), PluginError> {
        Ok(())
    }
    fn process_metrics(_batch: &MetricBatch) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Exports a [`Plugin`] as the component's `processor` world.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        struct __TrailheadExport;
        impl $crate::bindings::Guest for __TrailheadExport {
            fn init(config: String) -> Result<$crate::PluginInfo, String> {
                <$plugin as $crate::Plugin>::init(&config)
            }
            fn process_spans(batch: &$crate::SpanBatch) -> Result<(), $crate::PluginError> {
                <$plugin as $crate::Plugin>::process_spans(batch)
            }
            fn process_logs(batch: &$crate::LogBatch) -> Result<(), $crate::PluginError> {
                <$plugin as $crate::Plugin>::process_logs(batch)
            }
            fn process_metrics(batch: &$crate::MetricBatch) -> Result<(), $crate::PluginError> {
                <$plugin as $crate::Plugin>::process_metrics(batch)
            }
        }
        $crate::bindings::export_processor!(__TrailheadExport with_types_in $crate::bindings);
    };
}

/// A string attribute value.
pub fn string(value: impl Into<String>) -> AnyValue {
    AnyValue::Str(value.into())
}

/// The resource methods every batch type has, so one function can enrich all three signals.
pub trait Resources {
    fn resource_count(&self) -> u32;
    fn resource_attr(&self, res: u32, key: &str) -> Option<AnyValue>;
    fn resource_attrs(&self, res: u32) -> Vec<KeyValue>;
    fn set_resource_attrs(&self, res: u32, attrs: &[KeyValue]);
}

macro_rules! resources {
    ($($batch:ty),*) => {$(
        impl Resources for $batch {
            fn resource_count(&self) -> u32 {
                <$batch>::resource_count(self)
            }
            fn resource_attr(&self, res: u32, key: &str) -> Option<AnyValue> {
                <$batch>::resource_attr(self, res, key)
            }
            fn resource_attrs(&self, res: u32) -> Vec<KeyValue> {
                <$batch>::resource_attrs(self, res)
            }
            fn set_resource_attrs(&self, res: u32, attrs: &[KeyValue]) {
                <$batch>::set_resource_attrs(self, res, attrs)
            }
        }
    )*};
}
resources!(SpanBatch, LogBatch, MetricBatch);
