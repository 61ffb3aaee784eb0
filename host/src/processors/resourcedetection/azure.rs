//! The `azure` detector: the VM trailhead runs on, from the Azure Instance Metadata Service
//! as the collector's azure provider asks it (contrib v0.161.0,
//! internal/metadataproviders/azure): one `GET /metadata/instance/compute?api-version=2020-09-01&format=json`
//! with `Metadata: true`, decoded as Go's encoding/json decodes it (field names matched
//! case-insensitively, unknown fields ignored, `null` as empty).
//!
//! The `aks` detector asks the same document when Kubernetes is in the environment
//! (`KUBERNETES_SERVICE_HOST`), and names the cluster from the node resource group
//! (`MC_<group>_<cluster>_<location>`).
//!
//! The collector's provider has a fixed endpoint, `http://169.254.169.254`; tests (and only
//! they, in practice) point trailhead elsewhere with `TRAILHEAD_AZURE_METADATA_ENDPOINT`,
//! a trailhead-only variable.

use super::Detected;
use super::cloud::{self, Run, Switches, kind, string_field};
use super::metadata_http::MetadataClient;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The IMDS address, and the trailhead-only variable that replaces it.
const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
pub const ENDPOINT_VARIABLE: &str = "TRAILHEAD_AZURE_METADATA_ENDPOINT";
/// The path and query the collector's provider asks (Go encodes the query sorted by key).
const COMPUTE: &str = "/metadata/instance/compute?api-version=2020-09-01&format=json";
/// Go's default dialer gives up connecting after 30s; the request has no limit of its own
/// but the processor's `timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The detector's attributes with their default `enabled` (its generated metadata config).
const ATTRIBUTES: &[(&str, bool)] = &[
    ("azure.resourcegroup.name", true),
    ("azure.vm.name", true),
    ("azure.vm.scaleset.name", true),
    ("azure.vm.size", true),
    ("cloud.account.id", true),
    ("cloud.availability_zone", false),
    ("cloud.platform", true),
    ("cloud.provider", true),
    ("cloud.region", true),
    ("host.id", true),
    ("host.name", true),
];

/// `azure:` of a resourcedetection entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Patterns of VM tag names to add as `azure.tag.<name>` attributes.
    pub tags: Vec<String>,
    /// Which attributes to set: `{cloud.availability_zone: {enabled: true}}`.
    pub resource_attributes: Switches,
}

/// The aks detector's attributes with their default `enabled`.
const AKS_ATTRIBUTES: &[(&str, bool)] = &[
    ("cloud.platform", true),
    ("cloud.provider", true),
    ("k8s.cluster.name", false),
];

/// `aks:` of a resourcedetection entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AksConfig {
    /// Which attributes to set: `{k8s.cluster.name: {enabled: true}}`.
    pub resource_attributes: Switches,
}

/// Checks the aks section: the collector's attribute names.
pub fn check_aks(config: &AksConfig) -> Result<(), String> {
    cloud::check_switches("aks", &config.resource_attributes, AKS_ATTRIBUTES)
}

/// The AKS cluster: nothing off Kubernetes, or when IMDS does not answer (unless the
/// processor's `fail_on_missing_metadata` is set).
pub fn detect_aks(config: &AksConfig, run: Run) -> Result<Detected, String> {
    if std::env::var("KUBERNETES_SERVICE_HOST")
        .unwrap_or_default()
        .is_empty()
    {
        return Ok(Vec::new());
    }
    let compute = match fetch(run) {
        Ok(compute) => compute,
        Err(e) if run.fail_on_missing_metadata => {
            return Err(format!("aks metadata unavailable: {e}"));
        }
        Err(_) => return Ok(Vec::new()),
    };
    let found: BTreeMap<&str, String> = [
        ("cloud.provider", "azure".to_string()),
        ("cloud.platform", "azure.aks".to_string()),
        (
            "k8s.cluster.name",
            cluster_name(&compute.resource_group_name),
        ),
    ]
    .into();
    Ok(cloud::emit(
        AKS_ATTRIBUTES,
        &config.resource_attributes,
        &found,
    ))
}

