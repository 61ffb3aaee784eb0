use super::super::running::topology;
use super::{pod_lookup, samples};
use crate::components::{Config, ConsoleAccess};
use crate::kubernetes::{Pod, Store};
use http_body_util::BodyExt;
use std::path::Path;
use std::sync::Arc;

const TWO_PIPELINES: &str = r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  attributes/tag:
    actions: [{key: team, value: core, action: insert}]
exporters:
  debug: {}
connectors:
  forward: {}
service:
  telemetry:
    metrics:
      console: open
  pipelines:
    traces:
      receivers: [otlp]
      processors: [attributes/tag]
      exporters: [forward]
    traces/out:
      receivers: [forward]
      exporters: [debug]
"#;

// The page draws what the config wires: each pipeline's components in order, connectors named.
#[test]
fn topology_lists_each_pipeline_in_order() {
    let config = Config::from_text(TWO_PIPELINES, Path::new("console.yaml")).unwrap();
    assert_eq!(
        config.service.telemetry.metrics.console,
        ConsoleAccess::Open
    );
    let shape = topology(&config);
    let expected = serde_json::json!({
        "pipelines": [
            {"id": "traces", "signal": "traces", "receivers": ["otlp"],
             "processors": ["attributes/tag"], "exporters": ["forward"]},
            {"id": "traces/out", "signal": "traces", "receivers": ["forward"],
             "processors": [], "exporters": ["debug"]},
        ],
        "connectors": ["forward"],
    });
    assert_eq!(shape, expected);
}

// A console key the operator did not mean is refused where it is written.
#[test]
fn an_unknown_console_access_is_refused() {
    let text = TWO_PIPELINES.replace("console: open", "console: public");
    let error = Config::from_text(&text, Path::new("console.yaml")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("public"), "{message}");
    assert!(message.contains("console.yaml:"), "{message}");
}

// Snapshots carry the samples, not the exposition's comments.
#[test]
fn samples_drop_the_comment_lines() {
    let exposition =
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"#1\"} 3\n\nb 1.5\n# EOF\n";
    assert_eq!(samples(exposition), "a_total{x=\"#1\"} 3\nb 1.5\n");
}

// The Kubernetes view's lookup answers from the one cache: the pod at that IP, a 404 that says
// how many pods were searched, a 400 without an IP; the query is percent-decoded.
#[tokio::test]
async fn a_pod_is_looked_up_by_ip() {
    let store = Store::default();
    let pod = Pod {
        name: "lessons-7d9".into(),
        namespace: Arc::from("mathtrail"),
        uid: "uid-1".into(),
        ip: "10.1.2.3".into(),
        node_name: Arc::from("node-1"),
        labels: vec![("app".into(), "lessons".into())].into(),
        ..Pod::default()
    };
    store.apply_pod(pod, std::time::Instant::now());
    let answer = |query: &str| {
        let response = pod_lookup(&store, query);
        let status = response.status();
        async move {
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (status, found) = answer("ip=10.1.2.3").await;
    assert_eq!(status, 200);
    assert_eq!(found["name"], "lessons-7d9");
    assert_eq!(found["namespace"], "mathtrail");
    assert_eq!(found["labels"]["app"], "lessons");
    let (status, missing) = answer("ip=%2010.1.2.4").await;
    assert_eq!(status, 404);
    assert_eq!(
        missing["error"],
        "no pod with IP 10.1.2.4 among the 1 pods cached"
    );
    let (status, _) = answer("").await;
    assert_eq!(status, 400);
}
