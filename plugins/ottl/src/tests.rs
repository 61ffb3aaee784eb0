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

fn map(pairs: &[(&str, Value<'static>)]) -> Value<'static> {
    Value::Map(Rc::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    ))
}

/// What a statement's editor makes of `target`, with its arguments evaluated over one item
/// whose columns are `table`.
fn edit(statement: &str, target: Value<'static>) -> Result<Option<Value<'static>>, String> {
    let statement =
        crate::parse_statement(statement).unwrap_or_else(|e| panic!("{statement}: {e}"));
    let mut table = Table {
        len: 1,
        columns: HashMap::new(),
    };
    let args: Vec<Value> = statement
        .args
        .iter()
        .map(|a| crate::eval_operand(a, &mut table, None).0.remove(0))
        .collect();
    statement.editor.apply(&target, &args)
}

/// A converter expression's value over one item with `name` = "GET /users/42".
fn value(expression: &str) -> Result<Value<'static>, String> {
    let statement = crate::parse_statement(&format!("set(x, {expression})"))
        .unwrap_or_else(|e| panic!("{expression}: {e}"));
    let mut table = Table {
        len: 1,
        columns: HashMap::from([
            ("name".to_string(), vec![s("GET /users/42")]),
            ("n".to_string(), vec![Value::Int(7)]),
        ]),
    };
    let (mut values, errors) = crate::eval_operand(&statement.args[0], &mut table, None);
    match errors.first() {
        Some(e) => Err(e.message.clone()),
        None => Ok(values.remove(0).into_owned()),
    }
}

// Each editor on a map or a value, as the collector's does.
#[test]
fn editors() {
    let attrs = map(&[
        ("a", s("1")),
        ("pw", s("x")),
        ("b", Value::Int(2)),
        ("c", s("long text")),
    ]);
    let keys = |v: Option<Value>| match v {
        Some(Value::Map(m)) => m.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(edit(r#"set(x, "v")"#, Value::Nil), Ok(Some(s("v"))));
    assert_eq!(edit("set(x, nil)", s("v")), Ok(Some(Value::Nil)));
    // pdata's Remove: the last key takes the removed one's place.
    assert_eq!(
        keys(edit(r#"delete_key(x, "pw")"#, attrs.clone()).unwrap()),
        ["a", "c", "b"]
    );
    assert_eq!(edit(r#"delete_key(x, "none")"#, attrs.clone()), Ok(None));
    assert_eq!(
        keys(edit(r#"delete_matching_keys(x, "^[ab]$")"#, attrs.clone()).unwrap()),
        ["pw", "c"]
    );
    assert_eq!(
        keys(edit(r#"keep_keys(x, ["c", "a"])"#, attrs.clone()).unwrap()),
        ["a", "c"]
    );
    assert_eq!(
        keys(edit(r#"keep_matching_keys(x, "^p")"#, attrs.clone()).unwrap()),
        ["pw"]
    );
    assert_eq!(
        keys(edit(r#"limit(x, 2, ["c"])"#, attrs.clone()).unwrap()),
        ["a", "c"]
    );
    assert_eq!(edit("limit(x, 4, [])", attrs.clone()), Ok(None));
    assert_eq!(
        edit(
            r#"replace_pattern(x, "(\\w+) (\\w+)", "$2-${1}x")"#,
            s("long text")
        ),
        Ok(Some(s("text-longx")))
    );
    assert_eq!(edit(r#"replace_pattern(x, "z", "y")"#, s("abc")), Ok(None));
    assert_eq!(
        edit(r#"replace_pattern(x, "1", "y")"#, Value::Int(1)),
        Ok(None)
    );
    assert_eq!(
        edit(
            r#"replace_all_patterns(x, "value", "t", "T")"#,
            attrs.clone()
        ),
        Ok(Some(map(&[
            ("a", s("1")),
            ("pw", s("x")),
            ("b", Value::Int(2)),
            ("c", s("long TexT"))
        ])))
    );
    assert_eq!(
        keys(
            edit(
                r#"replace_all_patterns(x, "key", "^(a|b)$", "k")"#,
                attrs.clone()
            )
            .unwrap()
        ),
        ["k", "pw", "c"]
    );
    assert_eq!(
        edit(r#"replace_match(x, "long*", "L")"#, s("long text")),
        Ok(Some(s("L")))
    );
    assert_eq!(
        edit(r#"replace_match(x, "long", "L")"#, s("long text")),
        Ok(None)
    );
    assert_eq!(
        edit(r#"replace_all_matches(x, "{x,1}", "?")"#, attrs.clone()),
        Ok(Some(map(&[
            ("a", s("?")),
            ("pw", s("?")),
            ("b", Value::Int(2)),
            ("c", s("long text"))
        ])))
    );
    assert_eq!(
        edit(
            r#"truncate_all(x, 4, truncation_marker = "…")"#,
            map(&[("c", s("long text")), ("b", Value::Int(2))])
        ),
        Ok(Some(map(&[("c", s("l…")), ("b", Value::Int(2))])))
    );
    assert_eq!(
        edit("truncate_all(x, 4)", map(&[("c", s("héllo"))])),
        Ok(Some(map(&[("c", s("hél"))])))
    );
    assert_eq!(
        edit(
            "truncate_all(x, 4, false)",
            map(&[("c", s("long")), ("d", s("longer"))])
        ),
        Ok(Some(map(&[("c", s("long")), ("d", s("long"))])))
    );
    assert_eq!(
        edit(
            r#"merge_maps(x, {"a": "new", "z": 1}, "update")"#,
            attrs.clone()
        )
        .map(keys),
        Ok(vec!["a".to_string(), "pw".into(), "b".into(), "c".into()])
    );
    assert_eq!(
        edit(
            r#"merge_maps(x, {"a": "new", "z": 1}, "upsert")"#,
            map(&[("a", s("1"))])
        ),
        Ok(Some(map(&[("a", s("new")), ("z", Value::Int(1))])))
    );
    let nested = map(&[
        ("m", map(&[("n", Value::Int(1))])),
        (
            "l",
            Value::List(Rc::new(vec![Value::Int(1), map(&[("k", s("v"))])])),
        ),
    ]);
    assert_eq!(
        keys(edit("flatten(x)", nested.clone()).unwrap()),
        ["m.n", "l.0", "l.1.k"]
    );
    assert_eq!(
        keys(edit(r#"flatten(x, "p", 1)"#, nested).unwrap()),
        ["p.m.n", "p.l.0", "p.l.1"]
    );
    assert_eq!(
        keys(
            edit(
                "flatten(x, resolve_conflicts = true)",
                map(&[("a", map(&[("b", Value::Int(1))])), ("a.b", Value::Int(2))])
            )
            .unwrap()
        ),
        ["a.b", "a.b.0"]
    );
    // Map editors need a map.
    assert!(
        edit(r#"delete_key(x, "a")"#, s("text"))
            .unwrap_err()
            .contains("expected a map")
    );
}

// Each converter, with the collector's argument types.
#[test]
fn converters() {
    assert_eq!(
        value(r#"Concat([name, n, nil, 1.5, true], "|")"#),
        Ok(s("GET /users/42|7|<nil>|1.5|true"))
    );
    assert_eq!(
        value(r#"Split(name, "/")"#),
        Ok(Value::List(Rc::new(vec![s("GET "), s("users"), s("42")])))
    );
    assert_eq!(value(r#"Split(name, "/")[2]"#), Ok(s("42")));
    assert_eq!(value("Substring(name, 4, 6)"), Ok(s("/users")));
    assert!(
        value("Substring(name, 4, 60)")
            .unwrap_err()
            .contains("invalid range")
    );
    assert!(
        value("Substring(n, 0, 1)")
            .unwrap_err()
            .contains("expected a string")
    );
    assert_eq!(value("ToLowerCase(name)"), Ok(s("get /users/42")));
    assert_eq!(value("ToUpperCase(name)"), Ok(s("GET /USERS/42")));
    assert_eq!(
        value(r#"ConvertCase("http_server-name", "camel")"#),
        Ok(s("HttpServerName"))
    );
    assert_eq!(
        value(r#"ConvertCase("HTTPServerName", "snake")"#),
        Ok(s("http_server_name"))
    );
    assert_eq!(
        value(r#"SHA256("abc")"#),
        Ok(s(
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        ))
    );
    assert_eq!(value(r#"IsMatch(name, "^GET")"#), Ok(Value::Bool(true)));
    assert_eq!(value(r#"IsMatch(n, "^7$")"#), Ok(Value::Bool(true)));
    assert_eq!(value("IsString(name)"), Ok(Value::Bool(true)));
    assert_eq!(value("IsString(n)"), Ok(Value::Bool(false)));
    assert_eq!(
        value(r#"Int("12") + Int(2.9) + Int(true)"#),
        Ok(Value::Int(15))
    );
    assert!(value(r#"Int("x")"#).unwrap_err().contains("cannot parse"));
    assert_eq!(value("Int(nil)"), Ok(Value::Nil));
    assert_eq!(value(r#"Double("1.5") * 2"#), Ok(Value::Double(3.0)));
    assert_eq!(value("String(n)"), Ok(s("7")));
    assert_eq!(value("String(1.0)"), Ok(s("1")));
    assert_eq!(value("String(0.0000001)"), Ok(s("1e-7")));
    assert_eq!(value("String(1000000000000000000000.0)"), Ok(s("1e+21")));
    assert_eq!(value("String(123456.5)"), Ok(s("123456.5")));
    assert_eq!(value("String(0x0aff)"), Ok(s("0aff")));
    assert_eq!(
        value(r#"String({"b": 1, "a": [true]})"#),
        Ok(s(r#"{"a":[true],"b":1}"#))
    );
    assert_eq!(value("Len(name)"), Ok(Value::Int(13)));
    assert_eq!(value("Len([1, 2])"), Ok(Value::Int(2)));
    assert!(value("Len(n)").unwrap_err().contains("unsupported"));
    assert_eq!(
        value("TraceID(0x5b8efff798038103d269b633813fc60c)"),
        Ok(Value::Bytes(
            vec![
                0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
                0xc6, 0x0c
            ]
            .into()
        ))
    );
    assert_eq!(
        value("SpanID(0x0102030405060708)"),
        Ok(Value::Bytes(vec![1, 2, 3, 4, 5, 6, 7, 8].into()))
    );
    assert_eq!(
        value(r#"Nanoseconds(Duration("1h2m3.5s"))"#),
        Ok(Value::Int(3_723_500_000_000))
    );
    assert_eq!(
        value(r#"Nanoseconds(Duration("-1.5us"))"#),
        Ok(Value::Int(-1500))
    );
    assert!(value(r#"Duration("3 days")"#).is_err());
    assert_eq!(value("Now()"), Ok(Value::Time(1_700_000_000_000_000_000)));
    assert_eq!(
        value(r#"Nanoseconds(Now() - (Now() - Duration("2s")))"#),
        Ok(Value::Int(2_000_000_000))
    );
    // Math: int stays int, a double makes a double, nil and division by zero are errors.
    assert_eq!(value("n * 2 - -3"), Ok(Value::Int(17)));
    assert_eq!(value("(n + 1) / 2"), Ok(Value::Int(4)));
    assert_eq!(value("n / 2.0"), Ok(Value::Double(3.5)));
    assert!(value("n / 0").unwrap_err().contains("divide by zero"));
    assert!(value("missing + 1").unwrap_err().contains("nil"));
}

// A statement that does not parse says what and where, for the config error's column.
#[test]
fn statement_errors_name_the_column() {
    let cases = [
        (r#"set(name "x")"#, 10, "expected `,` or `)`"),
        (r#"set("x", name)"#, 5, "set's target must be a path"),
        ("set(name)", 9, "set needs its `value` argument"),
        (r#"set(name, "x", "y")"#, 16, "set takes 2 argument(s)"),
        (r#"sort(attributes)"#, 1, "unsupported editor `sort`"),
        (r#"frob(attributes)"#, 1, "unknown editor `frob`"),
        (r#"Concat(["a"], "")"#, 1, "not the converter `Concat`"),
        (r#"set(name, "x") when true"#, 16, "expected `where`"),
        (r#"set(name, "x") where"#, 21, "expected a value"),
        (r#"set(name, set(name, "y"))"#, 11, "`set` is an editor"),
        (r#"set(name, FNV(name))"#, 11, "unsupported function `FNV`"),
        (
            r#"replace_pattern(name, "a", "b", SHA256)"#,
            33,
            "passing the function `SHA256`",
        ),
        (
            r#"replace_pattern(name, "a", "b", replacement_format = "x%s")"#,
            33,
            "`replacement_format` argument is not supported",
        ),
        (
            r#"replace_pattern(name, name, "b")"#,
            23,
            "must be a string literal",
        ),
        (
            r#"replace_all_patterns(attributes, "both", "a", "b")"#,
            34,
            "invalid mode",
        ),
        (r#"truncate_all(attributes, -1)"#, 26, "cannot be negative"),
        (
            r#"truncate_all(attributes, 2, truncation_marker = "...")"#,
            26,
            "length of marker 3",
        ),
        (
            r#"merge_maps(attributes, {}, "merge")"#,
            28,
            "invalid value for strategy",
        ),
        (
            r#"flatten(attributes, depth = 0)"#,
            21,
            "must be greater than 0",
        ),
        (
            r#"flatten(attributes, deep = 1)"#,
            21,
            "flatten has no parameter `deep`",
        ),
        (
            r#"flatten(attributes, prefix = "a", "b")"#,
            35,
            "positional argument cannot follow",
        ),
        (
            r#"keep_keys(attributes, ["a"], ["b"])"#,
            30,
            "keep_keys takes 2 argument(s)",
        ),
        (
            r#"set(attributes[name], 1)"#,
            16,
            "computed keys are not supported",
        ),
        (r#"set(x, "a" * 2)"#, 8, "math takes numbers"),
        ("", 1, "the statement is empty"),
    ];
    for (text, column, message) in cases {
        let error = crate::parse_statement(text).expect_err(text);
        assert_eq!(error.column, column, "{text}: {error}");
        assert!(error.message.contains(message), "{text}: {error}");
    }
}

// As the collector, the right of `and` is not evaluated where the left is false, nor the right
// of `or` where the left is true: no error where the collector raises none.
#[test]
fn and_or_short_circuit_their_errors() {
    let mut table = Table {
        len: 2,
        columns: HashMap::from([("n".to_string(), vec![Value::Int(0), Value::Int(2)])]),
    };
    let expr = parse("n != 0 and 10 / n == 5").unwrap();
    let outcome = expr.eval(&mut table);
    assert_eq!(
        (outcome.matched, outcome.errors),
        (vec![false, true], vec![])
    );
    let expr = parse("n == 0 or 10 / n == 5").unwrap();
    let outcome = expr.eval(&mut table);
    assert_eq!(
        (outcome.matched, outcome.errors),
        (vec![true, true], vec![])
    );
    let expr = parse("10 / n == 5").unwrap();
    assert_eq!(expr.eval(&mut table).errors.len(), 1);
}

// An item converter the caller names is a column read by its call's text (its arguments
// kept as strings); without the caller (transform's `parse`), the names stay refused as
// before.
#[test]
fn item_converters_are_columns_only_where_named() {
    use crate::{ItemConverter, parse_reading};
    let has = [ItemConverter {
        name: "HasAttrOnDatapoint",
        params: &["key", "expected_val"],
        refused: None,
    }];
    let expr = parse_reading(r#"not HasAttrOnDatapoint("k", "v")"#, &has).unwrap();
    let paths = expr.paths();
    assert_eq!(
        paths[0].args.as_deref(),
        Some(&["k".to_string(), "v".to_string()][..])
    );
    assert_eq!(paths[0].to_string(), r#"HasAttrOnDatapoint("k", "v")"#);
    let mut table = Table {
        len: 2,
        columns: HashMap::from([(
            r#"HasAttrOnDatapoint("k", "v")"#.to_string(),
            vec![Value::Bool(true), Value::Bool(false)],
        )]),
    };
    assert_eq!(expr.eval(&mut table).matched, [false, true]);
    let refused = [ItemConverter {
        refused: Some("not here"),
        ..has[0]
    }];
    let error = parse_reading(r#"x or HasAttrOnDatapoint("k", "v")"#, &refused).unwrap_err();
    assert_eq!(
        error.to_string(),
        "column 6: `HasAttrOnDatapoint`: not here"
    );
    let error = parse(r#"HasAttrOnDatapoint("k", "v")"#).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unknown function `HasAttrOnDatapoint`"),
        "{error}"
    );
    let error = parse("IsRootSpan()").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("unsupported function `IsRootSpan`"),
        "{error}"
    );
}
