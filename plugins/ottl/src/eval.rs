//! Evaluates conditions and values over a whole batch, one column per path.
//!
//! Comparison follows OTTL: ints and doubles compare as numbers, strings compare with
//! strings, bools and bytes only for equality, `nil` equals only `nil`, and values of
//! different kinds are never equal and never ordered. An item whose evaluation fails (a
//! converter given the wrong type, `IsMatch` on a map, a division by zero) gets `false` and
//! an [`EvalError`]; the caller's `error_mode` decides what that means.

use crate::func::{call, index};
use crate::{Expr, MathOp, Op, Operand, Path, Value};
use std::borrow::Cow;
use std::rc::Rc;

/// The batch a condition runs over; its values may borrow from it for `'a`.
pub trait Columns<'a> {
    /// How many items (spans, events, records, metrics or data points).
    fn item_count(&self) -> usize;
    /// The value of `path` for every item. Called once per path and evaluation, always with
    /// a path without nested keys (the evaluator reads those out of the values).
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
    /// The items to compute values for (all when `None`): a statement's arguments are only
    /// evaluated where its condition holds, and the right of `and` (`or`) only where the left
    /// holds (does not), as the collector does, so no error is raised where it would not be.
    active: Option<Vec<bool>>,
}

impl<'a> Run<'_, 'a> {
    fn is_active(&self, i: usize) -> bool {
        self.active.as_ref().is_none_or(|a| a[i]) && self.failed[i].is_none()
    }

    /// Evaluates `e` only where the left side `left` equals `when`.
    fn only_where(&mut self, left: &[bool], when: bool, e: &'a Expr) -> Vec<bool> {
        let outer = self.active.take();
        let mask = (0..self.len)
            .map(|i| left[i] == when && outer.as_ref().is_none_or(|a| a[i]))
            .collect();
        self.active = Some(mask);
        let right = self.expr(e);
        self.active = outer;
        right
    }

    /// Computes a value per active item; inactive and failed items get nil.
    fn per_item(&mut self, mut f: impl FnMut(usize) -> Result<Value<'a>, String>) -> Column<'a> {
        let values: Vec<Value<'a>> = (0..self.len)
            .map(|i| {
                if !self.is_active(i) {
                    return Value::Nil;
                }
                match f(i) {
                    Ok(v) => v,
                    Err(message) => {
                        self.failed[i] = Some(message);
                        Value::Nil
                    }
                }
            })
            .collect();
        Column::Many(values.into())
    }

    fn operand(&mut self, operand: &'a Operand) -> Column<'a> {
        match operand {
            Operand::Literal(v) => Column::One(v.borrowed()),
            Operand::Path(path) if path.nested.is_empty() => {
                Column::Many(self.columns.column(path))
            }
            Operand::Path(path) => {
                let heads = self.columns.column(&path.head());
                self.per_item(|i| index(heads[i].clone(), &path.nested))
            }
            Operand::IsMatch(target, regex) => {
                let target = self.operand(target);
                (0..self.len)
                    .map(|i| {
                        if self.active.is_some() && !self.is_active(i) {
                            return Value::Bool(false);
                        }
                        let text: Cow<str> = match target.get(i) {
                            Value::Str(s) => Cow::Borrowed(&**s),
                            Value::Nil => return Value::Bool(false),
                            other => match crate::func::string_like(other) {
                                Ok(Some(s)) => s,
                                Ok(None) => return Value::Bool(false),
                                Err(e) => return self.fail(i, &format!("IsMatch: {e}")),
                            },
                        };
                        Value::Bool(regex.is_match(&text))
                    })
                    .collect::<Vec<_>>()
                    .into_column()
            }
            Operand::Call(c) => {
                let args: Vec<Option<Column<'a>>> = c
                    .args
                    .iter()
                    .map(|a| a.as_ref().map(|a| self.operand(a)))
                    .collect();
                self.per_item(|i| {
                    let values: Vec<Option<&Value<'a>>> =
                        args.iter().map(|a| a.as_ref().map(|a| a.get(i))).collect();
                    let result = call(&c.func, &values)?;
                    if c.keys.is_empty() {
                        Ok(result)
                    } else {
                        index(result, &c.keys)
                    }
                })
            }
            Operand::Math(a, op, b) => {
                let (a, b) = (self.operand(a), self.operand(b));
                self.per_item(|i| math(a.get(i), *op, b.get(i)))
            }
            Operand::Neg(a) => {
                let a = self.operand(a);
                self.per_item(|i| match a.get(i) {
                    Value::Int(n) => Ok(Value::Int(n.wrapping_neg())),
                    Value::Double(d) => Ok(Value::Double(-d)),
                    other => Err(format!("unary minus on {}", other.kind())),
                })
            }
            Operand::List(items) => {
                let items: Vec<Column<'a>> = items.iter().map(|a| self.operand(a)).collect();
                self.per_item(|i| {
                    let list = items.iter().map(|c| c.get(i).clone().into_owned());
                    Ok(Value::List(Rc::new(list.collect())))
                })
            }
            Operand::Map(items) => {
                let items: Vec<(&String, Column<'a>)> =
                    items.iter().map(|(k, a)| (k, self.operand(a))).collect();
                self.per_item(|i| {
                    let mut map: crate::Map = Vec::with_capacity(items.len());
                    for (k, c) in &items {
                        crate::edit::put(&mut map, k, c.get(i).clone().into_owned());
                    }
                    Ok(Value::Map(Rc::new(map)))
                })
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
            Expr::Or(a, b) => {
                let left = self.expr(a);
                let right = self.only_where(&left, false, b);
                zip(left, right, |x, y| x || y)
            }
            Expr::And(a, b) => {
                let left = self.expr(a);
                let right = self.only_where(&left, true, b);
                zip(left, right, |x, y| x && y)
            }
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

trait IntoColumn<'a> {
    fn into_column(self) -> Column<'a>;
}

impl<'a> IntoColumn<'a> for Vec<Value<'a>> {
    fn into_column(self) -> Column<'a> {
        Column::Many(self.into())
    }
}

fn zip(a: Vec<bool>, b: Vec<bool>, f: impl Fn(bool, bool) -> bool) -> Vec<bool> {
    a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
}

/// One math operation, with OTTL's types: int with int stays an int, a double on either side
/// makes a double, times and durations add and subtract.
fn math<'a>(a: &Value<'_>, op: MathOp, b: &Value<'_>) -> Result<Value<'a>, String> {
    use MathOp::*;
    let zero = |y: f64| {
        if op == Div && y == 0.0 {
            Err("attempted to divide by zero".to_string())
        } else {
            Ok(())
        }
    };
    let float = |x: f64, y: f64| -> Result<Value<'a>, String> {
        zero(y)?;
        Ok(Value::Double(match op {
            Add => x + y,
            Sub => x - y,
            Mul => x * y,
            Div => x / y,
        }))
    };
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            zero(*y as f64)?;
            Ok(Value::Int(match op {
                Add => x.wrapping_add(*y),
                Sub => x.wrapping_sub(*y),
                Mul => x.wrapping_mul(*y),
                Div => x.wrapping_div(*y),
            }))
        }
        (Value::Int(x), Value::Double(y)) => float(*x as f64, *y),
        (Value::Double(x), Value::Int(y)) => float(*x, *y as f64),
        (Value::Double(x), Value::Double(y)) => float(*x, *y),
        (Value::Time(t), Value::Duration(d)) if op == Add => Ok(Value::Time(t + d)),
        (Value::Time(t), Value::Duration(d)) if op == Sub => Ok(Value::Time(t - d)),
        (Value::Time(t), Value::Time(u)) if op == Sub => Ok(Value::Duration(t - u)),
        (Value::Duration(d), Value::Duration(e)) if op == Add => Ok(Value::Duration(d + e)),
        (Value::Duration(d), Value::Duration(e)) if op == Sub => Ok(Value::Duration(d - e)),
        (Value::Duration(d), Value::Time(t)) if op == Add => Ok(Value::Time(t + d)),
        (Value::Int(_) | Value::Double(_), other) => {
            Err(format!("{} must be an int or a double", other.kind()))
        }
        (Value::Time(_) | Value::Duration(_), other) => Err(format!(
            "cannot apply {op:?} to {} and {}",
            a.kind(),
            other.kind()
        )),
        (other, _) => Err(format!(
            "{} must be an int, a double, a time or a duration",
            other.kind()
        )),
    }
}

