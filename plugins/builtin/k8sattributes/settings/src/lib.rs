//! The k8sattributes processor's settings, in the collector processor's shape, written once
//! for both of their readers: the plugin, which extracts what they ask for, and the host,
//! whose one Kubernetes cache watches and keeps what they need (`auth_type`, `filter`,
//! `wait_for_metadata*`, and the objects and keys `extract` reads).
//!
//! Errors start with a dotted path into the processor's config (`extract.labels[1]: …`),
//! which the host turns into a line of the config file.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The attributes written when `extract.metadata` is not given (the collector's defaults).
pub const DEFAULT_METADATA: [&str; 6] = [
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.pod.start_time",
    "k8s.deployment.name",
    "k8s.node.name",
];

/// Every attribute `extract.metadata` may ask for.
pub const METADATA: [&str; 22] = [
    "k8s.namespace.name",
    "k8s.namespace.uid",
    "k8s.pod.name",
    "k8s.pod.uid",
    "k8s.pod.start_time",
    "k8s.pod.ip",
    "k8s.node.name",
    "k8s.node.uid",
    "k8s.deployment.name",
    "k8s.deployment.uid",
    "k8s.replicaset.name",
    "k8s.replicaset.uid",
    "k8s.statefulset.name",
    "k8s.statefulset.uid",
    "k8s.daemonset.name",
    "k8s.daemonset.uid",
    "k8s.job.name",
    "k8s.job.uid",
    "k8s.cronjob.name",
    "container.image.name",
    "container.image.tag",
    "container.image.tags",
];

// The processor's keys, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    auth_type: AuthType,
    #[serde(default)]
    filter: Filter,
    #[serde(default)]
    wait_for_metadata: bool,
    #[serde(default)]
    wait_for_metadata_timeout: Option<String>,
    #[serde(default)]
    passthrough: bool,
    #[serde(default)]
    trust_forwarded_for: bool,
    #[serde(default)]
    extract: RawExtract,
    #[serde(default)]
    pod_association: Vec<RawRule>,
}

/// How to reach the API server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum AuthType {
    /// The pod's service account (in-cluster).
    #[default]
    #[serde(rename = "serviceAccount")]
    ServiceAccount,
    /// `$KUBECONFIG` or `~/.kube/config`.
    #[serde(rename = "kubeconfig", alias = "kubeConfig")]
    Kubeconfig,
    /// The in-cluster address with no credentials.
    #[serde(rename = "none")]
    None,
}

/// `filter:`: which pods the cache watches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this node's pods (DaemonSet mode), named by an environment variable.
    pub node_from_env_var: Option<String>,
    /// Only this node's pods, named directly.
    pub node: Option<String>,
    /// Only this namespace's pods.
    pub namespace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExtract {
    metadata: Option<Vec<String>>,
    #[serde(default)]
    labels: Vec<RawField>,
    #[serde(default)]
    annotations: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    tag_name: Option<String>,
    key: Option<String>,
    key_regex: Option<String>,
    from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    sources: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    from: String,
    name: Option<String>,
}

/// Where a pod is looked up from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Association {
    /// The sender's IP: the connection (or the first X-Forwarded-For address when trusted).
    Connection,
    /// A resource attribute holding the pod's IP (`k8s.pod.ip`, `ip`, `host.name`).
    IpAttribute(String),
    /// `k8s.pod.uid`.
    Uid,
    /// `k8s.namespace.name` and `k8s.pod.name` together.
    Name,
}

/// Which object a label or annotation is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Pod,
    Namespace,
    Node,
}

/// Which keys a rule copies: one, or every key the (whole-key) pattern matches.
#[derive(Debug, Clone)]
pub enum Key {
    Exact(String),
    Pattern(Regex),
}

