//! Unit tests of `kubernetes_sd`: targets and labels from pod objects, and the config's
//! parsing, checks and refusals.

use super::*;
use crate::config::tree::from_str;
use crate::kubernetes::discovery::discovered_pod;
use crate::receivers::prometheus::PrometheusReceiverConfig;
use std::sync::Arc;

/// A pod as the API server would send it.
fn pod(json: serde_json::Value) -> DiscoveredPod {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json).unwrap();
    discovered_pod(&pod)
}

fn web_pod() -> DiscoveredPod {
    pod(serde_json::json!({
        "metadata": {
            "name": "web-7c9f-abcde", "namespace": "shop", "uid": "u-1",
            "labels": {"app.kubernetes.io/name": "web"},
            "annotations": {"prometheus.io/scrape": "true"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Other", "name": "not-controller", "uid": "x"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c9f", "uid": "r", "controller": true}
            ]
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {"name": "app", "image": "web:1", "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                ]},
                {"name": "sidecar", "image": "proxy:2"}
            ],
            "initContainers": [{"name": "migrate", "image": "tool:3"}]
        },
        "status": {
            "phase": "Running", "podIP": "10.1.2.3", "hostIP": "192.168.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://abc", "image": "web:1",
                "imageID": "", "ready": true, "restartCount": 0}]
        }
    }))
}

fn get<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).map_or("<absent>", String::as_str)
}

#[test]
fn one_target_per_port_and_per_container_without_ports() {
    let targets = pod_targets(&web_pod(), None);
    let addresses: Vec<&str> = targets.iter().map(|t| get(t, "__address__")).collect();
    assert_eq!(
        addresses,
        ["10.1.2.3:8080", "10.1.2.3:9090", "10.1.2.3", "10.1.2.3"]
    );
    let http = &targets[0];
    assert_eq!(
        get(http, "__meta_kubernetes_pod_container_port_name"),
        "http"
    );
    assert_eq!(
        get(http, "__meta_kubernetes_pod_container_port_number"),
        "8080"
    );
    assert_eq!(
        get(http, "__meta_kubernetes_pod_container_port_protocol"),
        "TCP"
    );
    assert_eq!(
        get(http, "__meta_kubernetes_pod_container_id"),
        "containerd://abc"
    );
    assert_eq!(get(http, "__meta_kubernetes_pod_container_init"), "false");
    let sidecar = &targets[2];
    assert_eq!(
        get(sidecar, "__meta_kubernetes_pod_container_name"),
        "sidecar"
    );
    assert_eq!(
        get(sidecar, "__meta_kubernetes_pod_container_image"),
        "proxy:2"
    );
    assert_eq!(get(sidecar, "__meta_kubernetes_pod_container_id"), "");
    assert_eq!(
        get(sidecar, "__meta_kubernetes_pod_container_port_number"),
        "<absent>"
    );
    let init = &targets[3];
    assert_eq!(get(init, "__meta_kubernetes_pod_container_name"), "migrate");
    assert_eq!(get(init, "__meta_kubernetes_pod_container_init"), "true");
}

#[test]
fn pod_labels_as_prometheus_sets_them() {
    let target = &pod_targets(&web_pod(), None)[0];
    let expected = [
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_pod_name", "web-7c9f-abcde"),
        ("__meta_kubernetes_pod_ip", "10.1.2.3"),
        ("__meta_kubernetes_pod_uid", "u-1"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_node_name", "node-1"),
        ("__meta_kubernetes_pod_host_ip", "192.168.0.5"),
        ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
        ("__meta_kubernetes_pod_controller_name", "web-7c9f"),
        ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "web"),
        (
            "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
            "true",
        ),
    ];
    for (name, value) in expected {
        assert_eq!(get(target, name), value, "{name}");
    }
    assert!(
        !target
            .keys()
            .any(|k| k.starts_with("__meta_kubernetes_node_"))
    );
}

