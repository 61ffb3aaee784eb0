//! Statements (`editor(target, args…) where condition`) and what each editor does to its
//! target's value.
//!
//! An editor here is pure: given the target's current value and its arguments' values for
//! one item, it returns the target's new value (or `None`: leave it). Reading the target and
//! writing it back is the plugin's business, which lets it batch the writes.

use crate::func::{get, json};
use crate::{Expr, Map, Operand, Path, Value};
use regex::Regex;
use std::rc::Rc;

/// A supported editor, with the arguments that must be literals already checked.
#[derive(Debug, Clone)]
pub enum Editor {
    /// `set(target, value)`: args `[value]`.
    Set,
    /// `delete_key(target, key)`: args `[key]`.
    DeleteKey,
    /// `delete_matching_keys(target, pattern)`.
    DeleteMatchingKeys(Regex),
    /// `keep_keys(target, keys)`: args `[keys]` (a list).
    KeepKeys,
    /// `keep_matching_keys(target, pattern)`.
    KeepMatchingKeys(Regex),
    /// `replace_pattern(target, regex, replacement)`: args `[replacement]`.
    ReplacePattern(Regex),
    /// `replace_all_patterns(target, mode, regex, replacement)`: args `[replacement]`;
    /// `keys` is mode `key`.
    ReplaceAllPatterns { keys: bool, regex: Regex },
    /// `replace_match(target, pattern, replacement)`: a glob; args `[replacement]`.
    ReplaceMatch(Regex),
    /// `replace_all_matches(target, pattern, replacement)`: a glob; args `[replacement]`.
    ReplaceAllMatches(Regex),
    /// `truncate_all(target, limit, utf8_safe?, truncation_marker?)`.
    TruncateAll {
        limit: usize,
        utf8_safe: bool,
        marker: String,
    },
    /// `limit(target, limit, priority_keys)`.
    Limit { limit: usize, priority: Vec<String> },
    /// `merge_maps(target, source, strategy)`: args `[source]`.
    MergeMaps(Strategy),
    /// `flatten(target, prefix?, depth?, resolve_conflicts?)`.
    Flatten {
        prefix: String,
        depth: i64,
        resolve_conflicts: bool,
    },
}

/// `merge_maps`'s strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Insert,
    Update,
    Upsert,
}

/// One parsed statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub editor: Editor,
    /// The editor's first argument: the path it changes.
    pub target: Path,
    /// The editor's other getter arguments (see [`Editor`] for each one's list).
    pub args: Vec<Operand>,
    pub condition: Option<Expr>,
}

impl Statement {
    /// Every path the statement reads or writes (the target first), for the caller to check
    /// against its context.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = vec![&self.target];
        self.args.iter().for_each(|a| a.paths(&mut out));
        if let Some(condition) = &self.condition {
            out.extend(condition.paths());
        }
        out
    }

    /// Whether the editor works on a whole map (`keep_keys(attributes, …)`), as opposed to
    /// one value (`set(attributes["k"], …)`).
    pub fn edits_a_map(&self) -> bool {
        !matches!(
            self.editor,
            Editor::Set | Editor::ReplacePattern(_) | Editor::ReplaceMatch(_)
        )
    }
}

/// Sets `key` in `map`, in place if it is there, else at the end (as pdata's `PutEmpty`).
pub fn put(map: &mut Map, key: &str, value: Value<'static>) {
    match map.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => map.push((key.to_string(), value)),
    }
}

fn as_map<'v>(target: &'v Value<'_>, editor: &str) -> Result<&'v Map, String> {
    match target {
        Value::Map(m) => Ok(m),
        other => Err(format!("{editor}: expected a map but got {}", other.kind())),
    }
}

fn as_string<'v>(v: &'v Value<'_>, what: &str) -> Result<&'v str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "{what}: expected a string but got {}",
            other.kind()
        )),
    }
}

fn changed(old: &Map, new: Map) -> Option<Value<'static>> {
    (*old != new).then(|| Value::Map(Rc::new(new)))
}

