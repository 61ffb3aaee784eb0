//! Configuration in the OpenTelemetry Collector's shape: `receivers`, `processors`, `exporters`,
//! `extensions` keyed by `type[/name]` component ids, and `service` wiring them into pipelines.
//!
//! The file is read once into a tree of located nodes (`tree`), and the typed config is
//! deserialized from that tree. A component's type (the part of its id before `/`) decides which
//! config struct its body is read into, so every error keeps its key path, line and column.
//! Unknown keys and unknown types are errors. `validate` then checks the wiring and locates each
//! problem in the same tree. Positions are in the file as written: `${env:…}` expansion
//! remembers what it replaced.

mod components;
mod expand;
pub mod tree;
pub mod values;

pub use components::{
    ComponentId, Components, ExporterConfig, ExtensionConfig, ProcessorConfig, ReceiverConfig,
};

use crate::pdata::Signal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a problem is reported: the key path, a value under it, the component and the message.
type Report<'a> = &'a mut dyn FnMut(&[&str], Option<&str>, String, String);

/// The default configuration, embedded so `trailhead run` works with no file.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/trailhead.yaml");

/// A whole trailhead configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where data enters: `otlp`, `zipkin`.
    #[serde(default)]
    pub receivers: Components<ReceiverConfig>,
    /// What runs on data in a pipeline, in order: `k8sattributes`, `filter` (Wasm plugins).
    #[serde(default)]
    pub processors: Components<ProcessorConfig>,
    /// Where data leaves: `otlp` (alias `otlp_grpc`), `debug`.
    #[serde(default)]
    pub exporters: Components<ExporterConfig>,
    /// Helpers outside the data path: `health_check`.
    #[serde(default)]
    pub extensions: Components<ExtensionConfig>,
    /// Which extensions start and how pipelines wire the components.
    pub service: ServiceConfig,
    /// Where the config was read from (set by the loader, not by the file).
    #[serde(skip)]
    pub source: PathBuf,
    /// The file as read: where each key and value is, to locate wiring errors.
    #[serde(skip)]
    tree: tree::Located,
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
    pub profiles: crate::telemetry::profiles::ProfilesConfig,
    /// Self-traces: an OTLP/gRPC endpoint (the `otlp` exporter's settings) for spans about
    /// trailhead's own exports and reloads.
    pub traces: Option<Box<crate::exporters::otlp::OtlpExporterConfig>>,
}

/// `service.telemetry.logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// `debug`, `info`, `warn` or `error`; `RUST_LOG` overrides it.
    pub level: String,
    /// `console` (human-readable) or `json`.
    pub encoding: LogEncoding,
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
    /// Address serving `/metrics`; `none` level turns it off.
    pub address: SocketAddr,
    /// `none` disables the endpoint; `basic`, `normal` and `detailed` all serve every metric.
    pub level: String,
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
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            // Local unless configured: it also serves `/reload`.
            address: ([127, 0, 0, 1], 8888).into(),
            level: "normal".into(),
        }
    }
}

