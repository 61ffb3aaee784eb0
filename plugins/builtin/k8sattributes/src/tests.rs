//! The plugin run natively through the SDK's harness, over a cluster of the tests' own (the
//! harness has no Kubernetes cache), which counts what it is asked.

use super::*;
use extract::{split_image, string_array};
use std::cell::Cell;
use trailhead_plugin::host::RequestContext;
use trailhead_plugin::host::kubernetes::{ObjectMeta, Owner, Pod};
use trailhead_plugin::testing::{self, Spans, otlp};

/// Two pods, one lookup counter, a generation the test moves, and a sender.
#[derive(Default)]
struct FakeCluster {
    lookups: Cell<usize>,
    generation: Cell<u64>,
    peer: Option<String>,
}

fn pod(name: &str, ip: &str) -> Pod {
    Pod {
        name: name.into(),
        namespace: "lessons".into(),
        uid: format!("uid-{name}"),
        start_time: "2026-01-02T03:04:05Z".into(),
        node_name: "node-1".into(),
        ip: ip.into(),
        owners: vec![Owner {
            kind: "Deployment".into(),
            name: "lessons".into(),
            uid: "d-1".into(),
        }],
        labels: vec![
            ("app".into(), "lessons".into()),
            ("tier".into(), "web".into()),
        ],
        annotations: vec![],
        containers: vec![("app".into(), "ghcr.io/mathtrail/lessons:1.4.2".into())],
    }
}

impl Cluster for FakeCluster {
    fn pod_by_ip(&self, ip: &str) -> Option<Pod> {
        self.lookups.set(self.lookups.get() + 1);
        [pod("lessons-a", "10.0.0.5"), pod("lessons-b", "10.0.0.6")]
            .into_iter()
            .find(|p| p.ip == ip)
    }
    fn pod_by_uid(&self, uid: &str) -> Option<Pod> {
        self.lookups.set(self.lookups.get() + 1);
        Some(pod("lessons-b", "10.0.0.6")).filter(|p| p.uid == uid)
    }
    fn pod_by_name(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.lookups.set(self.lookups.get() + 1);
        Some(pod(name, "10.0.0.9")).filter(|_| namespace == "lessons")
    }
    fn namespace_by_name(&self, _: &str) -> Option<ObjectMeta> {
        Some(ObjectMeta {
            uid: "ns-1".into(),
            labels: vec![("team".into(), "learn".into())],
            annotations: vec![],
        })
    }
    fn node_by_name(&self, _: &str) -> Option<ObjectMeta> {
        None
    }
    fn generation(&self) -> u64 {
        self.generation.get()
    }
    fn context(&self) -> RequestContext {
        RequestContext {
            peer_address: self.peer.clone(),
            forwarded_for: None,
            receiver: "otlp".into(),
        }
    }
}

fn plugin(config: &str, peer: Option<&str>) -> K8sAttributes<FakeCluster> {
    let mut plugin: K8sAttributes<FakeCluster> = testing::init(config).expect("config is valid");
    plugin.cluster.peer = peer.map(str::to_string);
    plugin
}

