//! The converters (functions whose names start with a capital letter, which return a value),
//! with the collector's argument types: a *string* argument must be a string (nil is an
//! error), a *string-like* one may be any scalar (written out), an *int-like* or
//! *float-like* one converts strings and bools.

use crate::{Key, Map, Value};
use std::borrow::Cow;
use std::rc::Rc;

/// A supported converter. Arguments that must be literals are parsed into the variant.
#[derive(Debug, Clone)]
pub enum Func {
    /// `Concat(vals, delimiter)`.
    Concat,
    /// `Split(target, delimiter)`.
    Split,
    /// `Substring(target, start, length, utf8_safe?)`.
    Substring {
        utf8_safe: bool,
    },
    ToLowerCase,
    ToUpperCase,
    /// `ConvertCase(target, "lower" | "upper" | "snake" | "camel")`.
    ConvertCase(Case),
    Sha256,
    /// `IsMatch(target, pattern)` with a pattern that is not a literal.
    IsMatch,
    IsString,
    Int,
    Double,
    String,
    Len,
    Duration,
    Nanoseconds,
    Now,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Lower,
    Upper,
    Snake,
    Camel,
}

/// The converters' names and parameters (named as the collector names them, for `name =
/// value` arguments); a parameter after `|` is optional.
pub const CONVERTERS: &[(&str, &[&str])] = &[
    ("Concat", &["vals", "delimiter"]),
    ("Split", &["target", "delimiter"]),
    ("Substring", &["target", "start", "length", "|utf8_safe"]),
    ("ToLowerCase", &["target"]),
    ("ToUpperCase", &["target"]),
    ("ConvertCase", &["target", "to_case"]),
    ("SHA256", &["target"]),
    ("IsMatch", &["target", "pattern"]),
    ("IsString", &["target"]),
    ("Int", &["target"]),
    ("Double", &["target"]),
    ("String", &["target"]),
    ("Len", &["target"]),
    ("TraceID", &["bytes"]),
    ("SpanID", &["bytes"]),
    ("Duration", &["duration"]),
    ("Nanoseconds", &["duration"]),
    ("Now", &[]),
];

/// The converters the collector has and trailhead does not (yet): named so the error says
/// "not supported" rather than "unknown".
pub const REFUSED_CONVERTERS: &[&str] = &[
    "Base64Decode",
    "Bool",
    "CommunityID",
    "ContainsValue",
    "ConvertAttributesToElementsXML",
    "ConvertTextToElementsXML",
    "Day",
    "Decode",
    "ExtractGrokPatterns",
    "ExtractPatterns",
    "FNV",
    "Format",
    "FormatTime",
    "GetXML",
    "HasPrefix",
    "HasSuffix",
    "Hex",
    "Hour",
    "Hours",
    "Index",
    "InsertXML",
    "IsBool",
    "IsDouble",
    "IsInCIDR",
    "IsInt",
    "IsList",
    "IsMap",
    "IsRootSpan",
    "IsValidLuhn",
    "Keys",
    "Log",
    "MD5",
    "Microseconds",
    "Milliseconds",
    "Minute",
    "Minutes",
    "Month",
    "Murmur3Hash",
    "Murmur3Hash128",
    "Nanosecond",
    "ParseCSV",
    "ParseInt",
    "ParseJSON",
    "ParseKeyValue",
    "ParseSeverity",
    "ParseSimplifiedXML",
    "ParseXML",
    "ProfileID",
    "RemoveXML",
    "Second",
    "Seconds",
    "SHA1",
    "SHA512",
    "SliceToMap",
    "Sort",
    "Time",
    "ToCamelCase",
    "ToKeyValueString",
    "ToSnakeCase",
    "TruncateTime",
    "Unix",
    "UnixMicro",
    "UnixMilli",
    "UnixNano",
    "UnixSeconds",
    "URL",
    "UserAgent",
    "UUID",
    "UUIDv7",
    "Values",
    "Weekday",
    "XXH128",
    "XXH3",
    "Year",
    "Trim",
    "TrimPrefix",
    "TrimSuffix",
    "Append",
    "Coalesce",
    "All",
    "Any",
    "Filter",
    "Find",
    "MapKeys",
    "MapEach",
    "DeleteIndex",
    "IsEmpty",
];

