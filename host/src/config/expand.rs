//! `${…}` expansion, as the collector's confmap resolver does it. A reference is
//! `${scheme:value}`, or `${NAME}` for the default scheme `env`:
//! - `env:NAME` and `env:NAME:-default`: the variable; unset without a default is empty (and
//!   reported so the caller can warn), and NAME must be a valid variable name;
//! - `file:PATH`: the file's contents, verbatim (the collector does not trim a trailing newline),
//!   PATH relative to the working directory as the collector reads it;
//! - `yaml:TEXT`: TEXT itself;
//! - `http:`/`https:` and unknown schemes are refused, each with its reason.
//! `$$` is a literal `$`; `$VAR` without braces stays as written. References nest
//! (`${env:A:-${env:B}}`), innermost first. Each replacement is remembered, so a position in the
//! expanded text maps back to the file as written.
//!
//! The one idea: the collector expands parsed YAML values, trailhead expands the text before
//! parsing. So a value is written in the form YAML reads back as the collector's value: a
//! reference that is a whole value takes the value's YAML (a map in a file stays a map; a string
//! with a line break is quoted); inside a double-quoted string it is escaped; one with a line
//! break inside an unquoted text cannot be written, and is refused.

/// The expanded text, the unset variables it used, the references that failed, and where it
/// differs from the original.
pub struct Expansion {
    pub text: String,
    pub unset: Vec<String>,
    /// References that could not be expanded: (byte offset in the original, message).
    pub errors: Vec<(usize, String)>,
    /// Each replacement: (byte offset in the expanded text, its length there, the original
    /// offset, its length in the original), in order.
    edits: Vec<(usize, usize, usize, usize)>,
}

impl Expansion {
    /// The original byte offset of `expanded`, a byte offset in the expanded text. One inside a
    /// replacement maps to the start of the reference it replaced.
    pub fn original_offset(&self, expanded: usize) -> usize {
        let mut shift: isize = 0;
        for &(at, len, original, original_len) in &self.edits {
            if expanded < at {
                break;
            }
            if expanded < at + len {
                return original;
            }
            shift = (original + original_len) as isize - (at + len) as isize;
        }
        (expanded as isize + shift) as usize
    }
}

/// Expands references in `text`, variables by `lookup`, files from the file system.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Expansion {
    let read = |path: &str| std::fs::read_to_string(path);
    expand(text, &lookup, &read)
}

/// Where a value's content comes from: variables and files.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;
type ReadFile<'a> = &'a dyn Fn(&str) -> std::io::Result<String>;

/// Expands references in `text`, variables by `lookup` and files by `read`.
pub fn expand(text: &str, lookup: Lookup, read: ReadFile) -> Expansion {
    let mut expansion = Expansion {
        text: String::with_capacity(text.len()),
        unset: Vec::new(),
        errors: Vec::new(),
        edits: Vec::new(),
    };
    let out = &mut expansion.text;
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (original, before) = (text.len() - rest.len(), out.len());
        let taken = if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest.len() - after.len()
        } else if let Some(end) = rest.starts_with("${").then(|| closing(rest)).flatten() {
            let reference = &rest[..end];
            let line_after = rest[end..].split('\n').next().unwrap_or("");
            match Place::of(out, line_after) {
                None => out.push_str(reference),
                Some(place) => {
                    let inner = expand(&reference[2..end - 1], lookup, read);
                    expansion.unset.extend(inner.unset);
                    let errors = inner.errors.into_iter().map(|(_, e)| (original, e));
                    expansion.errors.extend(errors);
                    let value = resolve(&inner.text, lookup, read, &mut expansion.unset);
                    match value.and_then(|value| place.write(&value)) {
                        Ok(value) => out.push_str(&value),
                        Err(e) => expansion
                            .errors
                            .push((original, format!("`{reference}`: {e}"))),
                    }
                }
            }
            end
        } else {
            out.push('$');
            1
        };
        rest = &rest[taken..];
        if out.len() - before != taken {
            expansion
                .edits
                .push((before, out.len() - before, original, taken));
        }
    }
    out.push_str(rest);
    expansion
}

