//! Built-in `k8sattributes`: finds the pod each resource came from and adds its Kubernetes
//! metadata, as the collector's k8sattributes processor does. Pods come from the host's cache
//! (`pod-by-ip`, `pod-by-uid`, `pod-by-name`), so the plugin needs no network and no RBAC.
//!
//! It only reads and writes resource attributes, so the host never decodes a span, data point
//! or log record for it. It never overwrites an attribute that is set, and it always writes
//! `k8s.pod.ip` (the pod's, else the sender's), so Alloy's own k8sattributes downstream, which
//! associates by `k8s.pod.ip` first, credits the sender and not trailhead's pod.

use k8sattributes_settings::{Association, Config, FieldRule, Key, Source};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use trailhead_plugin_v0_1::host::{self, ObjectMeta, Pod};
use trailhead_plugin_v0_1::{
    AnyValue, KeyValue, LogBatch, MetricBatch, Plugin, PluginError, PluginInfo, Resources, Signal,
    SpanBatch,
};

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
}

struct K8sAttributes;

impl Plugin for K8sAttributes {
    fn init(text: &str) -> Result<PluginInfo, String> {
        let config = Config::parse(text)?;
        CONFIG.with(|slot| *slot.borrow_mut() = Some(config));
        Ok(PluginInfo {
            name: "k8sattributes".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            signals: vec![Signal::Traces, Signal::Metrics, Signal::Logs],
        })
    }
    fn process_spans(batch: &SpanBatch) -> Result<(), PluginError> {
        enrich(batch)
    }
    fn process_logs(batch: &LogBatch) -> Result<(), PluginError> {
        enrich(batch)
    }
    fn process_metrics(batch: &MetricBatch) -> Result<(), PluginError> {
        enrich(batch)
    }
}

trailhead_plugin_v0_1::export!(K8sAttributes);

fn enrich(batch: &impl Resources) -> Result<(), PluginError> {
    CONFIG.with(|slot| {
        let slot = slot.borrow();
        let Some(config) = slot.as_ref() else {
            return Ok(());
        };
        let sender = sender_ip(config);
        for res in 0..batch.resource_count() {
            let existing = batch.resource_attrs(res);
            let added = attributes_for(config, &existing, sender.as_deref());
            if !added.is_empty() {
                batch.set_resource_attrs(res, &added);
            }
        }
        Ok(())
    })
}

/// The sender's IP for this batch: the connection's, or the first X-Forwarded-For address
/// when the config trusts it.
fn sender_ip(config: &Config) -> Option<String> {
    let context = host::current_context();
    if config.trust_forwarded_for
        && let Some(forwarded) = context.forwarded_for.as_deref()
        && let Ok(ip) = forwarded.trim().parse::<IpAddr>()
    {
        return Some(canonical(ip));
    }
    let peer: SocketAddr = context.peer_address?.parse().ok()?;
    Some(canonical(peer.ip()))
}

/// IPv4 clients of a dual-stack listener show up as `::ffff:a.b.c.d`; pods have plain IPv4.
fn canonical(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            AnyValue::Str(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        })
}

/// How this resource identifies its pod: the first association rule that can be evaluated
/// (as in the collector, later rules are not tried when that pod is not cached). Returns the
/// pod, if cached, and the IP it was identified by, if that was an IP.
fn identify(
    config: &Config,
    attrs: &[KeyValue],
    sender: Option<&str>,
) -> (Option<Pod>, Option<String>) {
    for association in &config.associations {
        let found = match association {
            Association::Connection => sender.map(|ip| Lookup::Ip(ip.to_string())),
            Association::IpAttribute(name) => string_attr(attrs, name)
                .and_then(|v| v.parse::<IpAddr>().ok())
                .map(|ip| Lookup::Ip(canonical(ip))),
            Association::Uid => string_attr(attrs, "k8s.pod.uid").map(Lookup::Uid),
            Association::Name => string_attr(attrs, "k8s.namespace.name")
                .zip(string_attr(attrs, "k8s.pod.name"))
                .map(|(ns, name)| Lookup::Name(ns, name)),
        };
        let Some(lookup) = found else { continue };
        if config.passthrough {
            return (None, lookup.ip());
        }
        let pod = match &lookup {
            Lookup::Ip(ip) => host::pod_by_ip(ip),
            Lookup::Uid(uid) => host::pod_by_uid(uid),
            Lookup::Name(ns, name) => host::pod_by_name(ns, name),
        };
        return (pod, lookup.ip());
    }
    (None, None)
}

enum Lookup<'a> {
    Ip(String),
    Uid(&'a str),
    Name(&'a str, &'a str),
}

impl Lookup<'_> {
    fn ip(self) -> Option<String> {
        match self {
            Lookup::Ip(ip) => Some(ip),
            _ => None,
        }
    }
}

/// The attributes to add to one resource: only those not already set.
fn attributes_for(config: &Config, existing: &[KeyValue], sender: Option<&str>) -> Vec<KeyValue> {
    let (pod, ip) = identify(config, existing, sender);
    let mut out = Added {
        existing,
        attrs: Vec::new(),
    };
    if let Some(pod) = &pod {
        for name in &config.metadata {
            if let Some(value) = metadata(pod, name, existing) {
                out.add_value(name, value);
            }
        }
        extract_fields(
            &mut out,
            pod,
            &config.labels,
            "label",
            |meta| &meta.labels,
            |pod| &pod.labels,
        );
        extract_fields(
            &mut out,
            pod,
            &config.annotations,
            "annotation",
            |meta| &meta.annotations,
            |pod| &pod.annotations,
        );
    }
    let pod_ip = pod
        .as_ref()
        .map(|p| p.ip.clone())
        .filter(|ip| !ip.is_empty());
    if let Some(ip) = pod_ip.or(ip).or_else(|| sender.map(str::to_string)) {
        out.add("k8s.pod.ip", ip);
    }
    out.attrs
}

