//! The exposition formats a scrape reads: Prometheus text 0.0.4 and OpenMetrics text 1.0,
//! as prometheus/model/textparse reads them (samples, `# TYPE`, `# HELP`, `# UNIT`,
//! OpenMetrics exemplars and `# EOF`; timestamps in milliseconds for text, in seconds for
//! OpenMetrics).
//!
//! Written here rather than taken from a crate. `prometheus-parse` (0.2.5, Dec 2023) reads
//! Prometheus text only, with no OpenMetrics, units or exemplars, and folds histogram and
//! summary lines into its own values, losing the per-line order and the `_created` lines the
//! collector's mapping keys on. `openmetrics-parser` (0.4.4) reads both formats into typed
//! families but is LGPL-3.0. Neither was measured further; this line reader is ~250 lines.

use std::collections::HashMap;

/// What one scrape exposed.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Every sample, in the order exposed.
    pub samples: Vec<Sample>,
    /// `# TYPE`, `# HELP` and `# UNIT` by the name they were written for.
    pub metadata: HashMap<String, Metadata>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name.
    pub name: String,
    /// Its labels, as exposed (without `__name__`).
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Its own timestamp in milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
    /// An OpenMetrics exemplar.
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar: `# {trace_id="…"} 0.5 1700000000.1`.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A metric family's metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Prometheus' type name: counter, gauge, histogram, summary, unknown, info, stateset,
    /// gaugehistogram (text's `untyped` reads as unknown).
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Reads an exposition; `openmetrics` picks the format. An error names the line.
pub fn parse(text: &str, openmetrics: bool) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    let mut ended = false;
    for (index, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}", index + 1);
        if ended {
            return Err(at("data after # EOF".into()));
        }
        if line.trim().is_empty() {
            if openmetrics {
                return Err(at("empty line".into()));
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if openmetrics && comment == " EOF" {
                ended = true;
                continue;
            }
            read_comment(comment, openmetrics, &mut exposition.metadata).map_err(at)?;
            continue;
        }
        let sample = read_sample(line, openmetrics).map_err(at)?;
        exposition.samples.push(sample);
    }
    if openmetrics && !ended {
        return Err("the OpenMetrics exposition does not end with # EOF".into());
    }
    Ok(exposition)
}

/// `# HELP`, `# TYPE`, `# UNIT`; other comments are skipped in text and refused in
/// OpenMetrics.
fn read_comment(
    comment: &str,
    openmetrics: bool,
    metadata: &mut HashMap<String, Metadata>,
) -> Result<(), String> {
    let mut words = comment
        .trim_start_matches([' ', '\t'])
        .splitn(3, [' ', '\t']);
    let keyword = words.next().unwrap_or("");
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") || (keyword == "UNIT" && !openmetrics) {
        return match openmetrics {
            true => Err(format!("invalid comment `#{comment}`")),
            false => Ok(()),
        };
    }
    let name = words
        .next()
        .filter(|n| !n.is_empty())
        .ok_or("a metric name is missing")?;
    let rest = words.next().unwrap_or("");
    let entry = metadata.entry(name.to_string()).or_default();
    match keyword {
        "HELP" => entry.help = unescape(rest, openmetrics),
        "UNIT" => entry.unit = rest.trim().to_string(),
        _ => {
            entry.kind = match (rest.trim(), openmetrics) {
                ("counter" | "gauge" | "histogram" | "summary", _) => rest.trim().to_string(),
                ("untyped", false) => "unknown".into(),
                ("unknown" | "info" | "stateset" | "gaugehistogram", true) => {
                    rest.trim().to_string()
                }
                (other, _) => return Err(format!("invalid metric type {other:?}")),
            }
        }
    }
    Ok(())
}

/// `name{label="value",…} value [timestamp] [# {exemplar labels} value [timestamp]]`.
fn read_sample(line: &str, openmetrics: bool) -> Result<Sample, String> {
    let mut cursor = Cursor { rest: line };
    let name = cursor.name().ok_or("expected a metric name")?.to_string();
    let labels = match cursor.rest.starts_with('{') {
        true => cursor.labels()?,
        false => Vec::new(),
    };
    let (body, exemplar) = match openmetrics {
        true => match cursor.rest.split_once(" # ") {
            Some((body, exemplar)) => (body, Some(read_exemplar(exemplar)?)),
            None => (cursor.rest, None),
        },
        false => (cursor.rest, None),
    };
    let mut fields = body.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = parse_float(fields.next().ok_or("a sample value is missing")?)?;
    let timestamp_ms = fields
        .next()
        .map(|ts| parse_timestamp(ts, openmetrics))
        .transpose()?;
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the sample"));
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
        exemplar,
    })
}

fn read_exemplar(text: &str) -> Result<Exemplar, String> {
    let mut cursor = Cursor {
        rest: text.trim_start(),
    };
    if !cursor.rest.starts_with('{') {
        return Err("an exemplar starts with its labels".into());
    }
    let labels = cursor.labels()?;
    let mut fields = cursor.rest.split(' ').filter(|f| !f.is_empty());
    let value = parse_float(fields.next().ok_or("an exemplar value is missing")?)?;
    let timestamp_ms = fields
        .next()
        .map(|ts| parse_timestamp(ts, true))
        .transpose()?;
    Ok(Exemplar {
        labels,
        value,
        timestamp_ms,
    })
}