/// Truncates `s` to `limit` bytes with `marker`, backing up to a character boundary when
/// `utf8_safe`; `None` when it is short enough.
pub fn truncate(s: &str, limit: usize, utf8_safe: bool, marker: &str) -> Option<String> {
    if s.len() <= limit {
        return None;
    }
    let mut at = limit - marker.len();
    if utf8_safe {
        while at > 0 && !s.is_char_boundary(at) {
            at -= 1;
        }
    }
    let mut out = String::from_utf8_lossy(&s.as_bytes()[..at]).into_owned();
    out.push_str(marker);
    Some(out)
}

impl Editor {
    /// The target's new value for one item, or `None` to leave it.
    pub fn apply(
        &self,
        target: &Value<'_>,
        args: &[Value<'_>],
    ) -> Result<Option<Value<'static>>, String> {
        let arg = |i: usize| args.get(i).unwrap_or(&Value::Nil);
        Ok(match self {
            // nil is set too (the collector's `ottl.set.allowNil`, on since v0.158.0): an
            // attribute becomes an empty value, and typed fields ignore it.
            Editor::Set => Some(arg(0).clone().into_owned()),
            Editor::DeleteKey => {
                let map = as_map(target, "delete_key")?;
                let key = as_string(arg(0), "delete_key's key")?;
                // As pdata's `Map.Remove`: the last entry takes the removed one's place,
                // which decides what a later `limit` keeps.
                let Some(at) = map.iter().position(|(k, _)| k == key) else {
                    return Ok(None);
                };
                let mut out = map.clone();
                let last = out.pop();
                if let Some(last) = last.filter(|_| at < out.len()) {
                    out[at] = last;
                }
                Some(Value::Map(Rc::new(out)))
            }
            Editor::DeleteMatchingKeys(regex) => {
                let map = as_map(target, "delete_matching_keys")?;
                let kept = map.iter().filter(|(k, _)| !regex.is_match(k));
                changed(map, kept.cloned().collect())
            }
            Editor::KeepKeys => {
                let map = as_map(target, "keep_keys")?;
                let Value::List(keys) = arg(0) else {
                    return Err("keep_keys: keys must be a list".into());
                };
                let keys: Vec<&str> = keys
                    .iter()
                    .map(|k| as_string(k, "keep_keys' key"))
                    .collect::<Result<_, _>>()?;
                let kept = map.iter().filter(|(k, _)| keys.contains(&k.as_str()));
                changed(map, kept.cloned().collect())
            }
            Editor::KeepMatchingKeys(regex) => {
                let map = as_map(target, "keep_matching_keys")?;
                let kept = map.iter().filter(|(k, _)| regex.is_match(k));
                changed(map, kept.cloned().collect())
            }
            Editor::ReplacePattern(regex) => {
                if matches!(target, Value::Nil) {
                    return Ok(None);
                }
                let replacement = as_string(arg(0), "replace_pattern's replacement")?;
                match target {
                    Value::Str(s) if regex.is_match(s) => Some(Value::Str(
                        regex.replace_all(s, replacement).into_owned().into(),
                    )),
                    _ => None,
                }
            }
            Editor::ReplaceAllPatterns { keys, regex } => {
                let map = as_map(target, "replace_all_patterns")?;
                let replacement = as_string(arg(0), "replace_all_patterns' replacement")?;
                let mut out: Map = Vec::with_capacity(map.len());
                for (k, v) in map.iter() {
                    match v {
                        Value::Str(s) if !keys && regex.is_match(s) => out.push((
                            k.clone(),
                            Value::Str(regex.replace_all(s, replacement).into_owned().into()),
                        )),
                        _ if *keys && regex.is_match(k) => {
                            put(&mut out, &regex.replace_all(k, replacement), v.clone())
                        }
                        _ if *keys => put(&mut out, k, v.clone()),
                        _ => out.push((k.clone(), v.clone())),
                    }
                }
                changed(map, out)
            }
            Editor::ReplaceMatch(glob) => {
                if matches!(target, Value::Nil) {
                    return Ok(None);
                }
                let replacement = as_string(arg(0), "replace_match's replacement")?;
                match target {
                    Value::Str(s) if glob.is_match(s) => {
                        Some(Value::Str(replacement.to_string().into()))
                    }
                    _ => None,
                }
            }
            Editor::ReplaceAllMatches(glob) => {
                let map = as_map(target, "replace_all_matches")?;
                let replacement = as_string(arg(0), "replace_all_matches' replacement")?;
                let out = map.iter().map(|(k, v)| match v {
                    Value::Str(s) if glob.is_match(s) => {
                        (k.clone(), Value::Str(replacement.to_string().into()))
                    }
                    _ => (k.clone(), v.clone()),
                });
                changed(map, out.collect())
            }
            Editor::TruncateAll {
                limit,
                utf8_safe,
                marker,
            } => {
                let map = as_map(target, "truncate_all")?;
                let out = map.iter().map(|(k, v)| match v {
                    Value::Str(s) => match truncate(s, *limit, *utf8_safe, marker) {
                        Some(t) => (k.clone(), Value::Str(t.into())),
                        None => (k.clone(), v.clone()),
                    },
                    _ => (k.clone(), v.clone()),
                });
                changed(map, out.collect())
            }
            Editor::Limit { limit, priority } => {
                let map = as_map(target, "limit")?;
                if map.len() <= *limit {
                    return Ok(None);
                }
                let mut count = priority.iter().filter(|k| get(map, k).is_some()).count();
                let mut out = Vec::new();
                for (k, v) in map.iter() {
                    if priority.contains(k) {
                        out.push((k.clone(), v.clone()));
                    } else if count < *limit {
                        count += 1;
                        out.push((k.clone(), v.clone()));
                    }
                }
                changed(map, out)
            }
            Editor::MergeMaps(strategy) => {
                let map = as_map(target, "merge_maps")?;
                let source = as_map(arg(0), "merge_maps' source")?;
                let mut out = map.clone();
                for (k, v) in source.iter() {
                    let present = get(&out, k).is_some();
                    let write = match strategy {
                        Strategy::Insert => !present,
                        Strategy::Update => present,
                        Strategy::Upsert => true,
                    };
                    if write {
                        put(&mut out, k, v.clone());
                    }
                }
                changed(map, out)
            }
            Editor::Flatten {
                prefix,
                depth,
                resolve_conflicts,
            } => {
                let map = as_map(target, "flatten")?;
                let mut flat = Flat {
                    out: Vec::new(),
                    seen: Vec::new(),
                    resolve: *resolve_conflicts,
                    depth: *depth,
                };
                flat.map(map, prefix, 0);
                changed(map, flat.out)
            }
        })
    }
}

