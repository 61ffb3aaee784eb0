//! `kubernetes_sd_configs` with `role: pod`, as Prometheus 3 (v0.314, the version the collector
//! v0.161.0 embeds) reads and runs it (discovery/kubernetes/kubernetes.go and pod.go): the
//! config with its checks, what the host's cache must watch for it, and each pod's targets
//! with their `__meta_kubernetes_*` labels. The other roles are refused at the `role` line, as
//! is every key this does not implement.

use super::relabel::Labels;
use super::{Reason, Refused};
use crate::kubernetes::discovery::{
    ApiServer, Connection, DiscoveredNode, DiscoveredPod, NodeWatch, PodWatch,
};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::path::{Path, PathBuf};

/// One `kubernetes_sd_configs` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(dead_code, reason = "a refused key is read only to fail")]
pub struct KubernetesSdConfig {
    /// What to discover: `pod` (node, service, endpoints, endpointslice and ingress are refused).
    #[serde(deserialize_with = "role")]
    pub role: String,
    /// The API server's URL; with neither it nor `kubeconfig_file`, the pod's service account.
    pub api_server: Option<String>,
    /// A kubeconfig file to reach the cluster with (relative to the config file).
    pub kubeconfig_file: Option<String>,
    /// The namespaces to discover in (default: all).
    pub namespaces: NamespaceDiscovery,
    /// Label and field selectors the API server filters pods (and nodes) with.
    #[serde(deserialize_with = "selectors")]
    pub selectors: Vec<SelectorConfig>,
    /// Metadata added to every target: `node` (its labels and annotations).
    pub attach_metadata: AttachMetadata,
    /// `api_server` only: the Authorization header (type `Bearer`).
    pub authorization: Option<Authorization>,
    /// `api_server` only: a bearer token (the older spelling of `authorization`).
    pub bearer_token: Option<String>,
    /// `api_server` only: a file the bearer token is read from.
    pub bearer_token_file: Option<String>,
    /// `api_server` only: how to trust the API server, and the client certificate.
    pub tls_config: Option<SdTlsConfig>,
    /// Refused: see why in the error.
    #[serde(default)]
    basic_auth: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    oauth2: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    proxy_url: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    no_proxy: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    proxy_from_environment: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    proxy_connect_header: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    http_headers: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    follow_redirects: Option<Refused<ClientKey>>,
    /// Refused: see why in the error.
    #[serde(default)]
    enable_http2: Option<Refused<ClientKey>>,
}

/// `namespaces`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceDiscovery {
    /// The namespaces by name.
    pub names: Vec<String>,
    /// Also the namespace trailhead's pod runs in (in-cluster only).
    pub own_namespace: bool,
}

/// One `selectors` entry: the API server's selectors for one role's watch.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorConfig {
    /// Whose watch it filters: `pod`, or `node` (with `attach_metadata.node`).
    pub role: String,
    /// A label selector (`app=web,tier!=cache`, `env in (a,b)`, `!canary`).
    pub label: String,
    /// A field selector (`spec.nodeName=node-1`, `status.phase!=Failed`).
    pub field: String,
}

/// `attach_metadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachMetadata {
    /// Add the node's `__meta_kubernetes_node_*` labels (and drop pods of unlisted nodes).
    pub node: bool,
    /// Refused when true: not implemented.
    #[serde(deserialize_with = "not_attached")]
    pub namespace: bool,
    /// Refused when true: not implemented.
    #[serde(deserialize_with = "not_attached")]
    pub deployment: bool,
    /// Refused when true: not implemented.
    #[serde(deserialize_with = "not_attached")]
    pub job: bool,
    /// Refused when true: not implemented.
    #[serde(deserialize_with = "not_attached")]
    pub cronjob: bool,
}

/// `authorization`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    /// The scheme (default `Bearer`, the only one implemented).
    #[serde(rename = "type")]
    pub kind: String,
    /// The credentials.
    pub credentials: Option<String>,
    /// A file the credentials are read from.
    pub credentials_file: Option<String>,
}

