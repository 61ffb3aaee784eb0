//! Memory the Kubernetes pod cache holds per pod, at 1k, 10k and 50k pods. Pods are realistic
//! API objects (bench/fixtures/pod.json: two containers, Dapr labels and annotations,
//! managedFields, status), each with its own name, UID and IP, reduced by the same function the
//! watcher uses and stored with all three indexes. A counting allocator measures the heap the
//! store keeps; the same count over the full objects is what a cache of whole pods would hold.
//! Prints one JSON object.

use cap::Cap;
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;
use std::time::Instant;
use trailhead::kubernetes::{KeyFilter, Settings, Store, slim};

#[global_allocator]
static ALLOCATOR: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

const TEMPLATE: &str = include_str!("../../fixtures/pod.json");

fn pod(i: usize) -> anyhow::Result<Pod> {
    let mut pod: Pod = serde_json::from_str(TEMPLATE)?;
    pod.metadata.name = Some(format!("lessons-7c9f8b6d4-{i:05x}"));
    pod.metadata.uid = Some(format!("3f1c2a9e-8d4b-4c1e-9a55-{i:012x}"));
    if let Some(status) = pod.status.as_mut() {
        status.pod_ip = Some(format!(
            "10.{}.{}.{}",
            64 + i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(format!("node-{}", i % 50));
    }
    Ok(pod)
}

/// Heap bytes per pod kept by a store filled with `n` pods under `settings`.
fn store_bytes_per_pod(n: usize, settings: &Settings) -> anyhow::Result<f64> {
    let before = ALLOCATOR.allocated();
    let store = Arc::new(Store::default());
    let now = Instant::now();
    for i in 0..n {
        let full = pod(i)?;
        if let Some(slim) = slim(&full, settings, &store) {
            store.apply_pod(slim, now);
        }
    }
    anyhow::ensure!(store.pod_count() == n, "pods went missing");
    let kept = ALLOCATOR.allocated() - before;
    drop(store);
    Ok(kept as f64 / n as f64)
}

/// Heap bytes per pod of the full objects, as a cache of whole API objects would hold them.
fn full_bytes_per_pod(n: usize) -> anyhow::Result<f64> {
    let before = ALLOCATOR.allocated();
    let pods: Vec<Pod> = (0..n).map(pod).collect::<anyhow::Result<_>>()?;
    let kept = ALLOCATOR.allocated() - before;
    drop(pods);
    Ok(kept as f64 / n as f64)
}

fn main() -> anyhow::Result<()> {
    let defaults = Settings::default();
    // Two label rules, as a team might add: the component and any `team/*` label.
    let with_labels = Settings {
        pod_labels: KeyFilter {
            exact: ["app.kubernetes.io/component".to_string()].into(),
            patterns: vec![regex::Regex::new("^team/.*$")?],
        },
        ..Settings::default()
    };
    let mut rows = Vec::new();
    for n in [1_000, 10_000, 50_000] {
        rows.push(serde_json::json!({
            "pods": n,
            "bytes_per_pod": store_bytes_per_pod(n, &defaults)?.round(),
            "bytes_per_pod_with_label_rules": store_bytes_per_pod(n, &with_labels)?.round(),
            "full_object_bytes_per_pod": full_bytes_per_pod(n)?.round(),
        }));
    }
    println!("{}", serde_json::json!({ "pod_cache": rows }));
    Ok(())
}
