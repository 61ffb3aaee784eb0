//! The `gcp` detector: where on Google Cloud trailhead runs, as the collector's gcp detector
//! finds it through GoogleCloudPlatform's detectors/gcp v1.37.0 and
//! cloud.google.com/go/compute/metadata v0.9.0:
//!
//! - the metadata server: `GET http://$GCE_METADATA_HOST/computeMetadata/v1/<suffix>` with
//!   `Metadata-Flavor: Google` (169.254.169.254 without the variable); 404 is "not defined",
//!   5xx, 429, refused and reset connections are tried again (5 times, pausing 50ms doubling:
//!   the mean of the library's random pause), each request within 5s (and the processor's
//!   `timeout`), connecting within 2s;
//! - "on GCE": the variable set, or else the first to answer of `GET http://169.254.169.254`
//!   carrying `Metadata-Flavor: Google` back and `metadata.google.internal.` resolving to
//!   169.254.169.254; not on GCE yields nothing, as in the collector;
//! - the platform from the environment (Bare Metal Solution, Cloud Functions, Cloud Run
//!   services, jobs and worker pools, App Engine) and the metadata server (GKE: Kubernetes
//!   plus a `cluster-location` attribute; GCE: a machine type), with each platform's
//!   attributes; one that cannot be read is left out, or fails detection with the
//!   processor's `fail_on_missing_metadata`.
//!
//! Not built: GKE's `host.type` (the collector asks the Compute Engine API with Google
//! credentials and leaves it out when that fails; trailhead never asks) and `labels` (the same
//! API), refused with why.

use super::Detected;
use super::cloud::{self, Run, Switches};
use super::metadata_http::MetadataClient;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::Duration;

const HOST_VARIABLE: &str = "GCE_METADATA_HOST";
const METADATA_IP: &str = "169.254.169.254";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const RETRIES: u32 = 5;
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The detector's attributes with their default `enabled` (its generated metadata config).
const ATTRIBUTES: &[(&str, bool)] = &[
    ("cloud.account.id", true),
    ("cloud.availability_zone", true),
    ("cloud.platform", true),
    ("cloud.provider", true),
    ("cloud.region", true),
    ("faas.instance", true),
    ("faas.name", true),
    ("faas.version", true),
    ("gcp.cloud_run.job.execution", true),
    ("gcp.cloud_run.job.task_index", true),
    ("gcp.gce.instance.hostname", false),
    ("gcp.gce.instance.name", false),
    ("gcp.gce.instance_group_manager.name", true),
    ("gcp.gce.instance_group_manager.region", true),
    ("gcp.gce.instance_group_manager.zone", true),
    ("host.id", true),
    ("host.name", true),
    ("host.type", true),
    ("k8s.cluster.name", true),
];

/// `gcp:` of a resourcedetection entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Patterns of GCE instance label keys; refused: they need the Compute Engine API.
    pub labels: Vec<String>,
    /// Which attributes to set: `{gcp.gce.instance.name: {enabled: true}}`.
    pub resource_attributes: Switches,
}

/// Checks the section: the collector's attribute names; when the detector runs (`listed`),
/// no labels.
pub fn check(config: &Config, listed: bool) -> Result<(), String> {
    cloud::check_switches("gcp", &config.resource_attributes, ATTRIBUTES)?;
    if !listed {
        return Ok(());
    }
    cloud::patterns("gcp.labels", &config.labels)?;
    if !config.labels.is_empty() {
        return Err("gcp.labels: GCE instance labels are read through the Compute Engine API with Google credentials, which trailhead does not build; the metadata server does not serve them".into());
    }
    Ok(())
}

/// Where the process runs, as the library decides it (its order matters: BMS first).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Platform {
    BareMetalSolution,
    Gke,
    CloudFunctions,
    CloudRun,
    CloudRunJob,
    CloudRunWorkerPool,
    AppEngineStandard,
    AppEngineFlex,
    Gce,
    Unknown,
}

/// The platform's attributes; nothing off Google Cloud.
pub fn detect(config: &Config, run: Run) -> Result<Detected, String> {
    let server = Server::new(run)?;
    let env = |name: &str| std::env::var(name).ok();
    let mut found = Found::default();
    if on_bare_metal_solution(&env) {
        found.set("cloud.provider", Ok("gcp".into()));
        found.set("cloud.account.id", env_value(&env, "BMS_PROJECT_ID"));
        found.set("cloud.platform", Ok("gcp_bare_metal_solution".into()));
        found.set("host.name", env_value(&env, "BMS_INSTANCE_ID"));
        found.set("cloud.region", env_value(&env, "BMS_REGION"));
        return found.finish(config, run);
    }
    if !server.on_gce() {
        return Ok(Vec::new());
    }
    found.set("cloud.provider", Ok("gcp".into()));
    found.set("cloud.account.id", server.trimmed("project/project-id"));
    let platform = platform(&env, &server);
    read_platform(platform, &env, &server, &mut found);
    found.finish(config, run)
}

