//! The actions checked against the collector's documented behaviour (and its tests in
//! `attraction_test.go`), on plain maps and through a native batch.

use crate::Engine;
use crate::config::{ActionConfig, compile};
use crate::engine::{AttrMap, process};
use crate::value::as_string;
use trailhead_plugin::testing::Spans;
use trailhead_plugin::{AnyValue, Batch, Level, Value};

fn actions(json: &str) -> Vec<crate::engine::Action> {
    let list: Vec<ActionConfig> = serde_json::from_str(json).unwrap();
    compile(&list, "actions").unwrap().0
}

fn refused(json: &str) -> String {
    let list: Vec<ActionConfig> = serde_json::from_str(json).unwrap();
    compile(&list, "actions").unwrap_err()
}

fn map(entries: &[(&str, AnyValue)]) -> AttrMap {
    AttrMap {
        entries: entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn run(json: &str, attrs: &mut AttrMap) {
    process(&actions(json), attrs, &mut || "10.0.0.7".to_string());
}

fn s(v: &str) -> AnyValue {
    AnyValue::Str(v.into())
}

fn get<'a>(attrs: &'a AttrMap, key: &str) -> Option<&'a AnyValue> {
    attrs.get(key)
}

fn is_str(v: Option<&AnyValue>, want: &str) -> bool {
    matches!(v, Some(AnyValue::Str(x)) if x == want)
}

// insert writes only a missing key, update only an existing one, upsert both; each with the
// value's YAML type.
#[test]
fn insert_update_upsert() {
    let mut attrs = map(&[("a", s("old"))]);
    run(
        r#"[{"key":"a","value":"new","action":"insert"},{"key":"b","value":7,"action":"insert"},
            {"key":"c","value":true,"action":"update"},{"key":"a","value":1.5,"action":"UPDATE"},
            {"key":"d","value":"x","action":"upsert"}]"#,
        &mut attrs,
    );
    assert!(matches!(get(&attrs, "a"), Some(AnyValue::Double(d)) if *d == 1.5));
    assert!(matches!(get(&attrs, "b"), Some(AnyValue::Int(7))));
    assert!(get(&attrs, "c").is_none());
    assert!(is_str(get(&attrs, "d"), "x"));
}

// from_attribute copies; a missing source does nothing unless default_value is given;
// from_context: client.address is the sender's IP.
#[test]
fn sources_and_defaults() {
    let mut attrs = map(&[("src", AnyValue::Int(3))]);
    run(
        r#"[{"key":"copy","from_attribute":"src","action":"insert"},
            {"key":"none","from_attribute":"missing","action":"upsert"},
            {"key":"dflt","from_attribute":"missing","default_value":"d","action":"upsert"},
            {"key":"ip","from_context":"client.address","action":"insert"}]"#,
        &mut attrs,
    );
    assert!(matches!(get(&attrs, "copy"), Some(AnyValue::Int(3))));
    assert!(get(&attrs, "none").is_none());
    assert!(is_str(get(&attrs, "dflt"), "d"));
    assert!(is_str(get(&attrs, "ip"), "10.0.0.7"));
}

// delete by key and by pattern; hash is SHA-256 hex of the value's bytes (ints and doubles
// little-endian), bytes/maps become "", and a key also matched by the pattern is hashed twice.
#[test]
fn delete_and_hash() {
    let mut attrs = map(&[
        ("a", s("1")),
        ("b.x", s("2")),
        ("b.y", s("3")),
        ("c", s("4")),
    ]);
    run(
        r#"[{"key":"a","pattern":"^b\\.","action":"delete"}]"#,
        &mut attrs,
    );
    assert_eq!(attrs.entries.len(), 1);
    assert!(is_str(get(&attrs, "c"), "4"));

    let mut attrs = map(&[
        ("s", s("abc")),
        ("t", AnyValue::Boolean(true)),
        ("i", AnyValue::Int(1)),
        ("d", AnyValue::Double(1.5)),
        ("raw", AnyValue::Bytes(vec![1, 2])),
        ("twice", s("abc")),
    ]);
    run(
        r#"[{"key":"s","action":"hash"},{"key":"t","action":"hash"},{"key":"i","action":"hash"},
            {"key":"d","action":"hash"},{"key":"raw","action":"hash"},
            {"key":"twice","pattern":"^twi","action":"hash"}]"#,
        &mut attrs,
    );
    let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert!(is_str(get(&attrs, "s"), abc));
    assert!(is_str(
        get(&attrs, "t"),
        "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a"
    ));
    assert!(is_str(
        get(&attrs, "i"),
        "7c9fa136d4413fa6173637e883b6998d32e1d675f88cddff9dcbcf331820f4b8"
    ));
    assert!(is_str(
        get(&attrs, "d"),
        "e163f8cb0f7067a7fc78ca859a77f849aea3214f38fb75b884e4a16be725c905"
    ));
    assert!(is_str(get(&attrs, "raw"), ""));
    assert!(is_str(
        get(&attrs, "twice"),
        "dfe7a23fefeea519e9bbfdd1a6be94c4b2e4529dd6b7cbea83f9959c2621b13c"
    ));
}

