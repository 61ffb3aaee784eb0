//! The actions, run in order over one item's attributes as the collector's `AttrProc.Process`
//! runs them over a `pcommon.Map`, quirks included: `hash` hashes a key that its pattern also
//! matches twice, `extract` writes an empty string for a named group that did not take part.

use crate::value::borrow;
use regex::Regex;
use sha2::{Digest, Sha256};
use trailhead_plugin::AnyValue;

/// Where `insert`, `update` and `upsert` take their value: `value`, else the context, else
/// `from_attribute`, else `default_value` (the collector's order).
#[derive(Debug, Clone)]
pub struct Source {
    pub value: Option<AnyValue>,
    pub from_attribute: Option<String>,
    /// `from_context: client.address`.
    pub from_context: bool,
    pub default: Option<AnyValue>,
}

/// `convert`'s target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    Int,
    Double,
    String,
}

/// One checked action.
#[derive(Debug, Clone)]
pub enum Action {
    Insert {
        key: String,
        source: Source,
    },
    Update {
        key: String,
        source: Source,
    },
    Upsert {
        key: String,
        source: Source,
    },
    Delete {
        key: String,
        pattern: Option<Regex>,
    },
    Hash {
        key: String,
        pattern: Option<Regex>,
    },
    Extract {
        key: String,
        pattern: Regex,
        names: Vec<String>,
    },
    Convert {
        key: String,
        to: Conversion,
    },
}

impl Action {
    /// Whether the action reads keys it does not name (a `pattern` over keys), so the whole
    /// map must be read.
    pub fn needs_every_key(&self) -> bool {
        matches!(
            self,
            Action::Delete {
                pattern: Some(_),
                ..
            } | Action::Hash {
                pattern: Some(_),
                ..
            }
        )
    }

    /// The keys the action reads or writes.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Action::Insert { key, source }
            | Action::Update { key, source }
            | Action::Upsert { key, source } => {
                let mut keys = vec![key.as_str()];
                keys.extend(source.from_attribute.as_deref());
                keys
            }
            Action::Delete { key, .. } | Action::Hash { key, .. } | Action::Convert { key, .. } => {
                vec![key]
            }
            Action::Extract { key, names, .. } => {
                let mut keys = vec![key.as_str()];
                keys.extend(names.iter().map(String::as_str));
                keys
            }
        }
    }
}

/// One item's attributes, in order, as pdata keeps them: a lookup finds the first entry with
/// the key, a new key goes at the end, a removal by key moves the last entry into its place.
#[derive(Debug, Clone, Default)]
pub struct AttrMap {
    pub entries: Vec<(String, AnyValue)>,
}

impl AttrMap {
    fn find(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    pub fn get(&self, key: &str) -> Option<&AnyValue> {
        self.find(key).map(|i| &self.entries[i].1)
    }

    /// Sets `key`, in place if present, else at the end.
    pub fn put(&mut self, key: &str, value: AnyValue) {
        match self.find(key) {
            Some(i) => self.entries[i].1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(i) = self.find(key) {
            self.entries.swap_remove(i);
        }
    }
}

/// Runs `actions` in order over `attrs`. `client_address` gives the sender's IP for
/// `from_context: client.address`, asked for only when an action needs it.
pub fn process(
    actions: &[Action],
    attrs: &mut AttrMap,
    client_address: &mut dyn FnMut() -> String,
) {
    for action in actions {
        match action {
            Action::Delete { key, pattern } => {
                attrs.remove(key);
                if let Some(re) = pattern {
                    attrs.entries.retain(|(k, _)| !re.is_match(k));
                }
            }
            Action::Insert { key, source } => {
                let Some(value) = resolve(source, attrs, client_address) else {
                    continue;
                };
                if attrs.get(key).is_none() {
                    attrs.put(key, value);
                }
            }
            Action::Update { key, source } => {
                let Some(value) = resolve(source, attrs, client_address) else {
                    continue;
                };
                if let Some(i) = attrs.find(key) {
                    attrs.entries[i].1 = value;
                }
            }
            Action::Upsert { key, source } => {
                if let Some(value) = resolve(source, attrs, client_address) {
                    attrs.put(key, value);
                }
            }
            Action::Hash { key, pattern } => {
                if let Some(i) = attrs.find(key) {
                    hash(&mut attrs.entries[i].1);
                }
                if let Some(re) = pattern {
                    for (k, v) in attrs.entries.iter_mut() {
                        if re.is_match(k) {
                            hash(v);
                        }
                    }
                }
            }
            Action::Extract {
                key,
                pattern,
                names,
            } => {
                let Some(AnyValue::Str(text)) = attrs.get(key) else {
                    continue;
                };
                let Some(captures) = pattern.captures(text) else {
                    continue;
                };
                let found: Vec<String> = (1..=names.len())
                    .map(|g| captures.get(g).map_or("", |m| m.as_str()).to_string())
                    .collect();
                for (name, text) in names.iter().zip(found) {
                    attrs.put(name, AnyValue::Str(text));
                }
            }
            Action::Convert { key, to } => {
                if let Some(i) = attrs.find(key) {
                    convert(&mut attrs.entries[i].1, *to);
                }
            }
        }
    }
}

fn resolve(
    source: &Source,
    attrs: &AttrMap,
    client_address: &mut dyn FnMut() -> String,
) -> Option<AnyValue> {
    if let Some(v) = &source.value {
        return Some(v.clone());
    }
    // The collector always finds `client.address` (an empty string without a peer).
    if source.from_context {
        return Some(AnyValue::Str(client_address()));
    }
    if let Some(from) = &source.from_attribute
        && let Some(v) = attrs.get(from)
    {
        return Some(v.clone());
    }
    source.default.clone()
}

/// SHA-256 of the value, in lowercase hex: of a string's bytes, a bool as one byte, an int or
/// a double as its 8 little-endian bytes. Bytes, arrays and maps become an empty string.
pub fn hash(value: &mut AnyValue) {
    let digest = match value {
        AnyValue::Str(s) => Sha256::digest(s.as_bytes()),
        AnyValue::Boolean(b) => Sha256::digest([u8::from(*b)]),
        AnyValue::Int(i) => Sha256::digest(i.to_le_bytes()),
        AnyValue::Double(d) => Sha256::digest(d.to_bits().to_le_bytes()),
        _ => {
            *value = AnyValue::Str(String::new());
            return;
        }
    };
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from_digit(u32::from(byte >> 4), 16).unwrap());
        hex.push(char::from_digit(u32::from(byte & 15), 16).unwrap());
    }
    *value = AnyValue::Str(hex);
}

