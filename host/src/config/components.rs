//! Component ids and the per-section tables that map a component type to its config struct.

use crate::exporters::debug::DebugExporterConfig;
use crate::exporters::otlp::OtlpExporterConfig;
use crate::exporters::{FileStorageConfig, QueueSettings};
use crate::pdata::Signal;
use crate::processors::{BUILT_IN, HostSettings, split_settings};
use crate::receivers::auth::BearerTokenConfig;
use crate::receivers::otlp::OtlpReceiverConfig;
use crate::receivers::zipkin::ZipkinReceiverConfig;
use crate::telemetry::health::HealthCheckConfig;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// `type` or `type/name`, e.g. `otlp/alloy`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentId {
    pub kind: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (kind, name) = match text.split_once('/') {
            Some((kind, name)) => (kind, Some(name)),
            None => (text, None),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        };
        if !valid(kind) || !name.is_none_or(valid) {
            return Err(format!(
                "invalid component id `{text}`: expected `type` or `type/name` of letters, digits, `_`, `-` or `.`"
            ));
        }
        Ok(ComponentId {
            kind: kind.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{name}", self.kind),
            None => f.write_str(&self.kind),
        }
    }
}

impl<'de> Deserialize<'de> for ComponentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ComponentId::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// A config section whose body type depends on the component type.
pub trait Typed: Sized {
    /// The section's name, for messages: `receiver`, `exporter`, …
    const SECTION: &'static str;
    /// Types this build knows, with their aliases.
    const KINDS: &'static [&'static str];
    /// Whether a component type may appear in this section.
    fn accepts(kind: &str) -> bool {
        Self::KINDS.contains(&kind)
    }
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
}

/// Reads a section body that may be empty (`otlp:` alone means all defaults).
fn body<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The components of one section by id, in id order.
#[derive(Debug)]
pub struct Components<T>(BTreeMap<ComponentId, T>);

impl<T> Default for Components<T> {
    fn default() -> Self {
        Components(BTreeMap::new())
    }
}

impl<T> Components<T> {
    pub fn get(&self, id: &ComponentId) -> Option<&T> {
        self.0.get(id)
    }
    pub fn contains(&self, id: &ComponentId) -> bool {
        self.0.contains_key(id)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&ComponentId, &T)> {
        self.0.iter()
    }
}

impl<'de, T: Typed> Deserialize<'de> for Components<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SectionVisitor<T>(PhantomData<T>);
        struct KindSeed<'k, T>(&'k str, PhantomData<T>);

        impl<'de, T: Typed> DeserializeSeed<'de> for KindSeed<'_, T> {
            type Value = T;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
                T::deserialize_kind(self.0, d)
            }
        }

        impl<'de, T: Typed> Visitor<'de> for SectionVisitor<T> {
            type Value = Components<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a map of {} ids to their settings", T::SECTION)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Components::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let id = ComponentId::parse(&key).map_err(de::Error::custom)?;
                    if !T::accepts(&id.kind) {
                        return Err(de::Error::custom(format!(
                            "unknown {} type `{}` in `{key}` (this build knows: {})",
                            T::SECTION,
                            id.kind,
                            T::KINDS.join(", ")
                        )));
                    }
                    let config = map.next_value_seed(KindSeed::<T>(&id.kind, PhantomData))?;
                    if out.insert(id, config).is_some() {
                        return Err(de::Error::custom(format!(
                            "{} `{key}` is defined twice",
                            T::SECTION
                        )));
                    }
                }
                Ok(Components(out))
            }
        }
        d.deserialize_any(SectionVisitor(PhantomData))
    }
}

/// A receiver's settings, by type.
#[derive(Debug)]
pub enum ReceiverConfig {
    Otlp(Box<OtlpReceiverConfig>),
    Zipkin(Box<ZipkinReceiverConfig>),
}