/// The length of the reference `text` starts with (`${` to its `}`), counting nested ones.
fn closing(text: &str) -> Option<usize> {
    let (mut depth, mut i) = (0usize, 0);
    let bytes = text.as_bytes();
    while i < bytes.len() {
        if bytes[i..].starts_with(b"${") {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
        i += 1;
    }
    None
}

/// The content a reference (`scheme:value`, or a variable name) stands for.
fn resolve(
    reference: &str,
    lookup: Lookup,
    read: ReadFile,
    unset: &mut Vec<String>,
) -> Result<String, String> {
    let (scheme, value) = reference.split_once(':').unwrap_or(("env", reference));
    let valid_scheme = scheme.len() >= 2
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !valid_scheme {
        return Err(format!(
            "`{scheme}` is not a scheme; write `${{env:NAME}}`, `${{env:NAME:-default}}` or `${{file:PATH}}`"
        ));
    }
    if value.contains('$') {
        return Err("a reference's value cannot contain `$`".into());
    }
    match scheme {
        "env" => {
            let (name, default) = match value.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (value, None),
            };
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "environment variable `{name}` has an invalid name: it must match ^[a-zA-Z_][a-zA-Z0-9_]*$"
                ));
            }
            Ok(match (lookup(name), default) {
                (Some(value), _) => value,
                (None, Some(default)) => default.to_string(),
                (None, None) => {
                    unset.push(name.to_string());
                    String::new()
                }
            })
        }
        "file" => read(value).map_err(|e| format!("cannot read the file {value}: {e}")),
        "yaml" => Ok(value.to_string()),
        "http" | "https" => Err(format!(
            "trailhead does not fetch config over {scheme}; download it and use `${{file:PATH}}`"
        )),
        _ => Err(format!(
            "unknown scheme `{scheme}`: trailhead expands `env`, `file` and `yaml`, as the collector's default build does besides http(s)"
        )),
    }
}

/// Where in the YAML text a reference stands, which decides how its value is written.
enum Place {
    /// The whole value of a key or a list item.
    Whole,
    /// Inside a double-quoted string.
    DoubleQuoted,
    /// Inside a single-quoted string.
    SingleQuoted,
    /// Part of an unquoted value, or a key.
    Plain,
}

impl Place {
    /// The place of a reference after `before` (the expanded text so far) and followed by
    /// `line_after` on its line; `None` inside a comment, which the collector never sees.
    fn of(before: &str, line_after: &str) -> Option<Place> {
        let line = &before[before.rfind('\n').map_or(0, |n| n + 1)..];
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        for c in line.chars() {
            match (quote, c) {
                (None, '#') if previous.is_whitespace() => return None,
                // A quote opens a quoted string only where a value starts.
                (None, '"' | '\'') if previous.is_whitespace() || "[{,".contains(previous) => {
                    quote = Some(c)
                }
                (Some('"'), '"') if previous != '\\' => quote = None,
                (Some('\''), '\'') => quote = None,
                _ => {}
            }
            previous = if previous == '\\' && c == '\\' {
                ' '
            } else {
                c
            };
        }
        let after = line_after.trim_start();
        let ends_line = after.is_empty() || after.starts_with('#');
        let head = line.trim_end();
        let separated = head.len() < line.len();
        let item = !head.trim().is_empty() && head.trim().chars().all(|c| c == '-' || c == ' ');
        Some(match quote {
            Some('"') => Place::DoubleQuoted,
            Some(_) => Place::SingleQuoted,
            None if (head.ends_with(':') || item) && separated && ends_line => Place::Whole,
            None => Place::Plain,
        })
    }

    /// `value` written so that YAML reads it back as the collector's value at this place.
    fn write(&self, value: &str) -> Result<String, String> {
        let broken = value.contains(['\n', '\r']);
        match self {
            Place::Whole => Ok(whole_value(value)),
            Place::DoubleQuoted => {
                let quoted = serde_json::to_string(value).unwrap_or_default();
                Ok(quoted[1..quoted.len() - 1].to_string())
            }
            _ if broken => Err("its value has a line break, which cannot be part of an unquoted or single-quoted text; put the value in double quotes, or make the reference the whole value".into()),
            Place::SingleQuoted => Ok(value.replace('\'', "''")),
            Place::Plain => Ok(value.to_string()),
        }
    }
}