/// AKS puts nodes in `MC_<resource group>_<cluster>_<location>`: the cluster is the third
/// part; any other group name is taken whole.
pub fn cluster_name(resource_group: &str) -> String {
    let parts: Vec<&str> = resource_group.split('_').collect();
    if parts.len() == 4 && parts[0].eq_ignore_ascii_case("mc") {
        return parts[2].to_string();
    }
    resource_group.to_string()
}

/// Checks the section: the collector's attribute names; when the detector runs (`listed`),
/// patterns that compile.
pub fn check(config: &Config, listed: bool) -> Result<(), String> {
    cloud::check_switches("azure", &config.resource_attributes, ATTRIBUTES)?;
    match listed {
        true => cloud::patterns("azure.tags", &config.tags).map(|_| ()),
        false => Ok(()),
    }
}

/// The VM's attributes; nothing when IMDS does not answer 200 (not on Azure), unless the
/// processor's `fail_on_missing_metadata` is set.
pub fn detect(config: &Config, run: Run) -> Result<Detected, String> {
    let patterns = cloud::patterns("azure.tags", &config.tags)?;
    let compute = match fetch(run) {
        Ok(compute) => compute,
        Err(e) if run.fail_on_missing_metadata => {
            return Err(format!("azure metadata unavailable: {e}"));
        }
        Err(e) => {
            tracing::debug!(error = %e, "Azure detector metadata retrieval failed");
            return Ok(Vec::new());
        }
    };
    let mut detected = attributes(&compute, &config.resource_attributes);
    if !patterns.is_empty() {
        detected.extend(cloud::matching_tags("azure.tag.", &patterns, &compute.tags));
    }
    Ok(detected)
}

/// The compute document, or why there is none.
fn fetch(run: Run) -> Result<Compute, String> {
    let endpoint = std::env::var(ENDPOINT_VARIABLE).unwrap_or_default();
    let endpoint = match endpoint.trim_end_matches('/') {
        "" => DEFAULT_ENDPOINT,
        given => given,
    };
    let client = MetadataClient::new(CONNECT_TIMEOUT, run.timeout)?;
    let url = format!("{endpoint}{COMPUTE}");
    let answer = client
        .send(http::Method::GET, &url, &[("Metadata", "true")])
        .map_err(|e| format!("failed to query Azure IMDS: {e}"))?;
    if answer.status != 200 {
        let reason = http::StatusCode::from_u16(answer.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or_default();
        return Err(format!(
            "Azure IMDS replied with status code: {} {reason}",
            answer.status
        ));
    }
    parse(&answer.body).map_err(|e| format!("failed to decode Azure IMDS reply: {e}"))
}

/// The fields of the compute document the detector reads.
#[derive(Debug, Default, PartialEq)]
pub struct Compute {
    pub location: String,
    pub name: String,
    pub vm_id: String,
    pub vm_size: String,
    pub subscription_id: String,
    pub resource_group_name: String,
    pub vm_scale_set_name: String,
    pub zone: String,
    pub computer_name: String,
    pub tags: Vec<(String, String)>,
}

/// Decodes the compute document as Go decodes it into the provider's struct.
pub fn parse(body: &str) -> Result<Compute, String> {
    let document: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let Value::Object(_) = document else {
        return Err(format!("expected a JSON object, got {}", kind(&document)));
    };
    let text = |name: &str| string_field(&document, name);
    let os_profile = cloud::field(&document, "osProfile");
    let mut tags = Vec::new();
    match cloud::field(&document, "tagsList") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for tag in list {
                tags.push((string_field(tag, "name")?, string_field(tag, "value")?));
            }
        }
        Some(other) => return Err(format!("tagsList: expected an array, got {}", kind(other))),
    }
    Ok(Compute {
        location: text("location")?,
        name: text("name")?,
        vm_id: text("vmID")?,
        vm_size: text("vmSize")?,
        subscription_id: text("subscriptionID")?,
        resource_group_name: text("resourceGroupName")?,
        vm_scale_set_name: text("vmScaleSetName")?,
        zone: text("zone")?,
        computer_name: match os_profile {
            Some(profile @ Value::Object(_)) => string_field(profile, "computerName")?,
            None | Some(Value::Null) => String::new(),
            Some(other) => {
                return Err(format!(
                    "osProfile: expected an object, got {}",
                    kind(other)
                ));
            }
        },
        tags,
    })
}

