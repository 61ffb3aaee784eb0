//! Evaluates a condition over a whole batch, one column per path.
//!
//! Comparison follows OTTL: ints and doubles compare as numbers, strings compare with
//! strings, bools and bytes only for equality, `nil` equals only `nil`, and values of
//! different kinds are never equal and never ordered. An item whose evaluation fails (for
//! now only `IsMatch` on an array or a map) gets `false` and an [`EvalError`]; the
//! caller's `error_mode` decides what that means.

use crate::{Expr, Op, Operand, Path, Value};
use std::rc::Rc;

/// The batch a condition runs over; its values may borrow from it for `'a`.
pub trait Columns<'a> {
    /// How many items (spans, events, records, metrics or data points).
    fn item_count(&self) -> usize;
    /// The value of `path` for every item. Called once per path and evaluation.
    fn column(&mut self, path: &Path) -> Rc<[Value<'a>]>;
}

/// An item the condition could not be evaluated for.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError {
    pub item: usize,
    pub message: String,
}

/// A condition's result per item, and the items it failed on (those count as no match).
#[derive(Debug, Default)]
pub struct Outcome {
    pub matched: Vec<bool>,
    pub errors: Vec<EvalError>,
}

enum Column<'a> {
    One(Value<'a>),
    Many(Rc<[Value<'a>]>),
}

impl<'a> Column<'a> {
    fn get(&self, i: usize) -> &Value<'a> {
        match self {
            Column::One(v) => v,
            Column::Many(values) => values.get(i).unwrap_or(&Value::Nil),
        }
    }
}

struct Run<'r, 'a> {
    columns: &'r mut dyn Columns<'a>,
    len: usize,
    failed: Vec<Option<String>>,
}

impl<'a> Run<'_, 'a> {
    fn operand(&mut self, operand: &'a Operand) -> Column<'a> {
        match operand {
            Operand::Literal(v) => Column::One(v.borrowed()),
            Operand::Path(path) => Column::Many(self.columns.column(path)),
            Operand::IsMatch(target, regex) => {
                let target = self.operand(target);
                let values: Vec<Value<'a>> = (0..self.len)
                    .map(|i| {
                        let text: std::borrow::Cow<str> = match target.get(i) {
                            Value::Str(s) => std::borrow::Cow::Borrowed(&**s),
                            Value::Int(n) => n.to_string().into(),
                            Value::Double(d) => d.to_string().into(),
                            Value::Bool(b) => b.to_string().into(),
                            Value::Nil => return Value::Bool(false),
                            // As the collector's StringLikeGetter: bytes match as hex.
                            Value::Bytes(b) => b
                                .iter()
                                .map(|x| format!("{x:02x}"))
                                .collect::<String>()
                                .into(),
                            Value::Composite(kind) => {
                                return self.fail(
                                    i,
                                    &format!("IsMatch: the target is {kind}, not a string"),
                                );
                            }
                        };
                        Value::Bool(regex.is_match(&text))
                    })
                    .collect();
                Column::Many(values.into())
            }
        }
    }

    fn fail(&mut self, item: usize, message: &str) -> Value<'a> {
        if self.failed[item].is_none() {
            self.failed[item] = Some(message.to_string());
        }
        Value::Bool(false)
    }

    fn expr(&mut self, expr: &'a Expr) -> Vec<bool> {
        match expr {
            Expr::Or(a, b) => zip(self.expr(a), self.expr(b), |x, y| x || y),
            Expr::And(a, b) => zip(self.expr(a), self.expr(b), |x, y| x && y),
            Expr::Not(a) => self.expr(a).into_iter().map(|x| !x).collect(),
            Expr::Compare(a, op, b) => {
                let (a, b) = (self.operand(a), self.operand(b));
                (0..self.len)
                    .map(|i| compare(a.get(i), *op, b.get(i)))
                    .collect()
            }
            Expr::Truth(a) => {
                let a = self.operand(a);
                (0..self.len)
                    .map(|i| matches!(a.get(i), Value::Bool(true)))
                    .collect()
            }
        }
    }
}

fn zip(a: Vec<bool>, b: Vec<bool>, f: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
}

/// One OTTL comparison.
pub fn compare(a: &Value<'_>, op: Op, b: &Value<'_>) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (a, b) {
        (Value::Nil, Value::Nil) => Some(Ordering::Equal),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        // Bools and bytes are equal or not; they have no order.
        (Value::Bool(x), Value::Bool(y)) if matches!(op, Op::Eq | Op::Ne) => Some(if x == y {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (Value::Bytes(x), Value::Bytes(y)) if matches!(op, Op::Eq | Op::Ne) => Some(if x == y {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        _ => None,
    };
    match (op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
    }
}

impl Expr {
    /// Evaluates the condition for every item of `columns`, whose values may borrow from
    /// wherever they are kept for as long as the condition itself is borrowed.
    pub fn eval<'a>(&'a self, columns: &mut dyn Columns<'a>) -> Outcome {
        let len = columns.item_count();
        let mut run = Run {
            columns,
            len,
            failed: vec![None; len],
        };
        let mut matched = run.expr(self);
        let mut errors = Vec::new();
        for (item, failure) in run.failed.into_iter().enumerate() {
            if let Some(message) = failure {
                matched[item] = false;
                errors.push(EvalError { item, message });
            }
        }
        Outcome { matched, errors }
    }
}