/// A converter's result for one item. `args` are in declaration order, `None` for an
/// optional one not given.
pub fn call<'a>(func: &Func, args: &[Option<&Value<'a>>]) -> Result<Value<'a>, String> {
    let arg = |i: usize| args.get(i).copied().flatten().unwrap_or(&Value::Nil);
    Ok(match func {
        Func::Concat => {
            let delimiter = string(arg(1), "Concat's delimiter")?;
            let Value::List(vals) = arg(0) else {
                return Err(format!("Concat: vals is {}, not a list", arg(0).kind()));
            };
            let mut out = String::new();
            for (n, v) in vals.iter().enumerate() {
                if n > 0 {
                    out.push_str(delimiter);
                }
                match string_like(v)? {
                    Some(s) => out.push_str(&s),
                    None => out.push_str("<nil>"),
                }
            }
            Value::Str(out.into())
        }
        Func::Split => {
            let target = string(arg(0), "Split's target")?;
            let delimiter = string(arg(1), "Split's delimiter")?;
            let parts: Vec<Value<'static>> = if delimiter.is_empty() {
                target
                    .chars()
                    .map(|c| Value::Str(c.to_string().into()))
                    .collect()
            } else {
                target
                    .split(delimiter)
                    .map(|s| Value::Str(s.to_string().into()))
                    .collect()
            };
            Value::List(Rc::new(parts))
        }
        Func::Substring { utf8_safe } => {
            let start = int(arg(1), "Substring's start")?;
            if start < 0 {
                return Err(format!(
                    "invalid start for substring function, {start} cannot be negative"
                ));
            }
            let length = int(arg(2), "Substring's length")?;
            if length <= 0 {
                return Err(format!(
                    "invalid length for substring function, {length} cannot be negative or zero"
                ));
            }
            let target = string(arg(0), "Substring's target")?;
            let len = target.len() as i64;
            if start > len || length > len - start {
                return Err(format!(
                    "invalid range for substring function, start({start})+length({length}) cannot be greater than the length of target string({len})"
                ));
            }
            let bytes = target.as_bytes();
            let (mut from, mut to) = (start as usize, (start + length) as usize);
            if *utf8_safe {
                while from < bytes.len() && !target.is_char_boundary(from) {
                    from += 1;
                }
                while from < to && to < bytes.len() && !target.is_char_boundary(to) {
                    to -= 1;
                }
                to = to.max(from);
            }
            Value::Str(
                String::from_utf8_lossy(&bytes[from..to])
                    .into_owned()
                    .into(),
            )
        }
        Func::ToLowerCase => Value::Str(string(arg(0), "ToLowerCase")?.to_lowercase().into()),
        Func::ToUpperCase => Value::Str(string(arg(0), "ToUpperCase")?.to_uppercase().into()),
        Func::ConvertCase(case) => {
            let s = string(arg(0), "ConvertCase")?;
            Value::Str(
                match case {
                    _ if s.is_empty() => String::new(),
                    Case::Lower => s.to_lowercase(),
                    Case::Upper => s.to_uppercase(),
                    Case::Snake => snake(s),
                    Case::Camel => camel(s),
                }
                .into(),
            )
        }
        Func::Sha256 => {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(string(arg(0), "SHA256")?.as_bytes());
            Value::Str(hex(&digest).into())
        }
        Func::IsMatch => {
            let pattern = string(arg(1), "IsMatch's pattern")?;
            let regex = regex::Regex::new(pattern)
                .map_err(|e| format!("IsMatch: invalid regex {pattern:?}: {e}"))?;
            match string_like(arg(0))? {
                Some(s) => Value::Bool(regex.is_match(&s)),
                None => Value::Bool(false),
            }
        }
        Func::IsString => Value::Bool(matches!(arg(0), Value::Str(_))),
        Func::Int => match arg(0) {
            Value::Nil => Value::Nil,
            Value::Int(i) => Value::Int(*i),
            Value::Double(d) => Value::Int(*d as i64),
            Value::Bool(b) => Value::Int(*b as i64),
            Value::Str(s) => Value::Int(
                s.parse()
                    .map_err(|_| format!("Int: cannot parse {s:?} as an int"))?,
            ),
            other => return Err(format!("Int: unsupported type {}", other.kind())),
        },
        Func::Double => match arg(0) {
            Value::Nil => Value::Nil,
            Value::Int(i) => Value::Double(*i as f64),
            Value::Double(d) => Value::Double(*d),
            Value::Bool(b) => Value::Double(*b as i64 as f64),
            Value::Str(s) => Value::Double(
                s.parse()
                    .map_err(|_| format!("Double: cannot parse {s:?} as a double"))?,
            ),
            other => return Err(format!("Double: unsupported type {}", other.kind())),
        },
        Func::String => match string_like(arg(0))? {
            Some(s) => Value::Str(Cow::Owned(s.into_owned())),
            None => Value::Nil,
        },
        Func::Len => match arg(0) {
            Value::Str(s) => Value::Int(s.len() as i64),
            Value::List(l) => Value::Int(l.len() as i64),
            Value::Map(m) => Value::Int(m.len() as i64),
            other => return Err(format!("Len: unsupported target type {}", other.kind())),
        },
        Func::Duration => Value::Duration(parse_duration(string(arg(0), "Duration")?)?),
        Func::Nanoseconds => match arg(0) {
            Value::Duration(d) => Value::Int(*d),
            other => {
                return Err(format!(
                    "Nanoseconds: expected a duration, got {}",
                    other.kind()
                ));
            }
        },
        Func::Now => Value::Time(now()),
    })
}

