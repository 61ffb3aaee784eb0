//! The resource processor natively, through the SDK's harness.

use super::Resource;
use trailhead_plugin::testing::{self, Logs, Metrics, Spans};
use trailhead_plugin::{Batch, Level};

const CONFIG: &str = r#"{"attributes": [
    {"key": "deployment.environment", "value": "production", "action": "upsert"},
    {"key": "cluster", "from_attribute": "k8s-cluster", "action": "insert"},
    {"key": "k8s-cluster", "action": "delete"},
    {"key": "host.id", "action": "hash"}
]}"#;

fn resource_attrs(batch: &impl Batch, i: u32) -> Vec<(String, String)> {
    let mut out: Vec<_> = batch
        .attrs(Level::Resource, i)
        .into_iter()
        .map(|kv| (kv.key, attraction::value::any_as_string(&kv.value)))
        .collect();
    out.sort();
    out
}

const RESOURCE: &str = r#"{"attributes": [
    {"key": "k8s-cluster", "value": {"stringValue": "east"}},
    {"key": "host.id", "value": {"stringValue": "abc"}},
    {"key": "deployment.environment", "value": {"stringValue": "dev"}}]}"#;

// Every resource of every signal gets the actions, in order; items are untouched.
#[test]
fn every_signal_every_resource() {
    let mut plugin: Resource = testing::init(CONFIG).unwrap();
    let want = vec![
        ("cluster".to_string(), "east".to_string()),
        ("deployment.environment".into(), "production".into()),
        (
            "host.id".into(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into(),
        ),
    ];
    let mut spans = Spans::from_json(&format!(
        r#"{{"resourceSpans": [{{"resource": {RESOURCE}, "scopeSpans": [{{"spans": [{{"name": "s", "attributes": [{{"key": "k8s-cluster", "value": {{"stringValue": "kept"}}}}]}}]}}]}},
            {{"resource": {{}}, "scopeSpans": [{{"spans": [{{"name": "t"}}]}}]}}]}}"#
    ))
    .unwrap();
    spans.run(&mut plugin).unwrap();
    assert_eq!(resource_attrs(&spans, 0), want);
    assert_eq!(
        resource_attrs(&spans, 1),
        [(
            "deployment.environment".to_string(),
            "production".to_string()
        )]
    );
    assert_eq!(spans.attrs(Level::Item, 0).len(), 1);

    let mut logs = Logs::from_json(&format!(
        r#"{{"resourceLogs": [{{"resource": {RESOURCE}, "scopeLogs": [{{"logRecords": [{{}}]}}]}}]}}"#
    ))
    .unwrap();
    logs.run(&mut plugin).unwrap();
    assert_eq!(resource_attrs(&logs, 0), want);

    let mut metrics = Metrics::from_json(&format!(
        r#"{{"resourceMetrics": [{{"resource": {RESOURCE}, "scopeMetrics": [{{"metrics": [{{"name": "m", "gauge": {{"dataPoints": [{{"asInt": "1"}}]}}}}]}}]}}]}}"#
    ))
    .unwrap();
    metrics.run(&mut plugin).unwrap();
    assert_eq!(resource_attrs(&metrics, 0), want);
}

// No actions, an unknown key, or a bad action is refused at init, naming where.
#[test]
fn bad_configs_are_refused() {
    let cases = [
        ("{}", "attributes: missing required field"),
        (
            r#"{"attributes": []}"#,
            "attributes: missing required field",
        ),
        (
            r#"{"attributes": [{"key": "a", "action": "insert"}]}"#,
            "attributes[0]: `insert` needs one of",
        ),
        (
            r#"{"attributes": [{"key": "a", "value": 1, "action": "upsert"}], "include": {}}"#,
            "include: unknown field `include`",
        ),
        (
            r#"{"attributes": [{"key": "a", "value": 1, "action": "upsert", "pattren": "x"}]}"#,
            "attributes[0].pattren: unknown field `pattren`",
        ),
    ];
    for (config, want) in cases {
        let error = testing::init::<Resource>(config).err().unwrap();
        assert!(error.contains(want), "{config}: {error}");
    }
}
