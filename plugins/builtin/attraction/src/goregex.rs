//! Go's regular expressions (RE2 syntax, as the collector compiles `pattern`s and `regexp`
//! filters) on Rust's `regex`, which shares the syntax and leftmost-first matching but differs
//! in a few places, rewritten here before compiling:
//!
//! - Go's `\d \w \s` (and `\D \W \S`, `\b \B`) are ASCII; Rust's are Unicode.
//! - In a Go class, `[` (other than `[:name:]`), `&&`, `--` and `~~` are literal; in Rust
//!   they nest or combine classes.
//! - Go has `\Q…\E` (a literal run); Rust does not.
//!
//! Matching is unanchored, as Go's `MatchString`.

use regex::Regex;

const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = "\\t\\n\\f\\r ";

/// Compiles a Go regular expression; the error is Rust's message, last line only.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    let translated = translate(pattern)?;
    let regex = Regex::new(&translated).map_err(|e| {
        let text = e.to_string();
        text.lines()
            .last()
            .unwrap_or("invalid pattern")
            .trim()
            .to_string()
    })?;
    // Go names groups with letters, digits and `_` only; Rust also takes `.`, `[` and `]`.
    if let Some(name) = regex
        .capture_names()
        .flatten()
        .find(|n| !n.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        return Err(format!(
            "invalid group name `{name}`: use letters, digits and _"
        ));
    }
    Ok(regex)
}

/// The Rust pattern that matches what the Go one matches.
pub fn translate(pattern: &str) -> Result<String, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut i = 0;
    // Inside a class: the position where it opened, so a `]` right after `[` or `[^` is literal.
    let mut class_start: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                return Err("trailing backslash at end of expression".into());
            };
            if next == 'Q' {
                // \Q…\E: everything up to \E (or the end) is literal.
                let mut j = i + 2;
                while j < chars.len() && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E')) {
                    let lit = chars[j].to_string();
                    out.push_str(&regex::escape(&lit));
                    j += 1;
                }
                i = if j < chars.len() { j + 2 } else { j };
                continue;
            }
            if next == 'C' {
                return Err("\\C (any byte) is not supported".into());
            }
            let inside = class_start.is_some();
            let replacement = match (next, inside) {
                ('d', false) => Some("[0-9]".to_string()),
                ('D', false) => Some("[^0-9]".to_string()),
                ('w', false) => Some(format!("[{WORD}]")),
                ('W', false) => Some(format!("[^{WORD}]")),
                ('s', false) => Some(format!("[{SPACE}]")),
                ('S', false) => Some(format!("[^{SPACE}]")),
                ('b', false) => Some("(?-u:\\b)".to_string()),
                ('B', false) => Some("(?-u:\\B)".to_string()),
                ('d', true) => Some("0-9".to_string()),
                ('D', true) => Some("[^0-9]".to_string()),
                ('w', true) => Some(WORD.to_string()),
                ('W', true) => Some(format!("[^{WORD}]")),
                ('s', true) => Some(SPACE.to_string()),
                ('S', true) => Some(format!("[^{SPACE}]")),
                _ => None,
            };
            match replacement {
                Some(r) => out.push_str(&r),
                None => {
                    out.push('\\');
                    out.push(next);
                }
            }
            i += 2;
            continue;
        }
        match class_start {
            None => {
                if c == '[' {
                    class_start = Some(i);
                    out.push('[');
                    if chars.get(i + 1) == Some(&'^') {
                        out.push('^');
                        i += 1;
                    }
                    // A `]` first in the class is a literal.
                    if chars.get(i + 1) == Some(&']') {
                        out.push_str("\\]");
                        i += 1;
                    }
                } else {
                    out.push(c);
                }
            }
            Some(_) => match c {
                ']' => {
                    class_start = None;
                    out.push(']');
                }
                '[' if chars.get(i + 1) == Some(&':') => {
                    // A POSIX class, `[:alpha:]`, the same in both.
                    let end = (i + 2..chars.len().saturating_sub(1))
                        .find(|&j| chars[j] == ':' && chars[j + 1] == ']');
                    match end {
                        Some(end) => {
                            out.extend(&chars[i..end + 2]);
                            i = end + 1;
                        }
                        None => out.push_str("\\["),
                    }
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if chars.get(i + 1) == Some(&'-') => out.push_str("\\-"),
                c => out.push(c),
            },
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::compile;

    // Go's Perl classes are ASCII: a Devanagari digit is no \d, a non-breaking space no \s.
    #[test]
    fn perl_classes_are_ascii() {
        assert!(!compile(r"^\d$").unwrap().is_match("५"));
        assert!(compile(r"^\d+$").unwrap().is_match("42"));
        assert!(!compile(r"\s").unwrap().is_match("\u{a0}"));
        assert!(compile(r"^\W$").unwrap().is_match("é"));
        assert!(compile(r"^[\d\s]+$").unwrap().is_match("1 2"));
        assert!(compile(r"^[^\d]$").unwrap().is_match("x"));
        assert!(compile(r"\bab\b").unwrap().is_match("x ab y"));
    }

    // What Rust would read as nested or combined classes is literal in Go.
    #[test]
    fn class_punctuation_is_literal() {
        assert!(compile(r"^[[]$").unwrap().is_match("["));
        assert!(compile(r"^[a&&b]+$").unwrap().is_match("a&b"));
        assert!(compile(r"^[]a]+$").unwrap().is_match("]a"));
        assert!(compile(r"^[[:digit:]]+$").unwrap().is_match("12"));
        assert!(compile(r"^\Qa.b\E$").unwrap().is_match("a.b"));
        assert!(!compile(r"^\Qa.b\E$").unwrap().is_match("axb"));
    }

    // Unanchored, as MatchString; named groups in both spellings; errors say why.
    #[test]
    fn unanchored_named_groups_and_errors() {
        assert!(compile("b").unwrap().is_match("abc"));
        let re = compile(r"^(?P<a>\w+)/(?<b>\d+)$").unwrap();
        let names: Vec<_> = re.capture_names().flatten().collect();
        assert_eq!(names, ["a", "b"]);
        assert!(compile("(").is_err());
        assert!(compile(r"\C").is_err());
        assert!(
            compile(r"(?P<a.b>x)")
                .unwrap_err()
                .contains("invalid group name")
        );
    }
}