/// One OTTL comparison.
pub fn compare(a: &Value<'_>, op: Op, b: &Value<'_>) -> bool {
    use std::cmp::Ordering;
    let equal_only = |same: bool| {
        matches!(op, Op::Eq | Op::Ne).then_some(if same {
            Ordering::Equal
        } else {
            Ordering::Less
        })
    };
    let ordering: Option<Ordering> = match (a, b) {
        (Value::Nil, Value::Nil) => Some(Ordering::Equal),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Double(y)) => (*x as f64).partial_cmp(y),
        (Value::Double(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Time(x), Value::Time(y)) | (Value::Duration(x), Value::Duration(y)) => {
            Some(x.cmp(y))
        }
        // Bools, bytes, maps and lists are equal or not; they have no order.
        (Value::Bool(x), Value::Bool(y)) => equal_only(x == y),
        (Value::Bytes(x), Value::Bytes(y)) => equal_only(x == y),
        (Value::Map(x), Value::Map(y)) => equal_only(x == y),
        (Value::List(x), Value::List(y)) => equal_only(x == y),
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

fn outcome(matched: Vec<bool>, failed: Vec<Option<String>>) -> Outcome {
    let mut matched = matched;
    let mut errors = Vec::new();
    for (item, failure) in failed.into_iter().enumerate() {
        if let Some(message) = failure {
            matched[item] = false;
            errors.push(EvalError { item, message });
        }
    }
    Outcome { matched, errors }
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
            active: None,
        };
        let matched = run.expr(self);
        outcome(matched, run.failed)
    }
}

/// Evaluates a value for the items where `active` holds (every item when `None`); the
/// others, and those it fails on (listed with why), get nil.
pub fn eval_operand<'a>(
    operand: &'a Operand,
    columns: &mut dyn Columns<'a>,
    active: Option<&[bool]>,
) -> (Vec<Value<'a>>, Vec<EvalError>) {
    let len = columns.item_count();
    let mut run = Run {
        columns,
        len,
        failed: vec![None; len],
        active: active.map(<[bool]>::to_vec),
    };
    let column = run.operand(operand);
    let mut values: Vec<Value<'a>> = (0..len).map(|i| column.get(i).clone()).collect();
    let mut errors = Vec::new();
    for (item, failure) in run.failed.into_iter().enumerate() {
        if let Some(message) = failure {
            values[item] = Value::Nil;
            errors.push(EvalError { item, message });
        }
    }
    (values, errors)
}
