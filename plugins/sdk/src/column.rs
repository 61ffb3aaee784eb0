//! Reading the packed columns. A column crosses the boundary as one buffer and its offsets
//! (one copy, no allocation per entry); these helpers hand out borrowed views into it.

use crate::{AnyValue, StringColumn, ValueColumn, ValueKind};

/// Where entry `i` of a packed column lies in its buffer.
fn range(ends: &[u32], i: usize) -> std::ops::Range<usize> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    start..ends[i] as usize
}

impl StringColumn {
    /// A column holding these strings, in order.
    pub fn from_strs<'a>(strings: impl IntoIterator<Item = &'a str>) -> Self {
        let mut column = StringColumn {
            bytes: Vec::new(),
            ends: Vec::new(),
        };
        for s in strings {
            column.bytes.extend_from_slice(s.as_bytes());
            column.ends.push(column.bytes.len() as u32);
        }
        column
    }

    /// How many entries the column has.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the column has no entries.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Entry `i` (empty when absent, or when it is not UTF-8). Panics when `i` is out of range.
    pub fn get(&self, i: usize) -> &str {
        std::str::from_utf8(&self.bytes[range(&self.ends, i)]).unwrap_or("")
    }

    /// Every entry, in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// One entry of a [`ValueColumn`], borrowed from it. Arrays and maps are their protobuf
/// encodings (`ArrayValue`, `KeyValueList`), as in [`AnyValue`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A string.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// An `ArrayValue`, protobuf-encoded.
    Array(&'a [u8]),
    /// A `KeyValueList`, protobuf-encoded.
    Kvlist(&'a [u8]),
}

impl Value<'_> {
    /// The value as an owned [`AnyValue`], to write it elsewhere.
    pub fn to_any_value(&self) -> AnyValue {
        match *self {
            Value::Str(s) => AnyValue::Str(s.into()),
            Value::Bool(b) => AnyValue::Boolean(b),
            Value::Int(i) => AnyValue::Int(i),
            Value::Double(d) => AnyValue::Double(d),
            Value::Bytes(b) => AnyValue::Bytes(b.into()),
            Value::Array(b) => AnyValue::Array(b.into()),
            Value::Kvlist(b) => AnyValue::Kvlist(b.into()),
        }
    }
}

impl ValueColumn {
    /// How many entries the column has.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether the column has no entries.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// Entry `i`, `None` where the entry has no value (the attribute is absent). Panics when
    /// `i` is out of range.
    pub fn get(&self, i: usize) -> Option<Value<'_>> {
        let bytes = || &self.bytes[range(&self.ends, i)];
        let scalar = self.scalars[i];
        Some(match self.kinds[i] {
            ValueKind::None => return None,
            ValueKind::Str => Value::Str(std::str::from_utf8(bytes()).unwrap_or("")),
            ValueKind::Boolean => Value::Bool(scalar != 0),
            ValueKind::Int => Value::Int(scalar),
            ValueKind::Double => Value::Double(f64::from_bits(scalar as u64)),
            ValueKind::Bytes => Value::Bytes(bytes()),
            ValueKind::Array => Value::Array(bytes()),
            ValueKind::Kvlist => Value::Kvlist(bytes()),
        })
    }

    /// Whether entry `i` has a value.
    pub fn has(&self, i: usize) -> bool {
        self.kinds[i] != ValueKind::None
    }

    /// Entry `i` if it is a string.
    pub fn str(&self, i: usize) -> Option<&str> {
        match self.get(i)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Entry `i` if it is an integer.
    pub fn int(&self, i: usize) -> Option<i64> {
        match self.get(i)? {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    /// Entry `i` if it is a number: a double, or an integer converted.
    pub fn double(&self, i: usize) -> Option<f64> {
        match self.get(i)? {
            Value::Double(v) => Some(v),
            Value::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    /// Entry `i` if it is a boolean.
    pub fn bool(&self, i: usize) -> Option<bool> {
        match self.get(i)? {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Every entry, in index order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<Value<'_>>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The indexes of the entries for which `keep` holds, ready for a write or a `remove`:
/// `indexes_where(column.iter(), |v| v.is_none())`.
pub fn indexes_where<T>(
    entries: impl IntoIterator<Item = T>,
    mut keep: impl FnMut(T) -> bool,
) -> Vec<u32> {
    entries
        .into_iter()
        .enumerate()
        .filter_map(|(i, entry)| keep(entry).then_some(i as u32))
        .collect()
}
