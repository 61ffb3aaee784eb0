//! Text → [`Expr`] or [`Statement`]: a tokenizer that remembers columns, and a
//! recursive-descent parser that checks every function's arguments as it goes.

use crate::edit::{Editor, Statement, Strategy};
use crate::func::{CONVERTERS, Case, Func, REFUSED_CONVERTERS};
use crate::{Call, Expr, Key, MathOp, Op, Operand, Path, Value};
use std::rc::Rc;

/// A condition that does not parse: what was wrong, and the 1-based column where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Op(Op),
    Math(MathOp),
    Assign,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    OpenBrace,
    CloseBrace,
    Colon,
    Comma,
    Dot,
}

fn fail<T>(column: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        column,
        message: message.into(),
    })
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let single = match c {
            '(' => Some(Token::Open),
            ')' => Some(Token::Close),
            '[' => Some(Token::OpenBracket),
            ']' => Some(Token::CloseBracket),
            '{' => Some(Token::OpenBrace),
            '}' => Some(Token::CloseBrace),
            ':' => Some(Token::Colon),
            ',' => Some(Token::Comma),
            '+' => Some(Token::Math(MathOp::Add)),
            '-' => Some(Token::Math(MathOp::Sub)),
            '*' => Some(Token::Math(MathOp::Mul)),
            '/' => Some(Token::Math(MathOp::Div)),
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => Some(Token::Dot),
            _ => None,
        };
        if c.is_whitespace() {
            i += 1;
        } else if let Some(token) = single {
            tokens.push((token, column));
            i += 1;
        } else if "=!<>".contains(c) {
            let two = chars.get(i + 1) == Some(&'=');
            let op = match (c, two) {
                ('=', true) => Op::Eq,
                ('!', true) => Op::Ne,
                ('<', true) => Op::Le,
                ('>', true) => Op::Ge,
                ('<', false) => Op::Lt,
                ('>', false) => Op::Gt,
                ('=', false) => {
                    tokens.push((Token::Assign, column));
                    i += 1;
                    continue;
                }
                _ => {
                    return fail(
                        column,
                        format!("unexpected `{c}`; comparisons are == != < <= > >="),
                    );
                }
            };
            tokens.push((Token::Op(op), column));
            i += if two { 2 } else { 1 };
        } else if c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return fail(column, "string is not closed"),
                    Some('"') => break,
                    Some('\\') => {
                        let escaped = match chars.get(i + 1) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some('r') => '\r',
                            Some(&e @ ('"' | '\\')) => e,
                            // Regexes keep their own escapes: `\d` stays `\d`.
                            Some(&other) => {
                                value.push('\\');
                                other
                            }
                            None => return fail(column, "string is not closed"),
                        };
                        value.push(escaped);
                        i += 2;
                    }
                    Some(&ch) => {
                        value.push(ch);
                        i += 1;
                    }
                }
            }
            tokens.push((Token::Str(value), column));
            i += 1;
        } else if c == '0' && chars.get(i + 1) == Some(&'x') {
            let (bytes, next) = hex_literal(&chars, i + 2, column)?;
            tokens.push((Token::Bytes(bytes), column));
            i = next;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            // An exponent: 1e9, 2.5E-3.
            if i < chars.len()
                && (chars[i] == 'e' || chars[i] == 'E')
                && chars[start..i].contains(&'.')
            {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let token = if text.contains(['.', 'e', 'E']) {
                text.parse().map(Token::Float).ok()
            } else {
                text.parse().map(Token::Int).ok()
            };
            match token {
                Some(t) => tokens.push((t, column)),
                None => return fail(column, format!("`{text}` is not a number")),
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), column));
        } else {
            return fail(column, format!("unexpected `{c}`"));
        }
    }
    Ok(tokens)
}

/// The bytes of a `0x…` literal whose digits start at `from`, and where the literal ends.
fn hex_literal(chars: &[char], from: usize, column: usize) -> Result<(Vec<u8>, usize), ParseError> {
    let end = (from..chars.len())
        .find(|&j| !chars[j].is_ascii_alphanumeric())
        .unwrap_or(chars.len());
    let digits: Vec<u32> = chars[from..end]
        .iter()
        .filter_map(|c| c.to_digit(16))
        .collect();
    if digits.len() != end - from || !digits.len().is_multiple_of(2) {
        let text: String = chars[from..end].iter().collect();
        return fail(
            column,
            format!("`0x{text}` is not a byte literal (an even number of hex digits)"),
        );
    }
    let bytes = digits
        .chunks(2)
        .map(|pair| (pair[0] * 16 + pair[1]) as u8)
        .collect();
    Ok((bytes, end))
}

