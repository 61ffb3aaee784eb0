//! Continuous CPU profiling to Grafana Pyroscope, when `service.telemetry.profiles.endpoint` is
//! set: the `pyroscope` crate's agent with its pprof-rs backend samples every thread and pushes
//! a pprof profile every `upload_interval`, labelled `service_name=<application_name>` plus
//! `tags` (the chart adds the pod and namespace).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// `service.telemetry.profiles`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    /// Pyroscope's base URL, e.g. `http://pyroscope.monitoring:4040` (plain HTTP). Off when unset.
    pub endpoint: Option<String>,
    /// The name profiles are stored under in Pyroscope (`service_name`).
    pub application_name: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// How often collected samples are sent.
    #[serde(deserialize_with = "crate::config::values::duration")]
    pub upload_interval: Duration,
    /// Labels added to every profile, e.g. `namespace`.
    pub tags: BTreeMap<String, String>,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig {
            endpoint: None,
            application_name: "trailhead".into(),
            sample_rate: 100,
            upload_interval: Duration::from_secs(15),
            tags: BTreeMap::new(),
        }
    }
}

/// A running profiler; profiling stops when it is dropped.
pub struct Profiler(Option<pyroscope::PyroscopeAgent<pyroscope::pyroscope::PyroscopeAgentRunning>>);

impl ProfilesConfig {
    /// Starts profiling if an endpoint is set.
    pub fn start(&self) -> Result<Option<Profiler>, String> {
        use pyroscope::backend::{BackendConfig, PprofConfig, pprof_backend};
        let Some(endpoint) = &self.endpoint else {
            return Ok(None);
        };
        if !endpoint.starts_with("http://") {
            return Err(format!(
                "service.telemetry.profiles.endpoint `{endpoint}`: give an http:// URL (this build pushes profiles over plain HTTP)"
            ));
        }
        let backend = pprof_backend(
            PprofConfig {
                sample_rate: self.sample_rate,
            },
            BackendConfig::default(),
        );
        let tags: Vec<(&str, &str)> = self
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let agent = pyroscope::pyroscope::PyroscopeAgentBuilder::new(
            endpoint,
            &self.application_name,
            self.sample_rate,
            "trailhead",
            env!("CARGO_PKG_VERSION"),
            backend,
        )
        .tags(tags)
        .upload_interval(self.upload_interval)
        .build()
        .and_then(|agent| agent.start())
        .map_err(|e| format!("service.telemetry.profiles: cannot start profiling: {e}"))?;
        tracing::info!(endpoint = %endpoint, sample_rate = self.sample_rate, "continuous profiling to Pyroscope is on");
        Ok(Some(Profiler(Some(agent))))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        // Stopping pushes the last profile.
        if let Some(agent) = self.0.take()
            && let Ok(ready) = agent.stop()
        {
            ready.shutdown();
        }
    }
}
