//! Go's regular expressions (RE2 syntax, as the collector compiles them) for Rust's `regex`.
//!
//! The two dialects agree except where Rust is Unicode-aware and Go is ASCII-only: `\d`, `\w`,
//! `\s` and `\b` (so `\d` would match `٣` here and not in the collector), and where Rust reads
//! more inside a class (`[`, `&&`, `~~`). The pattern is rewritten to say Go's meaning
//! explicitly; `\Q…\E` literals, which Rust lacks, become escaped text.

use regex::Regex;

const DIGIT: &str = "0-9";
const WORD: &str = "0-9A-Za-z_";
const SPACE: &str = "\\t\\n\\f\\r ";

/// Compiles a Go pattern with Go's meaning.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(&translate(pattern))
        .octal(true)
        .build()
        .map_err(|e| format!("error compiling regex `{pattern}`: {e}"))
}

fn class(c: char) -> Option<(&'static str, bool)> {
    Some(match c {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        _ => return None,
    })
}

pub fn translate(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // Where the current class's body starts, so a `]` there is a literal.
    let mut class_start = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let next = chars[i + 1];
            if next == 'Q' {
                let rest: String = chars[i + 2..].iter().collect();
                let (literal, after) = match rest.find("\\E") {
                    Some(end) => (&rest[..end], end + 2),
                    None => (&rest[..], rest.len()),
                };
                if in_class {
                    for ch in literal.chars() {
                        out.push_str(&regex::escape(&ch.to_string()));
                    }
                } else {
                    out.push_str(&regex::escape(literal));
                }
                i += 2 + rest[..after].chars().count();
                continue;
            }
            if let Some((set, negated)) = class(next) {
                match (in_class, negated) {
                    (false, false) => out.push_str(&format!("[{set}]")),
                    (false, true) | (true, true) => out.push_str(&format!("[^{set}]")),
                    (true, false) => out.push_str(set),
                }
            } else if !in_class && (next == 'b' || next == 'B') {
                out.push_str(&format!("(?-u:\\{next})"));
            } else {
                out.push(c);
                out.push(next);
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' if i != class_start => in_class = false,
                '[' if chars.get(i + 1) == Some(&':') => {
                    // An ASCII class, `[:alpha:]`: the same in both.
                    let rest: String = chars[i..].iter().collect();
                    if let Some(end) = rest.find(":]") {
                        out.push_str(&rest[..end + 2]);
                        i += rest[..end + 2].chars().count();
                        continue;
                    }
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                }
                '-' if chars.get(i + 1) == Some(&'-') => {
                    out.push('\\');
                }
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            i += 1;
            if chars.get(i) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            class_start = i;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}