/// One resource per entry of `resources` (its attributes), one span each.
fn spans(resources: &[&[(&str, &str)]]) -> Spans {
    let resources: Vec<String> = resources
        .iter()
        .map(|attrs| {
            let attrs: Vec<String> = attrs
                .iter()
                .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
                .collect();
            format!(r#"{{"resource":{{"attributes":[{}]}},"scopeSpans":[{{"spans":[{{"name":"s"}}]}}]}}"#, attrs.join(","))
        })
        .collect();
    Spans::from_json(&format!(r#"{{"resourceSpans":[{}]}}"#, resources.join(","))).unwrap()
}

/// Resource `r`'s attributes, as (key, string or debug-printed value).
fn attrs(spans: &Spans, r: usize) -> Vec<(String, String)> {
    use otlp::common::v1::any_value::Value;
    let request = spans.request();
    let resource = request.resource_spans[r]
        .resource
        .clone()
        .unwrap_or_default();
    let text = |v: Option<Value>| match v {
        Some(Value::StringValue(s)) => s,
        other => format!("{other:?}"),
    };
    resource
        .attributes
        .into_iter()
        .map(|kv| (kv.key, text(kv.value.and_then(|v| v.value))))
        .collect()
}

fn get<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

// By the connection's IP, the sender's pod is found and the collector's default attributes
// are written, without overwriting one that is set.
#[test]
fn enriches_by_the_connection() {
    let mut plugin = plugin("{}", Some("[::ffff:10.0.0.5]:4000"));
    let mut batch = spans(&[&[("k8s.pod.name", "mine")]]);
    batch.run(&mut plugin).unwrap();
    let a = attrs(&batch, 0);
    assert_eq!(get(&a, "k8s.pod.name"), Some("mine"));
    assert_eq!(get(&a, "k8s.namespace.name"), Some("lessons"));
    assert_eq!(get(&a, "k8s.pod.uid"), Some("uid-lessons-a"));
    assert_eq!(get(&a, "k8s.deployment.name"), Some("lessons"));
    assert_eq!(get(&a, "k8s.node.name"), Some("node-1"));
    assert_eq!(get(&a, "k8s.pod.start_time"), Some("2026-01-02T03:04:05Z"));
    assert_eq!(get(&a, "k8s.pod.ip"), Some("10.0.0.5"));
}

// A resource's own `k8s.pod.ip` comes before the connection (the default rules' order), and
// a sender no pod has still gets its IP written.
#[test]
fn association_order_and_unknown_senders() {
    let mut plugin = plugin("{}", Some("10.9.9.9:4000"));
    let mut batch = spans(&[&[("k8s.pod.ip", "10.0.0.6")], &[]]);
    batch.run(&mut plugin).unwrap();
    assert_eq!(get(&attrs(&batch, 0), "k8s.pod.uid"), Some("uid-lessons-b"));
    assert_eq!(
        attrs(&batch, 1),
        [("k8s.pod.ip".to_string(), "10.9.9.9".to_string())]
    );
}

// Uid and name associations, labels by pattern with a tag template, namespace labels, and
// the container image split into name, tag and tags.
#[test]
fn extract_rules() {
    let config = r#"{"extract": {"metadata": ["k8s.pod.name", "k8s.namespace.uid", "container.image.name", "container.image.tag", "container.image.tags"],
        "labels": [{"key_regex": "(ti.*)", "tag_name": "label.$1"}, {"key": "team", "from": "namespace"}]},
        "pod_association": [{"sources": [{"from": "resource_attribute", "name": "k8s.pod.uid"}]},
                            {"sources": [{"from": "resource_attribute", "name": "k8s.pod.name"}, {"from": "resource_attribute", "name": "k8s.namespace.name"}]}]}"#;
    let mut plugin = plugin(config, None);
    let mut batch = spans(&[
        &[("k8s.pod.uid", "uid-lessons-b")],
        &[("k8s.pod.name", "web"), ("k8s.namespace.name", "lessons")],
    ]);
    batch.run(&mut plugin).unwrap();
    let a = attrs(&batch, 0);
    assert_eq!(get(&a, "k8s.pod.name"), Some("lessons-b"));
    assert_eq!(get(&a, "k8s.namespace.uid"), Some("ns-1"));
    assert_eq!(get(&a, "label.tier"), Some("web"));
    assert_eq!(get(&a, "k8s.namespace.label.team"), Some("learn"));
    assert_eq!(
        get(&a, "container.image.name"),
        Some("ghcr.io/mathtrail/lessons")
    );
    assert_eq!(get(&a, "container.image.tag"), Some("1.4.2"));
    assert!(get(&a, "container.image.tags").is_some_and(|t| t.contains("1.4.2")));
    assert_eq!(get(&a, "k8s.pod.ip"), Some("10.0.0.6"));
    assert_eq!(get(&attrs(&batch, 1), "k8s.pod.ip"), Some("10.0.0.9"));
}

// The memo: a second batch from the same sender asks the cache nothing, until the cache's
// generation moves; a resource with attributes of its own still keeps them.
#[test]
fn lookups_are_kept_per_sender_for_a_generation() {
    let mut plugin = plugin("{}", Some("10.0.0.5:4000"));
    for _ in 0..3 {
        spans(&[&[]]).run(&mut plugin).unwrap();
    }
    assert_eq!(plugin.cluster.lookups.get(), 1);
    let mut batch = spans(&[&[("k8s.node.name", "elsewhere")]]);
    batch.run(&mut plugin).unwrap();
    assert_eq!(get(&attrs(&batch, 0), "k8s.node.name"), Some("elsewhere"));
    assert_eq!(get(&attrs(&batch, 0), "k8s.pod.name"), Some("lessons-a"));
    assert_eq!(plugin.cluster.lookups.get(), 1);
    plugin.cluster.generation.set(7);
    spans(&[&[]]).run(&mut plugin).unwrap();
    assert_eq!(plugin.cluster.lookups.get(), 2);
}

// The memo never grows past its limit.
#[test]
fn the_memo_is_bounded() {
    let mut plugin = plugin("{}", None);
    for i in 0..Memo::LIMIT + 10 {
        let ip = format!("10.1.{}.{}", i / 256, i % 256);
        spans(&[&[("k8s.pod.ip", ip.as_str())]])
            .run(&mut plugin)
            .unwrap();
        assert!(plugin.memo.found.len() <= Memo::LIMIT);
    }
    assert_eq!(plugin.cluster.lookups.get(), Memo::LIMIT + 10);
}

// Passthrough only writes the IP it associated by, and never asks the cache.
#[test]
fn passthrough_asks_nothing() {
    let mut plugin = plugin(r#"{"passthrough": true}"#, Some("10.0.0.5:4000"));
    let mut batch = spans(&[&[]]);
    batch.run(&mut plugin).unwrap();
    assert_eq!(
        attrs(&batch, 0),
        [("k8s.pod.ip".to_string(), "10.0.0.5".to_string())]
    );
    assert_eq!(plugin.cluster.lookups.get(), 0);
}

// Config errors are the settings crate's, word for word.
#[test]
fn config_errors_are_the_settings() {
    let error = testing::init::<K8sAttributes<FakeCluster>>(r#"{"filter": {"nodename": "x"}}"#)
        .err()
        .unwrap();
    assert_eq!(
        error,
        "filter.nodename: unknown field `nodename`, expected one of `node_from_env_var`, `node`, `namespace`"
    );
    let error = testing::init::<K8sAttributes<FakeCluster>>(
        r#"{"extract": {"metadata": ["k8s.pod.colour"]}}"#,
    )
    .err()
    .unwrap();
    assert!(
        error.starts_with("extract.metadata[0]: `k8s.pod.colour`"),
        "{error}"
    );
}

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

// A profile's resource is enriched as any other batch's, `k8s.pod.ip` included; its profile
// stays as it came.
#[test]
fn enriches_profile_resources() {
    use otlp::profiles::v1development::{Profile, ResourceProfiles, Sample, ScopeProfiles};
    let profile = ScopeProfiles {
        profiles: vec![Profile {
            samples: vec![Sample {
                values: vec![3],
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = otlp::collector::profiles::v1development::ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            scope_profiles: vec![profile.clone()],
            ..Default::default()
        }],
        dictionary: Some(Default::default()),
    };
    let mut batch = testing::Profiles::from_request(request);
    let mut plugin = plugin("{}", Some("10.0.0.5:4000"));
    batch.run(&mut plugin).unwrap();
    let out = batch.request();
    let resource = out.resource_profiles[0].resource.clone().unwrap();
    let value = |key: &str| {
        let kv = resource.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            otlp::common::v1::any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    };
    assert_eq!(value("k8s.pod.ip").as_deref(), Some("10.0.0.5"));
    assert_eq!(value("k8s.pod.name").as_deref(), Some("lessons-a"));
    assert_eq!(out.resource_profiles[0].scope_profiles, [profile]);
}