struct Parser<'r> {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
    item_converters: &'r [ItemConverter],
}

/// A converter that reads the item it runs on rather than its arguments, which only the
/// plugin can answer (the filter's `IsRootSpan()`): the caller of [`parse_reading`] names
/// the ones its context has, and the ones it refuses with the reason, so the refusal keeps
/// its column. Its arguments are string literals, as the collector's `string` parameters.
pub struct ItemConverter {
    pub name: &'static str,
    pub params: &'static [&'static str],
    /// Why the context refuses it; `None` where it is answered.
    pub refused: Option<&'static str>,
}

/// Where an argument was written, and what it is.
type Arg = Option<(Operand, usize)>;

/// The editors' names and parameters (as the collector names them, for `name = value`
/// arguments); a parameter after `|` is optional.
const EDITORS: &[(&str, &[&str])] = &[
    ("set", &["target", "value"]),
    ("delete_key", &["target", "key"]),
    ("delete_matching_keys", &["target", "pattern"]),
    ("keep_keys", &["target", "keys"]),
    ("keep_matching_keys", &["target", "pattern"]),
    (
        "replace_pattern",
        &[
            "target",
            "regex_pattern",
            "replacement",
            "|function",
            "|replacement_format",
        ],
    ),
    (
        "replace_all_patterns",
        &[
            "target",
            "mode",
            "regex_pattern",
            "replacement",
            "|function",
            "|replacement_format",
        ],
    ),
    (
        "replace_match",
        &[
            "target",
            "pattern",
            "replacement",
            "|function",
            "|replacement_format",
        ],
    ),
    (
        "replace_all_matches",
        &[
            "target",
            "pattern",
            "replacement",
            "|function",
            "|replacement_format",
        ],
    ),
    (
        "truncate_all",
        &["target", "limit", "|utf8_safe", "|truncation_marker"],
    ),
    ("limit", &["target", "limit", "priority_keys"]),
    ("merge_maps", &["target", "source", "strategy"]),
    (
        "flatten",
        &["target", "|prefix", "|depth", "|resolve_conflicts"],
    ),
];

/// The collector's editors that trailhead does not (yet) have.
const REFUSED_EDITORS: &[&str] = &[
    "append",
    "delete_index",
    "keep_matching_keys_xml",
    "set_semconv_span_name",
    "sort",
    "truncate",
    "extract_patterns",
    "merge_histogram_buckets",
    "convert_sum_to_gauge",
    "convert_gauge_to_sum",
    "convert_summary_count_val_to_sum",
    "convert_summary_sum_val_to_sum",
    "copy_metric",
    "scale_metric",
    "aggregate_on_attributes",
    "aggregate_on_attribute_value",
    "extract_count_metric",
    "extract_sum_metric",
    "convert_exponential_histogram_to_histogram",
    "route",
    "drop",
];

fn literal_str(arg: &Arg, what: &str) -> Result<Option<String>, ParseError> {
    match arg {
        None => Ok(None),
        Some((Operand::Literal(Value::Str(s)), _)) => Ok(Some(s.to_string())),
        Some((_, column)) => fail(*column, format!("{what} must be a string literal")),
    }
}

fn literal_int(arg: &Arg, what: &str) -> Result<Option<i64>, ParseError> {
    match arg {
        None => Ok(None),
        Some((Operand::Literal(Value::Int(i)), _)) => Ok(Some(*i)),
        Some((_, column)) => fail(*column, format!("{what} must be an int literal")),
    }
}

fn literal_bool(arg: &Arg, what: &str) -> Result<Option<bool>, ParseError> {
    match arg {
        None => Ok(None),
        Some((Operand::Literal(Value::Bool(b)), _)) => Ok(Some(*b)),
        Some((_, column)) => fail(*column, format!("{what} must be true or false")),
    }
}

fn regex_arg(arg: &Arg, what: &str) -> Result<regex::Regex, ParseError> {
    let column = arg.as_ref().map_or(0, |(_, c)| *c);
    let Some(pattern) = literal_str(arg, what)? else {
        return fail(column, format!("{what} is missing"));
    };
    regex::Regex::new(&pattern).or_else(|e| {
        fail(
            column,
            format!(
                "invalid regex: {}",
                e.to_string().lines().last().unwrap_or("")
            ),
        )
    })
}

