//! The config document: the five component sections and `service`, which wires them into
//! pipelines. It is read with [`crate::config::read`], then [`super::validate`] checks the
//! wiring and locates each problem in the file.

use super::{ConnectorConfig, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig};
use crate::config::{self, ComponentId, Components, ConfigError, Diagnostic, tree, values};
use crate::telemetry::profiles::ProfilesConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration, embedded so `trailhead run` works with no file.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/trailhead.yaml");

/// A whole trailhead configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where data enters: `otlp`, `zipkin`, `prometheus`.
    #[serde(default)]
    pub receivers: Components<ReceiverConfig>,
    /// What runs on data in a pipeline, in order: `k8sattributes`, `filter` (Wasm plugins).
    #[serde(default)]
    pub processors: Components<ProcessorConfig>,
    /// Where data leaves: `otlp` (alias `otlp_grpc`), `debug` (and `logging`, its old name), `otlphttp`, `loadbalancing`, `prometheus`, `prometheusremotewrite`.
    #[serde(default)]
    pub exporters: Components<ExporterConfig>,
    /// Helpers outside the data path: `health_check`.
    #[serde(default)]
    pub extensions: Components<ExtensionConfig>,
    /// Exporters of some pipelines that are receivers of others: `forward`, `routing`.
    #[serde(default)]
    pub connectors: Components<ConnectorConfig>,
    /// Which extensions start and how pipelines wire the components.
    pub service: ServiceConfig,
    /// Where the config was read from (set by the loader, not by the file).
    #[serde(skip)]
    pub source: PathBuf,
    /// The file as read: where each key and value is, to locate wiring errors.
    #[serde(skip)]
    pub(super) tree: tree::Located,
    /// The environment variables it named that were unset (set by the loader).
    #[serde(skip)]
    pub unset_env: Vec<String>,
}

/// The `service` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Extensions to start, by id.
    pub extensions: Vec<ComponentId>,
    /// Pipelines by id: `traces`, `metrics`, `logs`, or `traces/name` for more than one.
    pub pipelines: BTreeMap<ComponentId, PipelineConfig>,
    /// trailhead's own logs, metrics, self-traces and profiles.
    pub telemetry: TelemetryConfig,
    /// How long SIGTERM waits for pipelines and exporter queues to drain before exiting.
    #[serde(deserialize_with = "values::duration")]
    pub shutdown_timeout: Duration,
}

/// One pipeline: receivers fan in, processors run in order, exporters fan out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Receivers feeding the pipeline, by id.
    pub receivers: Vec<ComponentId>,
    /// Processors, by id, in the order they run.
    pub processors: Vec<ComponentId>,
    /// Exporters the pipeline sends to, by id: every batch goes to all of them.
    pub exporters: Vec<ComponentId>,
}

/// `service.telemetry`: trailhead's own logs and metrics.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Level and format of trailhead's own logs.
    pub logs: LogsConfig,
    /// Where trailhead's own Prometheus metrics are served.
    pub metrics: MetricsConfig,
    /// Continuous CPU profiling to Pyroscope.
    pub profiles: ProfilesConfig,
    /// Self-traces about trailhead's own exports and reloads: the collector's shape
    /// (`processors: [{batch: {exporter: {otlp: …}}}]`), or trailhead's older one, an `otlp`
    /// exporter's settings. Read when the file is settled, into `push.traces`.
    pub traces: Option<serde_json::Value>,
    /// The collector's resource of its own telemetry (`service.name: …` inline, or
    /// `attributes: [{name, value}]`), attached to the metrics, logs and spans it pushes.
    pub resource: Option<serde_json::Value>,
    /// What is pushed over OTLP, settled from the keys above when the file is read.
    #[serde(skip)]
    pub push: crate::components::otelconf::Push,
}

/// `service.telemetry.logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// `debug`, `info`, `warn` or `error`, in either case; zap's `dpanic`, `panic` and
    /// `fatal` are `error`. `RUST_LOG` overrides it.
    pub level: String,
    /// `console` (human-readable) or `json`.
    pub encoding: LogEncoding,
    /// zap's development mode (stack traces on warnings): accepted without effect, trailhead's
    /// logs have no stack traces.
    pub development: Option<bool>,
    /// zap's caller field: accepted without effect, trailhead's logs name no caller.
    pub disable_caller: Option<bool>,
    /// zap's stack traces on errors: accepted without effect, as `development`.
    pub disable_stacktrace: Option<bool>,
    /// zap's log sampling (`enabled`, `tick`, `initial`, `thereafter`): accepted; trailhead
    /// writes every log line.
    pub sampling: Option<serde_json::Value>,
    /// Where logs go: only `stderr`, where trailhead writes them, as the collector's default.
    pub output_paths: Vec<String>,
    /// Where error logs go: only `stderr`, as `output_paths`.
    pub error_output_paths: Vec<String>,
    /// Also send the logs over OTLP: one `batch` or `simple` processor with an `otlp`
    /// exporter, as the collector's `otelconf` schema has it.
    pub processors: Vec<crate::components::otelconf::ProcessorConfig>,
}

