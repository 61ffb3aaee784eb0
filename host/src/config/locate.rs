//! Finds where a key path (and optionally a value under it) sits in YAML text, so errors found
//! after parsing — a pipeline naming an undefined component — still point at a line and column.
//!
//! It follows block-style YAML by indentation, which is how configs are written; when it cannot
//! follow the text it returns the deepest key it found.

/// 1-based (line, column) of `needle` under the key `path`, or of the key itself.
pub fn locate(text: &str, path: &[&str], needle: Option<&str>) -> Option<(usize, usize)> {
    let mut depth = 0; // keys of `path` matched so far
    let mut indents: Vec<usize> = Vec::new(); // indentation of each matched key
    let mut found = None;
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        while indents.last().is_some_and(|&i| indent <= i) {
            if depth == path.len() && found.is_some() {
                return found; // left the target block without finding the needle
            }
            indents.pop();
            depth -= 1;
        }
        if depth < path.len() {
            let key = content
                .trim_start_matches("- ")
                .split(':')
                .next()
                .unwrap_or("")
                .trim();
            if key.trim_matches(|c| c == '"' || c == '\'') == path[depth] {
                depth += 1;
                indents.push(indent);
                found = Some((number + 1, indent + 1));
                if depth == path.len()
                    && let Some(hit) = needle.and_then(|n| find_word(content, n))
                {
                    return Some((number + 1, indent + 1 + hit));
                }
            }
        } else if let Some(hit) = needle.and_then(|n| find_word(content, n)) {
            return Some((number + 1, indent + 1 + hit));
        }
    }
    found
}

/// 1-based (line, column) of a plugin's own config error, given as a dotted path with list
/// indexes (`traces.span[1]`) under the key path `base` (`processors`, `filter`).
pub fn locate_dotted(text: &str, base: &[&str], dotted: &str) -> Option<(usize, usize)> {
    let mut keys: Vec<&str> = base.to_vec();
    let mut index = None;
    for part in dotted.split('.') {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        keys.push(key);
        index = rest.trim_end_matches(']').parse::<usize>().ok();
    }
    let (line, column) = locate(text, &keys, None)?;
    let Some(index) = index else {
        return Some((line, column));
    };
    // The index-th `- ` entry of the block under the key; a flow list stays at the key.
    let mut entries = text
        .lines()
        .enumerate()
        .skip(line)
        .take_while(|(_, l)| {
            // Entries may sit at the key's own indentation (`span:` then `- …`).
            let content = l.trim_start();
            let indent = l.len() - content.len() + 1;
            content.is_empty()
                || content.starts_with('#')
                || indent > column
                || (indent == column && content.starts_with("- "))
        })
        .filter(|(_, l)| l.trim_start().starts_with("- "));
    match entries.nth(index) {
        Some((n, l)) => Some((n + 1, l.len() - l.trim_start().len() + 1)),
        None => Some((line, column)),
    }
}

/// The byte offset of `word` in `line` where it is not part of a longer id.
fn find_word(line: &str, word: &str) -> Option<usize> {
    let is_id = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    line.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(is_id) && !after.is_some_and(is_id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "service:\n  pipelines:\n    traces:\n      receivers: [otlp, zipkin]\n      exporters:\n        - otlp/alloy\n    logs:\n      receivers: [otlp]\n";

    // A value inside a flow or block list is found at its own column, not a longer id's.
    #[test]
    fn finds_values_under_a_key() {
        assert_eq!(
            locate(TEXT, &["service", "pipelines", "traces"], Some("zipkin")),
            Some((4, 25))
        );
        assert_eq!(
            locate(
                TEXT,
                &["service", "pipelines", "traces"],
                Some("otlp/alloy")
            ),
            Some((6, 11))
        );
        assert_eq!(
            locate(TEXT, &["service", "pipelines", "logs"], Some("otlp")),
            Some((8, 19))
        );
    }

    // A plugin's error path leads to the list entry it names.
    #[test]
    fn finds_list_entries_by_index() {
        let text = "processors:\n  filter:\n    traces:\n      span:\n        - 'name == 1'\n        # a comment\n        - 'kind =='\n    logs: {}\n";
        assert_eq!(
            locate_dotted(text, &["processors", "filter"], "traces.span[1]"),
            Some((7, 9))
        );
        assert_eq!(
            locate_dotted(text, &["processors", "filter"], "traces.span[0]"),
            Some((5, 9))
        );
        assert_eq!(
            locate_dotted(text, &["processors", "filter"], "traces"),
            Some((3, 5))
        );
        let flush = "filter:\n  span:\n  - a\n  - b\n  logs: {}\n";
        assert_eq!(locate_dotted(flush, &["filter"], "span[1]"), Some((4, 3)));
    }

    // A missing needle falls back to the key.
    #[test]
    fn falls_back_to_the_key() {
        assert_eq!(
            locate(TEXT, &["service", "pipelines", "logs"], Some("nope")),
            Some((7, 5))
        );
    }
}
