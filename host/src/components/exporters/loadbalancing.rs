//! The `loadbalancing` exporter kind: routes by trace ID (or service, resource, metric name or
//! stream) to backends
//! found by a `static`, `dns` or `k8s` resolver, each an otlp exporter with its own queue.

use crate::auth::AuthConfig;
use crate::components::{Build, Exporter, ExtensionConfig, Kind, StartError};
use crate::exporters::ExporterSpec;
use crate::exporters::QueueSettings;
use crate::exporters::loadbalancing::{BackendStorage, Balancer, LoadBalancingConfig, Template};
use crate::exporters::otlp::BuildError;
use crate::pdata::Signal;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

impl Kind for LoadBalancingConfig {
    const NAME: &'static str = "loadbalancing";
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LoadBalancingConfig::deserialize(d)
    }
}

impl Exporter for LoadBalancingConfig {
    fn auth(&self) -> Option<&AuthConfig> {
        self.protocol.otlp.auth.as_ref()
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        LoadBalancingConfig::problems(self)
    }

    fn signal_problem(&self, signal: Signal) -> Option<(&'static str, String)> {
        self.route_by(signal).err().map(|why| ("routing_key", why))
    }

    fn sending_queue(&self) -> Option<&QueueSettings> {
        Some(&self.sending_queue)
    }

    fn spec(
        &self,
        id: &str,
        signal: Signal,
        build: &Build<'_>,
    ) -> Result<ExporterSpec, StartError> {
        let failed = |source| StartError::Exporter {
            id: id.to_string(),
            source,
        };
        let by = self
            .route_by(signal)
            .map_err(|e| failed(BuildError::Routing(e)))?;
        let token = build
            .exporter_auth(id, self.protocol.otlp.auth.as_ref())?
            .map(|token| token.resolved(&|p: &Path| build.resolve_path(p)));
        let otlp = self
            .protocol
            .otlp
            .resolved(&|p: &PathBuf| build.resolve_path(p));
        let template = Template {
            storage: backend_storage(self, id, build)?,
            otlp,
            token,
        };
        let balancer = Balancer::new(id, signal, by, template, build.telemetry);
        self.start(&balancer);
        let batch = self.protocol.otlp.batch_settings().policy();
        Ok(ExporterSpec {
            id: id.to_string(),
            signal,
            sink: balancer.router(),
            queue: self.sending_queue.clone(),
            batch: batch.map_err(|e| failed(BuildError::Batch(e)))?,
            retry: self.retry_on_failure.clone(),
        })
    }
}

/// Where the backends' persistent queues go: the `file_storage` extension that
/// `protocol.otlp.sending_queue.storage` names.
fn backend_storage(
    config: &LoadBalancingConfig,
    id: &str,
    build: &Build<'_>,
) -> Result<Option<BackendStorage>, StartError> {
    let Some(name) = &config.protocol.otlp.sending_queue.storage else {
        return Ok(None);
    };
    let failed = |message: String| StartError::Storage {
        id: id.to_string(),
        message: format!("protocol.otlp.sending_queue.storage: {message}"),
    };
    let Some(ExtensionConfig::FileStorage(storage)) = build.config.extensions.get(name) else {
        return Err(failed(format!("`{name}` is not a file_storage extension")));
    };
    let directory = build.resolve_path(&storage.directory);
    if !directory.is_dir() {
        if !storage.create_directory {
            return Err(failed(format!(
                "directory {} does not exist (create it, or set create_directory: true)",
                directory.display()
            )));
        }
        std::fs::create_dir_all(&directory)
            .map_err(|e| failed(format!("cannot create {}: {e}", directory.display())))?;
    }
    Ok(Some(BackendStorage {
        directory,
        fsync: storage.fsync,
    }))
}

#[cfg(test)]
mod tests {
    use crate::components::Config;
    use std::path::Path;

    // A refused key is reported where it is written, naming the exporter.
    #[test]
    fn a_refused_key_is_located() {
        let text = "receivers: {otlp: {protocols: {grpc: {}}}}\n\
                    exporters:\n  loadbalancing:\n    routing_key: spanID\n    protocol: {otlp: {}}\n    resolver: {static: {hostnames: [a]}}\n\
                    service: {pipelines: {traces: {receivers: [otlp], exporters: [loadbalancing]}}}\n";
        let error = Config::from_text(text, Path::new("lb.yaml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("lb.yaml:4:"), "{error}");
        assert!(error.contains("exporter `loadbalancing`"), "{error}");
        assert!(error.contains("routing_key: unknown `spanID`"), "{error}");
    }
}