/// One `extract.labels` or `extract.annotations` rule.
#[derive(Debug, Clone)]
pub struct FieldRule {
    pub from: Source,
    pub key: Key,
    /// The attribute name; for a pattern it may use `$1`-style groups. None: the default
    /// `k8s.<from>.<label|annotation>.<key>`.
    pub tag_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub auth_type: AuthType,
    pub filter: Filter,
    /// Hold data until the cache's first full sync.
    pub wait_for_metadata: bool,
    /// How long to wait for it, as written; the host parses the duration.
    pub wait_for_metadata_timeout: Option<String>,
    pub passthrough: bool,
    pub trust_forwarded_for: bool,
    pub metadata: Vec<String>,
    pub labels: Vec<FieldRule>,
    pub annotations: Vec<FieldRule>,
    pub associations: Vec<Association>,
}

impl Config {
    /// Parses and checks the processor's settings, as JSON.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut json = serde_json::Deserializer::from_str(text);
        let raw: Raw = serde_path_to_error::deserialize(&mut json).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                "config".to_string()
            } else {
                path
            };
            // The JSON is trailhead's rendering of the YAML: its line and column mean nothing.
            let message = e.inner().to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m);
            format!("{at}: {message}")
        })?;
        let metadata = match raw.extract.metadata {
            None => DEFAULT_METADATA.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                for (i, name) in list.iter().enumerate() {
                    if !METADATA.contains(&name.as_str()) {
                        return Err(format!(
                            "extract.metadata[{i}]: `{name}` is not an attribute this processor extracts (one of {})",
                            METADATA.join(", ")
                        ));
                    }
                }
                list
            }
        };
        Ok(Config {
            auth_type: raw.auth_type,
            filter: raw.filter,
            wait_for_metadata: raw.wait_for_metadata,
            wait_for_metadata_timeout: raw.wait_for_metadata_timeout,
            passthrough: raw.passthrough,
            trust_forwarded_for: raw.trust_forwarded_for,
            metadata,
            labels: fields(raw.extract.labels, "extract.labels")?,
            annotations: fields(raw.extract.annotations, "extract.annotations")?,
            associations: associations(raw.pod_association)?,
        })
    }
}

impl Config {
    /// What the host's cache is built from, to compare across a reload (a change in it needs
    /// a restart): everything but what only the plugin reads, such as `tag_name`.
    pub fn cache_inputs(&self) -> serde_json::Value {
        let rules = |rules: &[FieldRule]| -> Vec<serde_json::Value> {
            rules
                .iter()
                .map(|rule| match &rule.key {
                    Key::Exact(key) => serde_json::json!([rule.from, "key", key]),
                    Key::Pattern(re) => serde_json::json!([rule.from, "key_regex", re.as_str()]),
                })
                .collect()
        };
        serde_json::json!({
            "auth_type": self.auth_type,
            "filter": self.filter,
            "wait_for_metadata": self.wait_for_metadata,
            "wait_for_metadata_timeout": self.wait_for_metadata_timeout,
            "metadata": self.metadata,
            "labels": rules(&self.labels),
            "annotations": rules(&self.annotations),
        })
    }
}

fn fields(raw: Vec<RawField>, at: &str) -> Result<Vec<FieldRule>, String> {
    raw.into_iter()
        .enumerate()
        .map(|(i, field)| {
            let at = format!("{at}[{i}]");
            let from = match field.from.as_deref().unwrap_or("pod") {
                "pod" => Source::Pod,
                "namespace" => Source::Namespace,
                "node" => Source::Node,
                other => {
                    return Err(format!(
                        "{at}.from: `{other}` is not one of pod, namespace, node"
                    ));
                }
            };
            let key = match (field.key, field.key_regex) {
                (Some(key), None) => Key::Exact(key),
                (None, Some(pattern)) => Key::Pattern(
                    Regex::new(&format!("^(?:{pattern})$"))
                        .map_err(|e| format!("{at}.key_regex: {e}"))?,
                ),
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: give `key` or `key_regex`, not both"));
                }
                (None, None) => return Err(format!("{at}: give `key` or `key_regex`")),
            };
            Ok(FieldRule {
                from,
                key,
                tag_name: field.tag_name.filter(|t| !t.is_empty()),
            })
        })
        .collect()
}