/// The platform: environment variables first, then what the metadata server has.
pub fn platform(env: &dyn Fn(&str) -> Option<String>, server: &Server) -> Platform {
    let set = |name: &str| env(name).is_some();
    if on_bare_metal_solution(env) {
        Platform::BareMetalSolution
    } else if set("KUBERNETES_SERVICE_HOST")
        && server.get("instance/attributes/cluster-location").is_ok()
    {
        Platform::Gke
    } else if set("FUNCTION_TARGET") {
        Platform::CloudFunctions
    } else if set("K_CONFIGURATION") {
        Platform::CloudRun
    } else if set("CLOUD_RUN_JOB") {
        Platform::CloudRunJob
    } else if set("CLOUD_RUN_WORKER_POOL") {
        Platform::CloudRunWorkerPool
    } else if env("GAE_ENV").as_deref() == Some("standard") {
        Platform::AppEngineStandard
    } else if set("GAE_SERVICE") {
        Platform::AppEngineFlex
    } else if server.get("instance/machine-type").is_ok() {
        Platform::Gce
    } else {
        Platform::Unknown
    }
}

fn on_bare_metal_solution(env: &dyn Fn(&str) -> Option<String>) -> bool {
    ["BMS_PROJECT_ID", "BMS_REGION", "BMS_INSTANCE_ID"]
        .iter()
        .all(|name| env(name).is_some_and(|v| !v.is_empty()))
}