// extract writes each named group (overwriting), an empty string for a group that did not
// take part, nothing when the value is no string or does not match.
#[test]
fn extract() {
    let mut attrs = map(&[("url", s("/api/v1/users/42")), ("user", s("old"))]);
    run(
        r#"[{"key":"url","pattern":"^/api/(?P<version>v\\d+)/users/(?P<user>\\d+)(?P<rest>/.*)?$","action":"extract"}]"#,
        &mut attrs,
    );
    assert!(is_str(get(&attrs, "version"), "v1"));
    assert!(is_str(get(&attrs, "user"), "42"));
    assert!(is_str(get(&attrs, "rest"), ""));
    let mut attrs = map(&[("url", AnyValue::Int(5))]);
    run(
        r#"[{"key":"url","pattern":"(?P<x>.)","action":"extract"}]"#,
        &mut attrs,
    );
    assert_eq!(attrs.entries.len(), 1);
}

// convert: int, double and string with the collector's rules; what cannot convert stays.
#[test]
fn convert() {
    let mut attrs = map(&[
        ("a", s("42")),
        ("b", s("4.2")),
        ("c", AnyValue::Double(-3.9)),
        ("d", AnyValue::Boolean(true)),
        ("e", s("x")),
        ("f", AnyValue::Double(1e21)),
        ("g", s("1e400")),
        ("h", s(" 1")),
    ]);
    run(
        r#"[{"key":"a","converted_type":"int","action":"convert"},
            {"key":"b","converted_type":"double","action":"convert"},
            {"key":"c","converted_type":"int","action":"convert"},
            {"key":"d","converted_type":"double","action":"convert"},
            {"key":"e","converted_type":"int","action":"convert"},
            {"key":"f","converted_type":"string","action":"convert"},
            {"key":"g","converted_type":"double","action":"convert"},
            {"key":"h","converted_type":"int","action":"convert"}]"#,
        &mut attrs,
    );
    assert!(matches!(get(&attrs, "a"), Some(AnyValue::Int(42))));
    assert!(matches!(get(&attrs, "b"), Some(AnyValue::Double(d)) if *d == 4.2));
    assert!(matches!(get(&attrs, "c"), Some(AnyValue::Int(-3))));
    assert!(matches!(get(&attrs, "d"), Some(AnyValue::Double(d)) if *d == 1.0));
    assert!(is_str(get(&attrs, "e"), "x"));
    assert!(is_str(get(&attrs, "f"), "1e+21"));
    assert!(is_str(get(&attrs, "g"), "1e400"));
    assert!(is_str(get(&attrs, "h"), " 1"));
}