impl LogsConfig {
    /// The `tracing` level `level` names, if it names one.
    pub fn directive(&self) -> Option<&'static str> {
        Some(match self.level.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "dpanic" | "panic" | "fatal" => "error",
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    Console,
    Json,
}

/// `service.telemetry.metrics`: the Prometheus endpoint for trailhead's own metrics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address serving `/metrics`; `none` level turns it off. With `readers`, the pull
    /// reader's `host:port` (set when the file is read). An empty host is every interface.
    #[serde(deserialize_with = "crate::config::values::listen_address")]
    pub address: SocketAddr,
    /// `none` disables the endpoint; `basic`, `normal` and `detailed` (either case) all
    /// serve every metric.
    pub level: String,
    /// The collector's form: one `pull` reader with a `prometheus` exporter at `host` and
    /// `port`, instead of `address`, and `periodic` readers pushing over OTLP.
    pub readers: Option<Vec<crate::components::readers::MetricReader>>,
    /// Who the operator console at `/` answers (trailhead's own key): `local`, connections
    /// from this host only, as `/tap` and `/reload`; `open`, any client that reaches the
    /// address (it shows live data and can reload); `off`.
    pub console: ConsoleAccess,
}

/// `service.telemetry.metrics.console`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleAccess {
    #[default]
    Local,
    Open,
    Off,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            extensions: Vec::new(),
            pipelines: BTreeMap::new(),
            telemetry: TelemetryConfig::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: "info".into(),
            encoding: LogEncoding::Console,
            development: None,
            disable_caller: None,
            disable_stacktrace: None,
            sampling: None,
            output_paths: vec!["stderr".into()],
            error_output_paths: vec!["stderr".into()],
            processors: Vec::new(),
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            // Local unless configured: it also serves `/reload`.
            address: ([127, 0, 0, 1], 8888).into(),
            level: "normal".into(),
            readers: None,
            console: ConsoleAccess::Local,
        }
    }
}

impl Config {
    /// Every value as written, after `${env:…}` expansion: what a reload's change list compares
    /// (see [`super::shown`]; secrets in it are not yet redacted).
    pub fn as_written(&self) -> serde_json::Value {
        self.tree.value()
    }

    /// Reads, expands, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![Diagnostic {
                file: path.display().to_string(),
                position: None,
                component: None,
                message: format!("cannot read config: {e}"),
            }])
        })?;
        Config::from_text(&text, path)
    }

    /// Parses and validates config text; `path` names it in errors and anchors relative paths.
    pub fn from_text(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let read = config::read::<Config>(text, &path.display().to_string())?;
        let mut config = read.document;
        config.tree = read.tree;
        config.unset_env = read.unset_env;
        config.source = path.to_path_buf();
        let mut problems = config.settle_telemetry();
        problems.extend(config.validate());
        problems.sort_by_key(|p| p.position);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Logs each unset environment variable the config named, as the collector warns of them.
    pub fn warn_unset_env(&self) {
        let file = self.source.display();
        for name in &self.unset_env {
            tracing::warn!(variable = %name, file = %file, "config refers to an unset environment variable; using an empty value");
        }
    }

    /// Parses the embedded default config.
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::from_text(
            DEFAULT_CONFIG,
            Path::new("<embedded config/trailhead.yaml>"),
        )
    }

    /// The processors of type `kind` the pipelines list, as `(id, settings)`, in pipeline
    /// order (an id listed by two pipelines comes twice).
    pub fn listed<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a ComponentId, &'a serde_json::Value)> + 'a {
        let pipelines = self.service.pipelines.values();
        // By the processor's type, not its id's: an alias (`k8s_attributes`) is resolved there.
        pipelines.flat_map(|p| &p.processors).filter_map(move |id| {
            let processor = self.processors.get(id)?;
            (processor.kind == kind).then_some((id, &processor.settings))
        })
    }

    /// The settings of every processor of type `kind` defined, listed by a pipeline or not.
    pub fn configured<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
        let processors = self.processors.iter();
        processors
            .filter(move |(_, p)| p.kind == kind)
            .map(|(_, p)| &p.settings)
    }

    /// A problem with processor `id` in pipeline `pipeline`, at the line that lists it there.
    pub fn pipeline_diagnostic(
        &self,
        pipeline: &ComponentId,
        id: &ComponentId,
        message: String,
    ) -> Diagnostic {
        let (pipeline_text, id_text) = (pipeline.to_string(), id.to_string());
        let at = ["service", "pipelines", pipeline_text.as_str()];
        Diagnostic {
            file: self.source.display().to_string(),
            position: self.tree.locate(&at, Some(id_text.as_str())),
            component: Some(format!("pipeline `{pipeline}`")),
            message,
        }
    }

    /// A processor's load error as a diagnostic. A plugin that rejects its config starts its
    /// message with where (`traces.span[1]: …`), which becomes a line of this file.
    pub fn processor_diagnostic(
        &self,
        id: &ComponentId,
        plugin_says: &str,
        message: String,
    ) -> Diagnostic {
        let id_text = id.to_string();
        let base = ["processors", id_text.as_str()];
        let at_path = plugin_says.split_once(": ").and_then(|(head, _)| {
            let is_path = !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
            is_path
                .then(|| self.tree.locate_dotted(&base, head))
                .flatten()
        });
        Diagnostic {
            file: self.source.display().to_string(),
            position: at_path.or_else(|| self.tree.locate(&base, None)),
            component: Some(format!("processor `{id}`")),
            message,
        }
    }

    /// Resolves a path written in the config relative to the config file's folder.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        match self.source.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}
