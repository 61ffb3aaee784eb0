//! What `trailhead run` will start, built and checked from the config without binding a port
//! or spawning a task: the Kubernetes cache's settings, every processor loaded (plugins
//! compiled, their configs accepted) and the memory limiter's settings. `trailhead validate`
//! builds this same plan and stops there; [`super::Service::start`] builds it in two steps so
//! the cache can list pods while the plugins compile.

use super::StartError;
use super::reload::{self, Loaded};
use crate::components::Config;
use crate::kubernetes;
use crate::pipeline::memory_limiter;
use crate::telemetry::metrics::Registry;
use std::sync::Arc;

/// The checked parts of a start.
pub struct Plan {
    pub kubernetes: KubernetesPlan,
    /// Every processor the pipelines list, loaded.
    pub processors: Loaded,
    /// The memory limiter's settings, when a pipeline lists one.
    pub limiter: Option<memory_limiter::Settings>,
}

/// The plan's first step: what the one Kubernetes cache watches, and the store it fills.
pub struct KubernetesPlan {
    /// Set when a pipeline runs `k8sattributes`.
    pub settings: Option<kubernetes::Settings>,
    /// The store the cache fills and the processors read.
    pub metadata: Arc<kubernetes::Store>,
}

impl KubernetesPlan {
    pub fn new(config: &Config) -> Result<KubernetesPlan, StartError> {
        Ok(KubernetesPlan {
            settings: kubernetes::Settings::from_processors(config.listed(kubernetes::PROCESSOR))
                .map_err(StartError::Kubernetes)?,
            metadata: Arc::new(kubernetes::Store::default()),
        })
    }
}

impl Plan {
    /// The whole plan; the first problem found is the error.
    pub fn new(config: &Config, registry: &Arc<Registry>) -> Result<Plan, StartError> {
        Plan::after(KubernetesPlan::new(config)?, config, registry)
    }

    /// The rest of the plan after its first step.
    pub fn after(
        kubernetes: KubernetesPlan,
        config: &Config,
        registry: &Arc<Registry>,
    ) -> Result<Plan, StartError> {
        let processors = reload::load_processors(config, registry, &kubernetes.metadata)?;
        let limiter = memory_limiter::from_processors(config.listed(memory_limiter::KIND))
            .map_err(|(id, message)| {
                StartError::Processor(config.processor_diagnostic(&id, "", message))
            })?;
        Ok(Plan {
            kubernetes,
            processors,
            limiter,
        })
    }
}