// A config value becomes pdata's value as FromRaw makes it, so its AsString (from pdata-text,
// whose own tests cover the formats) is the collector's: JSON with sorted keys, no HTML escaping.
#[test]
fn config_values_read_as_pdatas() {
    let json: serde_json::Value =
        serde_json::from_str(r#"{"z":[1,2.5,"<a>"],"a":{"b":null,"c":true}}"#).unwrap();
    let value = crate::value::from_json(&json).to_any_value();
    let AnyValue::Kvlist(bytes) = &value else {
        panic!()
    };
    assert_eq!(
        as_string(&Value::Kvlist(bytes)),
        r#"{"a":{"b":null,"c":true},"z":[1,2.5,"<a>"]}"#
    );
}

// Each misconfiguration the collector refuses is refused, naming the action and field.
#[test]
fn bad_configs_name_the_field() {
    let cases = [
        (
            r#"[{"value":"x","action":"insert"}]"#,
            "actions[0].key: missing",
        ),
        (
            r#"[{"key":"k","action":"delete","value":1}]"#,
            "actions[0].value",
        ),
        (
            r#"[{"key":"k","action":"insert"}]"#,
            "actions[0]: `insert` needs one of",
        ),
        (
            r#"[{"key":"k","value":1,"from_attribute":"x","action":"upsert"}]"#,
            "not several",
        ),
        (
            r#"[{"key":"k","action":"extract","pattern":"(.*)"}]"#,
            "actions[0].pattern: every group must be named",
        ),
        (
            r#"[{"key":"k","action":"extract","pattern":"abc"}]"#,
            "no named groups",
        ),
        (
            r#"[{"key":"k","action":"hash","pattern":"("}]"#,
            "actions[0].pattern:",
        ),
        (
            r#"[{"key":"k","action":"convert","converted_type":"bool"}]"#,
            "actions[0].converted_type: unknown type `bool`",
        ),
        (
            r#"[{"key":"k","action":"convert"}]"#,
            "actions[0].converted_type: missing",
        ),
        (
            r#"[{"key":"k","action":"rename"}]"#,
            "actions[0].action: unknown action `rename`",
        ),
        (r#"[{"action":"delete"}]"#, "needs a `key` or a `pattern`"),
        (
            r#"[{"key":"k","from_context":"metadata.x","action":"insert"}]"#,
            "actions[0].from_context: `metadata.x` is not available",
        ),
    ];
    for (json, want) in cases {
        let error = refused(json);
        assert!(error.contains(want), "{json}: {error}");
    }
    let unknown: Result<Vec<ActionConfig>, _> =
        serde_json::from_str(r#"[{"key":"k","action":"delete","regex":"x"}]"#);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `regex`")
    );
}

const SPANS: &str = r#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
  "scopeSpans": [{"spans": [
    {"name": "a", "attributes": [{"key": "user", "value": {"stringValue": "u1"}}, {"key": "secret.a", "value": {"stringValue": "s"}}]},
    {"name": "b", "attributes": [{"key": "user", "value": {"stringValue": "u2"}}]},
    {"name": "c"}
  ]}]}]}"#;

fn item_attrs(spans: &Spans, i: u32) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = spans
        .attrs(Level::Item, i)
        .into_iter()
        .map(|kv| (kv.key, crate::value::any_as_string(&kv.value)))
        .collect();
    out.sort();
    out
}

// Through a batch, by columns (no pattern) and by whole maps (a pattern), only the chosen
// items change, and the results are the same as the per-map engine's.
#[test]
fn applies_to_the_chosen_items_of_a_batch() {
    for json in [
        r#"[{"key":"env","value":"prod","action":"insert"},{"key":"user","action":"hash"},{"key":"secret.a","action":"delete"}]"#,
        r#"[{"key":"env","value":"prod","action":"insert"},{"key":"user","action":"hash"},{"pattern":"^secret\\.","action":"delete"}]"#,
    ] {
        let spans = Spans::from_json(SPANS).unwrap();
        Engine::new(actions(json)).apply(&spans, Level::Item, &[0, 2]);
        let mut hashed = s("u1");
        crate::engine::hash(&mut hashed);
        let first = item_attrs(&spans, 0);
        assert_eq!(first.len(), 2, "{json}: {first:?}");
        assert_eq!(first[0], ("env".into(), "prod".into()));
        assert_eq!(
            first[1],
            ("user".into(), crate::value::any_as_string(&hashed))
        );
        assert_eq!(item_attrs(&spans, 1), [("user".into(), "u2".into())]);
        assert_eq!(item_attrs(&spans, 2), [("env".into(), "prod".into())]);
    }
}
