//! Which contract version a component speaks, and its calls through that version's bindings.
//! The version is read from the component's imports: one built against 0.2.1 imports
//! `mathtrail:trailhead/…@0.2.1`, one built against 0.2.0 `…@0.2.0`. Anything else is checked
//! against 0.1.0. The host links 0.1.0's imports and 0.2.1's, which serve 0.2.0's too
//! (`v0_2`); exports are checked through each version's own bindings.

use super::host::PluginState;
use super::{v0_1, v0_2};
use crate::pdata::Signal;
use wasmtime::component::{Component, Linker, Resource};
use wasmtime::{Engine, Store};

/// A component checked against its contract, ready to instantiate.
#[derive(Clone)]
pub enum Pre {
    V0_1(v0_1::bindings::ProcessorPre<PluginState>),
    V0_2_0(v0_2::bindings_0_2_0::ProcessorPre<PluginState>),
    V0_2_1(v0_2::bindings::ProcessorPre<PluginState>),
}

/// One instance's exports.
pub enum Bound {
    V0_1(v0_1::bindings::Processor),
    V0_2_0(v0_2::bindings_0_2_0::Processor),
    V0_2_1(v0_2::bindings::Processor),
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
pub const VERSIONS: &str =
    "mathtrail:trailhead@0.2.1, mathtrail:trailhead@0.2.0 or mathtrail:trailhead@0.1.0";

impl Pre {
    pub fn new(
        engine: &Engine,
        linker: &Linker<PluginState>,
        component: &Component,
    ) -> wasmtime::Result<Pre> {
        // The versions of the contract's interfaces it imports: `0.2.1` from
        // `mathtrail:trailhead/batch@0.2.1`.
        let versions: Vec<String> = component
            .component_type()
            .imports(engine)
            .filter_map(|(name, _)| {
                let (_, version) = name.strip_prefix("mathtrail:trailhead/")?.split_once('@')?;
                Some(version.to_string())
            })
            .collect();
        let speaks = |version: &str| versions.iter().any(|v| v == version);
        let (v0_2_1, v0_2_0) = (speaks("0.2.1"), speaks("0.2.0"));
        if !v0_2_1 && !v0_2_0 && !speaks("0.1.0") && !versions.is_empty() {
            wasmtime::bail!(
                "it was built against mathtrail:trailhead@{}, which this trailhead does not link",
                versions[0]
            );
        }
        let pre = linker.instantiate_pre(component)?;
        Ok(if v0_2_1 {
            Pre::V0_2_1(v0_2::bindings::ProcessorPre::new(pre)?)
        } else if v0_2_0 {
            Pre::V0_2_0(v0_2::bindings_0_2_0::ProcessorPre::new(pre)?)
        } else {
            Pre::V0_1(v0_1::bindings::ProcessorPre::new(pre)?)
        })
    }

    /// The contract version the component speaks.
    pub fn contract(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2_0(_) => "0.2.0",
            Pre::V0_2_1(_) => "0.2.1",
        }
    }

    pub fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Bound> {
        Ok(match self {
            Pre::V0_1(pre) => Bound::V0_1(pre.instantiate(store)?),
            Pre::V0_2_0(pre) => Bound::V0_2_0(pre.instantiate(store)?),
            Pre::V0_2_1(pre) => Bound::V0_2_1(pre.instantiate(store)?),
        })
    }
}

/// The signals of a 0.1 or 0.2.0 `plugin-info`, as the host's.
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
            Bound::V0_2_0(b) => b.call_init(store, config)?.map(|i| Info {
                signals: signals!(i.signals, v0_2::bindings_0_2_0::mathtrail::trailhead::types),
                name: i.name,
                version: i.version,
                contract: "0.2.0",
            }),
            Bound::V0_2_1(b) => b.call_init(store, config)?.map(|i| Info {
                signals: v0_2::signals(&i.signals),
                name: i.name,
                version: i.version,
                contract: "0.2.1",
            }),
        })
    }
}

/// `process-spans`, `process-logs`, `process-metrics` for any version: `Err` is the
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
                    Bound::V0_2_0(b) => b.$call(store, batch)?.map_err(|e| e.message),
                    Bound::V0_2_1(b) => b.$call(store, batch)?.map_err(|e| e.message),
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

impl Bound {
    /// `process-profiles`, which only 0.2.1 has. The host calls it only for a plugin whose
    /// `init` listed `profiles`, which an older contract cannot.
    pub fn process_profiles(
        &self,
        store: &mut Store<PluginState>,
        batch: Resource<super::profiles::ProfileWork>,
    ) -> wasmtime::Result<Result<(), String>> {
        Ok(match self {
            Bound::V0_2_1(b) => b
                .call_process_profiles(store, batch)?
                .map_err(|e| e.message),
            Bound::V0_1(_) | Bound::V0_2_0(_) => {
                Err("contracts before 0.2.1 have no profiles batch".into())
            }
        })
    }
}
