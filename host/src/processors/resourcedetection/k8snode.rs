//! The `k8snode` detector: the node trailhead runs on, named by an environment variable (the
//! downward API's `spec.nodeName`), and its UID from the API server, as the collector's
//! k8snode detector reads them.

use super::Detected;
use super::system::Switch;
use crate::kubernetes::{AuthType, node};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The attributes the collector's k8snode detector has; both are on by default.
const ATTRIBUTES: &[&str] = &["k8s.node.name", "k8s.node.uid"];

/// `k8snode:` of a resourcedetection entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How to reach the API server: `serviceAccount` (default), `kubeConfig`, `none`.
    pub auth_type: AuthType,
    /// The variable holding the node's name (default K8S_NODE_NAME).
    pub node_from_env_var: String,
    /// Which attributes to set: `{k8s.node.uid: {enabled: false}}`.
    pub resource_attributes: BTreeMap<String, Switch>,
}

impl Config {
    fn enabled(&self, name: &str) -> bool {
        self.resource_attributes.get(name).is_none_or(|s| s.enabled)
    }

    fn variable(&self) -> &str {
        match self.node_from_env_var.as_str() {
            "" => "K8S_NODE_NAME",
            name => name,
        }
    }
}

/// Checks the section: only the collector's attribute names.
pub fn check(config: &Config) -> Result<(), String> {
    match config
        .resource_attributes
        .keys()
        .find(|name| !ATTRIBUTES.contains(&name.as_str()))
    {
        Some(name) => Err(format!(
            "k8snode.resource_attributes: has invalid keys: {name}"
        )),
        None => Ok(()),
    }
}

/// The node's name and UID. Fails, as the collector does, when the variable is unset or
/// empty, or the API server does not answer with the node.
pub fn detect(config: &Config) -> Result<Detected, String> {
    let name = std::env::var(config.variable()).unwrap_or_default();
    if name.is_empty() {
        return Err(
            "node name can't be found. Check the readme on how to set the required env variable"
                .into(),
        );
    }
    let mut detected: Detected = Vec::new();
    if config.enabled("k8s.node.uid") {
        // Detection runs on a thread of its own (see `detect_within`), so it has its own
        // runtime for the one request.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let uid = runtime
            .block_on(node::node_uid(config.auth_type, &name))
            .map_err(|e| format!("failed getting k8s node UID: {e}"))?;
        detected.push(("k8s.node.uid".to_string(), uid));
    }
    if config.enabled("k8s.node.name") {
        detected.push(("k8s.node.name".to_string(), name));
    }
    Ok(detected)
}
