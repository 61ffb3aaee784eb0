use crate::{Columns, Op, Path, Value, eval::compare, parse};
use std::collections::HashMap;
use std::rc::Rc;

/// A batch given as columns by path text.
struct Table {
    len: usize,
    columns: HashMap<String, Vec<Value<'static>>>,
}

impl<'a> Columns<'a> for Table {
    fn item_count(&self) -> usize {
        self.len
    }
    fn column(&mut self, path: &Path) -> Rc<[Value<'a>]> {
        let values = self
            .columns
            .get(&path.to_string())
            .cloned()
            .unwrap_or_else(|| vec![Value::Nil; self.len]);
        values.into()
    }
}

fn s(v: &str) -> Value<'static> {
    Value::Str(v.to_string().into())
}

fn matches(condition: &str, table: &mut Table) -> Vec<bool> {
    let expr = parse(condition).unwrap_or_else(|e| panic!("{condition}: {e}"));
    let outcome = expr.eval(table);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    outcome.matched
}

fn spans() -> Table {
    let mut columns = HashMap::new();
    columns.insert(
        "name".into(),
        vec![s("app_3"), s("GET /health"), s("grpc.call")],
    );
    columns.insert(
        "kind".into(),
        vec![Value::Int(2), Value::Int(3), Value::Int(1)],
    );
    columns.insert(
        r#"attributes["container.name"]"#.into(),
        vec![s("app_container_1"), s("other"), Value::Nil],
    );
    columns.insert(
        r#"attributes["http.request.method"]"#.into(),
        vec![Value::Nil, s("GET"), Value::Nil],
    );
    columns.insert(
        r#"resource.attributes["host.name"]"#.into(),
        vec![s("localhost"), s("web-1"), s("web-1")],
    );
    columns.insert(
        r#"attributes["grpc"]"#.into(),
        vec![Value::Bool(false), Value::Nil, Value::Bool(true)],
    );
    Table { len: 3, columns }
}