/// `convert`: the collector's conversions; a value that cannot convert stays as it is.
pub fn convert(value: &mut AnyValue, to: Conversion) {
    let converted = match (to, &*value) {
        (Conversion::String, AnyValue::Str(_)) => return,
        (Conversion::String, v) => AnyValue::Str(crate::value::as_string(&borrow(v))),
        (Conversion::Int, AnyValue::Double(d)) => AnyValue::Int(go_int(*d)),
        (Conversion::Int, AnyValue::Boolean(b)) => AnyValue::Int(i64::from(*b)),
        (Conversion::Int, AnyValue::Str(s)) => match go_parse_int(s) {
            Some(i) => AnyValue::Int(i),
            None => return,
        },
        (Conversion::Double, AnyValue::Int(i)) => AnyValue::Double(*i as f64),
        (Conversion::Double, AnyValue::Boolean(b)) => AnyValue::Double(f64::from(u8::from(*b))),
        (Conversion::Double, AnyValue::Str(s)) => match go_parse_float(s) {
            Some(d) => AnyValue::Double(d),
            None => return,
        },
        _ => return,
    };
    *value = converted;
}

/// Go's `int64(f)` on amd64 (where the collector runs): truncation toward zero, and the
/// "integer indefinite" value (i64::MIN) for NaN and for what does not fit.
fn go_int(d: f64) -> i64 {
    // 2^63: i64's range is [-2^63, 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if (-LIMIT..LIMIT).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// `strconv.ParseInt(s, 10, 64)`: an optional sign, then decimal digits only.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `strconv.ParseFloat(s, 64)` for decimal input: Rust's parser reads the same decimal forms
/// and the same spellings of infinity and NaN, but Go refuses what overflows (an error, so the
/// value stays) where Rust gives an infinity. Hex floats and `_` separators (Go-only) are not
/// read, and such a value stays a string.
fn go_parse_float(s: &str) -> Option<f64> {
    let d: f64 = s.parse().ok()?;
    if d.is_infinite() {
        let word = s.trim_start_matches(['+', '-']).to_ascii_lowercase();
        if word != "inf" && word != "infinity" {
            return None;
        }
    }
    Some(d)
}

/// Whether a value is exactly as it was (for deciding what to write back): same type, same
/// bits, same encoding.
pub fn unchanged(a: &AnyValue, b: &AnyValue) -> bool {
    match (a, b) {
        (AnyValue::Str(x), AnyValue::Str(y)) => x == y,
        (AnyValue::Boolean(x), AnyValue::Boolean(y)) => x == y,
        (AnyValue::Int(x), AnyValue::Int(y)) => x == y,
        (AnyValue::Double(x), AnyValue::Double(y)) => x.to_bits() == y.to_bits(),
        (AnyValue::Bytes(x), AnyValue::Bytes(y))
        | (AnyValue::Array(x), AnyValue::Array(y))
        | (AnyValue::Kvlist(x), AnyValue::Kvlist(y)) => x == y,
        _ => false,
    }
}
