//! Config loading: every file under `config/` loads, and every bad config under
//! `tests/config/invalid/` fails with exactly the message in its `.err` golden file.

use super::*;
use crate::config::{ComponentId, ConfigError};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads a repo file, naming it by its repo-relative path in errors.
fn load(file: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(file).unwrap();
    Config::from_text(&text, file.strip_prefix(repo()).unwrap())
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .flat_map(|path| {
            if path.is_dir() {
                yaml_files(&path)
            } else {
                vec![path]
            }
        })
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

// Every config we ship loads, the original plan's included, unchanged.
#[test]
fn every_shipped_config_loads() {
    let files = yaml_files(&repo().join("config"));
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        match load(&file) {
            Ok(config) => assert!(!config.service.pipelines.is_empty()),
            Err(e) => panic!("{}: {e}", file.display()),
        }
    }
}

// The embedded default is the file in config/ and starts receivers on localhost only.
#[test]
fn embedded_default_is_localhost() {
    let config = Config::default_config().unwrap();
    let text = std::fs::read_to_string(repo().join("config/trailhead.yaml")).unwrap();
    assert_eq!(DEFAULT_CONFIG, text);
    assert!(!DEFAULT_CONFIG.contains("0.0.0.0"));
    assert_eq!(config.service.pipelines.len(), 3);
}