fn glob_arg(arg: &Arg, what: &str) -> Result<regex::Regex, ParseError> {
    let column = arg.as_ref().map_or(0, |(_, c)| *c);
    let Some(pattern) = literal_str(arg, what)? else {
        return fail(column, format!("{what} is missing"));
    };
    crate::edit::glob(&pattern).or_else(|e| fail(column, e))
}

fn required(arg: Arg) -> Operand {
    arg.map_or(Operand::Literal(Value::Nil), |(o, _)| o)
}

/// Whether an operand may stand in math: a number, a path, a converter or more math.
fn is_math_operand(o: &Operand) -> bool {
    matches!(
        o,
        Operand::Literal(Value::Int(_) | Value::Double(_))
            | Operand::Path(_)
            | Operand::Call(_)
            | Operand::Math(..)
            | Operand::Neg(_)
    )
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }
    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(_, c)| *c)
    }
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).map(|(t, _)| t.clone());
        self.at += 1;
        token
    }
    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Ident(w)) if w == word) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, token: Token, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&token) {
            self.at += 1;
            Ok(())
        } else {
            fail(self.column(), format!("expected {what}"))
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Token::Open) {
            // `(` opens a condition, or a math expression compared next: `(a + b) > 3`.
            let start = self.at;
            self.at += 1;
            match self.or() {
                Ok(inner) => {
                    self.expect(Token::Close, "`)`")?;
                    if !matches!(self.peek(), Some(Token::Op(_) | Token::Math(_))) {
                        return Ok(inner);
                    }
                    self.at = start;
                }
                Err(first) => {
                    self.at = start;
                    return self.comparison().map_err(|_| first);
                }
            }
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let column = self.column();
        let left = self.value()?;
        match self.peek() {
            Some(Token::Op(op)) => {
                let op = *op;
                self.at += 1;
                let right = self.value()?;
                return Ok(Expr::Compare(left, op, right));
            }
            Some(Token::Assign) => {
                return fail(
                    self.column(),
                    "unexpected `=`; comparisons are == != < <= > >=",
                );
            }
            _ => {}
        }
        match left {
            Operand::Literal(Value::Bool(_))
            | Operand::IsMatch(..)
            | Operand::Path(_)
            | Operand::Call(_) => Ok(Expr::Truth(left)),
            _ => fail(
                column,
                "expected a condition: a comparison, IsMatch(…), true or false",
            ),
        }
    }

    /// A value: a math expression, or a single operand.
    fn value(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        let mut left = self.term()?;
        while let Some(Token::Math(op @ (MathOp::Add | MathOp::Sub))) = self.peek() {
            let op = *op;
            self.at += 1;
            let right_column = self.column();
            let right = self.term()?;
            left = self.math(left, column, op, right, right_column)?;
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        let mut left = self.factor()?;
        while let Some(Token::Math(op @ (MathOp::Mul | MathOp::Div))) = self.peek() {
            let op = *op;
            self.at += 1;
            let right_column = self.column();
            let right = self.factor()?;
            left = self.math(left, column, op, right, right_column)?;
        }
        Ok(left)
    }

    fn math(
        &self,
        left: Operand,
        left_column: usize,
        op: MathOp,
        right: Operand,
        right_column: usize,
    ) -> Result<Operand, ParseError> {
        for (o, c) in [(&left, left_column), (&right, right_column)] {
            if !is_math_operand(o) {
                return fail(
                    c,
                    "math takes numbers, paths, converters and parenthesized math",
                );
            }
        }
        Ok(Operand::Math(Box::new(left), op, Box::new(right)))
    }

    fn factor(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        match self.peek() {
            Some(Token::Math(MathOp::Sub)) => {
                self.at += 1;
                let inner = self.factor()?;
                match inner {
                    Operand::Literal(Value::Int(i)) => Ok(Operand::Literal(Value::Int(-i))),
                    Operand::Literal(Value::Double(d)) => Ok(Operand::Literal(Value::Double(-d))),
                    o if is_math_operand(&o) => Ok(Operand::Neg(Box::new(o))),
                    _ => fail(column, "`-` needs a number, a path or a converter"),
                }
            }
            Some(Token::Math(MathOp::Add)) => {
                self.at += 1;
                self.factor()
            }
            Some(Token::Open) => {
                self.at += 1;
                let inner = self.value()?;
                self.expect(Token::Close, "`)`")?;
                Ok(inner)
            }
            _ => self.operand(),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        match self.next() {
            Some(Token::Str(s)) => Ok(Operand::Literal(Value::Str(s.into()))),
            Some(Token::Bytes(b)) => Ok(Operand::Literal(Value::Bytes(b.into()))),
            Some(Token::Int(i)) => Ok(Operand::Literal(Value::Int(i))),
            Some(Token::Float(f)) => Ok(Operand::Literal(Value::Double(f))),
            Some(Token::OpenBracket) => self.list(),
            Some(Token::OpenBrace) => self.map(),
            Some(Token::Ident(word)) => match word.as_str() {
                "nil" => Ok(Operand::Literal(Value::Nil)),
                "true" => Ok(Operand::Literal(Value::Bool(true))),
                "false" => Ok(Operand::Literal(Value::Bool(false))),
                "and" | "or" | "not" | "where" => {
                    fail(column, format!("expected a value, found `{word}`"))
                }
                _ if self.peek() == Some(&Token::Open) => {
                    if word.starts_with(|c: char| c.is_ascii_uppercase()) {
                        self.call(word, column)
                    } else {
                        fail(
                            column,
                            format!(
                                "`{word}` is an editor; only converters (capitalized) return a value"
                            ),
                        )
                    }
                }
                _ if is_enum_name(&word) => match enum_value(&word) {
                    Some(v) => Ok(Operand::Literal(Value::Int(v))),
                    None if is_function(&word) => fail(
                        column,
                        format!("passing the function `{word}` as an argument is not supported"),
                    ),
                    None => fail(column, format!("unknown enum `{word}`")),
                },
                _ => self.path(word, column),
            },
            Some(_) => fail(column, "expected a value"),
            None => fail(column, "expected a value, found the end of the condition"),
        }
    }

    /// `[a, b, …]` after its `[`: a literal when every item is one.
    fn list(&mut self) -> Result<Operand, ParseError> {
        let mut items = Vec::new();
        if self.peek() != Some(&Token::CloseBracket) {
            loop {
                items.push(self.value()?);
                if self.peek() != Some(&Token::Comma) {
                    break;
                }
                self.at += 1;
            }
        }
        self.expect(Token::CloseBracket, "`,` or `]`")?;
        if items.iter().all(|i| matches!(i, Operand::Literal(_))) {
            let values = items.into_iter().map(|i| match i {
                Operand::Literal(v) => v,
                _ => Value::Nil,
            });
            return Ok(Operand::Literal(Value::List(Rc::new(values.collect()))));
        }
        Ok(Operand::List(items))
    }

    /// `{"k": v, …}` after its `{`: a literal when every value is one.
    fn map(&mut self) -> Result<Operand, ParseError> {
        let mut items = Vec::new();
        while self.peek() != Some(&Token::CloseBrace) {
            let column = self.column();
            let Some(Token::Str(key)) = self.next() else {
                return fail(column, "expected a string key or `}`");
            };
            self.expect(Token::Colon, "`:`")?;
            items.push((key, self.value()?));
            if self.peek() == Some(&Token::Comma) {
                self.at += 1;
            }
        }
        self.at += 1;
        if items.iter().all(|(_, i)| matches!(i, Operand::Literal(_))) {
            let mut map = Vec::new();
            for (k, v) in items {
                if let Operand::Literal(v) = v {
                    crate::edit::put(&mut map, &k, v);
                }
            }
            return Ok(Operand::Literal(Value::Map(Rc::new(map))));
        }
        Ok(Operand::Map(items))
    }

    /// `(args…)` of a function with these parameters, bound to them in order (positional
    /// or `name = value`).
    fn args(&mut self, name: &str, params: &[&str]) -> Result<Vec<Arg>, ParseError> {
        self.expect(Token::Open, "`(`")?;
        let mut bound: Vec<Arg> = vec![None; params.len()];
        let mut position = 0;
        let mut named = false;
        while self.peek() != Some(&Token::Close) {
            let column = self.column();
            let slot = match (self.peek(), self.tokens.get(self.at + 1).map(|(t, _)| t)) {
                (Some(Token::Ident(arg)), Some(Token::Assign)) => {
                    let arg = arg.clone();
                    self.at += 2;
                    named = true;
                    params
                        .iter()
                        .position(|p| p.trim_start_matches('|') == arg)
                        .ok_or_else(|| ParseError {
                            column,
                            message: format!("{name} has no parameter `{arg}`"),
                        })?
                }
                _ if named => {
                    return fail(column, "a positional argument cannot follow a named one");
                }
                _ => {
                    position += 1;
                    position - 1
                }
            };
            if slot >= params.len() {
                return fail(column, format!("{name} takes {} argument(s)", params.len()));
            }
            if bound[slot].is_some() {
                return fail(
                    column,
                    format!("{name}'s `{}` is given twice", params[slot]),
                );
            }
            let value = self.value()?;
            bound[slot] = Some((value, column));
            if self.peek() != Some(&Token::Comma) {
                break;
            }
            self.at += 1;
        }
        let close = self.column();
        self.expect(Token::Close, "`,` or `)`")?;
        for (param, arg) in params.iter().zip(&bound) {
            if arg.is_none() && !param.starts_with('|') {
                return fail(close, format!("{name} needs its `{param}` argument"));
            }
        }
        Ok(bound)
    }

    fn call(&mut self, name: String, column: usize) -> Result<Operand, ParseError> {
        if let Some(converter) = self.item_converters.iter().find(|c| c.name == name) {
            return self.item_call(converter, column);
        }
        let Some((_, params)) = CONVERTERS.iter().find(|(n, _)| *n == name) else {
            let what = if REFUSED_CONVERTERS.contains(&name.as_str()) {
                "unsupported"
            } else {
                "unknown"
            };
            let supported: Vec<&str> = CONVERTERS.iter().map(|(n, _)| *n).collect();
            return fail(
                column,
                format!(
                    "{what} function `{name}`; the supported converters are {}",
                    supported.join(", ")
                ),
            );
        };
        match name.as_str() {
            "TraceID" => return self.id(16),
            "SpanID" => return self.id(8),
            _ => {}
        }
        let mut args = self.args(&name, params)?;
        let func = match name.as_str() {
            "IsMatch" => {
                if let Some((Operand::Literal(Value::Str(_)), _)) = &args[1] {
                    let regex = regex_arg(&args[1], "IsMatch's pattern")?;
                    let target = required(args.swap_remove(0));
                    self.no_keys("IsMatch")?;
                    return Ok(Operand::IsMatch(Box::new(target), regex));
                }
                Func::IsMatch
            }
            "Concat" => Func::Concat,
            "Split" => Func::Split,
            "Substring" => {
                let utf8_safe = literal_bool(&args[3], "Substring's utf8_safe")?.unwrap_or(false);
                args.truncate(3);
                Func::Substring { utf8_safe }
            }
            "ToLowerCase" => Func::ToLowerCase,
            "ToUpperCase" => Func::ToUpperCase,
            "ConvertCase" => {
                let at = args[1].as_ref().map_or(column, |(_, c)| *c);
                let case = match literal_str(&args[1], "ConvertCase's to_case")?.as_deref() {
                    Some("lower") => Case::Lower,
                    Some("upper") => Case::Upper,
                    Some("snake") => Case::Snake,
                    Some("camel") => Case::Camel,
                    other => {
                        return fail(
                            at,
                            format!(
                                "invalid case {other:?}: allowed cases are lower, upper, snake, camel"
                            ),
                        );
                    }
                };
                args.truncate(1);
                Func::ConvertCase(case)
            }
            "SHA256" => Func::Sha256,
            "IsString" => Func::IsString,
            "Int" => Func::Int,
            "Double" => Func::Double,
            "String" => Func::String,
            "Len" => Func::Len,
            "Duration" => Func::Duration,
            "Nanoseconds" => Func::Nanoseconds,
            _ => Func::Now,
        };
        let keys = self.keys()?;
        Ok(Operand::Call(Box::new(Call {
            func,
            args: args.into_iter().map(|a| a.map(|(o, _)| o)).collect(),
            keys,
            column,
        })))
    }

    /// An item converter's call, as a path the plugin answers: it returns a bool, so it
    /// takes no keys.
    fn item_call(&mut self, c: &ItemConverter, column: usize) -> Result<Operand, ParseError> {
        if let Some(reason) = c.refused {
            return fail(column, format!("`{}`: {reason}", c.name));
        }
        let mut args = Vec::new();
        for (arg, param) in self.args(c.name, c.params)?.iter().zip(c.params) {
            let what = format!("{}'s {param}", c.name);
            args.extend(literal_str(arg, &what)?);
        }
        self.no_keys(c.name)?;
        Ok(Operand::Path(Path {
            segments: vec![c.name.to_string()],
            key: None,
            nested: Vec::new(),
            column,
            args: Some(args),
        }))
    }

    fn no_keys(&self, name: &str) -> Result<(), ParseError> {
        if self.peek() == Some(&Token::OpenBracket) {
            return fail(
                self.column(),
                format!("{name} returns a bool, which has no keys"),
            );
        }
        Ok(())
    }

    /// `TraceID(0x…)` (16 bytes) or `SpanID(0x…)` (8): the ID as bytes, which is how the
    /// `trace_id` and `span_id` paths read.
    fn id(&mut self, width: usize) -> Result<Operand, ParseError> {
        self.expect(Token::Open, "`(`")?;
        let bytes_column = self.column();
        match self.next() {
            Some(Token::Bytes(b)) if b.len() == width => {
                self.expect(Token::Close, "`)`")?;
                Ok(Operand::Literal(Value::Bytes(b.into())))
            }
            _ => fail(
                bytes_column,
                format!("expected {width} bytes, as in 0x{}", "00".repeat(width)),
            ),
        }
    }

    /// `[…]` keys: strings or ints (a key computed from a path or a converter is refused).
    fn keys(&mut self) -> Result<Vec<Key>, ParseError> {
        let mut keys = Vec::new();
        while self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            let key_column = self.column();
            match self.next() {
                Some(Token::Str(k)) => keys.push(Key::Str(k)),
                Some(Token::Int(i)) => keys.push(Key::Int(i)),
                _ => {
                    return fail(
                        key_column,
                        "expected a string or int key, as in attributes[\"key\"] (computed keys are not supported)",
                    );
                }
            }
            self.expect(Token::CloseBracket, "`]`")?;
        }
        Ok(keys)
    }

    fn path(&mut self, first: String, column: usize) -> Result<Operand, ParseError> {
        let mut segments = vec![first];
        while self.peek() == Some(&Token::Dot) {
            self.at += 1;
            let segment_column = self.column();
            match self.next() {
                Some(Token::Ident(s)) => segments.push(s),
                _ => return fail(segment_column, "expected a name after `.`"),
            }
        }
        let mut keys = self.keys()?.into_iter();
        let key = match keys.as_slice().first() {
            Some(Key::Str(k)) => {
                let k = k.clone();
                keys.next();
                Some(k)
            }
            _ => None,
        };
        if self.peek() == Some(&Token::Dot) {
            return fail(self.column(), "a path's keys come last");
        }
        Ok(Operand::Path(Path {
            segments,
            key,
            nested: keys.collect(),
            column,
            args: None,
        }))
    }

    /// A statement: `editor(args…)`, then `where` and a condition.
    fn statement(&mut self) -> Result<Statement, ParseError> {
        let column = self.column();
        let name = match self.next() {
            Some(Token::Ident(name)) if self.peek() == Some(&Token::Open) => name,
            _ => {
                return fail(
                    column,
                    "a statement starts with an editor call, as in set(…)",
                );
            }
        };
        let Some((_, params)) = EDITORS.iter().find(|(n, _)| *n == name) else {
            let what = if REFUSED_EDITORS.contains(&name.as_str()) {
                "unsupported"
            } else if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                return fail(
                    column,
                    format!("a statement starts with an editor, not the converter `{name}`"),
                );
            } else {
                "unknown"
            };
            let supported: Vec<&str> = EDITORS.iter().map(|(n, _)| *n).collect();
            return fail(
                column,
                format!(
                    "{what} editor `{name}`; the supported editors are {}",
                    supported.join(", ")
                ),
            );
        };
        let mut args = self.args(&name, params)?;
        let target = match args[0].take() {
            Some((Operand::Path(p), _)) => p,
            Some((_, at)) => return fail(at, format!("{name}'s target must be a path")),
            None => return fail(column, format!("{name} needs a target")),
        };
        for (param, arg) in params.iter().zip(&args) {
            if let (Some((_, at)), "|function" | "|replacement_format") = (arg, *param) {
                return fail(
                    *at,
                    format!(
                        "{name}'s `{}` argument is not supported",
                        param.trim_start_matches('|')
                    ),
                );
            }
        }
        let mut rest = args.into_iter().skip(1);
        let mut next = || rest.next().flatten();
        let (editor, args) = match name.as_str() {
            "set" => (Editor::Set, vec![required(next())]),
            "delete_key" => (Editor::DeleteKey, vec![required(next())]),
            "keep_keys" => (Editor::KeepKeys, vec![required(next())]),
            "delete_matching_keys" => (
                Editor::DeleteMatchingKeys(regex_arg(&next(), "the pattern")?),
                vec![],
            ),
            "keep_matching_keys" => (
                Editor::KeepMatchingKeys(regex_arg(&next(), "the pattern")?),
                vec![],
            ),
            "replace_pattern" => {
                let regex = regex_arg(&next(), "the regex pattern")?;
                (Editor::ReplacePattern(regex), vec![required(next())])
            }
            "replace_all_patterns" => {
                let mode = next();
                let keys = match literal_str(&mode, "the mode")?.as_deref() {
                    Some("key") => true,
                    Some("value") => false,
                    other => {
                        let at = mode.as_ref().map_or(column, |(_, c)| *c);
                        return fail(
                            at,
                            format!("invalid mode {other:?}, must be either 'key' or 'value'"),
                        );
                    }
                };
                let regex = regex_arg(&next(), "the regex pattern")?;
                (
                    Editor::ReplaceAllPatterns { keys, regex },
                    vec![required(next())],
                )
            }
            "replace_match" => {
                let glob = glob_arg(&next(), "the pattern")?;
                (Editor::ReplaceMatch(glob), vec![required(next())])
            }
            "replace_all_matches" => {
                let glob = glob_arg(&next(), "the pattern")?;
                (Editor::ReplaceAllMatches(glob), vec![required(next())])
            }
            "truncate_all" => {
                let limit_arg = next();
                let limit = literal_int(&limit_arg, "the limit")?.unwrap_or(0);
                let at = limit_arg.as_ref().map_or(column, |(_, c)| *c);
                if limit < 0 {
                    return fail(
                        at,
                        format!(
                            "invalid limit for truncate_all function, {limit} cannot be negative"
                        ),
                    );
                }
                let utf8_safe = literal_bool(&next(), "utf8_safe")?.unwrap_or(true);
                let marker = literal_str(&next(), "the truncation marker")?.unwrap_or_default();
                if marker.len() as i64 > limit {
                    return fail(
                        at,
                        format!(
                            "invalid truncation marker for truncate_all function, length of marker {} cannot be greater than limit {limit}",
                            marker.len()
                        ),
                    );
                }
                (
                    Editor::TruncateAll {
                        limit: limit as usize,
                        utf8_safe,
                        marker,
                    },
                    vec![],
                )
            }
            "limit" => {
                let limit_arg = next();
                let limit = literal_int(&limit_arg, "the limit")?.unwrap_or(0);
                let at = limit_arg.as_ref().map_or(column, |(_, c)| *c);
                let keys_arg = next();
                let priority: Vec<String> = match &keys_arg {
                    Some((Operand::Literal(Value::List(items)), _))
                        if items.iter().all(|i| matches!(i, Value::Str(_))) =>
                    {
                        items
                            .iter()
                            .map(|i| match i {
                                Value::Str(s) => s.to_string(),
                                _ => String::new(),
                            })
                            .collect()
                    }
                    Some((_, c)) => {
                        return fail(*c, "priority_keys must be a list of string literals");
                    }
                    None => Vec::new(),
                };
                if limit < 0 {
                    return fail(
                        at,
                        format!("invalid limit for limit function, {limit} cannot be negative"),
                    );
                }
                if limit < priority.len() as i64 {
                    return fail(
                        at,
                        format!(
                            "invalid limit for limit function, {limit} cannot be less than number of priority attributes {}",
                            priority.len()
                        ),
                    );
                }
                (
                    Editor::Limit {
                        limit: limit as usize,
                        priority,
                    },
                    vec![],
                )
            }
            "merge_maps" => {
                let source = required(next());
                let strategy_arg = next();
                let at = strategy_arg.as_ref().map_or(column, |(_, c)| *c);
                let strategy = match literal_str(&strategy_arg, "the strategy")?.as_deref() {
                    Some("insert") => Strategy::Insert,
                    Some("update") => Strategy::Update,
                    Some("upsert") => Strategy::Upsert,
                    other => {
                        return fail(
                            at,
                            format!(
                                "invalid value for strategy, {other:?}, must be 'insert', 'update' or 'upsert'"
                            ),
                        );
                    }
                };
                (Editor::MergeMaps(strategy), vec![source])
            }
            _ => {
                let prefix = literal_str(&next(), "the prefix")?.unwrap_or_default();
                let depth_arg = next();
                let depth = literal_int(&depth_arg, "the depth")?;
                if let Some(d) = depth.filter(|d| *d < 1) {
                    let at = depth_arg.as_ref().map_or(column, |(_, c)| *c);
                    return fail(
                        at,
                        format!("invalid depth '{d}' for flatten function, must be greater than 0"),
                    );
                }
                let resolve_conflicts =
                    literal_bool(&next(), "resolve_conflicts")?.unwrap_or(false);
                (
                    Editor::Flatten {
                        prefix,
                        depth: depth.unwrap_or(i64::MAX),
                        resolve_conflicts,
                    },
                    vec![],
                )
            }
        };
        let condition = if self.keyword("where") {
            Some(self.or()?)
        } else {
            None
        };
        Ok(Statement {
            editor,
            target,
            args,
            condition,
        })
    }
}

