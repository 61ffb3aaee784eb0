//! The `ec2` detector: the instance trailhead runs on, from the EC2 instance metadata service
//! (IMDS) as the collector's ec2 detector reads it through the AWS SDK's IMDS client
//! (aws-sdk-go-v2 feature/ec2/imds v1.19.2):
//!
//! - IMDSv2: a `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds: 300`,
//!   whose answer (and its TTL header) gives the token every `GET` then carries as
//!   `x-aws-ec2-metadata-token`; a `401` fetches a new token and asks again. A token refused
//!   with 403, 404 or 405 falls back to IMDSv1 (no token), unless
//!   `AWS_EC2_METADATA_V1_DISABLED=true`; a 400 is an error.
//! - the SDK's variables: `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the endpoint),
//!   `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`, `AWS_EC2_METADATA_DISABLED=true`.
//! - its limits: connect within 250ms, each operation within 5s (and the processor's
//!   `timeout`), up to `max_attempts` tries on connection failures and 5xx answers, pausing
//!   half of min(`max_backoff`, 1s) between them (the SDK draws a random pause below that cap).
//!
//! The instance id answering is what says "on EC2": when it does not, the detector yields
//! nothing (or fails with the processor's `fail_on_missing_metadata`). Tags are read from
//! IMDS (`tags_from_imds: true`); the collector's default, the EC2 DescribeTags API, needs
//! AWS credentials and SigV4 signing, which trailhead does not build, so it is refused.

use super::Detected;
use super::cloud::{self, Run, Switches, string_field};
use super::metadata_http::{Answer, MetadataClient};
use crate::config::values;
use http::Method;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The SDK's variables and defaults.
const ENDPOINT_VARIABLE: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
const ENDPOINT_MODE_VARIABLE: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE";
const DISABLED_VARIABLE: &str = "AWS_EC2_METADATA_DISABLED";
const V1_DISABLED_VARIABLE: &str = "AWS_EC2_METADATA_V1_DISABLED";
const IPV4_ENDPOINT: &str = "http://169.254.169.254";
const IPV6_ENDPOINT: &str = "http://[fd00:ec2::254]";
const TOKEN_TTL_SECONDS: &str = "300";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// The IMDS client caps the retryer's pause at 1s whatever `max_backoff` says.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The detector's attributes with their default `enabled` (its generated metadata config).
const ATTRIBUTES: &[(&str, bool)] = &[
    ("cloud.account.id", true),
    ("cloud.availability_zone", true),
    ("cloud.platform", true),
    ("cloud.provider", true),
    ("cloud.region", true),
    ("host.id", true),
    ("host.image.id", true),
    ("host.name", true),
    ("host.type", true),
];

/// `ec2:` of a resourcedetection entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Patterns of instance tag keys to add as `ec2.tag.<key>`; needs `tags_from_imds: true`.
    pub tags: Vec<String>,
    /// Which attributes to set: `{host.name: {enabled: false}}`.
    pub resource_attributes: Switches,
    /// Tries per metadata request (zero or less: the SDK's default, 3).
    pub max_attempts: i64,
    /// The longest pause between tries (default 20s; the IMDS client caps it at 1s).
    #[serde(deserialize_with = "values::duration")]
    pub max_backoff: Duration,
    /// Deprecated: the processor's `fail_on_missing_metadata`, for this detector alone.
    pub fail_on_missing_metadata: bool,
    /// Read tags from IMDS (needs InstanceMetadataTags=enabled on the instance).
    pub tags_from_imds: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tags: Vec::new(),
            resource_attributes: Switches::new(),
            max_attempts: 3,
            max_backoff: Duration::from_secs(20),
            fail_on_missing_metadata: false,
            tags_from_imds: false,
        }
    }
}

/// Checks the section: the collector's attribute names; when the detector runs (`listed`),
/// patterns that compile, and tags only from IMDS.
pub fn check(config: &Config, listed: bool) -> Result<(), String> {
    cloud::check_switches("ec2", &config.resource_attributes, ATTRIBUTES)?;
    if !listed {
        return Ok(());
    }
    cloud::patterns("ec2.tags", &config.tags)?;
    if !config.tags.is_empty() && !config.tags_from_imds {
        return Err("ec2.tags: reading tags through the EC2 DescribeTags API needs AWS credentials and request signing, which trailhead does not build; set `ec2.tags_from_imds: true` to read them from the instance metadata (the instance needs InstanceMetadataTags=enabled)".into());
    }
    Ok(())
}