fn associations(raw: Vec<RawRule>) -> Result<Vec<Association>, String> {
    if raw.is_empty() {
        // The collector's order when no rules are given.
        return Ok(vec![
            Association::IpAttribute("k8s.pod.ip".into()),
            Association::IpAttribute("ip".into()),
            Association::Connection,
            Association::IpAttribute("host.name".into()),
        ]);
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, rule)| {
            let at = format!("pod_association[{i}]");
            let mut names = Vec::new();
            for (j, source) in rule.sources.iter().enumerate() {
                match (source.from.as_str(), &source.name) {
                    ("connection", _) => names.push(None),
                    ("resource_attribute", Some(name)) => names.push(Some(name.as_str())),
                    ("resource_attribute", None) => {
                        return Err(format!("{at}.sources[{j}]: `from: resource_attribute` needs a `name`"));
                    }
                    (other, _) => {
                        return Err(format!("{at}.sources[{j}].from: `{other}` is not one of resource_attribute, connection"));
                    }
                }
            }
            names.sort();
            match names.as_slice() {
                [None] => Ok(Association::Connection),
                [Some("k8s.pod.uid")] => Ok(Association::Uid),
                [Some(name @ ("k8s.pod.ip" | "ip" | "host.name"))] => Ok(Association::IpAttribute(name.to_string())),
                [Some("k8s.namespace.name"), Some("k8s.pod.name")] => Ok(Association::Name),
                _ => Err(format!(
                    "{at}.sources: supported are connection; k8s.pod.ip, ip or host.name; k8s.pod.uid; or k8s.pod.name with k8s.namespace.name"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_collector() {
        let config = Config::parse("{}").unwrap();
        assert_eq!(config.metadata, DEFAULT_METADATA);
        assert_eq!(config.associations.len(), 4);
        assert_eq!(config.associations[2], Association::Connection);
    }

    #[test]
    fn errors_name_where_they_are() {
        let error = |text: &str| Config::parse(text).unwrap_err();
        assert!(
            error(r#"{"extract": {"labels": [{"key": "a"}, {"from": "pod"}]}}"#)
                .starts_with("extract.labels[1]: give")
        );
        assert!(
            error(r#"{"extract": {"metadata": ["k8s.pod.name", "k8s.pod.colour"]}}"#)
                .starts_with("extract.metadata[1]: `k8s.pod.colour`")
        );
        assert!(error(r#"{"pod_association": [{"sources": [{"from": "resource_attribute", "name": "service.name"}]}]}"#)
            .starts_with("pod_association[0].sources: supported"));
        assert!(
            error(r#"{"extract": {"annotations": [{"key_regex": "(", "from": "pod"}]}}"#)
                .starts_with("extract.annotations[0].key_regex:")
        );
        assert_eq!(
            error(r#"{"filter": {"nodename": "x"}}"#),
            "filter.nodename: unknown field `nodename`, expected one of `node_from_env_var`, `node`, `namespace`"
        );
        assert!(
            error(r#"{"auth_type": "token"}"#).starts_with("auth_type: unknown variant `token`")
        );
    }

    #[test]
    fn the_host_keys_parse_with_the_rest() {
        let config = Config::parse(
            r#"{"auth_type": "kubeConfig", "filter": {"namespace": "shop"}, "wait_for_metadata": true}"#,
        )
        .unwrap();
        assert_eq!(config.auth_type, AuthType::Kubeconfig);
        assert_eq!(config.filter.namespace.as_deref(), Some("shop"));
        assert!(config.wait_for_metadata && config.wait_for_metadata_timeout.is_none());
        let inputs = config.cache_inputs();
        assert_eq!(inputs["auth_type"], "kubeconfig");
        assert_eq!(inputs["filter"]["namespace"], "shop");
    }

    #[test]
    fn name_association_takes_both_attributes_in_any_order() {
        let config = Config::parse(
            r#"{"pod_association": [{"sources": [{"from": "resource_attribute", "name": "k8s.pod.name"}, {"from": "resource_attribute", "name": "k8s.namespace.name"}]}]}"#,
        )
        .unwrap();
        assert_eq!(config.associations, [Association::Name]);
    }
}