struct Added<'a> {
    /// The resource's own attributes: a handful, so a scan beats hashing them every call.
    existing: &'a [KeyValue],
    attrs: Vec<KeyValue>,
}

impl Added<'_> {
    /// Adds `key` unless the resource (or an earlier rule) already has it.
    fn add(&mut self, key: &str, value: String) {
        self.add_value(key, AnyValue::Str(value));
    }

    fn add_value(&mut self, key: &str, value: AnyValue) {
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

fn owner(pod: &Pod, kind: &str) -> Option<(String, String)> {
    pod.owners
        .iter()
        .find(|o| o.kind == kind)
        .map(|o| (o.name.clone(), o.uid.clone()))
}

fn metadata(pod: &Pod, name: &str, existing: &[KeyValue]) -> Option<AnyValue> {
    let owned = |kind: &str, uid: bool| owner(pod, kind).map(|(n, u)| if uid { u } else { n });
    if name == "container.image.tags" {
        let tag = split_image(container_image(pod, existing)?).1;
        return Some(AnyValue::ArrayPb(string_array(&[tag])));
    }
    Some(AnyValue::Str(match name {
        "k8s.namespace.name" => pod.namespace.clone(),
        "k8s.namespace.uid" => host::namespace_by_name(&pod.namespace)?.uid,
        "k8s.pod.name" => pod.name.clone(),
        "k8s.pod.uid" => pod.uid.clone(),
        "k8s.pod.start_time" => pod.start_time.clone(),
        "k8s.pod.ip" => pod.ip.clone(),
        "k8s.node.name" => pod.node_name.clone(),
        "k8s.node.uid" => host::node_by_name(&pod.node_name)?.uid,
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
        "container.image.name" => split_image(container_image(pod, existing)?).0,
        "container.image.tag" => split_image(container_image(pod, existing)?).1,
        _ => return None,
    }))
}

/// An OTLP `ArrayValue` of strings, encoded: `values` (field 1) holding `AnyValue`s whose
/// `string_value` is field 1.
fn string_array(items: &[String]) -> Vec<u8> {
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
fn container_image<'a>(pod: &'a Pod, existing: &[KeyValue]) -> Option<&'a str> {
    let image = match string_attr(existing, "k8s.container.name") {
        Some(name) => pod.containers.iter().find(|(n, _)| n == name)?,
        None if pod.containers.len() == 1 => &pod.containers[0],
        None => return None,
    };
    Some(image.1.as_str())
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `1.2`); no tag is `latest`.
fn split_image(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

fn extract_fields(
    out: &mut Added<'_>,
    pod: &Pod,
    rules: &[FieldRule],
    what: &str,
    of_meta: impl Fn(&ObjectMeta) -> &Vec<(String, String)>,
    of_pod: impl Fn(&Pod) -> &Vec<(String, String)>,
) {
    let mut namespace = None;
    let mut node = None;
    for rule in rules {
        let (pairs, from): (&Vec<(String, String)>, &str) = match rule.from {
            Source::Pod => (of_pod(pod), "pod"),
            Source::Namespace => {
                match namespace.get_or_insert_with(|| host::namespace_by_name(&pod.namespace)) {
                    Some(meta) => (of_meta(meta), "namespace"),
                    None => continue,
                }
            }
            Source::Node => match node.get_or_insert_with(|| host::node_by_name(&pod.node_name)) {
                Some(meta) => (of_meta(meta), "node"),
                None => continue,
            },
        };
        for (key, value) in pairs {
            let tag = match &rule.key {
                Key::Exact(wanted) if wanted == key => rule.tag_name.clone(),
                Key::Pattern(pattern) => match pattern.captures(key) {
                    Some(groups) => rule.tag_name.as_ref().map(|template| {
                        let mut tag = String::new();
                        groups.expand(template, &mut tag);
                        tag
                    }),
                    None => continue,
                },
                Key::Exact(_) => continue,
            };
            // The semantic conventions' names, as the collector writes them: k8s.pod.label.<key>.
            let tag = tag.unwrap_or_else(|| format!("k8s.{from}.{what}.{key}"));
            out.add(&tag, value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_name_and_tag() {
        assert_eq!(
            split_image("ghcr.io/mathtrail/lessons:1.4.2"),
            ("ghcr.io/mathtrail/lessons".into(), "1.4.2".into())
        );
        assert_eq!(
            split_image("registry:5000/app"),
            ("registry:5000/app".into(), "latest".into())
        );
        assert_eq!(split_image("app:2@sha256:abcd"), ("app".into(), "2".into()));
    }

    #[test]
    fn string_arrays_encode_as_otlp() {
        // ArrayValue{values: [AnyValue{string_value: "3.1"}]}
        assert_eq!(
            string_array(&["3.1".into()]),
            [0x0a, 0x05, 0x0a, 0x03, b'3', b'.', b'1']
        );
    }

    #[test]
    fn mapped_ipv4_is_plain_ipv4() {
        assert_eq!(
            canonical("::ffff:127.0.0.23".parse().unwrap()),
            "127.0.0.23"
        );
        assert_eq!(canonical("fd00::1".parse().unwrap()), "fd00::1");
    }
}