/// The instance's attributes, then its matching tags.
pub fn detect(config: &Config, run: Run) -> Result<Detected, String> {
    let patterns = cloud::patterns("ec2.tags", &config.tags)?;
    let imds = Imds::new(config, run)?;
    if let Err(e) = imds.metadata("instance-id") {
        if run.fail_on_missing_metadata || config.fail_on_missing_metadata {
            return Err(e);
        }
        tracing::debug!(error = %e, "EC2 metadata unavailable");
        return Ok(Vec::new());
    }
    let document = imds
        .get("/latest/dynamic/instance-identity/document")
        .map_err(|e| format!("failed to get instance identity document: {e}"))
        .and_then(|text| parse_identity(&text))
        .map_err(|e| format!("failed getting identity document: {e}"))?;
    let hostname = imds
        .metadata("hostname")
        .map_err(|e| format!("failed getting hostname: {e}"))?;
    let mut detected = attributes(&document, hostname, &config.resource_attributes);
    if !patterns.is_empty() {
        let (tags, errors) = tags(&imds, &patterns);
        if !errors.is_empty() {
            tracing::warn!(errors = ?errors, "failed to fetch tags from IMDS");
        }
        detected.extend(cloud::matching_tags("ec2.tag.", &patterns, &tags));
    }
    Ok(detected)
}

/// The identity document's fields the detector reads.
#[derive(Debug, Default, PartialEq)]
pub struct Identity {
    pub account_id: String,
    pub availability_zone: String,
    pub image_id: String,
    pub instance_id: String,
    pub instance_type: String,
    pub region: String,
}

/// Decodes the identity document as the SDK does (Go's encoding/json).
pub fn parse_identity(text: &str) -> Result<Identity, String> {
    let document: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !document.is_object() {
        let kind = cloud::kind(&document);
        return Err(format!("expected a JSON object, got {kind}"));
    }
    let field = |name| string_field(&document, name);
    Ok(Identity {
        account_id: field("accountId")?,
        availability_zone: field("availabilityZone")?,
        image_id: field("imageId")?,
        instance_id: field("instanceId")?,
        instance_type: field("instanceType")?,
        region: field("region")?,
    })
}

fn attributes(document: &Identity, hostname: String, switches: &Switches) -> Detected {
    let found: BTreeMap<&str, String> = [
        ("cloud.provider", "aws".to_string()),
        ("cloud.platform", "aws_ec2".to_string()),
        ("cloud.region", document.region.clone()),
        ("cloud.account.id", document.account_id.clone()),
        (
            "cloud.availability_zone",
            document.availability_zone.clone(),
        ),
        ("host.id", document.instance_id.clone()),
        ("host.image.id", document.image_id.clone()),
        ("host.type", document.instance_type.clone()),
        ("host.name", hostname),
    ]
    .into();
    cloud::emit(ATTRIBUTES, switches, &found)
}

/// The tags whose keys match, and the errors reading the others' values (which, as in
/// the collector, leave those tags out without failing detection).
fn tags(imds: &Imds, patterns: &[Regex]) -> (Vec<(String, String)>, Vec<String>) {
    let keys = match imds.metadata("tags/instance") {
        Ok(list) => list_keys(&list),
        Err(e) => {
            return (
                Vec::new(),
                vec![format!("failed to list tag keys from IMDS: {e}")],
            );
        }
    };
    let (mut tags, mut errors) = (Vec::new(), Vec::new());
    for key in keys
        .into_iter()
        .filter(|k| patterns.iter().any(|p| p.is_match(k)))
    {
        match imds.metadata(&format!("tags/instance/{key}")) {
            Ok(value) => tags.push((key, value)),
            Err(e) => errors.push(format!("failed to get tag value for key {key:?}: {e}")),
        }
    }
    (tags, errors)
}

/// IMDS lists tag keys one a line.
pub fn list_keys(text: &str) -> Vec<String> {
    let keys = text.split('\n').map(str::trim).filter(|k| !k.is_empty());
    keys.map(str::to_string).collect()
}

/// One detection's IMDS client: its endpoint, retry policy and token.
struct Imds {
    client: MetadataClient,
    endpoint: String,
    disabled: bool,
    v1_fallback: bool,
    attempts: i64,
    pause: Duration,
    token: std::cell::RefCell<Option<String>>,
}

impl Imds {
    fn new(config: &Config, run: Run) -> Result<Self, String> {
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = match std::env::var(ENDPOINT_VARIABLE).unwrap_or_default() {
            given if !given.is_empty() => given,
            _ if std::env::var(ENDPOINT_MODE_VARIABLE).is_ok_and(|m| m == "IPv6") => {
                IPV6_ENDPOINT.into()
            }
            _ => IPV4_ENDPOINT.into(),
        };
        let timeout = cloud::request_timeout(OPERATION_TIMEOUT, run);
        Ok(Imds {
            client: MetadataClient::new(CONNECT_TIMEOUT, timeout)?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            disabled: flag(DISABLED_VARIABLE),
            v1_fallback: !flag(V1_DISABLED_VARIABLE),
            attempts: if config.max_attempts <= 0 {
                3
            } else {
                config.max_attempts
            },
            pause: config.max_backoff.min(MAX_PAUSE) / 2,
            token: Default::default(),
        })
    }

    /// `/latest/meta-data/<path>`, as the collector's provider asks it.
    fn metadata(&self, path: &str) -> Result<String, String> {
        self.get(&format!("/latest/meta-data/{path}"))
            .map_err(|e| format!("failed to get {path} from IMDS: {e}"))
    }

