//! Which contract version a component speaks, and its calls through that version's bindings.
//! The version is read from the component's imports: one built against 0.2.0 imports
//! `mathtrail:trailhead/…@0.2.0`. Anything else is checked against 0.1.0.

use super::host::PluginState;
use super::{v0_1, v0_2};
use crate::pdata::Signal;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, Store};

/// A component checked against its contract, ready to instantiate.
#[derive(Clone)]
pub enum Pre {
    V0_1(v0_1::bindings::ProcessorPre<PluginState>),
    V0_2(v0_2::bindings::ProcessorPre<PluginState>),
}

/// One instance's exports.
pub enum Bound {
    V0_1(v0_1::bindings::Processor),
    V0_2(v0_2::bindings::Processor),
}

/// What `init` said, whatever the version.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub signals: Vec<Signal>,
    /// The contract version the component speaks, e.g. `0.2.0`.
    pub contract: &'static str,
}

/// The versions the host links, newest first, for error messages.
pub const VERSIONS: &str = "mathtrail:trailhead@0.2.0 or mathtrail:trailhead@0.1.0";

impl Pre {
    pub fn new(
        engine: &Engine,
        linker: &Linker<PluginState>,
        component: &Component,
    ) -> wasmtime::Result<Pre> {
        // The versions of the contract's interfaces it imports: `0.2.0` from
        // `mathtrail:trailhead/batch@0.2.0`. A patch release (0.2.1) is bound as its minor.
        let versions: Vec<String> = component
            .component_type()
            .imports(engine)
            .filter_map(|(name, _)| {
                let (_, version) = name.strip_prefix("mathtrail:trailhead/")?.split_once('@')?;
                Some(version.to_string())
            })
            .collect();
        let speaks = |minor: &str| versions.iter().any(|v| v.starts_with(minor));
        let v0_2 = speaks("0.2.");
        if !v0_2 && !speaks("0.1.") && !versions.is_empty() {
            wasmtime::bail!(
                "it was built against mathtrail:trailhead@{}, which this trailhead does not link",
                versions[0]
            );
        }
        let pre = linker.instantiate_pre(component)?;
        Ok(if v0_2 {
            Pre::V0_2(v0_2::bindings::ProcessorPre::new(pre)?)
        } else {
            Pre::V0_1(v0_1::bindings::ProcessorPre::new(pre)?)
        })
    }

    /// The contract version the component speaks.
    pub fn contract(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2(_) => "0.2.0",
        }
    }

    pub fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Bound> {
        Ok(match self {
            Pre::V0_1(pre) => Bound::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Bound::V0_2(pre.instantiate(store)?),
        })
    }
}

/// The signals of a version's `plugin-info`, as the host's.
macro_rules! signals {
    ($list:expr, $types:path) => {{
        use $types as t;
        $list
            .iter()
            .map(|s| match s {
                t::Signal::Traces => Signal::Traces,
                t::Signal::Metrics => Signal::Metrics,
                t::Signal::Logs => Signal::Logs,
            })
            .collect()
    }};
}

impl Bound {
    pub fn init(
        &self,
        store: &mut Store<PluginState>,
        config: &str,
    ) -> wasmtime::Result<Result<Info, String>> {
        Ok(match self {
            Bound::V0_1(b) => b.call_init(store, config)?.map(|i| Info {
                signals: signals!(i.signals, v0_1::bindings::mathtrail::trailhead::types),
                name: i.name,
                version: i.version,
                contract: "0.1.0",
            }),
            Bound::V0_2(b) => b.call_init(store, config)?.map(|i| Info {
                signals: signals!(i.signals, v0_2::bindings::mathtrail::trailhead::types),
                name: i.name,
                version: i.version,
                contract: "0.2.0",
            }),
        })
    }
}

/// `process-spans`, `process-logs`, `process-metrics` for either version: `Err` is the
/// plugin's own error message.
macro_rules! process {
    ($name:ident, $work:ty, $call:ident) => {
        impl Bound {
            pub fn $name(
                &self,
                store: &mut Store<PluginState>,
                batch: Resource<$work>,
            ) -> wasmtime::Result<Result<(), String>> {
                Ok(match self {
                    Bound::V0_1(b) => b.$call(store, batch)?.map_err(|e| e.message),
                    Bound::V0_2(b) => b.$call(store, batch)?.map_err(|e| e.message),
                })
            }
        }
    };
}
process!(process_spans, super::batch::SpanWork, call_process_spans);
process!(process_logs, super::batch::LogWork, call_process_logs);
process!(
    process_metrics,
    super::batch::MetricWork,
    call_process_metrics
);
