//! `${env:VAR}` expansion, as the collector does it: `${env:VAR}`, `${VAR}` and
//! `${env:VAR:-default}`; `$$` is a literal `$`. An unset variable without a default expands to
//! the empty string and is reported so the caller can warn. Each replacement is remembered, so
//! a position in the expanded text maps back to the file as written.

/// The expanded text, the unset variables it used, and where it differs from the original.
pub struct Expansion {
    pub text: String,
    pub unset: Vec<String>,
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

/// Expands references in `text`.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Expansion {
    let mut out = String::with_capacity(text.len());
    let (mut unset, mut edits) = (Vec::new(), Vec::new());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (original, before) = (text.len() - rest.len(), out.len());
        let taken = if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest.len() - after.len()
        } else if let (Some(body), Some(end)) = (rest.strip_prefix("${"), rest.find('}')) {
            let reference = &body[..end - 2];
            let reference = reference.strip_prefix("env:").unwrap_or(reference);
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            match (lookup(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => unset.push(name.to_string()),
            }
            end + 1
        } else {
            out.push('$');
            1
        };
        rest = &rest[taken..];
        if out.len() - before != taken {
            edits.push((before, out.len() - before, original, taken));
        }
    }
    out.push_str(rest);
    Expansion {
        text: out,
        unset,
        edits,
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
}
