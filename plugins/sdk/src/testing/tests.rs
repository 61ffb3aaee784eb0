//! The harness keeps the host's semantics: what a test passes natively holds in trailhead.

use super::{Metrics, Profiles, Spans, otlp};
use crate::{
    Batch, Error, Level, MetricBatch, Plugin, ProfileBatch, Signal, SpanBatch, SpanEvent, int, kv,
    string,
};

/// One resource, one scope, two spans; the first has two events.
const SPANS: &str = r#"{"resourceSpans": [{"scopeSpans": [{"scope": {"name": "s", "version": "1"}, "spans": [
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "a",
     "startTimeUnixNano": "1000", "endTimeUnixNano": "3500",
     "events": [{"name": "e0", "timeUnixNano": "1100"}, {"name": "e1", "timeUnixNano": "1200"}]},
    {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7", "name": "b"}
]}]}]}"#;

/// Two gauges in one scope: `g0` with points [p0 (exemplars x0, x1), p1], `g1` with [p2].
const METRICS: &str = r#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [
    {"name": "g0", "gauge": {"dataPoints": [
        {"asInt": "1", "exemplars": [{"asInt": "10"}, {"asDouble": 2.5}]}, {"asDouble": 1.5}]}},
    {"name": "g1", "gauge": {"dataPoints": [{"asInt": "3"}]}}
]}]}]}"#;

/// A plugin that renames every span to `x`, then fails if told to.
struct Rename {
    fail: bool,
}

impl Plugin for Rename {
    type Config = ();
    const NAME: &'static str = "rename";
    const VERSION: &'static str = "0";
    fn new(_: ()) -> Result<Self, String> {
        Ok(Rename { fail: false })
    }
    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Traces]
    }
    fn process_spans(&mut self, batch: &impl SpanBatch) -> Result<(), Error> {
        batch.remove(Level::Event, &[0]);
        batch.set_names(Level::Item, &batch.all(Level::Item), &["x".to_string()]);
        if self.fail {
            Err("told to".into())
        } else {
            Ok(())
        }
    }
}

// Columns read what the JSON says: hex IDs, string-encoded times, scope names.
#[test]
fn reads_columns() {
    let spans = Spans::from_json(SPANS).unwrap();
    assert_eq!(spans.count(Level::Item), 2);
    assert_eq!(spans.count(Level::Event), 2);
    assert_eq!(spans.count(Level::Point), 0);
    assert_eq!(
        spans.trace_id_list(Level::Item)[1].to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(spans.durations()[0].as_nanos(), 2500);
    assert_eq!(
        spans.names(Level::Event).iter().collect::<Vec<_>>(),
        ["e0", "e1"]
    );
    assert_eq!(spans.parents(Level::Event), [0, 0]);
    assert_eq!(spans.scope_names().get(0), "s");
}

// A removal keeps every index until the call ends; then the span's events go with it.
#[test]
fn removal_is_deferred_and_takes_children() {
    let spans = Spans::from_json(SPANS).unwrap();
    spans.remove(Level::Event, &[0]);
    spans.remove(Level::Item, &[1]);
    assert_eq!(spans.count(Level::Item), 2);
    spans.set_attr(Level::Item, &[1], "still", &int(1));
    spans.add_event(
        1,
        &SpanEvent {
            time_unix_nano: 5,
            name: "e2".into(),
            attributes: vec![],
        },
    );
    assert_eq!(spans.count(Level::Event), 3);

    let request = spans.request();
    let left = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0]
            .events
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["e1"]
    );
}

// An exemplar is numbered across its metric's points; a metric left without points goes,
// and a scope and resource left without metrics go with it.
#[test]
fn metrics_left_empty_go() {
    let metrics = Metrics::from_json(METRICS).unwrap();
    assert_eq!(metrics.parents(Level::Exemplar), [0, 0]);
    assert_eq!(metrics.values(Level::Exemplar).double(1), Some(2.5));
    metrics.remove(Level::Exemplar, &[0]);
    metrics.remove(Level::Point, &[1]);
    let request = metrics.request();
    let left = &request.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(left.len(), 2);

    metrics.remove(Level::Point, &[0, 1, 2]);
    assert!(metrics.request().resource_metrics.is_empty());
}

// `Err` leaves the batch as it was; `Ok` keeps the changes.
#[test]
fn err_discards_changes() {
    let mut spans = Spans::from_json(SPANS).unwrap();
    assert!(spans.run(&mut Rename { fail: true }).is_err());
    assert_eq!(
        spans.names(Level::Item).iter().collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(spans.count(Level::Event), 2);

    spans.run(&mut Rename { fail: false }).unwrap();
    assert_eq!(spans.count(Level::Event), 1);
    assert_eq!(
        spans.names(Level::Item).iter().collect::<Vec<_>>(),
        ["x", "x"]
    );
}

// A bad index traps in the host; natively it panics with the same message.
#[test]
#[should_panic(
    expected = "set-attr: index 2 is out of range: level `item` has 2 entries in this batch"
)]
fn bad_index_panics() {
    Spans::from_json(SPANS)
        .unwrap()
        .set_attr(Level::Item, &[2], "k", &int(1));
}