/// `tls_config` of the API server connection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(dead_code, reason = "a refused key is read only to fail")]
pub struct SdTlsConfig {
    /// The CA file the API server's certificate must chain to.
    pub ca_file: Option<String>,
    /// A client certificate file.
    pub cert_file: Option<String>,
    /// The client certificate's key file.
    pub key_file: Option<String>,
    /// The name the API server's certificate must carry (default: the URL's host).
    pub server_name: Option<String>,
    /// Accept any certificate (unsafe).
    pub insecure_skip_verify: bool,
    /// Refused: see why in the error.
    #[serde(default)]
    ca: Option<Refused<InlineTls>>,
    /// Refused: see why in the error.
    #[serde(default)]
    cert: Option<Refused<InlineTls>>,
    /// Refused: see why in the error.
    #[serde(default)]
    key: Option<Refused<InlineTls>>,
    /// Refused: see why in the error.
    #[serde(default)]
    min_version: Option<Refused<InlineTls>>,
    /// Refused: see why in the error.
    #[serde(default)]
    max_version: Option<Refused<InlineTls>>,
}

#[derive(Debug)]
struct ClientKey;
impl Reason for ClientKey {
    const WHY: &'static str = "this HTTP client key is not implemented by trailhead's Kubernetes discovery (authorization, bearer_token, bearer_token_file and tls_config with files are)";
}

#[derive(Debug)]
struct InlineTls;
impl Reason for InlineTls {
    const WHY: &'static str = "inline certificates and TLS versions are not implemented by trailhead's Kubernetes discovery: use ca_file, cert_file and key_file";
}

const ROLES: &str = "pod, service, endpoints, endpointslice, node, ingress";

fn role<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let role = String::deserialize(d)?;
    match role.as_str() {
        "pod" => Ok(role),
        "node" | "service" | "endpoints" | "endpointslice" | "ingress" => {
            Err(de::Error::custom(format!(
                "kubernetes_sd_configs role {role:?} is not implemented by trailhead yet: role pod is"
            )))
        }
        _ => Err(de::Error::custom(format!(
            "unknown Kubernetes SD role {role:?} (one of: {ROLES})"
        ))),
    }
}

fn not_attached<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match bool::deserialize(d)? {
        false => Ok(false),
        true => Err(de::Error::custom(
            "attach_metadata: only node is implemented by trailhead (namespace, deployment, job and cronjob are not)",
        )),
    }
}

/// Reads `selectors` with Prometheus' checks for role pod: pod and node selectors only, each
/// role once, and both selectors well formed.
fn selectors<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SelectorConfig>, D::Error> {
    let selectors = Vec::<SelectorConfig>::deserialize(d)?;
    let mut seen = Vec::new();
    for selector in &selectors {
        let role = selector.role.as_str();
        if !ROLES.split(", ").any(|r| r == role) {
            return Err(de::Error::custom(format!(
                "unknown Kubernetes SD role {role:?} (one of: {ROLES})"
            )));
        }
        if seen.contains(&role) {
            return Err(de::Error::custom(format!(
                "duplicated selector role: {role}"
            )));
        }
        seen.push(role);
        if role != "pod" && role != "node" {
            return Err(de::Error::custom(
                "pod role supports only pod, node selectors",
            ));
        }
        check_field_selector(&selector.field).map_err(de::Error::custom)?;
        check_label_selector(&selector.label).map_err(de::Error::custom)?;
    }
    Ok(selectors)
}