/// A whole value: the collector reads the content as YAML; a string keeps its text as given.
fn whole_value(value: &str) -> String {
    use serde_json::Value;
    match serde_saphyr::from_str::<Value>(value) {
        Ok(Value::Null | Value::Bool(_) | Value::Number(_)) if !value.trim().contains('\n') => {
            value.trim().to_string()
        }
        Ok(structure @ (Value::Array(_) | Value::Object(_))) => {
            serde_json::to_string(&structure).unwrap_or_default()
        }
        Ok(Value::String(parsed)) if parsed == value => value.to_string(),
        _ => serde_json::to_string(value).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "ALLOY").then(|| "alloy:4317".to_string())
    }

    // Every spelling the collector accepts, and the escape.
    #[test]
    fn expands_collector_spellings() {
        let expanded = expand_env(
            "a: ${env:ALLOY}\nb: ${ALLOY}\nc: ${env:NOPE:-dflt}\nd: $$HOME\ne: ${MISSING}x",
            env,
        );
        assert_eq!(
            expanded.text,
            "a: alloy:4317\nb: alloy:4317\nc: dflt\nd: $HOME\ne: x"
        );
        assert_eq!(expanded.unset, vec!["MISSING"]);
    }

    // Positions after a replacement move back by what it changed; inside one, to its start.
    #[test]
    fn positions_map_back_to_the_file() {
        let original = "a: ${env:ALLOY}\nb: x\nc: ${MISSING}y\n";
        let expanded = expand_env(original, env);
        let b = expanded.text.find("b: x").unwrap();
        assert_eq!(expanded.original_offset(b), original.find("b: x").unwrap());
        let inside = expanded.text.find("4317").unwrap();
        assert_eq!(
            expanded.original_offset(inside),
            original.find("${env").unwrap()
        );
        let y = expanded.text.find("c: y").unwrap() + 3;
        assert_eq!(
            expanded.original_offset(y),
            original.find("}y").unwrap() + 1
        );
        assert_eq!(expanded.original_offset(0), 0);
    }

    fn files(path: &str) -> std::io::Result<String> {
        match path {
            "token" => Ok("s3cret\n".into()),
            "plain" => Ok("s3cret".into()),
            "map" => Ok("endpoint: a:4317\ntls:\n  insecure: true\n".into()),
            "port" => Ok("4317\n".into()),
            _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
        }
    }

    fn with_files(text: &str) -> Expansion {
        expand(text, &env, &files)
    }

    fn parsed(text: &str) -> serde_json::Value {
        serde_saphyr::from_str(&with_files(text).text).unwrap()
    }

    // A whole value is the file's content as the collector reads it: a string verbatim, with
    // its trailing newline (the collector does not trim), a map as a map, a number as written.
    #[test]
    fn a_file_as_a_whole_value() {
        let value =
            parsed("a: ${file:token}\nb: ${file:map}\nc: ${file:port}\nd:\n  - ${file:plain}\n");
        assert_eq!(value["a"], "s3cret\n");
        assert_eq!(value["b"]["endpoint"], "a:4317");
        assert_eq!(value["b"]["tls"]["insecure"], true);
        assert_eq!(value["c"], 4317);
        assert_eq!(value["d"][0], "s3cret");
    }

    // Inside text, the content is written so YAML reads it back verbatim; a line break in
    // unquoted text cannot be, and is refused with the reason.
    #[test]
    fn a_file_inside_text() {
        let value =
            parsed("a: \"Bearer ${file:token}\"\nb: 'x ${file:plain} it''s'\nc: x-${file:plain}\n");
        assert_eq!(value["a"], "Bearer s3cret\n");
        assert_eq!(value["b"], "x s3cret it's");
        assert_eq!(value["c"], "x-s3cret");
        let refused = with_files("a: Bearer ${file:token}\n");
        assert_eq!(refused.errors.len(), 1);
        assert_eq!(refused.errors[0].0, 10);
        assert!(
            refused.errors[0].1.contains("line break"),
            "{}",
            refused.errors[0].1
        );
    }

    // What the collector refuses is refused, each naming the reference and why.
    #[test]
    fn bad_references_are_refused() {
        for (text, says) in [
            ("a: ${file:missing}", "cannot read the file missing"),
            ("a: ${NOPE:-x}", "unknown scheme `NOPE`"),
            ("a: ${x:y}", "`x` is not a scheme"),
            ("a: ${env:1BAD}", "invalid name"),
            (
                "a: ${https://example.com/c.yaml}",
                "does not fetch config over https",
            ),
        ] {
            let expanded = with_files(text);
            assert_eq!(expanded.errors.len(), 1, "{text}");
            assert_eq!(expanded.errors[0].0, 3, "{text}");
            assert!(
                expanded.errors[0].1.contains(says),
                "{text}: {}",
                expanded.errors[0].1
            );
        }
    }

    // Nested references expand innermost first; `yaml:` is its own text; a comment, which the
    // collector never reads, is left alone; `$VAR` without braces stays as written.
    #[test]
    fn nesting_yaml_comments_and_bare_dollars() {
        let expanded = with_files(
            "a: ${env:NOPE:-${env:ALLOY}}\nb: ${yaml:[1, 2]}\nc: 1 # ${file:missing}\nd: $ALLOY\n",
        );
        assert!(expanded.errors.is_empty());
        assert_eq!(
            expanded.text,
            "a: alloy:4317\nb: [1,2]\nc: 1 # ${file:missing}\nd: $ALLOY\n"
        );
    }

    // An escaped reference is literal text, as `$${env:X}` is in the collector.
    #[test]
    fn escaped_references_stay() {
        assert_eq!(with_files("a: $${env:ALLOY}").text, "a: ${env:ALLOY}");
    }
}
