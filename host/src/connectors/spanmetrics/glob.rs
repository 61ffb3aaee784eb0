//! Attribute-name globs as the collector compiles them (gobwas/glob with `.` as the separator):
//! `*` is any run within one dot-separated part, `**` any run across parts, `?` one character
//! of a part, `[a-z]`/`[!a-z]` a class, `{a,b}` alternatives, `\` escapes. Translated once into
//! an anchored regex.

use regex::Regex;

/// A compiled glob.
#[derive(Debug, Clone)]
pub struct Glob {
    text: String,
    regex: Regex,
}

impl Glob {
    /// Compiles `text`, or says why it is not a glob.
    pub fn new(text: &str) -> Result<Glob, String> {
        let mut pattern = String::from("^");
        let mut chars = text.chars().peekable();
        let mut alternatives = 0usize;
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    pattern.push_str(".*");
                }
                '*' => pattern.push_str(r"[^.]*"),
                '?' => pattern.push_str(r"[^.]"),
                '\\' => match chars.next() {
                    Some(escaped) => pattern.push_str(&regex::escape(&escaped.to_string())),
                    None => return Err("unexpected end of input after `\\`".into()),
                },
                '[' => {
                    pattern.push('[');
                    if chars.peek() == Some(&'!') {
                        chars.next();
                        pattern.push('^');
                    }
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == ']' {
                            closed = true;
                            break;
                        }
                        match c {
                            '-' => pattern.push('-'),
                            other => pattern.push_str(&regex::escape(&other.to_string())),
                        }
                    }
                    if !closed {
                        return Err("unclosed character class `[`".into());
                    }
                    pattern.push(']');
                }
                '{' => {
                    alternatives += 1;
                    pattern.push_str("(?:");
                }
                ',' if alternatives > 0 => pattern.push('|'),
                '}' if alternatives > 0 => {
                    alternatives -= 1;
                    pattern.push(')');
                }
                other => pattern.push_str(&regex::escape(&other.to_string())),
            }
        }
        if alternatives > 0 {
            return Err("unclosed alternatives `{`".into());
        }
        pattern.push('$');
        let regex = Regex::new(&pattern).map_err(|e| e.to_string())?;
        Ok(Glob {
            text: text.to_string(),
            regex,
        })
    }

    /// Whether `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The glob as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn star_stays_within_a_part_and_double_star_crosses() {
        let one = Glob::new("http.*").unwrap();
        assert!(one.is_match("http.method"));
        assert!(!one.is_match("http.request.method"));
        let any = Glob::new("http.**").unwrap();
        assert!(any.is_match("http.request.method"));
        let choice = Glob::new("{db,rpc}.system").unwrap();
        assert!(choice.is_match("rpc.system") && !choice.is_match("net.system"));
        assert!(
            Glob::new("k8s.[!p]od.name")
                .unwrap()
                .is_match("k8s.nod.name")
        );
        assert!(Glob::new("a[").is_err());
    }
}