/// `flatten`'s walk, as the collector's: maps and lists below `depth` are opened, their
/// keys joined with dots; a list's items get their index as key.
struct Flat {
    out: Map,
    /// How many times a key was taken, for `resolve_conflicts`.
    seen: Vec<(String, usize)>,
    resolve: bool,
    depth: i64,
}

impl Flat {
    fn map(&mut self, map: &Map, prefix: &str, depth: i64) {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}.")
        };
        for (k, v) in map {
            self.value(k, v, depth, &prefix);
        }
    }

    fn list(&mut self, list: &[Value<'static>], prefix: &str, depth: i64) {
        for (i, v) in list.iter().enumerate() {
            self.value(&i.to_string(), v, depth + 1, &format!("{prefix}."));
        }
    }

    fn value(&mut self, k: &str, v: &Value<'static>, depth: i64, prefix: &str) {
        match v {
            Value::Map(m) if depth < self.depth => self.map(m, &format!("{prefix}{k}"), depth + 1),
            Value::List(items) if depth < self.depth => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{prefix}{k}.{i}");
                    match item {
                        Value::Map(m) if depth + 1 < self.depth => self.map(m, &at, depth + 2),
                        Value::List(l) if depth + 1 < self.depth => self.list(l, &at, depth + 2),
                        _ if self.resolve => self.put(format!("{prefix}{k}"), item.clone()),
                        _ => put(&mut self.out, &at, item.clone()),
                    }
                }
            }
            _ if self.resolve => self.put(format!("{prefix}{k}"), v.clone()),
            _ => put(&mut self.out, &format!("{prefix}{k}"), v.clone()),
        }
    }

    fn put(&mut self, key: String, v: Value<'static>) {
        if get(&self.out, &key).is_some() {
            let n = match self.seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => {
                    *n += 1;
                    *n - 1
                }
                None => {
                    self.seen.push((key.clone(), 1));
                    0
                }
            };
            put(&mut self.out, &format!("{key}.{n}"), v);
        } else {
            self.seen.retain(|(k, _)| *k != key);
            self.seen.push((key.clone(), 0));
            put(&mut self.out, &key, v);
        }
    }
}

