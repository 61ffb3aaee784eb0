//! The table of component kinds, and the config document read from it.
//!
//! Every kind is declared once, in its own file under this folder: its type name and aliases
//! and the signals it serves ([`Kind`]), how its body parses, what it checks, and how it is
//! built ([`Receiver`], [`Exporter`], [`Extension`], [`ConnectorKind`]). The table below lists each kind on one
//! line; the section enums, the names `… this build knows`, and the dispatch from a section
//! to its kind's file are all generated from that line, so they cannot drift apart. Processors
//! are Wasm plugins, open-ended by type ([`processors`]).
//!
//! Adding an exporter: one file here that implements [`Kind`] and [`Exporter`] for its config,
//! and one line in [`ExporterConfig`]'s table.
//!
//! This is the one module that imports every component; only `service` imports it.

mod build;
mod connectors;
mod diff;
mod document;
mod exporters;
mod extensions;
pub mod otelconf;
mod out_of_scope;
mod processors;
pub mod readers;
mod receivers;
pub mod shown;
mod telemetry;
#[cfg(test)]
mod tests;
mod validate;

pub use build::{Build, ReceiverServer, StartError};
pub use connectors::graph::Instance;
pub use diff::{Change, ConfigDiff, How, Snapshot};
pub use document::{
    Config, ConsoleAccess, DEFAULT_CONFIG, LogEncoding, LogsConfig, MetricsConfig, PipelineConfig,
    ServiceConfig, TelemetryConfig,
};
pub use extensions::open_storage;
pub use processors::ProcessorConfig;

use crate::auth::{AuthConfig, BearerTokenConfig};
use crate::config::ComponentId;
use crate::config::Typed;
use crate::exporters::debug::DebugExporterConfig;
use crate::exporters::otlp::OtlpExporterConfig;
use crate::exporters::{ExporterSpec, FileStorageConfig, QueueSettings};
use crate::pdata::Signal;
use crate::pipeline::Pipeline;
use crate::pipeline::connector::Connector;
use crate::receivers::otlp::OtlpReceiverConfig;
use crate::receivers::zipkin::ZipkinReceiverConfig;
use crate::receivers::{Consumers, Listening};
use crate::telemetry::Telemetry;
use crate::telemetry::health::HealthCheckConfig;
use futures::future::BoxFuture;
use serde::de::{self, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every component kind declares about itself.
pub trait Kind: Sized {
    /// The type in a component id: `otlp` in `otlp/alloy`.
    const NAME: &'static str;
    /// Other types the collector accepts for it.
    const ALIASES: &'static [&'static str] = &[];
    /// The signals it serves.
    const SIGNALS: &'static [Signal] = &Signal::STABLE;
    /// Reads its body under its id (`otlp:` alone means every default, for kinds with them).
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
    /// Whether `kind` names it.
    fn is(kind: &str) -> bool {
        kind == Self::NAME || Self::ALIASES.contains(&kind)
    }
}

/// What a receiver kind does besides parsing.
pub trait Receiver: Send + Sync {
    /// Each `auth:` it has, with the key path from its id to the section holding it.
    fn auth(&self) -> Vec<(&'static [&'static str], &AuthConfig)> {
        Vec::new()
    }
    /// Whether one of its protocols has `include_metadata: true`: in the collector, only then
    /// does a request's context carry client metadata for `headers_setter` to read.
    fn includes_metadata(&self) -> bool {
        false
    }
    /// The HTTP and gRPC servers it listens with, feeding `consumers`.
    fn servers<'c>(
        &'c self,
        _id: &str,
        _consumers: &Consumers,
        _build: &Build<'_>,
    ) -> Result<Vec<ReceiverServer<'c>>, StartError> {
        Ok(Vec::new())
    }
    /// Listeners that are not an HTTP router (UDP sockets, raw TCP) and loops that listen on
    /// nothing (scrapers), started here until `stop`. A listener is returned, so shutdown waits
    /// for what it has accepted; a loop without an address is spawned on the supervisor.
    fn start_own<'a>(
        &'a self,
        _id: &'a str,
        _consumers: &'a Consumers,
        _build: &'a Build<'_>,
        _stop: CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<Listening>, StartError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// What an exporter kind does besides parsing.