#[test]
fn readiness_controller_and_ip_follow_the_pod() {
    let bare = pod(serde_json::json!({
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"podIP": "fd00::1", "conditions": [{"type": "Ready", "status": "False"}]}
    }));
    let target = &pod_targets(&bare, None)[0];
    assert_eq!(get(target, "__meta_kubernetes_pod_ready"), "false");
    assert_eq!(
        get(target, "__meta_kubernetes_pod_controller_kind"),
        "<absent>"
    );
    assert_eq!(get(target, "__address__"), "fd00::1");
    let ported = DiscoveredPod {
        containers: vec![crate::kubernetes::discovery::DiscoveredContainer {
            ports: vec![crate::kubernetes::discovery::DiscoveredPort {
                number: 80,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..bare.clone()
    };
    assert_eq!(
        get(&pod_targets(&ported, None)[0], "__address__"),
        "[fd00::1]:80"
    );
    let unknown = pod(
        serde_json::json!({"metadata": {"name": "p"}, "status": {"podIP": "10.0.0.1"},
        "spec": {"containers": [{"name": "c"}]}}),
    );
    assert_eq!(
        get(
            &pod_targets(&unknown, None)[0],
            "__meta_kubernetes_pod_ready"
        ),
        "unknown"
    );
    let starting = DiscoveredPod {
        ip: String::new(),
        ..bare
    };
    assert!(pod_targets(&starting, None).is_empty(), "no IP, no targets");
}

#[test]
fn node_metadata_is_attached_and_pods_of_unlisted_nodes_dropped() {
    let node = Arc::new(DiscoveredNode {
        name: "node-1".into(),
        labels: vec![("topology.kubernetes.io/zone".into(), "a".into())],
        annotations: vec![],
    });
    let listed = |name: &str| (name == "node-1").then(|| node.clone());
    let target = &pod_targets(&web_pod(), Some(&listed))[0];
    assert_eq!(get(target, "__meta_kubernetes_node_name"), "node-1");
    assert_eq!(
        get(
            target,
            "__meta_kubernetes_node_label_topology_kubernetes_io_zone"
        ),
        "a"
    );
    let none = |_: &str| None;
    assert!(pod_targets(&web_pod(), Some(&none)).is_empty());
}

fn sd(text: &str) -> Result<PrometheusReceiverConfig, String> {
    let indented: String = text.lines().map(|l| format!("      {l}\n")).collect();
    from_str(&format!(
        "config:\n  scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n    -\n{indented}"
    ))
}

#[test]
fn selectors_are_parsed_as_kubernetes_parses_them() {
    for good in [
        "",
        "app=web",
        "app==web,tier!=cache",
        "env in (a, b),!canary,app.kubernetes.io/name",
        "team notin (x)",
        "gen>3",
        "app=",
    ] {
        assert_eq!(check_label_selector(good), Ok(()), "{good:?}");
    }
    for bad in [
        "app=we b",
        "-app=x",
        "env in ()",
        "env in a",
        "gen>x",
        "a,,b",
        "Exa/x=1",
    ] {
        assert!(check_label_selector(bad).is_err(), "{bad:?}");
    }
    for good in [
        "",
        "spec.nodeName=n1",
        "status.phase!=Failed,metadata.name==x",
        "a=b\\,c",
    ] {
        assert_eq!(check_field_selector(good), Ok(()), "{good:?}");
    }
    for bad in ["spec.nodeName", "=x", "a=b,c"] {
        assert!(check_field_selector(bad).is_err(), "{bad:?}");
    }
    let config = sd("role: pod\nselectors:\n- role: pod\n  label: app=web\n  field: spec.nodeName=n1\n- role: node\n  label: zone=a\n").unwrap();
    let job = &config.config.scrape_configs[0].kubernetes_sd_configs[0];
    let watches = job.pod_watches(&Connection::InCluster, None);
    assert_eq!(watches.len(), 1);
    assert_eq!(watches[0].label_selector, "app=web");
    assert_eq!(watches[0].field_selector, "spec.nodeName=n1");
    assert!(
        job.node_watch(&Connection::InCluster).is_none(),
        "no attach_metadata.node"
    );
    let error = sd("role: pod\nselectors:\n- role: pod\n- role: pod\n").unwrap_err();
    assert!(error.contains("duplicated selector role: pod"), "{error}");
    let error = sd("role: pod\nselectors:\n- role: service\n").unwrap_err();
    assert!(
        error.contains("pod role supports only pod, node selectors"),
        "{error}"
    );
    let error = sd("role: pod\nselectors:\n- role: pod\n  label: 'a in b'\n").unwrap_err();
    assert!(error.contains("label selector"), "{error}");
}

#[test]
fn namespaces_and_connection_follow_the_keys() {
    let config =
        sd("role: pod\nnamespaces:\n  names: [a, b]\nkubeconfig_file: kube.yaml\n").unwrap();
    let job = &config.config.scrape_configs[0].kubernetes_sd_configs[0];
    let connection = job.connection(&|p| Path::new("/etc/trailhead").join(p));
    assert_eq!(
        connection,
        Connection::Kubeconfig("/etc/trailhead/kube.yaml".into())
    );
    let namespaces: Vec<_> = job
        .pod_watches(&connection, None)
        .into_iter()
        .map(|w| w.namespace)
        .collect();
    assert_eq!(namespaces, [Some("a".to_string()), Some("b".to_string())]);
    let all = sd("role: pod\n").unwrap();
    let all = &all.config.scrape_configs[0].kubernetes_sd_configs[0];
    assert_eq!(all.namespaces(None), [None]);
    assert_eq!(all.connection(&|p| p.into()), Connection::InCluster);
    let own = sd("role: pod\nnamespaces:\n  own_namespace: true\n").unwrap();
    let own = &own.config.scrape_configs[0].kubernetes_sd_configs[0];
    assert_eq!(
        own.namespaces(Some("mine".into())),
        [Some("mine".to_string())]
    );
    let server = sd("role: pod\napi_server: https://k8s:6443\nauthorization:\n  credentials_file: token\ntls_config:\n  ca_file: ca.crt\n").unwrap();
    let server = &server.config.scrape_configs[0].kubernetes_sd_configs[0];
    let Connection::ApiServer(server) = server.connection(&|p| Path::new("/c").join(p)) else {
        panic!("an api_server connection");
    };
    assert_eq!(server.token_file.as_deref(), Some(Path::new("/c/token")));
    assert_eq!(server.ca_file.as_deref(), Some(Path::new("/c/ca.crt")));
}

#[test]
fn refusals_and_checks_say_why_and_where() {
    let error = sd("role: node\n").unwrap_err();
    assert!(
        error.contains("role \"node\" is not implemented by trailhead yet"),
        "{error}"
    );
    assert!(error.contains("kubernetes_sd_configs[0].role: "), "{error}");
    let error = sd("role: pods\n").unwrap_err();
    assert!(error.contains("unknown Kubernetes SD role"), "{error}");
    let error = sd("namespaces:\n  names: [a]\n").unwrap_err();
    assert!(error.contains("role missing"), "{error}");
    let error = sd("role: pod\napi_server: https://k\nkubeconfig_file: k\n").unwrap_err();
    assert!(
        error.contains("cannot use 'kubeconfig_file' and 'api_server'"),
        "{error}"
    );
    let error = sd("role: pod\nbearer_token: t\n").unwrap_err();
    assert!(
        error.contains("provide the 'api_server' URL explicitly"),
        "{error}"
    );
    let error = sd("role: pod\napi_server: https://k\nbasic_auth:\n  username: u\n").unwrap_err();
    assert!(
        error.contains("HTTP client key is not implemented"),
        "{error}"
    );
    assert!(
        error.contains("kubernetes_sd_configs[0].basic_auth: "),
        "{error}"
    );
    let error = sd("role: pod\nattach_metadata:\n  namespace: true\n").unwrap_err();
    assert!(error.contains("only node is implemented"), "{error}");
    let error =
        sd("role: pod\napi_server: https://k\nauthorization:\n  type: Basic\n").unwrap_err();
    assert!(error.contains("use \"basic_auth\" instead"), "{error}");
    let error =
        sd("role: pod\napi_server: https://k\nnamespaces:\n  own_namespace: true\n").unwrap_err();
    assert!(error.contains("'namespaces.own_namespace'"), "{error}");
    assert!(sd("role: pod\nattach_metadata:\n  node: true\n  namespace: false\n").is_ok());
}
