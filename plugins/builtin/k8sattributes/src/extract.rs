//! A pod's attributes, as the config's `extract` asks for them. They depend on the pod and on
//! the resource's `k8s.container.name` only, which is what lets the plugin keep them per
//! lookup key.

use crate::cluster::Cluster;
use k8sattributes_settings::{Config, FieldRule, Key, Source};
use trailhead_plugin::host::kubernetes::Pod;
use trailhead_plugin::{AnyValue, KeyValue};

/// Attributes to add, each key once: the first rule to name a key wins, and a key the
/// resource already has is never written.
pub struct Added<'a> {
    /// The resource's own attributes: a handful, so a scan beats hashing them every call.
    pub existing: &'a [KeyValue],
    pub attrs: Vec<KeyValue>,
}

impl Added<'_> {
    /// Adds `key` unless the resource (or an earlier rule) already has it.
    pub fn add(&mut self, key: &str, value: String) {
        self.add_value(key, AnyValue::Str(value));
    }

    pub fn add_value(&mut self, key: &str, value: AnyValue) {
        let empty = matches!(&value, AnyValue::Str(s) if s.is_empty());
        let set = |attrs: &[KeyValue]| attrs.iter().any(|kv| kv.key == key);
        if empty || set(self.existing) || set(&self.attrs) {
            return;
        }
        self.attrs.push(KeyValue {
            key: key.to_string(),
            value,
        });
    }
}

/// Everything `config` extracts from `pod`, for a resource with no attributes of its own but
/// `k8s.container.name` = `container`.
pub fn pod_attributes(
    config: &Config,
    cluster: &impl Cluster,
    pod: &Pod,
    container: Option<&str>,
) -> Vec<KeyValue> {
    let mut out = Added {
        existing: &[],
        attrs: Vec::new(),
    };
    for name in &config.metadata {
        if let Some(value) = metadata(cluster, pod, name, container) {
            out.add_value(name, value);
        }
    }
    let rules = [
        (&config.labels, "label"),
        (&config.annotations, "annotation"),
    ];
    for (rules, what) in rules {
        extract_fields(&mut out, cluster, pod, rules, what);
    }
    out.attrs
}

fn owner(pod: &Pod, kind: &str) -> Option<(String, String)> {
    pod.owners
        .iter()
        .find(|o| o.kind == kind)
        .map(|o| (o.name.clone(), o.uid.clone()))
}

fn metadata(
    cluster: &impl Cluster,
    pod: &Pod,
    name: &str,
    container: Option<&str>,
) -> Option<AnyValue> {
    let owned = |kind: &str, uid: bool| owner(pod, kind).map(|(n, u)| if uid { u } else { n });
    if name == "container.image.tags" {
        let tag = split_image(container_image(pod, container)?).1;
        return Some(AnyValue::Array(string_array(&[tag])));
    }
    Some(AnyValue::Str(match name {
        "k8s.namespace.name" => pod.namespace.clone(),
        "k8s.namespace.uid" => cluster.namespace_by_name(&pod.namespace)?.uid,
        "k8s.pod.name" => pod.name.clone(),
        "k8s.pod.uid" => pod.uid.clone(),
        "k8s.pod.start_time" => pod.start_time.clone(),
        "k8s.pod.ip" => pod.ip.clone(),
        "k8s.node.name" => pod.node_name.clone(),
        "k8s.node.uid" => cluster.node_by_name(&pod.node_name)?.uid,
        "k8s.deployment.name" => owned("Deployment", false)?,
        "k8s.deployment.uid" => owned("Deployment", true)?,
        "k8s.replicaset.name" => owned("ReplicaSet", false)?,
        "k8s.replicaset.uid" => owned("ReplicaSet", true)?,
        "k8s.statefulset.name" => owned("StatefulSet", false)?,
        "k8s.statefulset.uid" => owned("StatefulSet", true)?,
        "k8s.daemonset.name" => owned("DaemonSet", false)?,
        "k8s.daemonset.uid" => owned("DaemonSet", true)?,
        "k8s.job.name" => owned("Job", false)?,
        "k8s.job.uid" => owned("Job", true)?,
        "k8s.cronjob.name" => owned("CronJob", false)?,
        "container.image.name" => split_image(container_image(pod, container)?).0,
        "container.image.tag" => split_image(container_image(pod, container)?).1,
        _ => return None,
    }))
}

/// An OTLP `ArrayValue` of strings, encoded: `values` (field 1) holding `AnyValue`s whose
/// `string_value` is field 1.
pub fn string_array(items: &[String]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(0x0a);
        let mut len = bytes.len();
        while len >= 0x80 {
            out.push((len as u8) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::new();
    for item in items {
        let mut value = Vec::new();
        field(&mut value, item.as_bytes());
        field(&mut out, &value);
    }
    out
}

/// The image of the container named by `k8s.container.name`, or of the only container.
fn container_image<'a>(pod: &'a Pod, container: Option<&str>) -> Option<&'a str> {
    let image = match container {
        Some(name) => pod.containers.iter().find(|(n, _)| n == name)?,
        None if pod.containers.len() == 1 => &pod.containers[0],
        None => return None,
    };
    Some(image.1.as_str())
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `1.2`); no tag is `latest`.
pub fn split_image(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

type Pairs = Vec<(String, String)>;

/// The labels (`what` = `label`) or annotations of a pod, namespace or node.
fn pairs<'a>(what: &str, labels: &'a Pairs, annotations: &'a Pairs) -> &'a Pairs {
    if what == "label" { labels } else { annotations }
}

fn extract_fields(
    out: &mut Added<'_>,
    cluster: &impl Cluster,
    pod: &Pod,
    rules: &[FieldRule],
    what: &str,
) {
    let of_pod = pairs(what, &pod.labels, &pod.annotations);
    let mut namespace = None;
    let mut node = None;
    for rule in rules {
        let (pairs, from): (&Pairs, &str) = match rule.from {
            Source::Pod => (of_pod, "pod"),
            Source::Namespace => {
                match namespace.get_or_insert_with(|| cluster.namespace_by_name(&pod.namespace)) {
                    Some(meta) => (pairs(what, &meta.labels, &meta.annotations), "namespace"),
                    None => continue,
                }
            }
            Source::Node => {
                match node.get_or_insert_with(|| cluster.node_by_name(&pod.node_name)) {
                    Some(meta) => (pairs(what, &meta.labels, &meta.annotations), "node"),
                    None => continue,
                }
            }
        };
        for (key, value) in pairs {
            let Some(tag) = tag_for(rule, key) else {
                continue;
            };
            // The semantic conventions' names, as the collector writes them: k8s.pod.label.<key>.
            let tag = tag.unwrap_or_else(|| format!("k8s.{from}.{what}.{key}"));
            out.add(&tag, value.clone());
        }
    }
}

/// Whether `rule` copies `key`, and under which name (`Some(None)`: the default one).
fn tag_for(rule: &FieldRule, key: &str) -> Option<Option<String>> {
    match &rule.key {
        Key::Exact(wanted) if wanted == key => Some(rule.tag_name.clone()),
        Key::Exact(_) => None,
        Key::Pattern(pattern) => {
            let groups = pattern.captures(key)?;
            Some(rule.tag_name.as_ref().map(|template| {
                let mut tag = String::new();
                groups.expand(template, &mut tag);
                tag
            }))
        }
    }
}
