//! Text → [`Expr`]: a tokenizer that remembers columns, and a recursive-descent parser.

use crate::{Expr, Op, Operand, Path, Value};

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
    Open,
    Close,
    OpenBracket,
    CloseBracket,
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
            ',' => Some(Token::Comma),
            '.' => Some(Token::Dot),
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
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let token = if text.contains('.') {
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

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    end: usize,
}

impl Parser {
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
            self.at += 1;
            let inner = self.or()?;
            self.expect(Token::Close, "`)`")?;
            return Ok(inner);
        }
        let column = self.column();
        let left = self.operand()?;
        if let Some(Token::Op(op)) = self.peek() {
            let op = *op;
            self.at += 1;
            let right = self.operand()?;
            return Ok(Expr::Compare(left, op, right));
        }
        match left {
            Operand::Literal(Value::Bool(_)) | Operand::IsMatch(..) | Operand::Path(_) => {
                Ok(Expr::Truth(left))
            }
            _ => fail(
                column,
                "expected a condition: a comparison, IsMatch(…), true or false",
            ),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        match self.next() {
            Some(Token::Str(s)) => Ok(Operand::Literal(Value::Str(s.into()))),
            Some(Token::Bytes(b)) => Ok(Operand::Literal(Value::Bytes(b.into()))),
            Some(Token::Int(i)) => Ok(Operand::Literal(Value::Int(i))),
            Some(Token::Float(f)) => Ok(Operand::Literal(Value::Double(f))),
            Some(Token::Ident(word)) => match word.as_str() {
                "nil" => Ok(Operand::Literal(Value::Nil)),
                "true" => Ok(Operand::Literal(Value::Bool(true))),
                "false" => Ok(Operand::Literal(Value::Bool(false))),
                "and" | "or" | "not" => fail(column, format!("expected a value, found `{word}`")),
                _ if self.peek() == Some(&Token::Open) => self.call(word, column),
                _ if is_enum_name(&word) => match enum_value(&word) {
                    Some(v) => Ok(Operand::Literal(Value::Int(v))),
                    None => fail(column, format!("unknown enum `{word}`")),
                },
                _ => self.path(word, column),
            },
            Some(_) => fail(column, "expected a value"),
            None => fail(column, "expected a value, found the end of the condition"),
        }
    }

    fn call(&mut self, name: String, column: usize) -> Result<Operand, ParseError> {
        match name.as_str() {
            "IsMatch" => {}
            "TraceID" => return self.id(16),
            "SpanID" => return self.id(8),
            _ => {
                return fail(
                    column,
                    format!(
                        "unsupported function `{name}`; the filter supports IsMatch, TraceID and SpanID"
                    ),
                );
            }
        }
        self.expect(Token::Open, "`(`")?;
        let target = self.operand()?;
        self.expect(Token::Comma, "`,` and a pattern")?;
        let pattern_column = self.column();
        let Some(Token::Str(pattern)) = self.next() else {
            return fail(pattern_column, "IsMatch's pattern must be a string literal");
        };
        let regex = regex::Regex::new(&pattern).or_else(|e| {
            fail(
                pattern_column,
                format!(
                    "invalid regex: {}",
                    e.to_string().lines().last().unwrap_or("")
                ),
            )
        })?;
        self.expect(Token::Close, "`)`")?;
        Ok(Operand::IsMatch(Box::new(target), regex))
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
        let mut key = None;
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            let key_column = self.column();
            match self.next() {
                Some(Token::Str(k)) => key = Some(k),
                _ => {
                    return fail(
                        key_column,
                        "expected a string key, as in attributes[\"key\"]",
                    );
                }
            }
            self.expect(Token::CloseBracket, "`]`")?;
            if self.peek() == Some(&Token::OpenBracket) {
                return fail(self.column(), "nested keys are not supported");
            }
        }
        Ok(Operand::Path(Path {
            segments,
            key,
            column,
        }))
    }
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
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return fail(1, "the condition is empty");
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        end: text.chars().count() + 1,
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
