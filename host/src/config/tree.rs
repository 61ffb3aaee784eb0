//! The config file read once, by serde-saphyr, into a tree of located nodes. The typed config
//! is deserialized from this tree (it is a serde `Deserializer`), so an error names its key
//! path and position, and a problem found after parsing (a pipeline naming an undefined
//! component) points at that very key or list item, in flow maps, through anchors and in quoted
//! keys alike. Positions are in the file as written, before `${env:…}` expansion.
//!
//! Why not deserialize straight from serde-saphyr: each config struct's deserializer is then
//! instantiated for saphyr's deserializer (and `serde_path_to_error`'s around it), and that
//! code, run once at start, stays resident (the idle-RSS figure is in BENCHMARKS.md).

use super::expand::Expansion;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
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
    Scalar(Scalar),
    Seq(Vec<Located>),
    Map(Vec<(Located, Located)>),
}

/// A scalar as YAML resolved it, with its text as written: a string field takes the text of
/// any scalar (`token: 0123` is "0123", as `${env:TOKEN}` expanding to digits must be).
#[derive(Debug)]
struct Scalar {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
}

impl Default for Located {
    fn default() -> Self {
        Located {
            at: None,
            node: Node::Map(Vec::new()),
        }
    }
}

/// How trailhead reads YAML, as the collector's YAML library does: only `true` and `false` are
/// booleans, `<<` merges, and a key given twice in one map is an error.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    }
}

impl Located {
    /// The tree of `expansion`'s text; a YAML error is where it is in `original` and what it
    /// says.
    pub fn parse(
        expansion: &Expansion,
        original: &str,
    ) -> Result<Located, (Option<Position>, String)> {
        use serde_saphyr::{DefaultMessageFormatter, MessageFormatter};
        let tree: Spanned<Raw> =
            serde_saphyr::from_str_with_options(&expansion.text, yaml_options()).map_err(|e| {
                let at = e.location().and_then(|l| position(&l, expansion, original));
                let message = DefaultMessageFormatter.format_message(&e);
                // The library's advice names its own options, not the user's config.
                let advice = ", set DuplicateKeyPolicy in Options if acceptable";
                (at, message.trim_end_matches(advice).to_string())
            })?;
        Ok(locate_tree(tree, expansion, original))
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

    /// The value under the keys of `path`, when each is there.
    pub fn get(&self, path: &[&str]) -> Option<&Located> {
        path.iter()
            .try_fold(self, |node, key| node.entry(key).map(|(_, value)| value))
    }

    /// The node's value without its positions: what two configs are compared by.
    pub fn value(&self) -> serde_json::Value {
        serde_json::Value::deserialize(self).unwrap_or_default()
    }

    fn entry(&self, key: &str) -> Option<&(Located, Located)> {
        match &self.node {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.is(key)),
            _ => None,
        }
    }

    /// A scalar that is not null.
    fn scalar(&self) -> Option<&Scalar> {
        match &self.node {
            Node::Scalar(s) if !matches!(s.kind, Kind::Null) => Some(s),
            _ => None,
        }
    }

    /// A key as a path segment.
    fn key_text(&self) -> String {
        match &self.node {
            Node::Scalar(s) => s.text.clone(),
            _ => "?".into(),
        }
    }