/// Go's ParseFloat as the parsers use it: `NaN`, `+Inf`, `-Inf` in any case, decimals.
fn parse_float(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|_| format!("invalid value {text:?}"))
}

/// Milliseconds in text; seconds (a float) in OpenMetrics, truncated to milliseconds.
fn parse_timestamp(text: &str, openmetrics: bool) -> Result<i64, String> {
    let bad = || format!("invalid timestamp {text:?}");
    match openmetrics {
        true => parse_float(text)
            .ok()
            .filter(|t| t.is_finite())
            .map(|t| (t * 1000.0) as i64)
            .ok_or_else(bad),
        false => text.parse::<i64>().map_err(|_| bad()),
    }
}

/// HELP text: `\\` and `\n` (and in OpenMetrics `\"`) unescaped.
fn unescape(text: &str, openmetrics: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if openmetrics => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Reads a sample line from the left.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    /// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    fn name(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(self.rest.len());
        let name = &self.rest[..end];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.rest = &self.rest[end..];
        Some(name)
    }

    /// `{a="1",b="2"}`, a trailing comma allowed.
    fn labels(&mut self) -> Result<Vec<(String, String)>, String> {
        self.rest = &self.rest[1..];
        let mut labels = Vec::new();
        loop {
            self.rest = self.rest.trim_start();
            if let Some(rest) = self.rest.strip_prefix('}') {
                self.rest = rest;
                return Ok(labels);
            }
            let name = self.name().ok_or("expected a label name")?.to_string();
            self.rest = self
                .rest
                .trim_start()
                .strip_prefix("=\"")
                .ok_or_else(|| format!("expected =\"…\" after label {name}"))?;
            let value = self.quoted()?;
            if labels.iter().any(|(n, _)| *n == name) {
                return Err(format!("duplicate label {name}"));
            }
            labels.push((name, value));
            self.rest = self.rest.trim_start();
            if let Some(rest) = self.rest.strip_prefix(',') {
                self.rest = rest;
            } else if !self.rest.starts_with('}') {
                return Err("expected , or } in the labels".into());
            }
        }
    }

    /// A label value after its opening quote: `\\`, `\"` and `\n` unescaped.
    fn quoted(&mut self) -> Result<String, String> {
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[at + 1..];
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err("a label value is not closed".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_text() {
        let text = "# HELP http_requests_total The total.\\nSecond line.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"post\",code=\"200\",} 1027 1395066363000\nhttp_requests_total{method=\"a\\\"b\\\\c\"} 3\n# a comment\n\nup NaN\nmetric_without_timestamp_and_labels -Inf\n";
        let e = parse(text, false).unwrap();
        assert_eq!(e.samples.len(), 4);
        let first = &e.samples[0];
        assert_eq!(first.name, "http_requests_total");
        assert_eq!(
            first.labels,
            [
                ("method".to_string(), "post".to_string()),
                ("code".to_string(), "200".to_string())
            ]
        );
        assert_eq!(first.value, 1027.0);
        assert_eq!(first.timestamp_ms, Some(1395066363000));
        assert_eq!(e.samples[1].labels[0].1, "a\"b\\c");
        assert!(e.samples[2].value.is_nan());
        assert_eq!(e.samples[3].value, f64::NEG_INFINITY);
        let meta = &e.metadata["http_requests_total"];
        assert_eq!(meta.kind, "counter");
        assert_eq!(meta.help, "The total.\nSecond line.");
    }

    #[test]
    fn reads_openmetrics_with_units_exemplars_and_eof() {
        let text = "# TYPE foo histogram\n# UNIT foo seconds\nfoo_bucket{le=\"0.5\"} 2 1700000000.123 # {trace_id=\"abc\"} 0.4 1700000000.0\nfoo_count 2\nfoo_created 1700000000.5\n# EOF\n";
        let e = parse(text, true).unwrap();
        assert_eq!(e.metadata["foo"].unit, "seconds");
        let bucket = &e.samples[0];
        assert_eq!(bucket.timestamp_ms, Some(1700000000123));
        let exemplar = bucket.exemplar.as_ref().unwrap();
        assert_eq!(
            exemplar.labels,
            [("trace_id".to_string(), "abc".to_string())]
        );
        assert_eq!(exemplar.value, 0.4);
        assert_eq!(exemplar.timestamp_ms, Some(1700000000000));
        assert_eq!(e.samples[2].name, "foo_created");
    }

    #[test]
    fn refuses_what_the_formats_refuse() {
        assert!(parse("foo 1\n", true).unwrap_err().contains("# EOF"));
        assert!(parse("foo 1\n# EOF\nbar 2\n", true).is_err());
        assert!(parse("# TYPE foo gaugehistogram\n", false).is_err());
        assert!(
            parse("foo{a=\"1\",a=\"2\"} 1\n", false)
                .unwrap_err()
                .contains("duplicate")
        );
        assert!(
            parse("foo{a=\"1} 1\n", false)
                .unwrap_err()
                .contains("line 1")
        );
        assert!(parse("foo one\n", false).is_err());
        assert!(
            parse("foo 1 1.5\n", false).is_err(),
            "text timestamps are integers"
        );
        assert!(parse("9foo 1\n", false).is_err());
    }

    #[test]
    fn untyped_reads_as_unknown() {
        let e = parse("# TYPE x untyped\nx 1\n", false).unwrap();
        assert_eq!(e.metadata["x"].kind, "unknown");
    }
}