/// One problem in a config file, located as precisely as the problem allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// The component the problem belongs to, if any.
    pub component: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(component) = &self.component {
            write!(f, ": {component}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config; loading fails if there is at least one.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError(pub Vec<Diagnostic>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl Config {
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
        let file = path.display().to_string();
        let expansion = expand::expand_env(text, |name| std::env::var(name).ok());
        for name in &expansion.unset {
            tracing::warn!(variable = %name, file = %file, "config refers to an unset environment variable; using an empty value");
        }
        let mut config = Config::parse(&expansion, text).map_err(|(position, message)| {
            ConfigError(vec![Diagnostic {
                file: file.clone(),
                position,
                component: None,
                message,
            }])
        })?;
        config.source = path.to_path_buf();
        let mut problems = config.validate();
        problems.sort_by_key(|p| p.position);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Reads the expanded text into its tree and the config; an error is where it is in
    /// `original` and what it says, led by the key path to it
    /// (`receivers.otlp.protocols.grpc: unknown field …`).
    fn parse(
        expansion: &expand::Expansion,
        original: &str,
    ) -> Result<Config, (Option<tree::Position>, String)> {
        let tree = tree::Located::parse(expansion, original)?;
        let mut config = Config::deserialize(&tree).map_err(|e| (e.position(), e.to_string()))?;
        config.tree = tree;
        Ok(config)
    }

    /// Parses the embedded default config.
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::from_text(
            DEFAULT_CONFIG,
            Path::new("<embedded config/trailhead.yaml>"),
        )
    }

    /// Checks the wiring: pipelines name defined components that handle their signal.
    fn validate(&self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        let mut report =
            |path: &[&str], needle: Option<&str>, component: String, message: String| {
                problems.push(Diagnostic {
                    file: self.source.display().to_string(),
                    position: self.tree.locate(path, needle),
                    component: Some(component),
                    message,
                });
            };
        if self.service.pipelines.is_empty() {
            report(
                &["service"],
                None,
                "service".into(),
                "no pipelines are defined under service.pipelines".into(),
            );
        }
        for (pipeline_id, pipeline) in &self.service.pipelines {
            self.check_pipeline(pipeline_id, pipeline, &mut report);
        }
        self.check_exporters(&mut report);
        self.check_authenticators(&mut report);
        self.check_service_extensions(&mut report);
        problems
    }

    /// One pipeline: a known signal, receivers and exporters, each defined and able to serve it.
    fn check_pipeline(&self, pipeline_id: &ComponentId, pipeline: &PipelineConfig, report: Report) {
        let pid = pipeline_id.to_string();
        let at = ["service", "pipelines", pid.as_str()];
        let component = format!("pipeline `{pid}`");
        let Some(signal) = Signal::parse(&pipeline_id.kind) else {
            report(
                &at,
                None,
                component,
                format!(
                    "unknown pipeline type `{}`: use traces, metrics or logs",
                    pipeline_id.kind
                ),
            );
            return;
        };
        if pipeline.receivers.is_empty() {
            report(&at, None, component.clone(), "has no receivers".into());
        }
        if pipeline.exporters.is_empty() {
            report(&at, None, component.clone(), "has no exporters".into());
        }
        for id in &pipeline.receivers {
            let id_text = id.to_string();
            match self.receivers.get(id) {
                None => report(
                    &at,
                    Some(&id_text),
                    component.clone(),
                    format!("references receiver `{id}`, which is not defined under receivers"),
                ),
                Some(receiver) if !receiver.signals().contains(&signal) => report(
                    &at,
                    Some(&id_text),
                    component.clone(),
                    format!("receiver `{id}` does not accept {signal}"),
                ),
                Some(_) => {}
            }
        }
        for id in &pipeline.processors {
            let id_text = id.to_string();
            match self.processors.get(id) {
                None => report(
                    &at,
                    Some(&id_text),
                    component.clone(),
                    format!("references processor `{id}`, which is not defined under processors"),
                ),
                Some(processor) => {
                    if let Err(why) = processor.availability() {
                        report(
                            &at,
                            Some(&id_text),
                            component.clone(),
                            format!("processor `{id}` cannot run: {why}"),
                        );
                    }
                }
            }
        }
        for id in &pipeline.exporters {
            if !self.exporters.contains(id) {
                let id_text = id.to_string();
                report(
                    &at,
                    Some(&id_text),
                    component.clone(),
                    format!("references exporter `{id}`, which is not defined under exporters"),
                );
            }
        }
    }

    /// Exporter settings the collector would refuse, and each persistent queue's storage.
    fn check_exporters(&self, report: Report) {
        for (id, exporter) in self.exporters.iter() {
            let id_text = id.to_string();
            for (key, message) in exporter.problems() {
                report(
                    &["exporters", id_text.as_str(), key],
                    None,
                    format!("exporter `{id}`"),
                    format!("{key}: {message}"),
                );
            }
            let Some(queue) = exporter.sending_queue() else {
                continue;
            };
            let id_text = id.to_string();
            let at = ["exporters", id_text.as_str(), "sending_queue"];
            let component = format!("exporter `{id}`");
            match &queue.storage {
                None if queue.sizer == crate::exporters::QueueSizer::Bytes => report(
                    &at,
                    Some("sizer"),
                    component,
                    "sending_queue.sizer `bytes` needs a persistent queue (`storage:`)".into(),
                ),
                None => {}
                Some(storage) => {
                    let is_storage =
                        |e: &ExtensionConfig| matches!(e, ExtensionConfig::FileStorage(_));
                    if let Some(problem) =
                        self.extension_problem(storage, is_storage, "file_storage")
                    {
                        report(
                            &at,
                            Some(&storage.to_string()),
                            component,
                            format!("sending_queue.storage `{storage}` {problem}"),
                        );
                    }
                }
            }
        }
    }

    /// Every `auth:` names a bearertokenauth extension the service starts.
    fn check_authenticators(&self, report: Report) {
        for (at, auth) in self.authenticators() {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            let is_token = |e: &ExtensionConfig| matches!(e, ExtensionConfig::BearerToken(_));
            let id = &auth.authenticator;
            if let Some(problem) = self.extension_problem(id, is_token, "bearertokenauth") {
                report(
                    &at,
                    Some(&id.to_string()),
                    format!("{} `{}`", at[0].trim_end_matches('s'), at[1]),
                    format!("auth.authenticator `{id}` {problem}"),
                );
            }
        }
    }

    /// `service.extensions` lists defined extensions.
    fn check_service_extensions(&self, report: Report) {
        for id in &self.service.extensions {
            if !self.extensions.contains(id) {
                let id_text = id.to_string();
                report(
                    &["service", "extensions"],
                    Some(&id_text),
                    "service.extensions".into(),
                    format!("references extension `{id}`, which is not defined under extensions"),
                );
            }
        }
    }

    /// Why extension `id` cannot serve as a `kind` extension, if it cannot.
    fn extension_problem(
        &self,
        id: &ComponentId,
        is_kind: impl Fn(&ExtensionConfig) -> bool,
        kind: &str,
    ) -> Option<String> {
        match self.extensions.get(id) {
            None => Some("is not defined under extensions".into()),
            Some(e) if !is_kind(e) => Some(format!("is not a {kind} extension")),
            Some(_) if !self.service.extensions.contains(id) => {
                Some("is not listed in service.extensions".into())
            }
            Some(_) => None,
        }
    }

    /// Every `auth:` in receivers and exporters, with the key path to it.
    fn authenticators(&self) -> Vec<(Vec<String>, &crate::receivers::auth::AuthConfig)> {
        let mut found = Vec::new();
        for (id, receiver) in self.receivers.iter() {
            let base = |protocol: &[&str]| {
                let mut path = vec!["receivers".to_string(), id.to_string()];
                path.extend(protocol.iter().map(|p| p.to_string()));
                path.push("auth".into());
                path
            };
            match receiver {
                ReceiverConfig::Otlp(otlp) => {
                    if let Some(auth) = otlp.protocols.grpc.as_ref().and_then(|g| g.auth.as_ref()) {
                        found.push((base(&["protocols", "grpc"]), auth));
                    }
                    if let Some(auth) = otlp.protocols.http.as_ref().and_then(|h| h.auth.as_ref()) {
                        found.push((base(&["protocols", "http"]), auth));
                    }
                }
                ReceiverConfig::Zipkin(zipkin) => {
                    if let Some(auth) = &zipkin.auth {
                        found.push((base(&[]), auth));
                    }
                }
            }
        }
        for (id, exporter) in self.exporters.iter() {
            if let ExporterConfig::Otlp(otlp) = exporter
                && let Some(auth) = &otlp.auth
            {
                found.push((
                    vec!["exporters".into(), id.to_string(), "auth".into()],
                    auth,
                ));
            }
        }
        found
    }

    /// The config with every processor setting and pipeline processor list taken out (but the
    /// memory limiter's and which pipelines list it): what a reload may not change without a
    /// restart.
    pub fn skeleton(&self) -> serde_json::Value {
        let mut value = serde_json::Value::deserialize(&self.tree).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("processors");
            // The one Kubernetes cache is built at start from the k8sattributes settings.
            map.insert(
                "kubernetes cache".into(),
                crate::kubernetes::Settings::fingerprint(self),
            );
            // The receivers obey the memory limiter from the start.
            let limit = crate::pipeline::memory_limiter::from_config(self)
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|(id, e)| format!("{id}: {e}"));
            let limited: Vec<String> = self
                .service
                .pipelines
                .iter()
                .filter(|(_, p)| {
                    p.processors
                        .iter()
                        .any(|id| id.kind == crate::pipeline::memory_limiter::KIND)
                })
                .map(|(id, _)| id.to_string())
                .collect();
            map.insert("memory limit".into(), format!("{limit} {limited:?}").into());
        }
        if let Some(pipelines) = value
            .get_mut("service")
            .and_then(|s| s.get_mut("pipelines"))
            .and_then(|p| p.as_object_mut())
        {
            for (_, pipeline) in pipelines.iter_mut() {
                if let Some(p) = pipeline.as_object_mut() {
                    p.remove("processors");
                }
            }
        }
        value
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

#[cfg(test)]
mod tests;
