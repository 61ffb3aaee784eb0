//! The collector's `resourcedetection` processor (contrib v0.161.0; `resource_detection` is
//! read as the same type). Detection needs the host (environment, kernel, resolver), so it
//! runs here, in the host, when the processor is loaded (start, and a reload that changes its
//! entry), within `timeout`; what it finds becomes the settings of the built-in `resource`
//! plugin, which applies it to every resource of every batch:
//!
//! - each detected attribute is a `{key, value, action}` with `insert` when `override: false`
//!   (only where the key is missing: the collector's merge) and `upsert` when `override: true`
//!   (the default);
//! - detectors run in the order listed and the first to set a key keeps it, as the collector
//!   merges them;
//! - a detector that fails fails the start, as in the collector (an env variable it cannot
//!   parse, no hostname from any source);
//! - nothing detected leaves the processor out of the pipeline: the data passes unchanged.
//!
//! Built: `env`, `system`, `k8snode`, and the cloud detectors `ec2`, `gcp`, `azure`, `aks`, which ask
//! their metadata servers over HTTP (see each module for the protocol and the variables that
//! point them elsewhere). Every other detector of the collector is refused at its line,
//! saying it is not built, or (`docker`) why it does not belong in a gateway.
//! Not done: the resource's `schema_url` (the system detector's semantic-conventions URL,
//! which the collector sets where it is empty) is not written, as a plugin cannot write
//! it.

mod azure;
mod cloud;
mod ec2;
mod env;
mod gcp;
mod k8snode;
mod metadata_http;
mod system;

use crate::config::values;
use serde::Deserialize;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The processor's type, and its other spelling.
pub const KIND: &str = "resourcedetection";
pub const ALIAS: &str = "resource_detection";
/// The built-in plugin that applies what was detected.
pub const APPLIED_BY: &str = "resource";

/// Attributes in the order detected: the first detector to set a key keeps it.
type Detected = Vec<(String, String)>;

/// The detectors trailhead runs.
const BUILT: &[&str] = &["env", "system", "k8snode", "ec2", "gcp", "azure", "aks"];
/// Detectors of the collector that read the node through its container runtime: an agent's.
const AGENT_SIDE: &[&str] = &["docker"];
/// The collector's other detectors (v0.161.0): known, not built.
const NOT_BUILT: &[&str] = &[
    "akamai",
    "alibaba_ecs",
    "azureappservice",
    "azurecontainerapps",
    "consul",
    "digitalocean",
    "dynatrace",
    "ecs",
    "eks",
    "elastic_beanstalk",
    "elasticbeanstalk",
    "heroku",
    "hetzner",
    "ibmcloud_classic",
    "ibmcloud_vpc",
    "k8s_api",
    "kubeadm",
    "lambda",
    "nova",
    "openshift",
    "oraclecloud",
    "scaleway",
    "tencent_cvm",
    "upcloud",
    "vultr",
];

/// A resourcedetection entry: the collector's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The detectors to run, in order: `env`, `system`, `k8snode`, `ec2`, `gcp`, `azure`, `aks`.
    pub detectors: Vec<String>,
    /// Whether detected values replace attributes the data already has (default true).
    pub r#override: bool,
    /// How long detection may take (default 5s).
    #[serde(deserialize_with = "values::duration")]
    pub timeout: Duration,
    /// The collector re-detects this often (0: never); trailhead detects at load only.
    #[serde(deserialize_with = "values::duration")]
    pub refresh_interval: Duration,
    /// Deprecated: only these detected attributes are set.
    pub attributes: Option<Vec<String>>,
    /// Whether a cloud detector whose metadata server does not answer fails detection (default false: it yields nothing).
    pub fail_on_missing_metadata: bool,
    /// The system detector's settings.
    pub system: system::Config,
    /// The k8snode detector's settings.
    pub k8snode: k8snode::Config,
    /// The env detector's section (it has no settings).
    pub env: Option<serde_json::Value>,
    /// The ec2 detector's settings.
    pub ec2: ec2::Config,
    /// The gcp detector's settings.
    pub gcp: gcp::Config,
    /// The azure detector's settings.
    pub azure: azure::Config,
    /// The aks detector's settings.
    pub aks: azure::AksConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            detectors: vec!["env".into()],
            r#override: true,
            timeout: Duration::from_secs(5),
            refresh_interval: Duration::ZERO,
            attributes: None,
            fail_on_missing_metadata: false,
            system: system::Config::default(),
            k8snode: k8snode::Config::default(),
            env: None,
            ec2: ec2::Config::default(),
            gcp: gcp::Config::default(),
            azure: azure::Config::default(),
            aks: azure::AksConfig::default(),
        }
    }
}

impl Config {
    /// Reads the entry (without the host's keys) and checks it; errors start with the key's
    /// path, so the config diagnostic points at its line.
    /// Sections of detectors trailhead does not build are accepted unread, as the collector
    /// ignores the section of a detector that is not listed.
    pub fn parse(settings: &str) -> Result<Config, String> {
        let mut entry: serde_json::Value =
            serde_json::from_str(settings).map_err(|e| e.to_string())?;
        if let Some(keys) = entry.as_object_mut() {
            keys.retain(|key, _| {
                !NOT_BUILT.contains(&key.as_str()) && !AGENT_SIDE.contains(&key.as_str())
            });
        }
        let config: Config = serde_path_to_error::deserialize(entry).map_err(|e| {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            format!("{}: {message}", key_path(&path, &message))
        })?;
        for (i, name) in config.detectors.iter().enumerate() {
            refusal(name.trim()).map_or(Ok(()), |why| Err(format!("detectors[{i}]: {why}")))?;
        }
        system::check(&config.system)?;
        k8snode::check(&config.k8snode)?;
        // Tag patterns are read (and refused) only for a detector that runs, as the collector
        // compiles them when it creates the detector.
        let listed = |name: &str| config.detectors.iter().any(|d| d.trim() == name);
        ec2::check(&config.ec2, listed("ec2"))?;
        gcp::check(&config.gcp, listed("gcp"))?;
        azure::check(&config.azure, listed("azure"))?;
        azure::check_aks(&config.aks)?;
        Ok(config)
    }
}

