//! The columns one level's conditions read, fetched once per batch, and the OTTL values they
//! hand out: borrowed from the packed buffers the host sent, never copied per entry.
//!
//! Every field is fetched before any condition runs (the evaluator reads every path of a
//! condition anyway), so the table is complete and the values can borrow from it for as
//! long as the conditions run.

use crate::config::Condition;
use crate::paths::Field;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;
use std::rc::Rc;
use trailhead_ottl::{Columns, Path, Value, pb};
use trailhead_plugin::{Batch, Level, StringColumn, ValueColumn, ValueKind};

/// A column as the host sent it.
pub enum Raw {
    Strings(StringColumn),
    Values(ValueColumn),
    Ints(Vec<i64>),
    /// Packed IDs of `width` bytes; `hex` reads them as OTTL's `trace_id.string` does.
    Ids {
        packed: Vec<u8>,
        width: usize,
        hex: bool,
    },
    /// Values made or decoded by the plugin (whole maps, times, per-type point values).
    Owned(Vec<Value<'static>>),
    /// A field this level does not have.
    Nil,
}

impl Raw {
    /// Times as OTTL reads them: int64 nanoseconds.
    pub fn times(times: Vec<u64>) -> Raw {
        Raw::Ints(times.into_iter().map(|t| t as i64).collect())
    }

    pub fn ids(packed: Vec<u8>, width: usize, hex: bool) -> Raw {
        Raw::Ids { packed, width, hex }
    }

    /// Entry `i` (nil past the end, as for a field an entry lacks).
    fn get(&self, i: usize) -> Value<'_> {
        match self {
            Raw::Strings(c) if i < c.ends.len() => Value::Str(text(&c.bytes, &c.ends, i)),
            Raw::Values(c) if i < c.kinds.len() => value(c, i),
            Raw::Ints(v) => v.get(i).map_or(Value::Nil, |n| Value::Int(*n)),
            Raw::Ids { packed, width, hex } => match packed.get(i * width..(i + 1) * width) {
                Some(id) if *hex => Value::Str(hex_id(id).into()),
                Some(id) => Value::Bytes(Cow::Borrowed(id)),
                None => Value::Nil,
            },
            Raw::Owned(v) => v.get(i).map_or(Value::Nil, Value::borrowed),
            _ => Value::Nil,
        }
    }
}

/// Entry `i` of a packed buffer as text, borrowed unless it is not UTF-8.
fn text<'a>(bytes: &'a [u8], ends: &[u32], i: usize) -> Cow<'a, str> {
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    String::from_utf8_lossy(&bytes[start..ends[i] as usize])
}

/// Entry `i` of a value column, kept past the column.
pub fn owned_value(c: &ValueColumn, i: usize) -> Value<'static> {
    value(c, i).into_owned()
}

fn value(c: &ValueColumn, i: usize) -> Value<'_> {
    let start = if i == 0 { 0 } else { c.ends[i - 1] as usize };
    let bytes = &c.bytes[start..c.ends[i] as usize];
    let scalar = c.scalars[i];
    match c.kinds[i] {
        ValueKind::None => Value::Nil,
        ValueKind::Str => Value::Str(text(&c.bytes, &c.ends, i)),
        ValueKind::Boolean => Value::Bool(scalar != 0),
        ValueKind::Int => Value::Int(scalar),
        ValueKind::Double => Value::Double(f64::from_bits(scalar as u64)),
        ValueKind::Bytes => Value::Bytes(Cow::Borrowed(bytes)),
        // Decoded only here, for the entries that hold one: nested keys, `Len` and
        // `IsMatch` (as JSON) read into them; strings and numbers stay borrowed.
        ValueKind::Array => {
            pb::decode_list(bytes).map_or(Value::Composite("an array"), |l| Value::List(Rc::new(l)))
        }
        ValueKind::Kvlist => {
            pb::decode_map(bytes).map_or(Value::Composite("a map"), |m| Value::Map(Rc::new(m)))
        }
    }
}