// The span and span-event conditions of the collector filterprocessor's README example.
#[test]
fn collector_readme_trace_conditions() {
    let mut t = spans();
    assert_eq!(
        matches(
            r#"attributes["container.name"] == "app_container_1""#,
            &mut t
        ),
        [true, false, false]
    );
    assert_eq!(
        matches(r#"resource.attributes["host.name"] == "localhost""#, &mut t),
        [true, false, false]
    );
    assert_eq!(matches(r#"name == "app_3""#, &mut t), [true, false, false]);
    assert_eq!(
        matches(r#"attributes["grpc"] == true"#, &mut t),
        [false, false, true]
    );
    assert_eq!(
        matches(r#"IsMatch(name, ".*grpc.*")"#, &mut t),
        [false, false, true]
    );
    assert_eq!(
        matches(r#"attributes["http.request.method"] == nil"#, &mut t),
        [true, false, true]
    );
    assert_eq!(
        matches(r#"attributes["http.request.method"] != nil"#, &mut t),
        [false, true, false]
    );
    assert_eq!(
        matches(
            "kind == SPAN_KIND_CLIENT or kind == SPAN_KIND_INTERNAL",
            &mut t
        ),
        [false, true, true]
    );
    assert_eq!(
        matches(
            r#"not (name == "app_3" or IsMatch(resource.attributes["host.name"], "^web-"))"#,
            &mut t
        ),
        [false, false, false]
    );
}

// The log and metric conditions of the README: severities, bodies, metric types.
#[test]
fn collector_readme_log_and_metric_conditions() {
    let mut logs = Table {
        len: 4,
        columns: HashMap::from([
            (
                "severity_number".into(),
                vec![Value::Int(0), Value::Int(5), Value::Int(13), Value::Int(17)],
            ),
            (
                "body".into(),
                vec![
                    s("user password=hunter2"),
                    s("ok"),
                    Value::Int(42),
                    Value::Nil,
                ],
            ),
        ]),
    };
    assert_eq!(
        matches("severity_number < SEVERITY_NUMBER_WARN", &mut logs),
        [true, true, false, false]
    );
    assert_eq!(
        matches(
            "severity_number != SEVERITY_NUMBER_UNSPECIFIED and severity_number < SEVERITY_NUMBER_WARN",
            &mut logs
        ),
        [false, true, false, false]
    );
    assert_eq!(
        matches(r#"IsMatch(body, ".*password.*")"#, &mut logs),
        [true, false, false, false]
    );
    assert_eq!(
        matches(r#"IsMatch(body, "^4\d$")"#, &mut logs),
        [false, false, true, false]
    );

    let mut metrics = Table {
        len: 3,
        columns: HashMap::from([
            (
                "name".into(),
                vec![s("my.metric"), s("my.metric"), s("other")],
            ),
            (
                "type".into(),
                vec![Value::Int(3), Value::Int(2), Value::Int(5)],
            ),
            (
                r#"resource.attributes["my_label"]"#.into(),
                vec![s("abc123"), s("zzz"), s("abc123")],
            ),
        ]),
    };
    assert_eq!(
        matches(
            r#"name == "my.metric" and resource.attributes["my_label"] == "abc123""#,
            &mut metrics
        ),
        [true, false, false]
    );
    assert_eq!(
        matches("type == METRIC_DATA_TYPE_HISTOGRAM", &mut metrics),
        [true, false, false]
    );
    assert_eq!(
        matches("type == METRIC_DATA_TYPE_SUMMARY", &mut metrics),
        [false, false, true]
    );
}

#[test]
fn ottl_comparison_rules() {
    assert!(compare(&Value::Int(3), Op::Lt, &Value::Double(3.5)));
    assert!(compare(&s("a"), Op::Lt, &s("b")));
    assert!(!compare(&s("3"), Op::Eq, &Value::Int(3)));
    assert!(compare(&s("3"), Op::Ne, &Value::Int(3)));
    assert!(!compare(&Value::Bool(true), Op::Gt, &Value::Bool(false)));
    assert!(compare(&Value::Nil, Op::Eq, &Value::Nil));
    assert!(!compare(&Value::Nil, Op::Lt, &Value::Int(1)));
}

// IsMatch on a map is an evaluation error: that item does not match, even under `not`.
#[test]
fn evaluation_errors_never_match() {
    let mut t = Table {
        len: 2,
        columns: HashMap::from([("body".into(), vec![Value::Composite("a map"), s("x")])]),
    };
    let expr = parse(r#"not IsMatch(body, "y")"#).unwrap();
    let outcome = expr.eval(&mut t);
    assert_eq!(outcome.matched, [false, true]);
    assert_eq!(outcome.errors.len(), 1);
    assert_eq!(outcome.errors[0].item, 0);
    assert!(
        outcome.errors[0].message.contains("a map"),
        "{:?}",
        outcome.errors
    );
}

#[test]
fn severity_enums() {
    let mut t = Table {
        len: 1,
        columns: HashMap::from([("severity_number".into(), vec![Value::Int(10)])]),
    };
    assert_eq!(
        matches("severity_number == SEVERITY_NUMBER_INFO2", &mut t),
        [true]
    );
    assert_eq!(
        matches("severity_number > SEVERITY_NUMBER_DEBUG4", &mut t),
        [true]
    );
    assert_eq!(
        matches("severity_number < SEVERITY_NUMBER_FATAL", &mut t),
        [true]
    );
}

// A condition that does not parse says what and where.
#[test]
fn parse_errors_name_the_column() {
    let cases = [
        (r#"name == "#, 9, "expected a value"),
        (r#"name = "x""#, 6, "unexpected `=`"),
        (r#"name == "x" and"#, 16, "expected a value"),
        (r#"IsMatch(name, "(")"#, 15, "invalid regex"),
        (r#"Hex(name) == "a""#, 1, "unsupported function `Hex`"),
        (r#"Frobnicate(name)"#, 1, "unknown function `Frobnicate`"),
        (
            r#"kind == SPAN_KIND_SERVR"#,
            9,
            "unknown enum `SPAN_KIND_SERVR`",
        ),
        (r#"(name == "x""#, 13, "expected `)`"),
        (r#"name == "x" name"#, 13, "expected `and`, `or`"),
        (
            r#"attributes[name] == 1"#,
            12,
            "computed keys are not supported",
        ),
        (r#"name + "x" == "y""#, 8, "math takes numbers"),
        (
            r#"IsMatch(name, "a", "b")"#,
            20,
            "IsMatch takes 2 argument(s)",
        ),
        (
            r#"IsMatch(name)"#,
            13,
            "IsMatch needs its `pattern` argument",
        ),
        (r#"ConvertCase(name, "kebab") == "x""#, 19, "invalid case"),
        (r#"name == "open"#, 9, "string is not closed"),
        (r#""x""#, 1, "expected a condition"),
        ("", 1, "empty"),
        ("trace_id == 0xabc", 13, "even number of hex digits"),
        ("span_id == SpanID(0x01)", 19, "expected 8 bytes"),
    ];
    for (text, column, message) in cases {
        let error = parse(text).expect_err(text);
        assert_eq!(error.column, column, "{text}: {error}");
        assert!(error.message.contains(message), "{text}: {error}");
    }
}

#[test]
fn paths_are_listed_for_the_caller_to_check() {
    let expr = parse(r#"name == "a" and IsMatch(resource.attributes["k"], "b")"#).unwrap();
    let paths: Vec<String> = expr.paths().iter().map(|p| p.to_string()).collect();
    assert_eq!(paths, ["name", r#"resource.attributes["k"]"#]);
    assert_eq!(expr.paths()[1].column, 25);
}

// Trace and span IDs compare as bytes against `TraceID(0x…)`, `SpanID(0x…)` or a `0x…`
// literal, and equal only the same bytes; borrowed column bytes compare like owned ones.
#[test]
fn ids_compare_as_bytes() {
    let id: Vec<u8> = (1..=16).collect();
    let mut t = Table {
        len: 2,
        columns: HashMap::from([(
            "trace_id".into(),
            vec![Value::Bytes(id.into()), Value::Bytes(vec![0u8; 16].into())],
        )]),
    };
    let hex = "0102030405060708090a0b0c0d0e0f10";
    assert_eq!(
        matches(&format!("trace_id == TraceID(0x{hex})"), &mut t),
        [true, false]
    );
    assert_eq!(
        matches(&format!("trace_id != 0x{hex}"), &mut t),
        [false, true]
    );
    assert_eq!(
        matches(
            "trace_id == TraceID(0x00000000000000000000000000000000)",
            &mut t
        ),
        [false, true]
    );
    assert_eq!(
        matches(&format!(r#"IsMatch(trace_id, "^{hex}$")"#), &mut t),
        [true, false]
    );
}
