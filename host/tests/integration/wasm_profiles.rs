//! Contract 0.2.1's profiles from the host's side: a plugin that declares `profiles` gets
//! `process-profiles` with the request's resources, its attribute writes land in the request
//! and every other byte stays as it came; the built-in k8sattributes does so through the SDK;
//! a trap or an error leaves the request as it was; and a plugin that does not declare
//! `profiles` is refused on a profiles pipeline, with the reason, at the line that lists it.
//! Needs `make plugins` (the components in target/plugins/, or `TRAILHEAD_PLUGIN_DIR`).

#![allow(clippy::unwrap_used)] // a test: a failed step should fail it loudly

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::profiles::v1development::{
    Profile, ProfilesDictionary, ResourceProfiles, Sample, ScopeProfiles,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use trailhead::pdata::{Batch, RequestContext, Signal};
use trailhead::processors::wasm::{FailureKind, LoadError, Plugin, Runtime};

use crate::plugins;
use plugins::plugin_path;

fn load(runtime: &Arc<Runtime>, name: &str, config: &str) -> Plugin {
    plugins::load_with(runtime, name, config, Duration::from_millis(500)).unwrap()
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(value: &str) -> Value {
    Value::StringValue(value.into())
}

/// Two resources: `lessons` (with `drop.me` and a schema URL), and one with no resource at
/// all; each with a profile of two samples, indexing a shared dictionary.
fn request() -> ExportProfilesServiceRequest {
    let profile = |value| ScopeProfiles {
        profiles: vec![Profile {
            samples: vec![
                Sample {
                    stack_index: 1,
                    values: vec![value],
                    ..Default::default()
                };
                2
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportProfilesServiceRequest {
        resource_profiles: vec![
            ResourceProfiles {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", text("lessons")),
                        kv("drop.me", Value::BoolValue(true)),
                    ],
                    ..Default::default()
                }),
                scope_profiles: vec![profile(10)],
                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
            },
            ResourceProfiles {
                resource: None,
                scope_profiles: vec![profile(20)],
                schema_url: String::new(),
            },
        ],
        dictionary: Some(ProfilesDictionary {
            string_table: vec!["".into(), "main".into(), "cpu".into()],
            ..Default::default()
        }),
    }
}

fn batch(request: &ExportProfilesServiceRequest) -> Batch {
    let context = RequestContext::of_request(
        Some("10.1.2.3:4000".parse().unwrap()),
        None,
        Arc::from("otlp"),
    );
    Batch::from_message(Signal::Profiles, request, context)
}

// The built-in k8sattributes (0.2.1, through the SDK) stamps `k8s.pod.ip` on every profile
// resource; the output is the very encoding of the request with that attribute added.
#[test]
fn k8sattributes_enriches_profile_resources_in_place() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, "k8sattributes", "{}");
    assert_eq!(plugin.info.contract, "0.2.1");
    assert!(plugin.handles(Signal::Profiles));
    let original = request();
    let input = batch(&original);
    let out = plugin.process(&input).unwrap();
    assert_eq!(out.items, 4, "every sample is still there");

    let mut expected = original.clone();
    for resource_profiles in &mut expected.resource_profiles {
        let resource = resource_profiles
            .resource
            .get_or_insert_with(Default::default);
        resource.attributes.push(kv("k8s.pod.ip", text("10.1.2.3")));
    }
    assert_eq!(out.payload.to_bytes(), expected.encode_to_vec());
}

// Every call of `profile-batch`, through the probe: what it read comes back as attributes,
// its removals and writes land, the other levels have no entries, and nothing but the
// resources changes, byte for byte.
#[test]
fn profile_batch_calls_read_and_write() {
    let runtime = Runtime::new().unwrap();
    let probe = load(&runtime, "contract-profiles", "{}");
    assert_eq!(probe.info.contract, "0.2.1");
    let original = request();
    let out = probe.call(&batch(&original)).unwrap();

    let request_bytes = original.encoded_len() as i64;
    let echoed = |service: &str, schema: &str, keys: &str| {
        vec![
            kv("probe.service", text(service)),
            kv("probe.schema", text(schema)),
            kv("probe.keys", text(keys)),
            kv("probe.request_bytes", Value::IntValue(request_bytes)),
            kv("probe.levels", Value::IntValue(0)),
            kv("probe.all", Value::IntValue(1)),
        ]
    };
    let mut expected = original.clone();
    let first = expected.resource_profiles[0].resource.as_mut().unwrap();
    first.attributes = [kv("service.name", text("lessons"))]
        .into_iter()
        .chain(echoed(
            "lessons",
            "https://opentelemetry.io/schemas/1.30.0",
            "service.name,drop.me",
        ))
        .collect();
    expected.resource_profiles[1].resource = Some(Resource {
        attributes: echoed("(none)", "", ""),
        ..Default::default()
    });
    assert_eq!(
        ExportProfilesServiceRequest::decode(out.clone()).unwrap(),
        expected
    );
    assert_eq!(out, expected.encode_to_vec(), "nothing else changed");
}

// A write naming a level a profile batch does not have traps with the reason, already on the
// canary profiles batch, so that version is refused at load; an error discards the call's
// writes and keeps the plugin serving.
#[test]
fn traps_and_errors_on_profiles() {
    let runtime = Runtime::new().unwrap();
    let trapping = plugins::load_with(
        &runtime,
        "contract-profiles",
        r#"{"mode":"trap-level"}"#,
        Duration::from_millis(500),
    );
    let Err(LoadError::Canary { reason, .. }) = trapping else {
        panic!("a plugin that traps on profiles loaded")
    };
    assert!(
        reason.contains("trap: set-attr: level `item` has no entries in a profile batch"),
        "{reason}"
    );
    let input = batch(&request());
    let failing = load(&runtime, "contract-profiles", r#"{"mode":"fail"}"#);
    let failure = failing.call(&input).unwrap_err();
    assert_eq!(failure.kind, FailureKind::PluginError, "{failure:?}");
    assert_eq!(failure.message, "the probe was told to fail");
}

/// What `trailhead validate` says about a profiles pipeline running `plugin` with the
/// settings `extra` (`, key: value`, after its `plugin:`).
fn plan_with(plugin: &str, extra: &str) -> Result<(), String> {
    let path = plugin_path(plugin);
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\nprocessors:\n  probe: {{plugin: '{}'{extra}}}\nexporters:\n  debug:\nservice:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n      processors: [probe]\n      exporters: [debug]\n",
        path.display()
    );
    let config = trailhead::components::Config::from_text(&text, std::path::Path::new("t.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let registry = Arc::new(trailhead::telemetry::metrics::Registry::default());
    trailhead::service::Plan::new(&config, &registry)
        .map(drop)
        .map_err(|e| e.to_string())
}

// A profiles pipeline runs a plugin that declares `profiles`; one that does not (a 0.2.0
// component cannot; a 0.2.1 one may not) is refused with the reason, at the line that lists
// it in the pipeline.
#[test]
fn a_plugin_that_does_not_declare_profiles_is_refused() {
    assert_eq!(plan_with("contract-profiles", ""), Ok(()));
    let undeclared = plan_with("contract-profiles", ", declare: false").unwrap_err();
    let older = plan_with("contract-v2", ", mode: columns").unwrap_err();
    for error in [undeclared, older] {
        assert!(
            error.starts_with("t.yaml:14:20: pipeline `profiles`: processor `probe` cannot process profiles: its plugin does not declare `profiles`"),
            "{error}"
        );
        assert!(error.contains("contract 0.2.1"), "{error}");
    }
}

// The built-ins the config lets onto a profiles pipeline are exactly those that declare
// `profiles` (`processors::BUILT_IN_FOR_PROFILES`).
#[test]
fn built_ins_for_profiles_are_those_that_declare_them() {
    let runtime = Runtime::new().unwrap();
    let mut checked = 0;
    for name in trailhead::processors::BUILT_IN {
        let file = name.replace('_', "-");
        // Some need settings to start; those that start with none are checked.
        let Ok(plugin) = plugins::load_with(&runtime, &file, "{}", Duration::from_millis(500))
        else {
            continue;
        };
        let listed = trailhead::processors::BUILT_IN_FOR_PROFILES.contains(name);
        assert_eq!(plugin.handles(Signal::Profiles), listed, "{name}");
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} built-ins started with no settings"
    );
}