/// The detector's attributes from the document: host.name is the OS's computer name, the
/// VM's name where that is empty; zone and scale set only when the VM has them.
fn attributes(compute: &Compute, switches: &Switches) -> Detected {
    let mut found: BTreeMap<&str, String> = BTreeMap::new();
    found.insert("cloud.provider", "azure".into());
    found.insert("cloud.platform", "azure.vm".into());
    let host_name = [&compute.computer_name, &compute.name]
        .into_iter()
        .find(|name| !name.is_empty());
    if let Some(name) = host_name {
        found.insert("host.name", name.clone());
    }
    found.insert("cloud.region", compute.location.clone());
    found.insert("host.id", compute.vm_id.clone());
    found.insert("cloud.account.id", compute.subscription_id.clone());
    if !compute.zone.is_empty() {
        found.insert("cloud.availability_zone", compute.zone.clone());
    }
    found.insert("azure.vm.name", compute.name.clone());
    found.insert("azure.vm.size", compute.vm_size.clone());
    if !compute.vm_scale_set_name.is_empty() {
        found.insert("azure.vm.scaleset.name", compute.vm_scale_set_name.clone());
    }
    found.insert(
        "azure.resourcegroup.name",
        compute.resource_group_name.clone(),
    );
    cloud::emit(ATTRIBUTES, switches, &found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compute document as IMDS writes it (api-version 2020-09-01), trimmed.
    const DOCUMENT: &str = r#"{"azEnvironment": "AzurePublicCloud", "location": "westeurope",
        "name": "vm-1", "osProfile": {"adminUsername": "a", "computerName": "host-1"},
        "resourceGroupName": "rg", "subscriptionId": "sub-1", "vmId": "id-1",
        "vmScaleSetName": "", "vmSize": "Standard_D2s_v3", "zone": "2",
        "tagsList": [{"name": "env", "value": "prod"}, {"name": "team", "value": "obs"}]}"#;

    // IMDS's field names (`vmId`, `subscriptionId`) reach the provider's (`vmID`) as Go's
    // case-insensitive match takes them; unknown fields are ignored.
    #[test]
    fn the_document_is_read_as_go_reads_it() {
        let compute = parse(DOCUMENT).unwrap();
        assert_eq!(compute.vm_id, "id-1");
        assert_eq!(compute.subscription_id, "sub-1");
        assert_eq!(compute.computer_name, "host-1");
        assert_eq!(compute.tags[1], ("team".to_string(), "obs".to_string()));
        let detected: BTreeMap<String, String> =
            attributes(&compute, &Switches::new()).into_iter().collect();
        assert_eq!(detected["host.name"], "host-1");
        assert_eq!(detected["cloud.platform"], "azure.vm");
        // Off by default; an empty scale set name is left out.
        assert!(!detected.contains_key("cloud.availability_zone"));
        assert!(!detected.contains_key("azure.vm.scaleset.name"));
        assert_eq!(detected.len(), 9, "{detected:?}");
    }

    // Without a computer name host.name is the VM's name; null members are empty.
    #[test]
    fn host_name_falls_back_to_the_vm_name() {
        let compute = parse(r#"{"name": "vm-2", "osProfile": null, "tagsList": null}"#).unwrap();
        let detected = attributes(&compute, &Switches::new());
        assert!(detected.contains(&("host.name".to_string(), "vm-2".to_string())));
    }

    // The node resource group names the cluster; another group is taken whole.
    #[test]
    fn aks_cluster_names() {
        assert_eq!(cluster_name("MC_rg-obs_prod-aks_westeurope"), "prod-aks");
        assert_eq!(cluster_name("mc_a_b_c"), "b");
        assert_eq!(cluster_name("MC_a_b"), "MC_a_b");
        assert_eq!(cluster_name("rg"), "rg");
    }

    // A member of the wrong type, or a document that is no object, is a decoding error.
    #[test]
    fn wrong_types_are_refused() {
        for (body, want) in [
            (r#"{"name": 5}"#, "cannot unmarshal number into field name"),
            (r#"{"tagsList": {}}"#, "tagsList: expected an array"),
            ("[]", "expected a JSON object, got array"),
            ("{", "EOF"),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains(want), "{body}: {error}");
        }
    }
}
