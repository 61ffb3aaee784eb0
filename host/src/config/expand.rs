//! `${env:VAR}` expansion, as the collector does it: `${env:VAR}`, `${VAR}` and
//! `${env:VAR:-default}`; `$$` is a literal `$`. An unset variable without a default expands to
//! the empty string and is reported so the caller can warn.

/// Expands references in `text`; returns the text and the names of unset variables.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
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
            rest = &rest[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    (out, unset)
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
        let (text, unset) = expand_env(
            "a: ${env:ALLOY}\nb: ${ALLOY}\nc: ${env:NOPE:-dflt}\nd: $$HOME\ne: ${MISSING}x",
            env,
        );
        assert_eq!(
            text,
            "a: alloy:4317\nb: alloy:4317\nc: dflt\nd: $HOME\ne: x"
        );
        assert_eq!(unset, vec!["MISSING"]);
    }
}