    fn is(&self, text: &str) -> bool {
        matches!(&self.node, Node::Scalar(s) if s.text == text)
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

/// Reads YAML text into `T` as a config file's section is read: for components' own tests and
/// settings given as YAML text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    let expansion = super::expand::expand_env(text, |_| None);
    if let Some((_, message)) = expansion.errors.first() {
        return Err(message.clone());
    }
    let tree = Located::parse(&expansion, text).map_err(|(_, message)| message)?;
    T::deserialize(&tree).map_err(|e| e.to_string())
}

fn locate_tree(tree: Spanned<Raw>, expansion: &Expansion, original: &str) -> Located {
    let at = position(&tree.referenced, expansion, original);
    let node = match tree.value {
        Raw::Scalar(Kind::Str, text) => Node::Scalar(Scalar {
            text,
            kind: Kind::Str,
        }),
        Raw::Scalar(kind, text) => Node::Scalar(Scalar {
            text: source_text(&tree.defined, &expansion.text).unwrap_or(text),
            kind,
        }),
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

/// A plain scalar's text as written, where the parser knows its bytes.
fn source_text(location: &Location, text: &str) -> Option<String> {
    let span = location.span();
    let start = span.byte_offset()? as usize;
    let end = start + span.byte_len()? as usize;
    text.get(start..end).map(str::to_string)
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

/// The file as YAML gives it, each node spanned; a scalar's kind and its text as decoded.
enum Raw {
    Scalar(Kind, String),
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
        Ok(Raw::Scalar(Kind::Bool(v), v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Kind::Int(v), v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Kind::Uint(v), v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(Kind::Float(v), v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(Kind::Str, v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Kind::Null, String::new()))
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Kind::Null, String::new()))
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

/// Why a node did not read as its type: the message, the key path to the node (innermost
/// segment first) and where it is.
#[derive(Debug)]
pub struct Error {
    message: String,
    at: Option<Position>,
    path: Vec<String>,
}

impl Error {
    /// Where the error is: the innermost node that knew.
    pub fn position(&self) -> Option<Position> {
        self.at
    }

    fn at(mut self, at: Option<Position>) -> Error {
        self.at = self.at.or(at);
        self
    }

    fn under(mut self, segment: String) -> Error {
        self.path.push(segment);
        self
    }

    /// The key path as `receivers.otlp.protocols` or `service.extensions[1]`.
    fn path(&self) -> String {
        let mut path = String::new();
        for segment in self.path.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        path
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error {
            message: message.to_string(),
            at: None,
            path: Vec::new(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            path if path.is_empty() => f.write_str(&self.message),
            path => write!(f, "{path}: {}", self.message),
        }
    }
}

impl std::error::Error for Error {}

impl<'de> Deserializer<'de> for &'de Located {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let result = match &self.node {
            Node::Scalar(s) => match s.kind {
                Kind::Str => visitor.visit_borrowed_str(&s.text),
                Kind::Null => visitor.visit_unit(),
                Kind::Bool(b) => visitor.visit_bool(b),
                Kind::Int(i) => visitor.visit_i64(i),
                Kind::Uint(u) => visitor.visit_u64(u),
                Kind::Float(f) => visitor.visit_f64(f),
            },
            Node::Seq(items) => visitor.visit_seq(Items(items.iter().enumerate())),
            Node::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                pending: None,
            }),
        };
        // A child's error already has its position (`Items`, `Entries`); this is the root's.
        result.map_err(|e| e.at(self.at))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(s) => visitor.visit_borrowed_str(&s.text),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.node {
            Node::Scalar(Scalar {
                kind: Kind::Null, ..
            }) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.scalar() {
            Some(s) => visitor.visit_enum(BorrowedStrDeserializer::new(&s.text)),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct
    }
}

/// A sequence's items, each error led by its index.
struct Items<'de>(std::iter::Enumerate<std::slice::Iter<'de, Located>>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            Some((index, item)) => seed
                .deserialize(item)
                .map(Some)
                .map_err(|e| e.at(item.at).under(format!("[{index}]"))),
            None => Ok(None),
        }
    }
}

/// A map's entries, each error led by its key.
struct Entries<'de> {
    entries: std::slice::Iter<'de, (Located, Located)>,
    pending: Option<&'de (Located, Located)>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(entry);
        let key = &entry.0;
        seed.deserialize(key)
            .map(Some)
            .map_err(|e| e.at(key.at).under(key.key_text()))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom(
                "a map value was asked for before its key",
            ));
        };
        // An error raised after the value was read (a `deserialize_with` check) is the value's.
        seed.deserialize(value)
            .map_err(|e| e.at(value.at).under(key.key_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Located {
        Located::parse(&super::super::expand::expand_env(text, |_| None), text).unwrap()
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

    // A string field takes a plain scalar as written, so `${env:TOKEN}` expanding to digits is
    // the token, not a number; other fields take the scalar's YAML type.
    #[test]
    fn string_fields_take_scalars_as_written() {
        #[derive(Debug, serde::Deserialize)]
        struct Settings {
            token: String,
            version: String,
            count: u32,
            on: bool,
        }
        let settings: Settings =
            from_str("token: 0123\nversion: 1.10\ncount: 7\non: true\n").unwrap();
        assert_eq!(settings.token, "0123");
        assert_eq!(settings.version, "1.10");
        assert_eq!((settings.count, settings.on), (7, true));
        let quoted = from_str::<Settings>("token: a\nversion: b\ncount: \"7\"\non: true\n");
        assert!(quoted.unwrap_err().contains("count: invalid type: string"));
    }

    // An error names its key path, list indexes included, and is where the bad value is.
    #[test]
    fn errors_carry_path_and_position() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Item {
            n: u8,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Doc {
            items: Vec<Item>,
        }
        let text = "items:\n  - n: 1\n  - n: 300\n";
        let tree = tree(text);
        let error = Doc::deserialize(&tree).unwrap_err();
        assert!(
            error.to_string().starts_with("items[1].n: invalid value"),
            "{error}"
        );
        assert_eq!(error.position(), Some((3, 8)));
    }
}