fn is_function(word: &str) -> bool {
    CONVERTERS.iter().any(|(n, _)| *n == word) || REFUSED_CONVERTERS.contains(&word)
}

fn is_enum_name(word: &str) -> bool {
    word.len() > 1
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The OTLP enum constants OTTL names.
fn enum_value(name: &str) -> Option<i64> {
    const SEVERITIES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let table: &[(&str, i64)] = &[
        ("SPAN_KIND_UNSPECIFIED", 0),
        ("SPAN_KIND_INTERNAL", 1),
        ("SPAN_KIND_SERVER", 2),
        ("SPAN_KIND_CLIENT", 3),
        ("SPAN_KIND_PRODUCER", 4),
        ("SPAN_KIND_CONSUMER", 5),
        ("STATUS_CODE_UNSET", 0),
        ("STATUS_CODE_OK", 1),
        ("STATUS_CODE_ERROR", 2),
        ("METRIC_DATA_TYPE_NONE", 0),
        ("METRIC_DATA_TYPE_GAUGE", 1),
        ("METRIC_DATA_TYPE_SUM", 2),
        ("METRIC_DATA_TYPE_HISTOGRAM", 3),
        ("METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM", 4),
        ("METRIC_DATA_TYPE_SUMMARY", 5),
        ("SEVERITY_NUMBER_UNSPECIFIED", 0),
        ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
        ("AGGREGATION_TEMPORALITY_DELTA", 1),
        ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
        ("FLAG_NONE", 0),
        ("FLAG_NO_RECORDED_VALUE", 1),
    ];
    if let Some((_, v)) = table.iter().find(|(n, _)| *n == name) {
        return Some(*v);
    }
    // SEVERITY_NUMBER_INFO = 9, SEVERITY_NUMBER_INFO2..4 = 10..12, and so on.
    let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
    let base = rest.trim_end_matches(|c: char| c.is_ascii_digit());
    let step: i64 = match &rest[base.len()..] {
        "" => 0,
        n @ ("2" | "3" | "4") => n.parse::<i64>().ok()? - 1,
        _ => return None,
    };
    let level = SEVERITIES.iter().position(|s| *s == base)? as i64;
    Some(level * 4 + 1 + step)
}

/// Parses one condition.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    parse_reading(text, &[])
}

/// Parses one condition whose context has these item converters (or refuses them).
pub fn parse_reading(text: &str, item_converters: &[ItemConverter]) -> Result<Expr, ParseError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return fail(1, "the condition is empty");
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        end: text.chars().count() + 1,
        item_converters,
    };
    let expr = parser.or()?;
    if parser.at < parser.tokens.len() {
        return fail(
            parser.column(),
            "expected `and`, `or` or the end of the condition",
        );
    }
    Ok(expr)
}

/// Parses one statement: `editor(args…)` and an optional `where` condition.
pub fn parse_statement(text: &str) -> Result<Statement, ParseError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return fail(1, "the statement is empty");
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        end: text.chars().count() + 1,
        item_converters: &[],
    };
    let statement = parser.statement()?;
    if parser.at < parser.tokens.len() {
        let what = if statement.condition.is_some() {
            "expected `and`, `or` or the end of the statement"
        } else {
            "expected `where` or the end of the statement"
        };
        return fail(parser.column(), what);
    }
    Ok(statement)
}
