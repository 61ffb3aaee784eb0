//! Where each key and value of a config file is: the text read a second time into a tree of
//! located nodes, so a problem found after parsing (a pipeline naming an undefined component)
//! points at that very key or list item, in flow maps, through anchors and in quoted keys
//! alike. Positions are in the file as written, before `${env:…}` expansion.

use super::expand::Expansion;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::fmt;

/// 1-based line and column, in characters.
pub type Position = (usize, usize);

/// A node of the file with where it starts.
#[derive(Debug)]
pub struct Located {
    at: Option<Position>,
    node: Node,
}

#[derive(Debug)]
enum Node {
    Scalar(String),
    Seq(Vec<Located>),
    Map(Vec<(Located, Located)>),
}

impl Default for Located {
    fn default() -> Self {
        Located {
            at: None,
            node: Node::Map(Vec::new()),
        }
    }
}

impl Located {
    /// The tree of `expansion`'s text, or an empty one when it does not parse (the config's
    /// own parse reports why).
    pub fn read(expansion: &Expansion, original: &str) -> Located {
        let tree: Option<Spanned<Raw>> =
            serde_saphyr::from_str_with_options(&expansion.text, super::yaml_options()).ok();
        tree.map_or_else(Located::default, |tree| {
            locate_tree(tree, expansion, original)
        })
    }

    /// Where the key `path` is, or `needle` under it (a key or value equal to it, the first in
    /// the file); when the path ends early, its deepest key found.
    pub fn locate(&self, path: &[&str], needle: Option<&str>) -> Option<Position> {
        let mut node = self;
        let mut found = None;
        for key in path {
            let Some((k, v)) = node.entry(key) else {
                return found;
            };
            (found, node) = (k.at, v);
        }
        needle.and_then(|n| node.find(n)).or(found)
    }

    /// Where a plugin's error path (`traces.span[1]`, dotted with list indexes) under the key
    /// path `base` is; the deepest part found.
    pub fn locate_dotted(&self, base: &[&str], dotted: &str) -> Option<Position> {
        let mut found = self.locate(base, None)?;
        let mut node = self;
        for key in base {
            node = &node.entry(key)?.1;
        }
        for part in dotted.split('.') {
            let (key, index) = part.split_once('[').unwrap_or((part, ""));
            let Some((k, v)) = node.entry(key) else {
                return Some(found);
            };
            (found, node) = (k.at.unwrap_or(found), v);
            if let Ok(index) = index.trim_end_matches(']').parse::<usize>() {
                match &node.node {
                    Node::Seq(items) if index < items.len() => {
                        node = &items[index];
                        found = node.at.unwrap_or(found);
                    }
                    _ => return Some(found),
                }
            }
        }
        Some(found)
    }

    fn entry(&self, key: &str) -> Option<&(Located, Located)> {
        match &self.node {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.is(key)),
            _ => None,
        }
    }

    fn is(&self, text: &str) -> bool {
        matches!(&self.node, Node::Scalar(s) if s == text)
    }

    /// The first key or value equal to `text` in this node, in file order.
    fn find(&self, text: &str) -> Option<Position> {
        match &self.node {
            Node::Scalar(_) => self.is(text).then_some(self.at).flatten(),
            Node::Seq(items) => items.iter().find_map(|item| item.find(text)),
            Node::Map(entries) => entries.iter().find_map(|(k, v)| {
                k.is(text)
                    .then_some(k.at)
                    .flatten()
                    .or_else(|| v.find(text))
            }),
        }
    }
}

fn locate_tree(tree: Spanned<Raw>, expansion: &Expansion, original: &str) -> Located {
    let at = position(&tree.referenced, expansion, original);
    let node = match tree.value {
        Raw::Scalar(text) => Node::Scalar(text),
        Raw::Seq(items) => Node::Seq(
            items
                .into_iter()
                .map(|item| locate_tree(item, expansion, original))
                .collect(),
        ),
        Raw::Map(entries) => Node::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = locate_tree(k, expansion, original);
                    (key, locate_tree(v, expansion, original))
                })
                .collect(),
        ),
    };
    Located { at, node }
}

