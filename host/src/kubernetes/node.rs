//! One node's metadata read once from the API server (no watch, no cache): what the
//! `resourcedetection` processor's `k8snode` detector asks at start.

use super::AuthType;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

/// The UID of node `name`, as the API server has it.
pub async fn node_uid(auth: AuthType, name: &str) -> Result<String, String> {
    let client = super::watch::client(auth).await?;
    let node = Api::<Node>::all(client)
        .get_metadata(name)
        .await
        .map_err(|e| format!("failed to fetch node with name {name} from K8s API: {e}"))?;
    node.metadata
        .uid
        .ok_or_else(|| format!("node {name} has no uid"))
}