// So does a list of values that is neither one per index nor one for all.
#[test]
#[should_panic(expected = "set-names: 2 values for 3 indexes (give one per index, or one for all)")]
fn bad_length_panics() {
    let spans = Spans::from_json(SPANS).unwrap();
    spans.set_names(
        Level::Event,
        &[0, 1, 0],
        &["a".to_string(), "b".to_string()],
    );
}

// A config error names the field's path; an empty config is `{}`.
#[test]
fn config_errors_name_the_path() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Config {
        #[serde(default)]
        paths: Vec<String>,
    }
    let error = crate::parse_config::<Config>(r#"{"paths": ["a", 1]}"#).unwrap_err();
    assert!(
        error.starts_with("paths[1]: invalid type: integer `1`, expected a string"),
        "{error}"
    );
    assert!(crate::parse_config::<Config>("").is_ok());
}

/// A plugin that stamps every profile resource with `team`, then fails if told to.
struct StampProfiles {
    fail: bool,
}

impl Plugin for StampProfiles {
    type Config = ();
    const NAME: &'static str = "stamp-profiles";
    const VERSION: &'static str = "0";
    fn new(_: ()) -> Result<Self, String> {
        Ok(StampProfiles { fail: false })
    }
    fn signals(&self) -> Vec<Signal> {
        vec![Signal::Profiles]
    }
    fn process_profiles(&mut self, batch: &impl ProfileBatch) -> Result<(), Error> {
        batch.set_attr(
            Level::Resource,
            &batch.all_resources(),
            "team",
            &string("maths"),
        );
        batch.set_attrs(Level::Resource, 1, &[kv("tier", int(2))]);
        batch.remove_attrs(Level::Resource, &[0], &["drop.me".to_string()]);
        if self.fail {
            Err("told to".into())
        } else {
            Ok(())
        }
    }
}

/// Two resources, the first with `drop.me` and a schema URL, each with one profile of one
/// sample and a shared dictionary.
fn profiles_request() -> otlp::collector::profiles::v1development::ExportProfilesServiceRequest {
    use otlp::profiles::v1development::{
        Profile, ProfilesDictionary, ResourceProfiles, Sample, ScopeProfiles,
    };
    let resource = |attributes: Vec<otlp::common::v1::KeyValue>, url: &str| ResourceProfiles {
        resource: Some(otlp::resource::v1::Resource {
            attributes,
            ..Default::default()
        }),
        scope_profiles: vec![ScopeProfiles {
            profiles: vec![Profile {
                samples: vec![Sample {
                    stack_index: 1,
                    values: vec![7],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
        schema_url: url.into(),
    };
    let drop_me = otlp::common::v1::KeyValue {
        key: "drop.me".into(),
        value: Some(otlp::common::v1::AnyValue {
            value: Some(otlp::common::v1::any_value::Value::BoolValue(true)),
        }),
        ..Default::default()
    };
    otlp::collector::profiles::v1development::ExportProfilesServiceRequest {
        resource_profiles: vec![resource(vec![drop_me], "https://s/1"), resource(vec![], "")],
        dictionary: Some(ProfilesDictionary {
            string_table: vec!["".into(), "main".into()],
            ..Default::default()
        }),
    }
}

// A profiles plugin edits resource attributes only; the profiles and the dictionary stay as
// they came, and an `Err` discards the edits.
#[test]
fn profiles_are_edited_at_the_resource_level() {
    let original = profiles_request();
    let mut batch = Profiles::from_request(original.clone());
    assert_eq!(batch.count(Level::Resource), 2);
    assert_eq!(
        (batch.count(Level::Scope), batch.count(Level::Item)),
        (0, 0)
    );
    assert_eq!(
        batch
            .schema_urls(Level::Resource)
            .iter()
            .collect::<Vec<_>>(),
        ["https://s/1", ""]
    );
    let mut plugin = StampProfiles { fail: true };
    assert!(batch.run(&mut plugin).is_err());
    assert_eq!(
        batch.request(),
        original,
        "an Err leaves the request as it was"
    );

    plugin.fail = false;
    batch.run(&mut plugin).unwrap();
    let out = batch.request();
    let keys = |r: usize| -> Vec<String> {
        let resource = out.resource_profiles[r].resource.as_ref().unwrap();
        resource
            .attributes
            .iter()
            .map(|kv| kv.key.clone())
            .collect()
    };
    assert_eq!(keys(0), ["team"]);
    assert_eq!(keys(1), ["team", "tier"]);
    for (got, want) in out
        .resource_profiles
        .iter()
        .zip(&original.resource_profiles)
    {
        assert_eq!(got.scope_profiles, want.scope_profiles);
        assert_eq!(got.schema_url, want.schema_url);
    }
    assert_eq!(out.dictionary, original.dictionary);
    assert_eq!(batch.to_otlp(), prost::Message::encode_to_vec(&out));
}

// A plugin that does not override `process_profiles` leaves the request alone.
#[test]
fn profiles_pass_through_by_default() {
    let original = profiles_request();
    let mut batch = Profiles::from_request(original.clone());
    let mut plugin = Rename { fail: false };
    batch.run(&mut plugin).unwrap();
    assert_eq!(batch.request(), original);
}

// Only the resource level has entries: an index at another level panics as the host traps.
#[test]
#[should_panic(expected = "level `item` has no entries in a profile batch")]
fn profiles_have_no_other_levels() {
    let batch = Profiles::from_request(profiles_request());
    batch.set_attr(Level::Item, &[0], "k", &string("v"));
}