impl KubernetesSdConfig {
    /// Prometheus' checks across keys (SDConfig.UnmarshalYAML and HTTPClientConfig.Validate).
    pub fn check(&self) -> Result<(), String> {
        if self.role.is_empty() {
            return Err(format!("role missing (one of: {ROLES})"));
        }
        let api_server = self.api_server.as_deref().filter(|s| !s.is_empty());
        let kubeconfig = self.kubeconfig_file.as_deref().filter(|s| !s.is_empty());
        let custom_client = self.authorization.is_some()
            || self.bearer_token.is_some()
            || self.bearer_token_file.is_some()
            || self.tls_config.is_some();
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            return Err(
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if let Some(authorization) = &self.authorization {
            if self.bearer_token.is_some() || self.bearer_token_file.is_some() {
                return Err(
                    "authorization is not compatible with bearer_token & bearer_token_file".into(),
                );
            }
            authorization.check()?;
        }
        if api_server.is_some() && kubeconfig.is_some() {
            return Err("cannot use 'kubeconfig_file' and 'api_server' simultaneously".into());
        }
        if kubeconfig.is_some() && custom_client {
            return Err(
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'"
                    .into(),
            );
        }
        if api_server.is_none() && custom_client {
            return Err("to use custom HTTP client configuration please provide the 'api_server' URL explicitly".into());
        }
        if let Some(url) = api_server {
            url.parse::<http::Uri>()
                .ok()
                .filter(|u| u.scheme().is_some() && u.host().is_some())
                .ok_or_else(|| format!("api_server {url:?} is not a URL"))?;
        }
        if self.namespaces.own_namespace && api_server.is_some() {
            return Err(
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        if self.namespaces.own_namespace && kubeconfig.is_some() {
            return Err(
                "cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously".into(),
            );
        }
        Ok(())
    }

    /// How to reach the cluster; `resolve` makes a path relative to the config file absolute.
    pub fn connection(&self, resolve: &dyn Fn(&Path) -> PathBuf) -> Connection {
        let file = |p: &Option<String>| p.as_deref().map(|p| resolve(Path::new(p)));
        if let Some(path) = self.kubeconfig_file.as_deref().filter(|s| !s.is_empty()) {
            return Connection::Kubeconfig(resolve(Path::new(path)));
        }
        let Some(url) = self.api_server.as_deref().filter(|s| !s.is_empty()) else {
            return Connection::InCluster;
        };
        let authorization = self.authorization.as_ref();
        let tls = self.tls_config.as_ref();
        Connection::ApiServer(ApiServer {
            url: url.to_string(),
            token: (authorization.and_then(|a| a.credentials.clone()))
                .or_else(|| self.bearer_token.clone()),
            token_file: file(&authorization.and_then(|a| a.credentials_file.clone()))
                .or_else(|| file(&self.bearer_token_file)),
            ca_file: tls.and_then(|t| file(&t.ca_file)),
            cert_file: tls.and_then(|t| file(&t.cert_file)),
            key_file: tls.and_then(|t| file(&t.key_file)),
            insecure_skip_verify: tls.is_some_and(|t| t.insecure_skip_verify),
            server_name: tls.and_then(|t| t.server_name.clone()),
        })
    }

    /// The namespaces to watch, one watch each (`None`: all), as Prometheus' getNamespaces;
    /// `own` is the pod's own namespace, when it could be read.
    pub fn namespaces(&self, own: Option<String>) -> Vec<Option<String>> {
        let mut names: Vec<Option<String>> =
            self.namespaces.names.iter().cloned().map(Some).collect();
        if self.namespaces.own_namespace {
            names.extend(own.map(Some));
        } else if names.is_empty() {
            names.push(None);
        }
        names
    }

    fn selector(&self, role: &str) -> (String, String) {
        let found = self.selectors.iter().find(|s| s.role == role);
        found.map_or_else(Default::default, |s| (s.label.clone(), s.field.clone()))
    }

    /// The pod watches this config reads, one per namespace.
    pub fn pod_watches(&self, connection: &Connection, own: Option<String>) -> Vec<PodWatch> {
        let (label_selector, field_selector) = self.selector("pod");
        let namespaces = self.namespaces(own);
        let watch = |namespace| PodWatch {
            connection: connection.clone(),
            namespace,
            label_selector: label_selector.clone(),
            field_selector: field_selector.clone(),
        };
        namespaces.into_iter().map(watch).collect()
    }

    /// The node watch `attach_metadata.node` needs.
    pub fn node_watch(&self, connection: &Connection) -> Option<NodeWatch> {
        let (label_selector, field_selector) = self.selector("node");
        self.attach_metadata.node.then(|| NodeWatch {
            connection: connection.clone(),
            label_selector,
            field_selector,
        })
    }
}

impl Authorization {
    fn check(&self) -> Result<(), String> {
        if self.credentials.is_some() && self.credentials_file.is_some() {
            return Err(
                "at most one of authorization credentials & credentials_file must be configured"
                    .into(),
            );
        }
        match self.kind.trim() {
            "" | "Bearer" => Ok(()),
            basic if basic.eq_ignore_ascii_case("basic") => Err(
                r#"authorization type cannot be set to "basic", use "basic_auth" instead"#.into(),
            ),
            other => Err(format!(
                "authorization type {other:?} is not implemented by trailhead's Kubernetes discovery: Bearer is"
            )),
        }
    }
}

/// The pod's namespace when trailhead runs in a pod, as Prometheus reads it for
/// `own_namespace`.
pub fn own_namespace() -> Result<String, String> {
    const FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
    let text = std::fs::read_to_string(FILE)
        .map_err(|e| format!("could not determine the pod's namespace: {e}"))?;
    match text.is_empty() {
        true => Err("could not read own namespace name (empty file)".into()),
        false => Ok(text),
    }
}

const META: &str = "__meta_kubernetes_";

/// A Kubernetes label or annotation key as a Prometheus label name part: every character
/// outside `[a-zA-Z0-9_]` becomes `_`.
fn sanitize(key: &str) -> String {
    let keep = |c: char| c.is_ascii_alphanumeric() || c == '_';
    key.chars().map(|c| if keep(c) { c } else { '_' }).collect()
}

/// `__meta_kubernetes_<role>_name`, and each label and annotation with its `…present_` twin.
fn object_labels(into: &mut Labels, role: &str, name: &str, meta: [&[(String, String)]; 2]) {
    into.insert(format!("{META}{role}_name"), name.to_string());
    for (kind, pairs) in ["label", "annotation"].into_iter().zip(meta) {
        for (key, value) in pairs {
            let key = sanitize(key);
            into.insert(format!("{META}{role}_{kind}_{key}"), value.clone());
            into.insert(format!("{META}{role}_{kind}present_{key}"), "true".into());
        }
    }
}

/// The pod's targets, as pod.go's buildPod makes them: one per container port, one per
/// container without ports (the address is the pod IP alone), init containers after the
/// others. None while the pod has no IP, or, with `attach_metadata.node` (`nodes` given),
/// when its node is not among them.
pub fn pod_targets(
    pod: &DiscoveredPod,
    nodes: Option<&dyn Fn(&str) -> Option<std::sync::Arc<DiscoveredNode>>>,
) -> Vec<Labels> {
    if pod.ip.is_empty() {
        return Vec::new();
    }
    let node = match nodes {
        Some(lookup) => match lookup(&pod.node_name) {
            Some(node) => Some(node),
            None => return Vec::new(),
        },
        None => None,
    };
    let mut group = Labels::new();
    let fields = [
        ("pod_ip", &pod.ip),
        ("pod_ready", &pod.ready),
        ("pod_phase", &pod.phase),
        ("pod_node_name", &pod.node_name),
        ("pod_host_ip", &pod.host_ip),
        ("pod_uid", &pod.uid),
        ("namespace", &pod.namespace),
    ];
    for (name, value) in fields {
        group.insert(format!("{META}{name}"), value.clone());
    }
    object_labels(
        &mut group,
        "pod",
        &pod.name,
        [&pod.labels, &pod.annotations],
    );
    if let Some((kind, name)) = &pod.controller {
        for (label, value) in [("kind", kind), ("name", name)] {
            if !value.is_empty() {
                group.insert(format!("{META}pod_controller_{label}"), value.clone());
            }
        }
    }
    if let Some(node) = node {
        object_labels(
            &mut group,
            "node",
            &node.name,
            [&node.labels, &node.annotations],
        );
    }
    let host = match pod.ip.contains(':') {
        true => format!("[{}]", pod.ip),
        false => pod.ip.clone(),
    };
    let mut targets = Vec::new();
    for container in &pod.containers {
        let mut base = group.clone();
        let container_labels = [
            ("name", &container.name),
            ("id", &container.id),
            ("image", &container.image),
            ("init", &container.init.to_string()),
        ];
        for (name, value) in container_labels {
            base.insert(format!("{META}pod_container_{name}"), value.clone());
        }
        if container.ports.is_empty() {
            base.insert("__address__".into(), pod.ip.clone());
            targets.push(base);
            continue;
        }
        for port in &container.ports {
            let mut target = base.clone();
            let number = port.number.to_string();
            target.insert("__address__".into(), format!("{host}:{number}"));
            target.insert(format!("{META}pod_container_port_number"), number);
            target.insert(format!("{META}pod_container_port_name"), port.name.clone());
            let protocol = port.protocol.clone();
            target.insert(format!("{META}pod_container_port_protocol"), protocol);
            targets.push(target);
        }
    }
    targets
}

/// A label selector as Kubernetes parses it (labels.Parse): requirements joined by commas,
/// each `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (v,…)`, `key notin (v,…)`,
/// `key>n` or `key<n`.
pub fn check_label_selector(selector: &str) -> Result<(), String> {
    let bad = |why: String| Err(format!("label selector {selector:?}: {why}"));
    for requirement in split_top_level(selector) {
        let requirement = requirement.trim();
        if requirement.is_empty() {
            if selector.trim().is_empty() {
                return Ok(());
            }
            return bad("an empty requirement".into());
        }
        if let Some(key) = requirement.strip_prefix('!') {
            check_key(key.trim()).or_else(bad)?;
            continue;
        }
        let set_operator = [" notin ", " notin(", " in ", " in("]
            .iter()
            .find_map(|op| {
                requirement
                    .find(op)
                    .map(|at| (at, op.trim_end_matches('(')))
            });
        if let Some((at, op)) = set_operator {
            check_key(requirement[..at].trim()).or_else(bad)?;
            let values = requirement[at + op.len()..].trim();
            let Some(inner) = values.strip_prefix('(').and_then(|v| v.strip_suffix(')')) else {
                return bad(format!("{op:?} needs values in parentheses"));
            };
            if inner.trim().is_empty() {
                return bad(format!(
                    "for {:?} the set of values can't be empty",
                    op.trim()
                ));
            }
            for value in inner.split(',') {
                check_value(value.trim()).or_else(bad)?;
            }
            continue;
        }
        let operator = ["!=", "==", "=", ">", "<"]
            .iter()
            .find_map(|op| requirement.find(op).map(|at| (at, *op)));
        let Some((at, op)) = operator else {
            check_key(requirement).or_else(bad)?;
            continue;
        };
        check_key(requirement[..at].trim()).or_else(bad)?;
        let value = requirement[at + op.len()..].trim();
        if op == ">" || op == "<" {
            value
                .parse::<i64>()
                .map_err(|_| format!("label selector {selector:?}: {value:?} is not an integer"))?;
        } else {
            check_value(value).or_else(bad)?;
        }
    }
    Ok(())
}

/// Splits at commas outside parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A label name: up to 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
fn is_name(text: &str) -> bool {
    let edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.len() <= 63
        && edges(text.chars().next())
        && edges(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A label key: a name, optionally after a DNS subdomain prefix and `/`.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        let part = |s: &str| !s.is_empty() && is_name(s) && !s.contains('_');
        p.len() <= 253 && p.to_lowercase() == p && p.split('.').all(part)
    });
    match prefix_ok && is_name(name) {
        true => Ok(()),
        false => Err(format!("{key:?} is not a valid label key")),
    }
}

fn check_value(value: &str) -> Result<(), String> {
    match value.is_empty() || is_name(value) {
        true => Ok(()),
        false => Err(format!("{value:?} is not a valid label value")),
    }
}

/// A field selector as Kubernetes parses it (fields.ParseSelector): terms joined by commas,
/// each `field=value`, `field==value` or `field!=value`; `\,` `\=` `\\` escape.
pub fn check_field_selector(selector: &str) -> Result<(), String> {
    if selector.is_empty() {
        return Ok(());
    }
    // Escaped characters become a placeholder, so that `\=` is no operator.
    let (mut terms, mut current) = (Vec::new(), String::new());
    let mut chars = selector.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
                current.push('\u{0}');
            }
            ',' => terms.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    terms.push(current);
    for term in &terms {
        let has_operator = ["!=", "==", "="].iter().any(|op| {
            term.split_once(op)
                .is_some_and(|(field, _)| !field.is_empty())
        });
        if !has_operator {
            let shown = term.replace('\u{0}', "\\?");
            return Err(format!(
                "invalid selector: '{selector}'; can't understand '{shown}'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "kubernetes_sd_tests.rs"]
mod tests;
