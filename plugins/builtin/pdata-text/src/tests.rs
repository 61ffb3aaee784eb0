//! The text forms checked against what the collector's pdata writes.

use super::*;

// pdata's float64AsString: ES6 notation, exponents only below 1e-6 and from 1e21, Go's spellings
// of NaN and the infinities.
#[test]
fn doubles_as_pdata_writes_them() {
    assert_eq!(go_float(1.0), "1");
    assert_eq!(go_float(0.0000001), "1e-7");
    assert_eq!(go_float(123456.5), "123456.5");
    assert_eq!(go_float(f64::INFINITY), "Infinity");
    assert_eq!(go_float(f64::NAN), "NaN");
    assert_eq!(as_string(&Value::Double(1e21)), "1e+21");
    assert_eq!(as_string(&Value::Double(1.5e-7)), "1.5e-7");
    assert_eq!(as_string(&Value::Double(0.25)), "0.25");
    assert_eq!(as_string(&Value::Double(100.0)), "100");
}

// strconv.FormatFloat(f, 'f', -1, 64): never an exponent, Go's infinity spellings.
#[test]
fn fixed_doubles_as_strconv_writes_them() {
    assert_eq!(go_float_fixed(1e21), "1000000000000000000000");
    assert_eq!(go_float_fixed(1e-7), "0.0000001");
    assert_eq!(go_float_fixed(f64::NEG_INFINITY), "-Inf");
}

// Scalars: bytes in padded standard base64, integers and booleans as Go prints them.
#[test]
fn scalars_as_pdata_writes_them() {
    assert_eq!(base64(b"hello"), "aGVsbG8=");
    assert_eq!(base64(b"hell"), "aGVsbA==");
    assert_eq!(base64(b""), "");
    assert_eq!(as_string(&Value::Bytes(b"hello")), "aGVsbG8=");
    assert_eq!(as_string(&Value::Int(-3)), "-3");
    assert_eq!(as_string(&Value::Bool(true)), "true");
    assert_eq!(as_string(&Value::Str("<a>")), "<a>");
}

// Maps and arrays as Go's encoding/json writes their raw form: keys sorted, the last duplicate
// winning, no HTML escaping, an empty value as null; a NaN anywhere makes the whole string "".
#[test]
fn maps_and_arrays_as_json() {
    let tree = Tree::Map(vec![
        (
            "z".into(),
            Tree::Array(vec![
                Tree::Int(1),
                Tree::Double(2.5),
                Tree::Str("<a>".into()),
            ]),
        ),
        (
            "a".into(),
            Tree::Map(vec![
                ("b".into(), Tree::Empty),
                ("c".into(), Tree::Bool(true)),
            ]),
        ),
        ("q".into(), Tree::Str("x".into())),
        ("q".into(), Tree::Str("\n\u{1}\u{2028}\"".into())),
    ]);
    let any = tree.to_any_value();
    assert_eq!(
        any_as_string(&any),
        r#"{"a":{"b":null,"c":true},"q":"\n\u0001\u2028\"","z":[1,2.5,"<a>"]}"#
    );
    let nan = Tree::Array(vec![Tree::Double(f64::NAN)]).to_any_value();
    assert_eq!(any_as_string(&nan), "");
}

// Encoding and decoding are each other's inverse, empty nested values included.
#[test]
fn trees_round_trip_through_protobuf() {
    let tree = Tree::Array(vec![
        Tree::Empty,
        Tree::Bytes(vec![0, 255]),
        Tree::Int(-1),
        Tree::Map(vec![("k".into(), Tree::Double(-0.5))]),
    ]);
    assert_eq!(Tree::from_any(&tree.to_any_value()), tree);
    assert_eq!(Tree::Int(3).str(), "");
    assert_eq!(Tree::Str("s".into()).str(), "s");
}