fn env_value(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<String, String> {
    env(name).ok_or_else(|| format!("environment variable not found: {name}"))
}

/// Each platform's attributes, as the collector's detector sets them.
fn read_platform(
    platform: Platform,
    env: &dyn Fn(&str) -> Option<String>,
    server: &Server,
    found: &mut Found,
) {
    let first_env = |names: &[&str]| {
        let value = names.iter().find_map(|name| env(name));
        value.ok_or_else(|| format!("environment variable not found: {}", names.join(", ")))
    };
    let faas_name = || first_env(&["K_SERVICE", "CLOUD_RUN_JOB", "CLOUD_RUN_WORKER_POOL"]);
    let faas_version = || first_env(&["CLOUD_RUN_REVISION", "K_REVISION"]);
    let instance_id = || server.trimmed("instance/id");
    let region = || server.get("instance/region").map(|r| last_segment(&r));
    match platform {
        Platform::Gke => {
            found.set("cloud.platform", Ok("gcp_kubernetes_engine".into()));
            match server.get("instance/attributes/cluster-location") {
                Ok(location) => found.zone_or_region(&location),
                Err(e) => found.errors.push(e),
            }
            found.set(
                "k8s.cluster.name",
                server.get("instance/attributes/cluster-name"),
            );
            found.set("host.id", instance_id());
            // Fallible on GKE (workload identity hides it): left out without an error.
            if let Ok(name) = server.trimmed("instance/name") {
                found.set("host.name", Ok(name));
            }
        }
        Platform::CloudRun | Platform::CloudRunWorkerPool | Platform::CloudFunctions => {
            let name = if platform == Platform::CloudFunctions {
                "gcp_cloud_functions"
            } else {
                "gcp_cloud_run"
            };
            found.set("cloud.platform", Ok(name.into()));
            found.set("faas.name", faas_name());
            found.set("faas.version", faas_version());
            found.set("faas.instance", instance_id());
            found.set("cloud.region", region());
        }
        Platform::CloudRunJob => {
            found.set("cloud.platform", Ok("gcp_cloud_run".into()));
            found.set("faas.name", faas_name());
            found.set("cloud.region", region());
            found.set("faas.instance", instance_id());
            found.set(
                "gcp.cloud_run.job.execution",
                first_env(&["CLOUD_RUN_EXECUTION"]),
            );
            found.set(
                "gcp.cloud_run.job.task_index",
                first_env(&["CLOUD_RUN_TASK_INDEX"]),
            );
        }
        Platform::AppEngineFlex | Platform::AppEngineStandard => {
            found.set("cloud.platform", Ok("gcp_app_engine".into()));
            if platform == Platform::AppEngineFlex {
                found.zone_and_region(server);
            }
            found.set("faas.name", first_env(&["GAE_SERVICE"]));
            found.set("faas.version", first_env(&["GAE_VERSION"]));
            found.set("faas.instance", first_env(&["GAE_INSTANCE"]));
            if platform == Platform::AppEngineStandard {
                found.set("cloud.availability_zone", server.zone());
                found.set("cloud.region", region());
            }
        }
        Platform::Gce => {
            found.set("cloud.platform", Ok("gcp_compute_engine".into()));
            found.zone_and_region(server);
            found.set("host.type", server.get("instance/machine-type"));
            found.set("host.id", instance_id());
            found.set("host.name", server.trimmed("instance/name"));
            found.set(
                "gcp.gce.instance.hostname",
                server.trimmed("instance/hostname"),
            );
            found.set("gcp.gce.instance.name", server.trimmed("instance/name"));
            match server.get("instance/attributes/created-by") {
                Ok(created_by) => found.managed_instance_group(&created_by),
                Err(e) if e.contains("not defined") => {}
                Err(e) => found.errors.push(e),
            }
        }
        Platform::BareMetalSolution | Platform::Unknown => {}
    }
}

/// What was read so far, and what could not be.
#[derive(Default)]
struct Found {
    values: BTreeMap<&'static str, String>,
    errors: Vec<String>,
}

impl Found {
    fn set(&mut self, name: &'static str, value: Result<String, String>) {
        match value {
            Ok(value) => {
                self.values.insert(name, value);
            }
            Err(e) => self.errors.push(e),
        }
    }

    /// GKE's cluster location: a zone (two dashes) gives the zone and its region, a
    /// region (one dash) the region alone.
    fn zone_or_region(&mut self, location: &str) {
        match location.matches('-').count() {
            1 => self.set("cloud.region", Ok(location.into())),
            2 => {
                self.set("cloud.availability_zone", Ok(location.into()));
                let region = location.rsplit_once('-').map_or(location, |(r, _)| r);
                self.set("cloud.region", Ok(region.into()));
            }
            _ => self.errors.push(format!(
                "unrecognized format for cluster location: {location}"
            )),
        }
    }

    /// The instance's zone (`country-region-zone`) and the region it is in.
    fn zone_and_region(&mut self, server: &Server) {
        match server.zone().and_then(|zone| split_zone(&zone)) {
            Ok((zone, region)) => {
                self.set("cloud.availability_zone", Ok(zone));
                self.set("cloud.region", Ok(region));
            }
            Err(e) => self.errors.push(e),
        }
    }

    /// The managed instance group a `created-by` attribute names, if it names one.
    fn managed_instance_group(&mut self, created_by: &str) {
        if let Some((kind, location, name)) = instance_group(created_by) {
            self.set("gcp.gce.instance_group_manager.name", Ok(name));
            let key = if kind == "zones" {
                "gcp.gce.instance_group_manager.zone"
            } else {
                "gcp.gce.instance_group_manager.region"
            };
            self.set(key, Ok(location));
        }
    }

    /// The enabled attributes; with `fail_on_missing_metadata`, any error fails detection.
    fn finish(self, config: &Config, run: Run) -> Result<Detected, String> {
        if !self.errors.is_empty() {
            if run.fail_on_missing_metadata {
                return Err(self.errors.join("; "));
            }
            tracing::debug!(errors = ?self.errors, "gcp: attributes left out");
        }
        Ok(cloud::emit(
            ATTRIBUTES,
            &config.resource_attributes,
            &self.values,
        ))
    }
}

/// `us-central1-a` is zone `us-central1-a` in region `us-central1`.
pub fn split_zone(zone: &str) -> Result<(String, String), String> {
    if zone.is_empty() {
        return Err("no zone detected from GCE metadata server".into());
    }
    let parts: Vec<&str> = zone.splitn(3, '-').collect();
    if parts.len() != 3 {
        return Err(format!(
            "zone was not in the expected format: country-region-zone.  Got {zone}"
        ));
    }
    Ok((zone.to_string(), parts[..2].join("-")))
}

/// `projects/P/(zones|regions)/L/instanceGroupManagers/N`: (kind, location, name).
pub fn instance_group(created_by: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = created_by.split('/').collect();
    match parts.as_slice() {
        [
            "projects",
            project,
            kind @ ("zones" | "regions"),
            location,
            "instanceGroupManagers",
            name,
        ] if [project, location, name].iter().all(|p| !p.is_empty()) => {
            Some((kind.to_string(), location.to_string(), name.to_string()))
        }
        _ => None,
    }
}

fn last_segment(text: &str) -> String {
    text.rsplit('/').next().unwrap_or_default().to_string()
}

/// The metadata server, as the compute/metadata library asks it.
pub struct Server {
    client: MetadataClient,
    host: Option<String>,
}

impl Server {
    fn new(run: Run) -> Result<Self, String> {
        let timeout = cloud::request_timeout(REQUEST_TIMEOUT, run);
        let host = std::env::var(HOST_VARIABLE).ok().filter(|h| !h.is_empty());
        Ok(Server {
            client: MetadataClient::new(CONNECT_TIMEOUT, timeout)?,
            host,
        })
    }

    /// The library's OnGCE: trust the variable; else the first of the two probes to answer.
    fn on_gce(&self) -> bool {
        if self.host.is_some() {
            return true;
        }
        let (send, receive) = mpsc::channel();
        let dns = send.clone();
        std::thread::spawn(move || {
            let resolved = dns_lookup::lookup_host("metadata.google.internal.");
            let metadata_ip = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));
            let _ = dns.send(resolved.is_ok_and(|ips| ips.contains(&metadata_ip)));
        });
        std::thread::spawn(move || {
            let client = MetadataClient::new(CONNECT_TIMEOUT, REQUEST_TIMEOUT);
            let probe = client
                .and_then(|c| c.send(http::Method::GET, &format!("http://{METADATA_IP}"), &[]));
            let flavored = probe.is_ok_and(|answer| {
                answer
                    .headers
                    .get("metadata-flavor")
                    .is_some_and(|v| v == "Google")
            });
            let _ = send.send(flavored);
        });
        receive.recv().unwrap_or(false)
    }

    /// The value at `suffix`; a 404 is "not defined", another status other than 200 an
    /// error; retried on 5xx, 429 and refused or reset connections.
    pub fn get(&self, suffix: &str) -> Result<String, String> {
        let host = self.host.as_deref().unwrap_or(METADATA_IP);
        let url = format!(
            "http://{host}/computeMetadata/v1/{}",
            suffix.trim_start_matches('/')
        );
        let headers = [("Metadata-Flavor", "Google")];
        let mut pause = FIRST_PAUSE;
        let mut retries = 0;
        loop {
            let outcome = self.client.send(http::Method::GET, &url, &headers);
            let retryable = match &outcome {
                Ok(answer) => answer.status == 429 || (500..=599).contains(&answer.status),
                Err(e) => e.contains("refused") || e.contains("reset"),
            };
            if !retryable || retries == RETRIES {
                let answer = outcome?;
                return match answer.status {
                    200 => Ok(answer.body),
                    404 => Err(format!("metadata: GCE metadata {suffix:?} not defined")),
                    status => Err(format!(
                        "metadata: GCE metadata {suffix:?} returned status {status} ({})",
                        answer.body.trim()
                    )),
                };
            }
            retries += 1;
            std::thread::sleep(pause);
            pause *= 2;
        }
    }

    fn trimmed(&self, suffix: &str) -> Result<String, String> {
        self.get(suffix).map(|v| v.trim().to_string())
    }

    /// The zone's name: the last segment of `projects/N/zones/Z`.
    fn zone(&self) -> Result<String, String> {
        self.trimmed("instance/zone").map(|z| last_segment(&z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Zones split as the library splits them; anything else is its error.
    #[test]
    fn zones_and_regions() {
        let split = split_zone("us-central1-a").unwrap();
        assert_eq!(split, ("us-central1-a".into(), "us-central1".into()));
        assert!(
            split_zone("us-central1")
                .unwrap_err()
                .contains("country-region-zone")
        );
        assert!(split_zone("").is_err());
        let mut found = Found::default();
        found.zone_or_region("europe-west1");
        assert_eq!(found.values["cloud.region"], "europe-west1");
        found.zone_or_region("europe-west1-b");
        assert_eq!(found.values["cloud.availability_zone"], "europe-west1-b");
        found.zone_or_region("nowhere");
        assert_eq!(found.errors.len(), 1);
    }

    // A `created-by` naming a zonal or regional group gives it; any other creator, nothing.
    #[test]
    fn managed_instance_groups() {
        let zonal = instance_group("projects/123/zones/us-east1-b/instanceGroupManagers/web");
        assert_eq!(
            zonal,
            Some(("zones".into(), "us-east1-b".into(), "web".into()))
        );
        let regional = instance_group("projects/p/regions/us-east1/instanceGroupManagers/api");
        assert_eq!(regional.unwrap().0, "regions");
        assert_eq!(instance_group("projects/p/zones/z/instances/x"), None);
        assert_eq!(
            instance_group("projects/p/zones/z/instanceGroupManagers/a/b"),
            None
        );
    }

    // Labels are refused with why; an unknown attribute name too.
    #[test]
    fn labels_and_unknown_attributes_are_refused() {
        let config = Config {
            labels: vec!["env".into()],
            ..Config::default()
        };
        assert!(
            check(&config, true)
                .unwrap_err()
                .starts_with("gcp.labels: GCE instance labels")
        );
        let yaml = "{resource_attributes: {gcp.gce.nmae: {enabled: true}}}";
        let config: Config = serde_saphyr::from_str(yaml).unwrap();
        assert!(
            check(&config, false)
                .unwrap_err()
                .contains("has invalid keys: gcp.gce.nmae")
        );
    }
}
