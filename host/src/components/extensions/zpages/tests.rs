use super::pages::{self, State};
use super::*;
use crate::components::Config;
use serde_json::json;
use std::path::Path;

fn parse(value: serde_json::Value) -> Result<ZpagesConfig, String> {
    ZpagesConfig::parse(value).map_err(|e| e.to_string())
}

#[test]
fn empty_body_listens_on_the_collectors_local_default() {
    let config = parse(json!(null)).unwrap();
    assert_eq!(config.endpoint.port(), 55679);
    assert!(config.endpoint.ip().is_loopback());
    assert!(!config.expvar.enabled);
}

#[test]
fn port_alone_listens_everywhere() {
    let config = parse(json!({"endpoint": ":1234", "expvar": {"enabled": true}})).unwrap();
    assert_eq!(config.endpoint, "0.0.0.0:1234".parse().unwrap());
    assert!(config.expvar.enabled);
}

#[test]
fn empty_endpoint_tls_and_auth_are_refused_with_why() {
    let empty = parse(json!({"endpoint": ""})).unwrap_err();
    assert!(empty.contains("\"endpoint\" is required"), "{empty}");
    let tls = parse(json!({"tls": {"cert_file": "a"}})).unwrap_err();
    assert!(tls.contains("`tls` is not supported"), "{tls}");
    let auth = parse(json!({"auth": {"authenticator": "x"}})).unwrap_err();
    assert!(auth.contains("`auth` is not supported"), "{auth}");
    assert!(
        parse(json!({"enpoint": "x"}))
            .unwrap_err()
            .contains("unknown field")
    );
}

fn state() -> State {
    let yaml = "receivers: {otlp/in: {protocols: {grpc: {endpoint: 127.0.0.1:0}}}}\n\
                exporters: {debug/out: {}}\n\
                extensions: {zpages: {endpoint: 127.0.0.1:0}}\n\
                service:\n  extensions: [zpages]\n  pipelines:\n    \
                traces/a: {receivers: [otlp/in], exporters: [debug/out]}\n";
    let config = Config::from_text(yaml, Path::new("/etc/<a&b>/trailhead.yaml")).unwrap();
    State::new(&config, &Telemetry::default(), false)
}

#[test]
fn pages_show_the_configs_ids_escaped() {
    let state = state();
    let pipelinez = pages::pipelinez(&state);
    assert!(
        pipelinez.contains("<td>traces/a</td><td>otlp/in</td>"),
        "{pipelinez}"
    );
    assert!(pipelinez.contains("<td>debug/out</td>"), "{pipelinez}");
    assert!(pages::extensionz(&state).contains("<td>zpages</td><td>zpages</td>"));
    let servicez = pages::servicez(&state);
    assert!(
        servicez.contains("/etc/&lt;a&amp;b&gt;/trailhead.yaml"),
        "{servicez}"
    );
    assert!(servicez.contains(env!("CARGO_PKG_VERSION")));
    assert!(pages::featurez(&state).contains("no feature gates"));
    assert!(pages::tracez(&state).contains("keeps no recent spans"));
}