// Bad configs report file:line:column, the component, and what is wrong; set
// TRAILHEAD_BLESS=1 to rewrite the goldens after an intended message change.
#[test]
fn invalid_configs_match_their_goldens() {
    let dir = repo().join("tests/config/invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 5);
    for file in files {
        let got = match load(&file) {
            Ok(_) => panic!("{} loaded, but it is invalid", file.display()),
            Err(e) => format!("{e}\n"),
        };
        let golden = file.with_extension("err");
        if std::env::var_os("TRAILHEAD_BLESS").is_some() {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        assert_eq!(got, want, "{}", file.display());
    }
}

// `${env:VAR}` expands before parsing, with defaults.
#[test]
fn env_expansion_feeds_values() {
    let text = "receivers:\n  otlp:\nexporters:\n  otlp:\n    endpoint: ${env:TRAILHEAD_TEST_UNSET_VAR:-alloy:4317}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n";
    let config = Config::from_text(text, Path::new("t.yaml")).unwrap();
    let Some(ExporterConfig::Otlp(otlp)) =
        config.exporters.get(&ComponentId::parse("otlp").unwrap())
    else {
        panic!()
    };
    assert_eq!(otlp.endpoint, "alloy:4317");
}

/// The `otlp` receiver of a config that loads.
fn otlp_receiver(text: &str) -> crate::receivers::otlp::OtlpReceiverConfig {
    let config = Config::from_text(text, Path::new("t.yaml")).unwrap();
    match config.receivers.get(&ComponentId::parse("otlp").unwrap()) {
        Some(ReceiverConfig::Otlp(otlp)) => (**otlp).clone(),
        other => panic!("no otlp receiver: {other:?}"),
    }
}

// A protocol key with no value turns the protocol on with defaults, as in the collector.
#[test]
fn empty_sections_mean_defaults() {
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n";
    let otlp = otlp_receiver(text);
    assert_eq!(
        otlp.protocols.grpc.as_ref().unwrap().endpoint,
        "0.0.0.0:4317"
    );
    assert!(otlp.protocols.http.is_none());
}

// Admin servers (metrics with /reload and /tap, health) bind localhost unless configured.
#[test]
fn admin_servers_default_to_localhost() {
    let text = "receivers: {otlp: }\nexporters: {debug: }\nextensions: {health_check: }\n\
                service: {extensions: [health_check], pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n";
    let config = Config::from_text(text, Path::new("t.yaml")).unwrap();
    assert!(config.service.telemetry.metrics.address.ip().is_loopback());
    let id = ComponentId::parse("health_check").unwrap();
    let Some(ExtensionConfig::HealthCheck(health)) = config.extensions.get(&id) else {
        panic!("no health_check");
    };
    assert!(health.endpoint.ip().is_loopback());
}

// YAML as the collector's library reads it: `<<` merges a map in, a key given twice in one map
// is refused where it is, and only true and false are booleans.
#[test]
fn yaml_merges_refuses_repeated_keys_and_reads_booleans_strictly() {
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc: &grpc {endpoint: \"127.0.0.1:5317\"}\n      http: {<<: *grpc, endpoint: \"127.0.0.1:5318\"}\nexporters: {debug: }\nservice: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n";
    let otlp = otlp_receiver(text);
    assert_eq!(
        otlp.protocols.http.as_ref().unwrap().endpoint,
        "127.0.0.1:5318"
    );
    let twice = "receivers: {otlp: }\nexporters: {debug: }\nexporters: {debug: }\nservice: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n";
    let error = Config::from_text(twice, Path::new("t.yaml")).unwrap_err().0;
    assert_eq!(error[0].position, Some((3, 1)), "{error:?}");
    assert_eq!(error[0].message, "duplicate mapping key: exporters");
    let yes = "receivers: {otlp: }\nexporters: {debug: }\nservice: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\nextensions: {file_storage: {directory: /tmp, create_directory: yes}}\n";
    let error = Config::from_text(yes, Path::new("t.yaml")).unwrap_err().0;
    assert!(
        error[0]
            .message
            .starts_with("extensions.file_storage.create_directory: invalid type: string \"yes\", expected a boolean"),
        "{error:?}"
    );
}

// A reload's diff names each component that changed; processors and their lists change live,
// everything else needs a restart.
#[test]
fn diff_names_what_needs_a_restart() {
    let config = |endpoint: &str, extra: &str| {
        let text = format!(
            "receivers: {{otlp: }}\nprocessors: {{filter: {{plugin: a.wasm{extra}}}}}\nexporters: {{otlp: {{endpoint: \"{endpoint}\"}}}}\n\
             service: {{pipelines: {{traces: {{receivers: [otlp], processors: [filter], exporters: [otlp]}}}}}}\n"
        );
        Snapshot::of(&Config::from_text(&text, Path::new("t.yaml")).unwrap())
    };
    let running = config("alloy:4317", "");
    let same = ConfigDiff::new(&running, &config("alloy:4317", ""));
    assert_eq!(same, ConfigDiff::default());
    let processor = ConfigDiff::new(&running, &config("alloy:4317", ", sha256: abc"));
    assert_eq!(processor.components.len(), 1, "{processor:?}");
    assert!(processor.needs_restart().is_empty(), "{processor:?}");
    let exporter = ConfigDiff::new(&running, &config("tempo:4317", ""));
    assert_eq!(exporter.needs_restart(), ["exporter `otlp` changed"]);
}

// A profiles pipeline takes what implements profiles: the otlp receiver, memory_limiter and
// the built-in k8sattributes, the forward connector, and the otlp, otlp_http and debug
// exporters (what fails to take them is in tests/config/invalid/profiles-pipeline.yaml).
#[test]
fn a_profiles_pipeline_loads() {
    let text = "
receivers: {otlp: {}}
processors: {memory_limiter: {check_interval: 1s, limit_mib: 100}, k8sattributes: {}}
exporters:
  otlp: {endpoint: 'pyroscope:4040'}
  otlp_http: {endpoint: 'http://pyroscope:4040'}
  debug: {}
connectors: {forward: {}}
service:
  pipelines:
    profiles: {receivers: [otlp], processors: [memory_limiter, k8sattributes], exporters: [forward, debug]}
    profiles/out: {receivers: [forward], exporters: [otlp, otlp_http]}
";
    let config = Config::from_text(text, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.service.pipelines.len(), 2);
    let Some(ExporterConfig::OtlpHttp(http)) = config
        .exporters
        .get(&ComponentId::parse("otlp_http").unwrap())
    else {
        panic!("no otlp_http exporter")
    };
    assert_eq!(
        http.url(crate::pdata::Signal::Profiles).unwrap(),
        "http://pyroscope:4040/v1development/profiles"
    );
}
