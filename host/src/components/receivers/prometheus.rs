//! The `prometheus` receiver kind: scrapes Prometheus targets into the metrics pipelines. It
//! listens on nothing; its scrape loops (static targets) and discovery followers (targets from
//! `kubernetes_sd_configs`) start in `start_own`.

use crate::components::{Build, Config, Kind, Receiver, ReceiverConfig, StartError};
use crate::kubernetes::discovery::{Discovery, PodWatch};
use crate::pdata::Signal;
use crate::receivers::prometheus::discovered::{self, DiscoveredJob, Source};
use crate::receivers::prometheus::kubernetes_sd::{self, KubernetesSdConfig};
use crate::receivers::prometheus::scrape::{self, TargetRules};
use crate::receivers::prometheus::{PrometheusReceiverConfig, ScrapeConfig};
use crate::receivers::{Consumers, Listening};
use futures::future::BoxFuture;
use serde::Deserializer;
use serde::de::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Kind for PrometheusReceiverConfig {
    const NAME: &'static str = "prometheus";
    const SIGNALS: &'static [Signal] = &[Signal::Metrics];
    /// Reads the body and checks what the collector checks when it starts: at least one scrape
    /// config, and every target's labels and address.
    fn parse<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let config: PrometheusReceiverConfig = crate::config::or_default(d)?;
        if config.config.scrape_configs.is_empty() {
            return Err(D::Error::custom(
                "no Prometheus scrape_configs or target_allocator set",
            ));
        }
        scrape::targets(&config.config).map_err(D::Error::custom)?;
        Ok(config)
    }
}

impl Receiver for PrometheusReceiverConfig {
    /// One loop per static target, and one follower per job with discovery, on the
    /// supervisor, each until `stop`.
    fn start_own<'a>(
        &'a self,
        id: &'a str,
        consumers: &'a Consumers,
        build: &'a Build<'_>,
        stop: CancellationToken,
    ) -> BoxFuture<'a, Result<Vec<Listening>, StartError>> {
        Box::pin(async move {
            let Some(fanout) = consumers.get(Signal::Metrics) else {
                return Ok(Vec::new());
            };
            let failed = |message| StartError::Listener {
                id: id.to_string(),
                message,
            };
            let targets = scrape::targets(&self.config).map_err(failed)?;
            let receiver: Arc<str> = Arc::from(id);
            let supervisor = &build.telemetry.supervisor;
            for target in targets {
                let name = format!("{id} scrape of {}", target.url);
                let run = scrape::run(target, receiver.clone(), fanout.clone(), stop.clone());
                supervisor.spawn(name, run);
            }
            let resolve = |path: &Path| build.resolve_path(path);
            for job in &self.config.scrape_configs {
                if job.kubernetes_sd_configs.is_empty() {
                    continue;
                }
                let rules = TargetRules::new(job, &self.config.global).map_err(failed)?;
                let sources = sources(job, &build.discovery, &resolve);
                let follow = discovered::follow(
                    DiscoveredJob { rules, sources },
                    receiver.clone(),
                    fanout.clone(),
                    stop.clone(),
                );
                supervisor.spawn(format!("{id} discovery of {}", job.job_name), follow);
            }
            Ok(Vec::new())
        })
    }
}

/// The pod (and node) sets a job's `kubernetes_sd_configs` read, from the shared watches.
fn sources(
    job: &ScrapeConfig,
    discovery: &Discovery,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Vec<Source> {
    let mut sources = Vec::new();
    for sd in &job.kubernetes_sd_configs {
        let connection = sd.connection(resolve);
        let nodes = sd.node_watch(&connection).map(|w| discovery.nodes(&w));
        for watch in sd.pod_watches(&connection, own_namespace(sd)) {
            sources.push(Source {
                pods: discovery.pods(&watch),
                namespace: watch.namespace,
                nodes: nodes.clone(),
            });
        }
    }
    sources
}

/// The pod's own namespace when `own_namespace` asks for it; unreadable, it is logged and
/// left out, as Prometheus' discovery fails alone and the rest runs.
fn own_namespace(sd: &KubernetesSdConfig) -> Option<String> {
    if !sd.namespaces.own_namespace {
        return None;
    }
    kubernetes_sd::own_namespace()
        .inspect_err(
            |error| tracing::error!(%error, "kubernetes_sd_configs namespaces.own_namespace"),
        )
        .ok()
}

impl Config {
    /// Every pod watch the `prometheus` receivers' discovery reads: the Kubernetes cache
    /// keeps pods whole for them when its own watch lists the same pods.
    pub fn discovery_pod_watches(&self) -> Vec<PodWatch> {
        let resolve = |path: &Path| self.resolve_path(path);
        let mut watches = Vec::new();
        for (_, receiver) in self.receivers.iter() {
            let ReceiverConfig::Prometheus(prometheus) = receiver else {
                continue;
            };
            let jobs = prometheus.config.scrape_configs.iter();
            for sd in jobs.flat_map(|job| &job.kubernetes_sd_configs) {
                let connection = sd.connection(&resolve);
                let own = sd
                    .namespaces
                    .own_namespace
                    .then(|| kubernetes_sd::own_namespace().ok());
                watches.extend(sd.pod_watches(&connection, own.flatten()));
            }
        }
        watches
    }
}
