//! The wiring checks a config must pass before anything starts: pipelines name defined
//! components that serve their signal, every `auth:` and `storage:` names an extension of the
//! right type that the service starts, and settings the collector would refuse. Each problem
//! is located in the file. The graph connectors make is checked in `connectors::graph`.

use super::{Config, ExtensionConfig, PipelineConfig};
use crate::auth::AuthConfig;
use crate::config::{ComponentId, Diagnostic, Report};
use crate::exporters::QueueSizer;
use crate::pdata::Signal;

impl Config {
    /// Checks the wiring: pipelines name defined components that handle their signal.
    pub(super) fn validate(&self) -> Vec<Diagnostic> {
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
        let inside_connectors = self.check_connectors(&mut report);
        problems.extend(inside_connectors);
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
                    "unknown pipeline type `{}`: use traces, metrics, logs or profiles",
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
                None if self.connectors.contains(id) => {} // checked with the connectors
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
                Some(processor) if signal == Signal::Profiles && !processor.takes_profiles() => {
                    report(
                        &at,
                        Some(&id_text),
                        component.clone(),
                        format!(
                            "processor `{id}` cannot process profiles: {}",
                            crate::processors::PROFILES_REFUSAL
                        ),
                    )
                }
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
            let id_text = id.to_string();
            match self.exporters.get(id) {
                None if self.connectors.contains(id) => {} // checked with the connectors
                None => report(
                    &at,
                    Some(&id_text),
                    component.clone(),
                    format!("references exporter `{id}`, which is not defined under exporters"),
                ),
                // e.g. `prometheus` and `prometheusremotewrite` take metrics only.
                Some(exporter) if !exporter.signals().contains(&signal) => report(
                    &at,
                    Some(&id_text),
                    component.clone(),
                    format!("exporter `{id}` does not export {signal}"),
                ),
                Some(exporter) => {
                    if let Some((key, why)) = exporter.behaviour().signal_problem(signal) {
                        let key_at = ["exporters", id_text.as_str(), key];
                        let owner = format!("exporter `{id}`");
                        report(&key_at, None, owner, format!("in pipeline `{pid}`: {why}"));
                    }
                }
            }
        }
    }

    /// Exporter settings the collector would refuse, and each persistent queue's storage.
    fn check_exporters(&self, report: Report) {
        for (id, exporter) in self.exporters.iter() {
            let id_text = id.to_string();
            for (key, message) in exporter.behaviour().problems() {
                report(
                    &["exporters", id_text.as_str(), key],
                    None,
                    format!("exporter `{id}`"),
                    format!("{key}: {message}"),
                );
            }
            let Some(queue) = exporter.behaviour().sending_queue() else {
                continue;
            };
            let id_text = id.to_string();
            let at = ["exporters", id_text.as_str(), "sending_queue"];
            let component = format!("exporter `{id}`");
            match &queue.storage {
                None if queue.sizer == QueueSizer::Bytes => report(
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

    /// Every `auth:` names an authenticator extension the service starts, of a kind that
    /// serves its side (a receiver's checks requests, an exporter's sets headers), as the
    /// collector requires; and a headers_setter's context sources are where trailhead sends
    /// what the collector sends.
    fn check_authenticators(&self, report: Report) {
        for (at, auth) in self.authenticators() {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            let server = at[0] == "receivers";
            let (fits, kinds): (fn(&ExtensionConfig) -> bool, _) = if server {
                (
                    is_server_auth,
                    "server authenticator (bearertokenauth, basicauth with htpasswd, oidc)",
                )
            } else {
                (
                    is_client_auth,
                    "client authenticator (bearertokenauth, basicauth with client_auth, headers_setter)",
                )
            };
            let id = &auth.authenticator;
            if let Some(problem) = self.extension_problem(id, fits, kinds) {
                report(
                    &at,
                    Some(&id.to_string()),
                    format!("{} `{}`", at[0].trim_end_matches('s'), at[1]),
                    format!("auth.authenticator `{id}` {problem}"),
                );
            } else if !server {
                self.check_context_sources(id, at[1], report);
            }
        }
    }

    /// A headers_setter exporter `exporter` names may read the request's context only where
    /// the collector has none either: in pipelines with a batch processor (which drops it;
    /// trailhead refuses its `metadata_keys`), or whose receivers never put the source there
    /// (client metadata needs `include_metadata: true`, an auth attribute needs `auth`).
    /// Elsewhere the collector would send the client's value and trailhead, which carries
    /// none, its default: refused at the key.
    fn check_context_sources(&self, id: &ComponentId, exporter: &str, report: Report) {
        let Some(ExtensionConfig::HeadersSetter(setter)) = self.extensions.get(id) else {
            return;
        };
        let Some((key, source)) = setter.headers.iter().find_map(|h| h.context_source()) else {
            return;
        };
        let unbatched = self.service.pipelines.iter().find(|(_, pipeline)| {
            pipeline.exporters.iter().any(|e| e.to_string() == exporter)
                && !pipeline.processors.iter().any(|p| {
                    self.processors
                        .get(p)
                        .is_some_and(|p| p.kind == crate::pipeline::batch::KIND)
                })
                && pipeline.receivers.iter().any(|r| self.may_fill(r, key))
        });
        if let Some((pipeline, _)) = unbatched {
            let id_text = id.to_string();
            report(
                &["extensions", id_text.as_str(), "headers"],
                Some(key),
                format!("extension `{id}`"),
                format!(
                    "{key}: {source}: trailhead keeps no request context through its \
                     pipelines, so it would always send default_value; the collector sends the \
                     request's value here (pipeline `{pipeline}` feeds exporter `{exporter}` \
                     from a receiver that fills it, with no batch processor to drop it). Use \
                     `value`, or add a batch processor to that pipeline"
                ),
            );
        }
    }

    /// Whether receiver `id` can put what a headers_setter `source` (`from_context`,
    /// `from_attribute`) reads into a request's context. A
    /// connector passes on what its upstream pipelines had, so it counts as yes.
    fn may_fill(&self, id: &ComponentId, source: &str) -> bool {
        let Some(receiver) = self.receivers.get(id) else {
            return true;
        };
        match source {
            "from_context" => receiver.behaviour().includes_metadata(),
            _ => !receiver.behaviour().auth().is_empty(),
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
    fn authenticators(&self) -> Vec<(Vec<String>, &AuthConfig)> {
        let mut found = Vec::new();
        for (id, receiver) in self.receivers.iter() {
            for (protocol, auth) in receiver.behaviour().auth() {
                let mut path = vec!["receivers".to_string(), id.to_string()];
                path.extend(protocol.iter().map(|p| p.to_string()));
                path.push("auth".into());
                found.push((path, auth));
            }
        }
        for (id, exporter) in self.exporters.iter() {
            if let Some(auth) = exporter.behaviour().auth() {
                let path = vec!["exporters".into(), id.to_string(), "auth".into()];
                found.push((path, auth));
            }
        }
        found
    }
}

/// Whether an extension can check a receiver's requests.
fn is_server_auth(extension: &ExtensionConfig) -> bool {
    match extension {
        ExtensionConfig::BearerToken(_) | ExtensionConfig::Oidc(_) => true,
        ExtensionConfig::BasicAuth(basic) => basic.htpasswd.is_some(),
        _ => false,
    }
}

/// Whether an extension can authenticate an exporter's requests.
fn is_client_auth(extension: &ExtensionConfig) -> bool {
    match extension {
        ExtensionConfig::BearerToken(_) | ExtensionConfig::HeadersSetter(_) => true,
        ExtensionConfig::BasicAuth(basic) => basic.client_auth.is_some(),
        _ => false,
    }
}