pub trait Exporter: Send + Sync {
    /// Its `auth:`, if it has one.
    fn auth(&self) -> Option<&AuthConfig> {
        None
    }
    /// Settings the collector would refuse, as (the key under the exporter, why).
    fn problems(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// Why it cannot export `signal` with these settings (a pipeline of that signal lists it).
    fn signal_problem(&self, _signal: Signal) -> Option<(&'static str, String)> {
        None
    }
    /// Its `sending_queue`, for kinds that have one.
    fn sending_queue(&self) -> Option<&QueueSettings> {
        None
    }
    /// Where its own batch keys are written (`batch`, `sending_queue.batch`), if they are: a
    /// batch processor in its pipelines then leaves its batching as it is.
    fn own_batch(&self) -> Option<&'static str> {
        None
    }
    /// What exporter `id` sends `signal` with.
    fn spec(&self, id: &str, signal: Signal, build: &Build<'_>)
    -> Result<ExporterSpec, StartError>;
}

/// What a connector kind does besides parsing.
pub trait ConnectorKind: Send + Sync {
    /// Whether it takes `from` leaving a pipeline and gives `to` to another (a pair the
    /// collector's factory has no stability for is one it cannot connect).
    fn connects(&self, from: Signal, to: Signal) -> bool;
    /// Settings the collector would refuse, as (the dotted key under the connector, why).
    fn problems(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Settings that cannot run where a pipeline of `signal` exports to it, as (the dotted
    /// key, why).
    fn signal_problems(&self, _signal: Signal) -> Vec<(String, String)> {
        Vec::new()
    }
    /// The pipelines its settings name (routing's tables), with the dotted key naming each:
    /// each must list the connector as a receiver.
    fn named_pipelines(&self) -> Vec<(String, &ComponentId)> {
        Vec::new()
    }
    /// The instance with id `id` taking `from` and giving `to` to `downstream`: every
    /// pipeline of signal `to` that lists it as a receiver, by id, already built.
    fn build(
        &self,
        id: &str,
        signals: (Signal, Signal),
        downstream: &BTreeMap<ComponentId, Arc<Pipeline>>,
        build: &Build<'_>,
    ) -> Result<Arc<dyn Connector>, StartError>;
}

/// What an extension kind does besides parsing.
pub trait Extension: Send + Sync {
    /// The admin server it runs, if it runs one: where, and its routes.
    fn admin(&self, _telemetry: &Telemetry) -> Option<(SocketAddr, axum::Router)> {
        None
    }
    /// The same, for kinds that show the config they run with (zpages' pipelines).
    fn admin_for(
        &self,
        _config: &Config,
        telemetry: &Telemetry,
    ) -> Option<(SocketAddr, axum::Router)> {
        self.admin(telemetry)
    }
}

/// Generates a section's enum from its table: one variant per kind, the names it knows, how a
/// body is read by type, and the dispatch to the kind's behaviour.
macro_rules! section {
    (
        $(#[$doc:meta])*
        $section:literal => $name:ident: $behaviour:ident {
            $($variant:ident($config:ty),)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {
            $($variant(Box<$config>),)+
        }

        impl $name {
            /// What this kind does besides parsing.
            pub fn behaviour(&self) -> &dyn $behaviour {
                match self {
                    $($name::$variant(config) => config.as_ref(),)+
                }
            }

            /// The signals this kind serves.
            pub fn signals(&self) -> &'static [Signal] {
                match self {
                    $($name::$variant(_) => <$config as Kind>::SIGNALS,)+
                }
            }
        }

        impl Typed for $name {
            const SECTION: &'static str = $section;

            fn known() -> Vec<&'static str> {
                let mut known = Vec::new();
                $(
                    known.push(<$config as Kind>::NAME);
                    known.extend(<$config as Kind>::ALIASES);
                )+
                known
            }

            fn out_of_scope(kind: &str) -> Option<String> {
                out_of_scope::reason($section, kind)
            }

            fn deserialize_kind<'de, D: Deserializer<'de>>(
                kind: &str,
                d: D,
            ) -> Result<Self, D::Error> {
                $(
                    if <$config as Kind>::is(kind) {
                        return Ok($name::$variant(Box::new(<$config as Kind>::parse(d)?)));
                    }
                )+
                Err(de::Error::custom(format!("unknown {} type `{kind}`", $section)))
            }
        }
    };
}

section! {
    /// A receiver's settings, by type.
    "receiver" => ReceiverConfig: Receiver {
        Otlp(OtlpReceiverConfig),
        Zipkin(ZipkinReceiverConfig),
        FluentForward(crate::receivers::fluent_forward::FluentForwardReceiverConfig),
        Jaeger(crate::receivers::jaeger::JaegerReceiverConfig),
        Prometheus(crate::receivers::prometheus::PrometheusReceiverConfig),
    }
}

section! {
    /// An exporter's settings, by type.
    "exporter" => ExporterConfig: Exporter {
        Otlp(OtlpExporterConfig),
        Debug(DebugExporterConfig),
        Logging(crate::exporters::debug::LoggingExporterConfig),
        OtlpHttp(crate::exporters::otlp_http::OtlpHttpExporterConfig),
        LoadBalancing(crate::exporters::loadbalancing::LoadBalancingConfig),
        Prometheus(crate::exporters::prometheus::pull::PrometheusExporterConfig),
        PrometheusRemoteWrite(crate::exporters::prometheus::remote_write::RemoteWriteExporterConfig),
    }
}

section! {
    /// A connector's settings, by type.
    "connector" => ConnectorConfig: ConnectorKind {
        Forward(crate::connectors::forward::ForwardConnectorConfig),
        Routing(crate::connectors::routing::RoutingConnectorConfig),
        SpanMetrics(crate::connectors::spanmetrics::SpanMetricsConfig),
        ServiceGraph(crate::connectors::servicegraph::ServiceGraphConfig),
    }
}

section! {
    /// An extension's settings, by type.
    "extension" => ExtensionConfig: Extension {
        HealthCheck(HealthCheckConfig),
        FileStorage(FileStorageConfig),
        BearerToken(BearerTokenConfig),
        Pprof(extensions::PprofConfig),
        Zpages(extensions::ZpagesConfig),
        BasicAuth(crate::auth::basic::BasicAuthConfig),
        Oidc(crate::auth::oidc::OidcConfig),
        HeadersSetter(crate::auth::headers_setter::HeadersSetterConfig),
    }
}
