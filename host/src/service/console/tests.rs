use super::{samples, topology};
use crate::components::{Config, ConsoleAccess};
use std::path::Path;

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