/// An ID as lowercase hex, all zeros included, as the collector's `trace_id.string` writes it.
fn hex_id(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// One field's values for the level being filtered: a column of that level, or of one above
/// read through `rows` (entry `i` reads the column's entry `rows[i]`).
struct Column {
    raw: Raw,
    rows: Option<Rc<[u32]>>,
}

/// Every field a level's conditions read.
pub struct Table {
    len: usize,
    columns: HashMap<Field, Column>,
}

impl Table {
    /// Fetches what `conditions` read, for every entry of `level`. `own(field, at)` fetches a
    /// field of the entries of level `at` itself (`at` is `level`, or `item` for a parent's).
    pub fn fetch<B: Batch>(
        batch: &B,
        level: Level,
        conditions: &[Condition],
        own: impl Fn(&Field, Level) -> Raw,
    ) -> Table {
        let shape = Shape {
            batch,
            level,
            items: OnceCell::new(),
            scopes: OnceCell::new(),
        };
        let mut columns = HashMap::new();
        for field in conditions.iter().flat_map(|c| c.fields.values()) {
            if columns.contains_key(field) {
                continue;
            }
            let column = match field {
                Field::Parent(f) => Column {
                    raw: own(f, Level::Item),
                    rows: Some(shape.items()),
                },
                Field::Scope(f) => Column {
                    raw: crate::read::common(batch, f, Level::Scope).unwrap_or(Raw::Nil),
                    rows: Some(shape.scopes()),
                },
                Field::Resource(f) => Column {
                    raw: crate::read::common(batch, f, Level::Resource).unwrap_or(Raw::Nil),
                    rows: Some(shape.resources()),
                },
                _ => Column {
                    raw: own(field, level),
                    rows: None,
                },
            };
            columns.insert(field.clone(), column);
        }
        Table {
            len: batch.count(level) as usize,
            columns,
        }
    }

    /// How many entries the level has.
    pub fn len(&self) -> usize {
        self.len
    }
}

/// Which entry of each level above holds each entry of the level being filtered, asked of
/// the host only when a field needs it.
struct Shape<'b, B> {
    batch: &'b B,
    level: Level,
    items: OnceCell<Rc<[u32]>>,
    scopes: OnceCell<Rc<[u32]>>,
}

impl<B: Batch> Shape<'_, B> {
    /// The item (span, metric) of each event or point.
    fn items(&self) -> Rc<[u32]> {
        self.items
            .get_or_init(|| self.batch.parents(self.level).into())
            .clone()
    }

    fn scopes(&self) -> Rc<[u32]> {
        let scopes = || match self.level {
            Level::Item => self.batch.parents(Level::Item).into(),
            _ => up(&self.items(), &self.batch.parents(Level::Item)),
        };
        self.scopes.get_or_init(scopes).clone()
    }

    fn resources(&self) -> Rc<[u32]> {
        up(&self.scopes(), &self.batch.parents(Level::Scope))
    }
}

/// Follows `rows` one level up through that level's `parents`.
fn up(rows: &[u32], parents: &[u32]) -> Rc<[u32]> {
    rows.iter().map(|&r| parents[r as usize]).collect()
}

/// A condition's paths, answered from a table.
pub struct Lookup<'a> {
    table: &'a Table,
    fields: &'a HashMap<Path, Field>,
}

impl<'a> Lookup<'a> {
    pub fn new(table: &'a Table, fields: &'a HashMap<Path, Field>) -> Self {
        Lookup { table, fields }
    }
}

impl<'a> Columns<'a> for Lookup<'a> {
    fn item_count(&self) -> usize {
        self.table.len
    }

    fn column(&mut self, path: &Path) -> Rc<[Value<'a>]> {
        // Copied out of `self`, so the values borrow from the table, not from this call.
        let (table, fields): (&'a Table, &'a HashMap<Path, Field>) = (self.table, self.fields);
        let len = table.len;
        let Some(column) = fields.get(path).and_then(|f| table.columns.get(f)) else {
            return vec![Value::Nil; len].into();
        };
        match &column.rows {
            Some(rows) => rows.iter().map(|&r| column.raw.get(r as usize)).collect(),
            None => (0..len).map(|i| column.raw.get(i)).collect(),
        }
    }
}