    /// The body of a 200 answer to `GET path`, with a token when IMDS gives one; a 401
    /// (token expired or refused) fetches a new one and asks once more.
    fn get(&self, path: &str) -> Result<String, String> {
        if self.disabled {
            return Err(format!(
                "access disabled to EC2 IMDS via client option, or \"{DISABLED_VARIABLE}\" environment variable"
            ));
        }
        let mut answer = self.get_with_token(path)?;
        if answer.status == 401 {
            self.token.replace(None);
            answer = self.get_with_token(path)?;
        }
        match answer.status {
            200 => Ok(answer.body),
            status => Err(format!("HTTP {status}: {}", answer.body.trim())),
        }
    }

    fn get_with_token(&self, path: &str) -> Result<Answer, String> {
        let token = self.token()?;
        let headers: Vec<(&str, &str)> = match &token {
            Some(token) => vec![("x-aws-ec2-metadata-token", token.as_str())],
            None => Vec::new(),
        };
        self.send(Method::GET, path, &headers)
    }

    /// The cached token, or a new one; `None` means IMDSv1 (the token was refused with
    /// 403, 404 or 405, or IMDS did not answer, and fallback is allowed).
    fn token(&self) -> Result<Option<String>, String> {
        if let Some(token) = self.token.borrow().clone() {
            return Ok(Some(token));
        }
        let ttl = [("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECONDS)];
        let fallback = |why: String| match self.v1_fallback {
            true => Ok(None),
            false => Err(format!("failed to get API token, {why}")),
        };
        let answer = match self.send(Method::PUT, "/latest/api/token", &ttl) {
            Ok(answer) => answer,
            Err(e) => return fallback(e),
        };
        match answer.status {
            200 => {
                let ttl = answer.headers.get("x-aws-ec2-metadata-token-ttl-seconds");
                let ttl = ttl.and_then(|v| v.to_str().ok()).unwrap_or_default();
                ttl.parse::<i64>().map_err(|e| {
                    format!("failed to get API token, failed to parse API token TTL {ttl:?}: {e}")
                })?;
                self.token.replace(Some(answer.body.clone()));
                Ok(Some(answer.body))
            }
            400 => Err(format!(
                "failed to get API token, HTTP 400: {}",
                answer.body.trim()
            )),
            status => fallback(format!("HTTP {status}")),
        }
    }

    /// One operation: tried again on connection failures and 5xx answers, up to the
    /// attempts allowed.
    fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Result<Answer, String> {
        let url = format!("{}{path}", self.endpoint);
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = self.client.send(method.clone(), &url, headers);
            let retryable = match &outcome {
                Ok(answer) => matches!(answer.status, 500 | 502 | 503 | 504),
                Err(_) => true,
            };
            if !retryable || tries >= self.attempts {
                return outcome;
            }
            std::thread::sleep(self.pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The identity document as IMDS writes it: the detector's fields, others ignored.
    #[test]
    fn identity_document_fields() {
        let text = r#"{"accountId": "123456789012", "architecture": "x86_64",
            "availabilityZone": "eu-west-1a", "imageId": "ami-1", "instanceId": "i-1",
            "instanceType": "t3.micro", "privateIp": "10.0.0.1", "region": "eu-west-1",
            "version": "2017-09-30"}"#;
        let document = parse_identity(text).unwrap();
        assert_eq!(document.account_id, "123456789012");
        assert_eq!(document.availability_zone, "eu-west-1a");
        let switches: Switches = [(
            "host.image.id".to_string(),
            super::super::system::Switch { enabled: false },
        )]
        .into();
        let detected = attributes(&document, "ip-10-0-0-1.ec2.internal".into(), &switches);
        let names: Vec<&str> = detected.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "cloud.account.id",
                "cloud.availability_zone",
                "cloud.platform",
                "cloud.provider",
                "cloud.region",
                "host.id",
                "host.name",
                "host.type"
            ]
        );
        assert!(detected.contains(&("cloud.platform".into(), "aws_ec2".into())));
        assert!(parse_identity(r#"{"region": 1}"#).is_err());
        assert!(parse_identity("null").is_err());
    }

    // Tag keys one a line, blank lines and spaces dropped.
    #[test]
    fn tag_keys_are_listed_one_a_line() {
        assert_eq!(list_keys("Name\n env \n\nteam\n"), ["Name", "env", "team"]);
        assert!(list_keys("").is_empty());
    }

    // Tags through the DescribeTags API are refused with why; from IMDS they are accepted.
    #[test]
    fn tags_need_imds() {
        let mut config = Config {
            tags: vec!["^env$".into()],
            ..Config::default()
        };
        let error = check(&config, true).unwrap_err();
        assert!(
            error.starts_with("ec2.tags: reading tags through the EC2 DescribeTags API"),
            "{error}"
        );
        config.tags_from_imds = true;
        assert!(check(&config, true).is_ok());
        config.tags_from_imds = false;
        assert!(check(&config, false).is_ok());
    }
}