/// A location in the expanded text as a position in the file as written.
pub fn position(location: &Location, expansion: &Expansion, original: &str) -> Option<Position> {
    if *location == Location::UNKNOWN {
        return None;
    }
    let Some(offset) = location.span().byte_offset() else {
        return Some((location.line() as usize, location.column() as usize));
    };
    let offset = expansion
        .original_offset(offset as usize)
        .min(original.len());
    let before = original.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let line = before.matches('\n').count() + 1;
    Some((line, before[line_start..].chars().count() + 1))
}

/// The file as YAML gives it, each node spanned.
enum Raw {
    Scalar(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(String::new()))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(String::new()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Raw, S::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Raw, M::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Located {
        Located::read(&super::super::expand::expand_env(text, |_| None), text)
    }

    const TEXT: &str = "service:\n  pipelines:\n    traces:\n      receivers: [otlp, zipkin]\n      exporters:\n        - otlp/alloy\n    logs:\n      receivers: [otlp]\n";

    // A value inside a flow or block list is found at its own column, not a longer id's.
    #[test]
    fn finds_values_under_a_key() {
        let spans = tree(TEXT);
        let traces = ["service", "pipelines", "traces"];
        assert_eq!(spans.locate(&traces, Some("zipkin")), Some((4, 25)));
        assert_eq!(spans.locate(&traces, Some("otlp/alloy")), Some((6, 11)));
        let logs = ["service", "pipelines", "logs"];
        assert_eq!(spans.locate(&logs, Some("otlp")), Some((8, 19)));
        // A missing needle falls back to the key.
        assert_eq!(spans.locate(&logs, Some("nope")), Some((7, 5)));
    }

    // Flow maps, anchors and quoted keys, which an indentation walk could not follow.
    #[test]
    fn flow_maps_anchors_and_quoted_keys() {
        let text = "ids: &ids [otlp, zipkin]\nservice: {pipelines: {traces: {receivers: *ids}}}\n\"quoted key\": {a: 1}\n";
        let spans = tree(text);
        let at = ["service", "pipelines", "traces"];
        // Through the alias: where it is used.
        assert_eq!(spans.locate(&at, Some("zipkin")).map(|p| p.0), Some(2));
        assert_eq!(spans.locate(&["service", "pipelines"], None), Some((2, 11)));
        assert_eq!(
            spans.locate(&["quoted key", "a"], None).map(|p| p.0),
            Some(3)
        );
    }

    // Positions are in the file as written, not in the expanded text.
    #[test]
    fn positions_survive_expansion() {
        let text = "a: ${env:A_LONG_VARIABLE_NAME:-x}\nb: {c: [one, two]}\n";
        let spans = tree(text);
        assert_eq!(spans.locate(&["b"], Some("two")), Some((2, 14)));
        let same_line = "a: {x: ${env:UNSET_THING:-1}, y: two}\n";
        assert_eq!(tree(same_line).locate(&["a"], Some("two")), Some((1, 34)));
    }

    // A plugin's error path leads to the list entry it names.
    #[test]
    fn finds_list_entries_by_index() {
        let text = "processors:\n  filter:\n    traces:\n      span:\n        - 'name == 1'\n        # a comment\n        - 'kind =='\n    logs: {}\n";
        let spans = tree(text);
        let base = ["processors", "filter"];
        assert_eq!(
            spans.locate_dotted(&base, "traces.span[1]").map(|p| p.0),
            Some(7)
        );
        assert_eq!(
            spans.locate_dotted(&base, "traces.span[0]").map(|p| p.0),
            Some(5)
        );
        assert_eq!(spans.locate_dotted(&base, "traces"), Some((3, 5)));
        assert_eq!(spans.locate_dotted(&base, "traces.span[9]"), Some((4, 7)));
    }
}
