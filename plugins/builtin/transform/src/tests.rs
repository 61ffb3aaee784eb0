//! The transform run natively over OTLP JSON through the SDK's harness.

use super::Transform;
use trailhead_plugin::testing::{self, Logs, Metrics, Spans};

fn transform(config: &str) -> Transform {
    testing::init(config).unwrap_or_else(|e| panic!("{config}: {e}"))
}

#[test]
fn smoke() {
    let _ = (transform(r#"{"trace_statements":["set(span.name, \"x\")"]}"#), Logs::from_json("{}"), Metrics::from_json("{}"), Spans::from_json("{}"));
}