impl ReceiverConfig {
    /// The signals this receiver can feed.
    pub fn signals(&self) -> &'static [Signal] {
        match self {
            ReceiverConfig::Otlp(_) => &Signal::ALL,
            ReceiverConfig::Zipkin(_) => &[Signal::Traces],
        }
    }
}

impl Typed for ReceiverConfig {
    const SECTION: &'static str = "receiver";
    const KINDS: &'static [&'static str] = &["otlp", "zipkin"];
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "otlp" => ReceiverConfig::Otlp(Box::new(body(d)?)),
            _ => ReceiverConfig::Zipkin(Box::new(body(d)?)),
        })
    }
}

/// A processor's settings. Processors are Wasm plugins: the host keeps `plugin`, `sha256`,
/// `on_failure` and `limits`, and hands the rest to the plugin.
#[derive(Debug)]
pub struct ProcessorConfig {
    pub kind: String,
    pub settings: serde_json::Value,
}

impl ProcessorConfig {
    /// The host's settings and the plugin's own config as JSON.
    pub fn host_settings(&self) -> Result<(HostSettings, String), String> {
        split_settings(&self.settings)
    }

    /// Whether the processor names a plugin: a `plugin:` path, or a built-in type (found at
    /// load time, see [`crate::processors::built_in_dirs`]).
    pub fn availability(&self) -> Result<(), String> {
        if self.kind == crate::pipeline::memory_limiter::KIND {
            return Ok(()); // the host's own; its settings are checked with the pipelines
        }
        let (host, _) = self.host_settings()?;
        if host.plugin.is_some() || BUILT_IN.contains(&self.kind.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "`{}` is not a built-in processor; give its `plugin:` path",
                self.kind
            ))
        }
    }
}

impl Typed for ProcessorConfig {
    const SECTION: &'static str = "processor";
    const KINDS: &'static [&'static str] = BUILT_IN;
    /// Any type may name a plugin; `availability` reports a missing `plugin:` with its line.
    fn accepts(_kind: &str) -> bool {
        true
    }
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(ProcessorConfig {
            kind: kind.to_string(),
            settings: serde_json::Value::deserialize(d)?,
        })
    }
}

/// An exporter's settings, by type.
#[derive(Debug)]
pub enum ExporterConfig {
    Otlp(Box<OtlpExporterConfig>),
    Debug(DebugExporterConfig),
}

impl ExporterConfig {
    /// The `sending_queue` settings, for exporters that have them.
    pub fn sending_queue(&self) -> Option<&QueueSettings> {
        match self {
            ExporterConfig::Otlp(otlp) => Some(&otlp.sending_queue),
            ExporterConfig::Debug(_) => None,
        }
    }
}

impl ExporterConfig {
    /// Settings the collector would refuse, as (the key under the exporter, why).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        match self {
            ExporterConfig::Otlp(otlp) => otlp.problems(),
            ExporterConfig::Debug(_) => Vec::new(),
        }
    }
}

impl Typed for ExporterConfig {
    const SECTION: &'static str = "exporter";
    const KINDS: &'static [&'static str] = &["otlp", "otlp_grpc", "debug"];
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "debug" => ExporterConfig::Debug(body(d)?),
            _ => ExporterConfig::Otlp(Box::new(OtlpExporterConfig::deserialize(d)?)),
        })
    }
}

/// An extension's settings, by type.
#[derive(Debug)]
pub enum ExtensionConfig {
    HealthCheck(HealthCheckConfig),
    FileStorage(FileStorageConfig),
    BearerToken(BearerTokenConfig),
}

impl Typed for ExtensionConfig {
    const SECTION: &'static str = "extension";
    const KINDS: &'static [&'static str] = &["health_check", "file_storage", "bearertokenauth"];
    fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error> {
        Ok(match kind {
            "file_storage" => ExtensionConfig::FileStorage(body(d)?),
            "bearertokenauth" => ExtensionConfig::BearerToken(BearerTokenConfig::deserialize(d)?),
            _ => ExtensionConfig::HealthCheck(body(d)?),
        })
    }
}
