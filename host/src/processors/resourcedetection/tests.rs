//! resourcedetection's config, merge and translation into the resource plugin's settings.

use super::*;

fn parse(json: &str) -> Result<Config, String> {
    Config::parse(json)
}

// The collector's defaults: the env detector, override on, a 5s timeout, no refresh.
#[test]
fn defaults_are_the_collectors() {
    let config = parse("{}").unwrap();
    assert_eq!(config.detectors, ["env"]);
    assert!(config.r#override);
    assert_eq!(config.timeout, Duration::from_secs(5));
    assert_eq!(config.refresh_interval, Duration::ZERO);
    let config = parse(r#"{"detectors": [" system "], "override": false, "timeout": "2s", "ec2": {"tags": ["a"]}}"#).unwrap();
    assert!(!config.r#override);
    assert_eq!(config.timeout, Duration::from_secs(2));
}

// Each refusal names the key it is about, so the config diagnostic finds its line: an
// unknown detector (the collector's words), one not built, an agent's, an unknown key, a
// negative duration, a bad system section.
#[test]
fn bad_entries_name_their_key() {
    let cases = [
        (
            r#"{"detectors": ["env", "nope"]}"#,
            "detectors[1]: invalid detector key: nope",
        ),
        (
            r#"{"detectors": ["eks"]}"#,
            "detectors[0]: detector `eks` is not built in trailhead",
        ),
        (
            r#"{"detectors": ["ec2"], "ec2": {"tags": ["^env$"]}}"#,
            "ec2.tags: reading tags through the EC2 DescribeTags API needs AWS credentials",
        ),
        (
            r#"{"detectors": ["gcp"], "gcp": {"labels": ["env"]}}"#,
            "gcp.labels: GCE instance labels are read through the Compute Engine API",
        ),
        (
            r#"{"detectors": ["azure"], "azure": {"tags": ["ok", "("]}}"#,
            "azure.tags[1]: error parsing regexp",
        ),
        (
            r#"{"gcp": {"resource_attributes": {"host.nmae": {"enabled": true}}}}"#,
            "gcp.resource_attributes: has invalid keys: host.nmae",
        ),
        (
            r#"{"ec2": {"max_backoff": "-1s"}}"#,
            "ec2.max_backoff: negative duration",
        ),
        (
            r#"{"detectors": ["docker"]}"#,
            "detectors[0]: detector `docker` is out of trailhead's scope",
        ),
        (
            r#"{"detectorz": ["env"]}"#,
            "detectorz: unknown field `detectorz`",
        ),
        (r#"{"timeout": "-1s"}"#, "timeout: negative duration"),
        (r#"{"override": "yes"}"#, "override: invalid type"),
        (
            r#"{"k8snode": {"resource_attributes": {"k8s.node.nmae": {"enabled": true}}}}"#,
            "k8snode.resource_attributes: has invalid keys: k8s.node.nmae",
        ),
        (
            r#"{"k8snode": {"auth_type": "token"}}"#,
            "k8snode.auth_type: unknown variant `token`",
        ),
        (
            r#"{"system": {"hostname_sources": ["os", "x"]}}"#,
            "system.hostname_sources: hostname_sources contains invalid value: \"x\"",
        ),
    ];
    for (json, want) in cases {
        let error = parse(json)
            .err()
            .unwrap_or_else(|| panic!("{json} was accepted"));
        assert!(error.starts_with(want), "{json}: {error}");
    }
}

// Detectors merge first-wins: system's host.name is kept over a later detector's; the
// collector's merge then gives `upsert` for override and `insert` without it.
#[test]
fn merge_is_first_wins_and_override_picks_the_action() {
    let config = Config {
        detectors: vec!["system".into(), "system".into()],
        system: system::Config {
            hostname_sources: vec!["os".into()],
            ..Default::default()
        },
        ..Config::default()
    };
    let detected = detect(&config).unwrap();
    assert_eq!(detected.len(), 2, "{detected:?}");
    assert_eq!(
        detected[0],
        ("host.name".to_string(), system::os_hostname())
    );

    let detected: Detected = vec![("a".into(), "1".into()), ("b".into(), "x y".into())];
    let upsert = actions(&detected, true);
    assert_eq!(
        upsert,
        serde_json::json!({"attributes": [
            {"key": "a", "value": "1", "action": "upsert"},
            {"key": "b", "value": "x y", "action": "upsert"}]})
    );
    let insert = actions(&detected, false);
    assert_eq!(insert["attributes"][1]["action"], "insert");
}

// The translation end to end: the system detector's attributes as resource actions, the
// deprecated `attributes` list keeping only those named; nothing detected gives no plugin.
#[test]
fn settings_for_the_resource_plugin() {
    let json = r#"{"detectors": ["system"], "override": false, "attributes": ["os.type"],
                   "system": {"hostname_sources": ["os"]}}"#;
    let settings = resource_settings(json).unwrap().unwrap();
    let settings: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(
        settings,
        serde_json::json!({"attributes": [{"key": "os.type", "value": system::os_type(), "action": "insert"}]})
    );
    let none = r#"{"detectors": ["system"], "attributes": ["nothing.such"], "system": {"hostname_sources": ["os"]}}"#;
    assert_eq!(resource_settings(none).unwrap(), None);
}