/// A glob (as the collector's `replace_match` reads it: `*`, `?`, `[…]`, `{a,b}`) as an
/// anchored regex.
pub fn glob(pattern: &str) -> Result<Regex, String> {
    let mut re = String::from("^(?s:");
    let mut chars = pattern.chars().peekable();
    let mut braces = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
            }
            '{' => {
                braces += 1;
                re.push_str("(?:");
            }
            '}' if braces > 0 => {
                braces -= 1;
                re.push(')');
            }
            ',' if braces > 0 => re.push('|'),
            '\\' => {
                if let Some(next) = chars.next() {
                    re.push_str(&regex::escape(&next.to_string()));
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str(")$");
    Regex::new(&re).map_err(|e| format!("invalid glob {pattern:?}: {e}"))
}

/// A value as the collector's debug output writes it, for error messages.
pub fn describe(v: &Value<'_>) -> String {
    match v {
        Value::Map(_) | Value::List(_) => json(v),
        other => format!("{other:?}"),
    }
}

/// A map's value at `key`.
pub fn get_value<'m>(map: &'m Map, key: &str) -> Option<&'m Value<'static>> {
    get(map, key)
}

/// `value` with `keys` set to `new`, as OTTL's setters do: missing maps on the way are
/// created (a missing list is created long enough for its index), anything else in the way
/// is an error.
pub fn set_in(
    value: Value<'static>,
    keys: &[crate::Key],
    new: Value<'static>,
) -> Result<Value<'static>, String> {
    use crate::Key;
    let Some((key, rest)) = keys.split_first() else {
        return Ok(new);
    };
    match (value, key) {
        (Value::Map(map), Key::Str(k)) => {
            let mut map = Rc::unwrap_or_clone(map);
            let inner = get(&map, k).cloned().unwrap_or(Value::Nil);
            put(&mut map, k, set_in(inner, rest, new)?);
            Ok(Value::Map(Rc::new(map)))
        }
        (Value::Nil, Key::Str(k)) => Ok(Value::Map(Rc::new(vec![(
            k.clone(),
            set_in(Value::Nil, rest, new)?,
        )]))),
        (Value::List(list), Key::Int(i)) => {
            let mut list = Rc::unwrap_or_clone(list);
            let slot = usize::try_from(*i)
                .ok()
                .filter(|i| *i < list.len())
                .ok_or_else(|| format!("index {i} out of bounds"))?;
            list[slot] = set_in(std::mem::replace(&mut list[slot], Value::Nil), rest, new)?;
            Ok(Value::List(Rc::new(list)))
        }
        (Value::Nil, Key::Int(i)) => {
            let len = usize::try_from(*i).map_err(|_| format!("index {i} out of bounds"))?;
            let mut list = vec![Value::Nil; len];
            list.push(set_in(Value::Nil, rest, new)?);
            Ok(Value::List(Rc::new(list)))
        }
        (other, key) => Err(format!(
            "{} does not support indexing ({key})",
            other.kind()
        )),
    }
}
