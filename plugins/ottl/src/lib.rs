//! The subset of OTTL (the OpenTelemetry Transformation Language) that the collector's
//! filterprocessor conditions use, for trailhead's `filter` plugin.
//!
//! A condition is parsed once, at config time, into an [`Expr`]. It is then evaluated a
//! column at a time: every path is fetched once for the whole batch through [`Columns`], so
//! a plugin makes one host call per path rather than one per item.
//!
//! Grammar: `or` / `and` / `not`, parentheses, the comparisons `== != < <= > >=`, string,
//! int, float, bool, bytes (`0x0af7`) and `nil` literals, enum constants (`SPAN_KIND_SERVER`,
//! `STATUS_CODE_ERROR`, `SEVERITY_NUMBER_WARN`, `METRIC_DATA_TYPE_SUM`, …), paths such as
//! `name` or `resource.attributes["k8s.pod.name"]`, and the converters `IsMatch(target, "re")`,
//! `TraceID(0x…)` and `SpanID(0x…)`.
//! Which paths exist depends on the context; the caller checks them with [`Expr::paths`].

mod eval;
mod parse;

pub use eval::{Columns, EvalError, Outcome};
pub use parse::{ParseError, parse};
use std::borrow::Cow;

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
        }
    }
}

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
    /// An array or a map: comparable to nothing, and not a string for `IsMatch`.
    Composite(&'static str),
}

/// A path as written: `resource.attributes["k"]` is segments `[resource, attributes]` and
/// key `k`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    pub segments: Vec<String>,
    pub key: Option<String>,
    /// 1-based column of the path in the condition.
    pub column: usize,
}

impl Path {
    /// The segments joined with dots, without the key: `resource.attributes`.
    pub fn dotted(&self) -> String {
        self.segments.join(".")
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.dotted())?;
        match &self.key {
            Some(key) => write!(f, "[{key:?}]"),
            None => Ok(()),
        }
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

/// Something that yields a value per item.
#[derive(Debug, Clone)]
pub enum Operand {
    Literal(Value<'static>),
    Path(Path),
    /// `IsMatch(target, "regex")`: a bool.
    IsMatch(Box<Operand>, regex::Regex),
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Op, Operand),
    /// A bare boolean: `IsMatch(…)`, `true`, or a bool-valued path.
    Truth(Operand),
}

impl Expr {
    /// Every path the condition reads, so the caller can check them against its context.
    pub fn paths(&self) -> Vec<&Path> {
        fn operand<'a>(o: &'a Operand, out: &mut Vec<&'a Path>) {
            match o {
                Operand::Path(p) => out.push(p),
                Operand::IsMatch(target, _) => operand(target, out),
                Operand::Literal(_) => {}
            }
        }
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a Path>) {
            match e {
                Expr::Or(a, b) | Expr::And(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Compare(a, _, b) => {
                    operand(a, out);
                    operand(b, out);
                }
                Expr::Truth(a) => operand(a, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}

#[cfg(test)]
mod tests;