#[cfg(not(test))]
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Frozen in tests, so `Now()` can be asserted on.
#[cfg(test)]
fn now() -> i64 {
    1_700_000_000_000_000_000
}

/// A string argument: a string, or an error naming what else it is.
fn string<'v>(v: &'v Value<'_>, what: &str) -> Result<&'v str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "{what}: expected a string but got {}",
            other.kind()
        )),
    }
}

fn int(v: &Value<'_>, what: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("{what}: expected an int but got {}", other.kind())),
    }
}

/// Lowercase hex, as the collector writes bytes out.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value written out as a string, as the collector's string-like arguments read it:
/// `None` for nil, bytes as hex, maps and lists as JSON.
pub fn string_like<'v>(v: &'v Value<'_>) -> Result<Option<Cow<'v, str>>, String> {
    Ok(Some(match v {
        Value::Nil => return Ok(None),
        Value::Str(s) => Cow::Borrowed(&**s),
        Value::Int(i) => i.to_string().into(),
        Value::Double(d) => double(*d).into(),
        Value::Bool(b) => b.to_string().into(),
        Value::Bytes(b) => hex(b).into(),
        Value::Map(_) | Value::List(_) => json(v).into(),
        Value::Time(t) => t.to_string().into(),
        Value::Duration(d) => format!("{d}ns").into(),
        Value::Composite(kind) => return Err(format!("the target is {kind}, not a string")),
    }))
}

/// A double as pdata and Go's JSON write it (ES6 number to string): plain digits, or an
/// exponent below 1e-6 and from 1e21 (`1e+21`, `1e-7`).
pub fn double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{d:e}");
        return match e.split_once('e') {
            Some((m, x)) if !x.starts_with('-') => format!("{m}e+{x}"),
            _ => e,
        };
    }
    d.to_string()
}

/// JSON as Go's `encoding/json` writes a map or list (keys sorted, no spaces).
pub fn json(v: &Value<'_>) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &Value<'_>, out: &mut String) {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Str(s) => json_string(s, out),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Double(d) => out.push_str(&double(*d)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Bytes(b) => {
            // Go encodes []byte as base64.
            json_string(&base64(b), out);
        }
        Value::List(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Map(map) => {
            let mut sorted: Vec<&(String, Value)> = map.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (n, (k, v)) in sorted.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
        Value::Time(t) | Value::Duration(t) => out.push_str(&t.to_string()),
        Value::Composite(_) => out.push_str("null"),
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go escapes HTML characters too.
            '<' | '>' | '&' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Standard base64 with padding, as Go's `base64.StdEncoding` writes it.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| acc << 8 | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Reads `keys` out of a map or list value, as OTTL's indexing does: a missing key is nil,
/// indexing anything else is an error.
pub fn index<'a>(mut value: Value<'a>, keys: &[Key]) -> Result<Value<'a>, String> {
    for key in keys {
        value = match (&value, key) {
            (Value::Map(m), Key::Str(k)) => get(m, k).cloned().unwrap_or(Value::Nil),
            (Value::List(l), Key::Int(i)) => {
                match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                    Some(v) => v.clone(),
                    None => return Err(format!("index {i} out of bounds")),
                }
            }
            (Value::Nil, _) => return Ok(Value::Nil),
            (Value::Map(_), Key::Int(i)) => return Err(format!("a map cannot be indexed by {i}")),
            (Value::List(_), Key::Str(k)) => {
                return Err(format!("a list cannot be indexed by {k:?}"));
            }
            (other, key) => {
                return Err(format!(
                    "{} does not support indexing ({key})",
                    other.kind()
                ));
            }
        };
    }
    Ok(value)
}

/// A map's value at `key`.
pub fn get<'m>(map: &'m Map, key: &str) -> Option<&'m Value<'static>> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Go's `time.ParseDuration`: `300ms`, `-1.5h`, `2h45m`; units ns, us (µs), ms, s, m, h.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("time: missing unit in duration {text:?}"))?;
        if digits == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: f64 = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(if negative { -total } else { total }.round() as i64)
}

/// Words of an identifier, as strcase splits them: at `_ - . space`, and where a lowercase
/// letter or digit meets an uppercase one.
fn words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = s.trim().chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if matches!(c, '_' | '-' | '.' | ' ') {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_uppercase()
            && !word.is_empty()
            && (prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase)
                    && next.is_some_and(|n| n.is_lowercase())));
        if boundary {
            words.push(std::mem::take(&mut word));
        }
        word.push(c);
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn snake(s: &str) -> String {
    words(s)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

fn camel(s: &str) -> String {
    words(s)
        .iter()
        .map(|w| {
            let mut chars = w.chars();
            match chars.next() {
                Some(first) => first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect()
}