/// The path of the key an error is about: serde reports an unknown key at its parent, so
/// its name is appended (`system.hostnme_sources`, not `system`).
fn key_path(path: &str, message: &str) -> String {
    let unknown = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    match unknown {
        Some(name) if path == "." => name.to_string(),
        Some(name) if !path.ends_with(name) => format!("{path}.{name}"),
        _ => path.to_string(),
    }
}

/// Why detector `name` cannot run, if it cannot.
fn refusal(name: &str) -> Option<String> {
    if BUILT.contains(&name) {
        None
    } else if AGENT_SIDE.contains(&name) {
        Some(format!(
            "detector `{name}` is out of trailhead's scope: it reads the container runtime of the node it runs on; run it in an agent that sends OTLP to trailhead"
        ))
    } else if NOT_BUILT.contains(&name) {
        Some(format!(
            "detector `{name}` is not built in trailhead (built: {})",
            BUILT.join(", ")
        ))
    } else {
        Some(format!("invalid detector key: {name}"))
    }
}

/// The `resource` plugin's settings that apply what the entry's detectors find, or `None`
/// when they find nothing.
pub fn resource_settings(settings: &str) -> Result<Option<String>, String> {
    let config = Config::parse(settings)?;
    if !config.refresh_interval.is_zero() {
        tracing::warn!(
            "resourcedetection: refresh_interval is not supported; detection runs when the processor loads (start, and a reload that changes it)"
        );
    }
    let mut detected = detect_within(&config)?;
    if let Some(kept) = &config.attributes {
        detected.retain(|(key, _)| kept.contains(key));
    }
    tracing::info!(detected = ?detected, "resourcedetection: detected resource information");
    if detected.is_empty() {
        return Ok(None);
    }
    Ok(Some(actions(&detected, config.r#override).to_string()))
}

/// Runs the detectors on a thread of their own, waiting at most `timeout` (zero: no limit):
/// a resolver or metadata server that does not answer fails the start instead of hanging it.
/// As in the collector, a failed detection is tried again after 1s, 2s, 4s... while the next
/// try would still start within `timeout` (never with a zero timeout), and the last error is
/// reported.
fn detect_within(config: &Config) -> Result<Detected, String> {
    let config = config.clone();
    let timeout = config.timeout;
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut pause = Duration::from_secs(1);
        let outcome = loop {
            let outcome = detect(&config);
            if outcome.is_ok() || timeout.is_zero() || started.elapsed() + pause >= timeout {
                break outcome;
            }
            std::thread::sleep(pause);
            pause *= 2;
        };
        let _ = send.send(outcome);
    });
    let outcome = if timeout.is_zero() {
        receive.recv().map_err(|e| e.to_string())
    } else {
        receive
            .recv_timeout(timeout)
            .map_err(|_| format!("timeout: resource detection did not finish within {timeout:?}"))
    };
    outcome?
}

/// Every detector at once (as the collector runs them), merged first-wins in the order
/// listed; a failing detector fails detection.
fn detect(config: &Config) -> Result<Detected, String> {
    // A metadata server that never answers must read as "not on this cloud" before
    // detection's own limit reads as a failed start: requests get nine tenths of it.
    let run = cloud::Run {
        fail_on_missing_metadata: config.fail_on_missing_metadata,
        timeout: config.timeout * 9 / 10,
    };
    let outcomes: Vec<Result<Detected, String>> = std::thread::scope(|scope| {
        let running: Vec<_> = config
            .detectors
            .iter()
            .map(|name| scope.spawn(move || detect_one(name.trim(), config, run)))
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err("detector panicked".into()))
            })
            .collect()
    });
    let mut merged: Detected = Vec::new();
    for (name, found) in config.detectors.iter().zip(outcomes) {
        let found = found.map_err(|e| format!("detector `{}` failed: {e}", name.trim()))?;
        for (key, value) in found {
            if !merged.iter().any(|(k, _)| *k == key) {
                merged.push((key, value));
            }
        }
    }
    Ok(merged)
}

fn detect_one(name: &str, config: &Config, run: cloud::Run) -> Result<Detected, String> {
    match name {
        "env" => env::detect(),
        "system" => system::detect(&config.system),
        "k8snode" => k8snode::detect(&config.k8snode),
        "ec2" => ec2::detect(&config.ec2, run),
        "gcp" => gcp::detect(&config.gcp, run),
        "azure" => azure::detect(&config.azure, run),
        "aks" => azure::detect_aks(&config.aks, run),
        other => Err(format!("invalid detector key: {other}")),
    }
}

/// The resource plugin's actions for `detected`: `upsert` overrides what the data has,
/// `insert` only fills keys it lacks.
fn actions(detected: &Detected, override_existing: bool) -> serde_json::Value {
    let action = if override_existing {
        "upsert"
    } else {
        "insert"
    };
    let list: Vec<serde_json::Value> = detected
        .iter()
        .map(|(key, value)| serde_json::json!({"key": key, "value": value, "action": action}))
        .collect();
    serde_json::json!({ "attributes": list })
}

#[cfg(test)]
mod tests;
