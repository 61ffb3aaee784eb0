//! OTTL (the OpenTelemetry Transformation Language) for trailhead's plugins: one parser and
//! one evaluator, shared by `filter` (conditions) and `transform` (statements).
//!
//! The one idea: text is parsed once, at config time, into an [`Expr`] (a condition) or a
//! [`Statement`] (`editor(args) where condition`), and every unsupported function, path shape
//! or argument is refused there with its column. It is then evaluated a *column* at a time:
//! every path is fetched once for the whole batch through [`Columns`], so a plugin makes one
//! host call per path rather than one per item, and a condition made only of paths, literals
//! and `IsMatch` never allocates per item.
//!
//! Grammar: `or` / `and` / `not`, parentheses, the comparisons `== != < <= > >=`, math
//! (`+ - * /`, unary minus), string, int, float, bool, bytes (`0x0af7`), `nil`, list (`[…]`)
//! and map (`{"k": …}`) literals, enum constants (`SPAN_KIND_SERVER`, `STATUS_CODE_ERROR`,
//! `SEVERITY_NUMBER_WARN`, `METRIC_DATA_TYPE_SUM`, …), paths such as `name` or
//! `resource.attributes["k8s.pod.name"]["nested"]`, the converters of [`Func`] (keys may
//! follow a converter: `Split(name, "/")[1]`), and in a statement the editors of [`Editor`],
//! with positional or named (`limit = 10`) arguments.
//! Which paths exist depends on the context; the caller checks them with [`Expr::paths`] and
//! [`Statement::paths`].

pub mod edit;
mod eval;
mod func;
mod parse;
pub mod pb;

pub use edit::{Editor, Statement};
pub use eval::{Columns, EvalError, Outcome, compare, eval_operand};
pub use func::{Func, base64, double, index, json};
pub use parse::{ItemConverter, ParseError, parse, parse_reading, parse_statement};
use std::borrow::Cow;
use std::rc::Rc;

impl Value<'_> {
    /// A view of the value that borrows its string or bytes instead of cloning them.
    pub fn borrowed(&self) -> Value<'_> {
        match self {
            Value::Str(s) => Value::Str(Cow::Borrowed(s)),
            Value::Bytes(b) => Value::Bytes(Cow::Borrowed(b)),
            Value::Nil => Value::Nil,
            Value::Int(i) => Value::Int(*i),
            Value::Double(d) => Value::Double(*d),
            Value::Bool(b) => Value::Bool(*b),
            Value::Composite(kind) => Value::Composite(kind),
            Value::Map(m) => Value::Map(m.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Time(t) => Value::Time(*t),
            Value::Duration(d) => Value::Duration(*d),
        }
    }

    /// The value with nothing borrowed, to keep past the batch it came from.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Str(s) => Value::Str(Cow::Owned(s.into_owned())),
            Value::Bytes(b) => Value::Bytes(Cow::Owned(b.into_owned())),
            Value::Nil => Value::Nil,
            Value::Int(i) => Value::Int(i),
            Value::Double(d) => Value::Double(d),
            Value::Bool(b) => Value::Bool(b),
            Value::Composite(kind) => Value::Composite(kind),
            Value::Map(m) => Value::Map(m),
            Value::List(l) => Value::List(l),
            Value::Time(t) => Value::Time(t),
            Value::Duration(d) => Value::Duration(d),
        }
    }

    /// What the value is, as error messages say it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Str(_) => "a string",
            Value::Int(_) => "an int",
            Value::Double(_) => "a double",
            Value::Bool(_) => "a bool",
            Value::Bytes(_) => "bytes",
            Value::Composite(kind) => kind,
            Value::Map(_) => "a map",
            Value::List(_) => "a list",
            Value::Time(_) => "a time",
            Value::Duration(_) => "a duration",
        }
    }
}

