//! The `env` detector: resource attributes from `OTEL_RESOURCE_ATTRIBUTES` (or the deprecated
//! `OTEL_RESOURCE` when that is empty), parsed and percent-decoded as the collector's env
//! detector does it, errors included.

use super::Detected;
use regex::Regex;
use std::sync::LazyLock;

/// The variable the specification names, and the older one the collector still reads.
const VARIABLE: &str = "OTEL_RESOURCE_ATTRIBUTES";
const DEPRECATED_VARIABLE: &str = "OTEL_RESOURCE";

/// One `key=value` pair and the comma (or end) after it, spaces around each part ignored.
/// The collector's own pattern: ASCII only, keys 1 to 256 characters, values up to 256, both
/// as short as the rest allows. Go's `\s` is `[\t\n\f\r ]` (no `\v`), written out here.
static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\t\n\f\r ]*([[:ascii:]]{1,256}?)[\t\n\f\r ]*=[\t\n\f\r ]*([[:ascii:]]{0,256}?)[\t\n\f\r ]*(?:,|$)")
        .expect("the pair pattern is valid")
});

/// The attributes the environment gives, in the order written.
pub fn detect() -> Result<Detected, String> {
    let read = |name| std::env::var(name).unwrap_or_default().trim().to_string();
    let mut labels = read(VARIABLE);
    if labels.is_empty() {
        labels = read(DEPRECATED_VARIABLE);
    }
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    parse(&labels)
}

/// `key1=value1,key2=value2`: every character must belong to a pair; values are
/// percent-decoded as a URL query is (`+` is a space).
pub fn parse(labels: &str) -> Result<Detected, String> {
    let mut attributes: Detected = Vec::new();
    let mut end = 0;
    for pair in PAIR.captures_iter(labels) {
        let whole = pair.get(0).expect("group 0 is the match");
        if whole.start() != end {
            let text = &labels[end..whole.start()];
            return Err(format!("invalid resource format, invalid text: {text:?}"));
        }
        let (key, value) = (&pair[1], &pair[2]);
        let value = query_unescape(value).map_err(|e| {
            let text = whole.as_str();
            format!("invalid resource format in attribute: {text:?}, err: {e}")
        })?;
        // A repeated key keeps its place and takes the later value, as a map does.
        match attributes.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => attributes.push((key.to_string(), value)),
        }
        end = whole.end();
    }
    if attributes.is_empty() {
        return Err(format!("invalid resource format: {labels:?}"));
    }
    if end != labels.len() {
        let text = &labels[end..];
        return Err(format!("invalid resource format, invalid text: {text:?}"));
    }
    Ok(attributes)
}

/// Go's `url.QueryUnescape`: `%XX` is a byte, `+` a space; a `%` without two hex digits
/// after it is refused with the escape Go quotes (`%` and up to two characters).
fn query_unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
                let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                    let escape: String = text[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {escape:?}"));
                };
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    // OTLP strings are UTF-8; a decoded byte sequence that is not keeps its valid parts.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(labels: &str) -> Vec<(String, String)> {
        parse(labels).unwrap_or_else(|e| panic!("{labels}: {e}"))
    }

    // The collector's own cases: spaces around keys, values and commas are dropped, keys may
    // be domain names and paths, values are percent-decoded, a value may be empty or hold `=`.
    #[test]
    fn pairs_are_split_trimmed_and_decoded() {
        let got = pairs(" key = value , example.com/path=a%20b+c, empty= ,eq=a=b");
        let want = [
            ("key", "value"),
            ("example.com/path", "a b c"),
            ("empty", ""),
            ("eq", "a=b"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(pairs("a=1,a=2"), [("a".to_string(), "2".to_string())]);
        assert_eq!(pairs("k=%2C%3D"), [("k".to_string(), ",=".to_string())]);
    }

    // Bad input is refused with the collector's messages: text after the last pair, no pair
    // at all, a bad escape, a non-ASCII character, a value longer than 256.
    #[test]
    fn bad_input_is_refused_as_the_collector_refuses_it() {
        let cases = [
            ("nopair", r#"invalid resource format: "nopair""#),
            ("a=1,b", r#"invalid resource format, invalid text: "b""#),
            (
                "a=%zz",
                r#"invalid resource format in attribute: "a=%zz", err: invalid URL escape "%zz""#,
            ),
            (
                "a=b%2",
                r#"in attribute: "a=b%2", err: invalid URL escape "%2""#,
            ),
            ("a=é", "invalid resource format"),
        ];
        for (labels, want) in cases {
            let error = parse(labels).expect_err(labels);
            assert!(error.contains(want), "{labels}: {error}");
        }
        let long = format!("a={}", "v".repeat(257));
        assert!(parse(&long).is_err());
        assert_eq!(pairs(&format!("a={}", "v".repeat(256)))[0].1.len(), 256);
    }
}