/// A map as OTTL (and pdata) keeps it: keys in insertion order, each once.
pub type Map = Vec<(String, Value<'static>)>;

/// A value as OTTL compares it. Strings and bytes borrow from wherever the batch's columns
/// live (`'a`), so evaluating a condition copies no string; a literal owns its own.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Nil,
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(Cow<'a, [u8]>),
    /// An array or a map that was not decoded (the filter never needs its content):
    /// comparable to nothing, and not a string for `IsMatch`.
    Composite(&'static str),
    /// A decoded map (`KeyValueList`).
    Map(Rc<Map>),
    /// A decoded list (`ArrayValue`).
    List(Rc<Vec<Value<'static>>>),
    /// A point in time, nanoseconds since the Unix epoch (`Now()`, `span.start_time`).
    Time(i64),
    /// A duration in nanoseconds (`Duration("3s")`, time minus time).
    Duration(i64),
}

/// One `[…]` after a path or a converter: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Str(String),
    Int(i64),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Str(k) => write!(f, "[{k:?}]"),
            Key::Int(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as written: `resource.attributes["k"]["n"]` is segments `[resource, attributes]`,
/// key `k` and the nested keys `["n"]`. A call of an [`ItemConverter`] is a path too (its
/// name the one segment, its arguments `args`): it reads the item, so the plugin answers it
/// as a column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub segments: Vec<String>,
    /// The first key, the one a column is fetched by.
    pub key: Option<String>,
    /// Keys after the first, read out of the (map or list) value of the first.
    pub nested: Vec<Key>,
    /// 1-based column of the path in the text.
    pub column: usize,
    /// The string arguments of an item converter's call; `None` for a path.
    pub args: Option<Vec<String>>,
}

impl Path {
    /// The segments joined with dots, without the keys: `resource.attributes`.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }

    /// The path without its nested keys: the column a plugin fetches.
    pub fn head(&self) -> Path {
        Path {
            nested: Vec::new(),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dotted())?;
        if let Some(args) = &self.args {
            let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
            write!(f, "({})", args.join(", "))?;
        }
        if let Some(key) = &self.key {
            write!(f, "[{key:?}]")?;
        }
        self.nested.iter().try_for_each(|k| write!(f, "{k}"))
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A math operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Something that yields a value per item.
#[derive(Debug, Clone)]
pub enum Operand {
    Literal(Value<'static>),
    Path(Path),
    /// `IsMatch(target, "regex")` with a literal pattern: a bool. Kept apart from [`Call`]
    /// because it is the filter's hot path.
    IsMatch(Box<Operand>, regex::Regex),
    /// A converter call, with its keys (`Split(x, ",")[0]`).
    Call(Box<Call>),
    Math(Box<Operand>, MathOp, Box<Operand>),
    Neg(Box<Operand>),
    List(Vec<Operand>),
    Map(Vec<(String, Operand)>),
}

/// A converter call: its function, its arguments in declaration order (optional ones left
/// out are `None`), and keys to read out of its result.
#[derive(Debug, Clone)]
pub struct Call {
    pub func: Func,
    pub args: Vec<Option<Operand>>,
    pub keys: Vec<Key>,
    pub column: usize,
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
    /// A bare boolean: `IsMatch(…)`, `true`, a converter or a bool-valued path.
    Truth(Operand),
}

impl Operand {
    /// Every path the operand reads.
    pub fn paths<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Operand::Path(p) => out.push(p),
            Operand::IsMatch(target, _) | Operand::Neg(target) => target.paths(out),
            Operand::Call(call) => call.args.iter().flatten().for_each(|a| a.paths(out)),
            Operand::Math(a, _, b) => {
                a.paths(out);
                b.paths(out);
            }
            Operand::List(items) => items.iter().for_each(|a| a.paths(out)),
            Operand::Map(items) => items.iter().for_each(|(_, a)| a.paths(out)),
            Operand::Literal(_) => {}
        }
    }
}

impl Operand {
    /// Every path the operand reads, to be rewritten in place.
    pub fn paths_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Path>) {
        match self {
            Operand::Path(p) => out.push(p),
            Operand::IsMatch(target, _) | Operand::Neg(target) => target.paths_mut(out),
            Operand::Call(call) => call
                .args
                .iter_mut()
                .flatten()
                .for_each(|a| a.paths_mut(out)),
            Operand::Math(a, _, b) => {
                a.paths_mut(out);
                b.paths_mut(out);
            }
            Operand::List(items) => items.iter_mut().for_each(|a| a.paths_mut(out)),
            Operand::Map(items) => items.iter_mut().for_each(|(_, a)| a.paths_mut(out)),
            Operand::Literal(_) => {}
        }
    }
}

impl Expr {
    /// Every path of the condition, to be rewritten in place: a plugin that reads a path's
    /// first key out of the value itself moves it among the nested keys.
    pub fn paths_mut(&mut self) -> Vec<&mut Path> {
        fn walk<'a>(e: &'a mut Expr, out: &mut Vec<&'a mut Path>) {
            match e {
                Expr::Or(a, b) | Expr::And(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare(a, _, b) => {
                    a.paths_mut(out);
                    b.paths_mut(out);
                }
                Expr::Truth(a) => a.paths_mut(out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Every path the condition reads, so the caller can check them against its context.
    pub fn paths(&self) -> Vec<&Path> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Path>) {
            match e {
                Expr::Or(a, b) | Expr::And(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare(a, _, b) => {
                    a.paths(out);
                    b.paths(out);
                }
                Expr::Truth(a) => a.paths(out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

#[cfg(test)]
mod tests;
