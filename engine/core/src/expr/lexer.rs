//! Hand-written lexer for the Milvus expression grammar (`Plan.g4`).

use super::ExprError;
use super::ast::{PathSeg, Span};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Integer literal magnitude (a leading `-` is a separate token).
    Int(u64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// A name, or `$meta`.
    Ident(String),
    /// `name["k"][0]…` written without spaces, as the grammar's `JSONIdentifier`.
    JsonIdent(String, Vec<PathSeg>),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    And,
    Or,
    Not,
    In,
    Like,
    Exists,
    IsNull,
    IsNotNull,
    /// An operator of the grammar that filters do not support (`<<`, `&`, `=~`, `=`, …).
    Unsupported(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

pub(crate) fn lex(input: &str) -> Result<Vec<Token>, ExprError> {
    let mut lx = Lexer {
        src: input,
        b: input.as_bytes(),
        i: 0,
        out: Vec::new(),
    };
    lx.run()?;
    Ok(lx.out)
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    out: Vec<Token>,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}
fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Lexer<'a> {
    fn peek_at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: Span::new(start, self.i),
        });
    }

    fn err(&self, pos: usize, end: usize, message: impl Into<String>) -> ExprError {
        let end = end.min(self.src.len()).max(pos);
        let mut end = end;
        while !self.src.is_char_boundary(end) {
            end += 1;
        }
        ExprError::Syntax {
            pos,
            token: self.src[pos..end].to_string(),
            message: message.into(),
        }
    }

    /// Error for the character at `pos`.
    fn err_char(&self, pos: usize, message: impl Into<String>) -> ExprError {
        let len = self.src[pos..].chars().next().map_or(0, char::len_utf8);
        self.err(pos, pos + len, message)
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while self.i < self.b.len() {
            let start = self.i;
            let c = self.b[self.i];
            let next = self.peek_at(self.i + 1);
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'0'..=b'9' => self.number()?,
                b'.' if next.is_some_and(|n| n.is_ascii_digit()) => self.number()?,
                b'"' | b'\'' => {
                    let s = self.string(start, false)?;
                    self.push(Tok::Str(s), start);
                }
                c if is_ident_start(c) => self.word()?,
                b'$' => {
                    let mut j = self.i + 1;
                    while self.peek_at(j).is_some_and(is_ident_char) {
                        j += 1;
                    }
                    if &self.src[self.i..j] != "$meta" {
                        return Err(self.err(start, j, "unexpected '$': only $meta is supported"));
                    }
                    self.i = j;
                    self.name_or_path("$meta".to_string(), start)?;
                }
                b'(' => self.single(Tok::LParen),
                b')' => self.single(Tok::RParen),
                b'[' => self.single(Tok::LBracket),
                b']' => self.single(Tok::RBracket),
                b'{' => self.single(Tok::LBrace),
                b'}' => self.single(Tok::RBrace),
                b',' => self.single(Tok::Comma),
                b'+' => self.single(Tok::Plus),
                b'-' => self.single(Tok::Minus),
                b'/' => self.single(Tok::Slash),
                b'%' => self.single(Tok::Percent),
                b'*' => self.one_or_two(b'*', Tok::Star, Tok::Pow),
                b'<' => match next {
                    Some(b'=') => self.double(Tok::Le),
                    Some(b'<') => self.double(Tok::Unsupported("<<")),
                    _ => self.single(Tok::Lt),
                },
                b'>' => match next {
                    Some(b'=') => self.double(Tok::Ge),
                    Some(b'>') => self.double(Tok::Unsupported(">>")),
                    _ => self.single(Tok::Gt),
                },
                b'=' => match next {
                    Some(b'=') => self.double(Tok::EqEq),
                    Some(b'~') => self.double(Tok::Unsupported("=~")),
                    _ => self.single(Tok::Unsupported("=")),
                },
                b'!' => match next {
                    Some(b'=') => self.double(Tok::Ne),
                    Some(b'~') => self.double(Tok::Unsupported("!~")),
                    _ => self.single(Tok::Not),
                },
                b'&' => self.one_or_two(b'&', Tok::Unsupported("&"), Tok::And),
                b'|' => self.one_or_two(b'|', Tok::Unsupported("|"), Tok::Or),
                b'^' => self.single(Tok::Unsupported("^")),
                b'~' => self.single(Tok::Unsupported("~")),
                _ => return Err(self.err_char(start, "unexpected character")),
            }
        }
        let end = self.b.len();
        self.out.push(Token {
            tok: Tok::Eof,
            span: Span::new(end, end),
        });
        Ok(())
    }

    fn single(&mut self, tok: Tok) {
        let start = self.i;
        self.i += 1;
        self.push(tok, start);
    }

    fn double(&mut self, tok: Tok) {
        let start = self.i;
        self.i += 2;
        self.push(tok, start);
    }

    fn one_or_two(&mut self, second: u8, one: Tok, two: Tok) {
        if self.peek_at(self.i + 1) == Some(second) {
            self.double(two)
        } else {
            self.single(one)
        }
    }

    fn digits(&mut self, pred: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while self.peek_at(self.i).is_some_and(&pred) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), ExprError> {
        let start = self.i;
        let radix_prefix = match (self.b[self.i], self.peek_at(self.i + 1)) {
            (b'0', Some(b'x' | b'X')) => Some(16),
            (b'0', Some(b'b' | b'B')) => Some(2),
            _ => None,
        };
        if let Some(radix) = radix_prefix {
            self.i += 2;
            let n = self.digits(|c| (c as char).is_digit(radix));
            if n == 0 {
                return Err(self.err(start, self.i, "malformed integer literal"));
            }
            if radix == 16 && matches!(self.peek_at(self.i), Some(b'.' | b'p' | b'P')) {
                return Err(self.err(
                    start,
                    self.i + 1,
                    "hexadecimal floating constants are not supported",
                ));
            }
            let text = &self.src[start + 2..self.i];
            let v = u64::from_str_radix(text, radix)
                .map_err(|_| self.err(start, self.i, "integer literal out of range"))?;
            self.push(Tok::Int(v), start);
            return Ok(());
        }
        let int_digits = self.digits(|c| c.is_ascii_digit());
        let int_end = self.i;
        let mut is_float = false;
        let mut frac = "";
        if self.peek_at(self.i) == Some(b'.') {
            is_float = true;
            self.i += 1;
            let fs = self.i;
            self.digits(|c| c.is_ascii_digit());
            frac = &self.src[fs..self.i];
        }
        let mut exp = "";
        if matches!(self.peek_at(self.i), Some(b'e' | b'E')) {
            let es = self.i;
            let mut j = self.i + 1;
            if matches!(self.peek_at(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if self.peek_at(j).is_some_and(|c| c.is_ascii_digit()) {
                self.i = j;
                self.digits(|c| c.is_ascii_digit());
                exp = &self.src[es..self.i];
                is_float = true;
            } else {
                return Err(self.err(start, j, "malformed exponent in number"));
            }
        }
        if is_float {
            let int_part = if int_digits == 0 {
                "0"
            } else {
                &self.src[start..int_end]
            };
            let frac = if frac.is_empty() { "0" } else { frac };
            let text = format!("{int_part}.{frac}{exp}");
            let v: f64 = text
                .parse()
                .map_err(|_| self.err(start, self.i, "malformed floating literal"))?;
            if !v.is_finite() {
                return Err(self.err(start, self.i, "floating literal out of range"));
            }
            self.push(Tok::Float(v), start);
            return Ok(());
        }
        let text = &self.src[start..self.i];
        let v = if text.len() > 1 && text.starts_with('0') {
            if !text.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
                return Err(self.err(start, self.i, "invalid digit in octal literal"));
            }
            u64::from_str_radix(&text[1..], 8)
        } else {
            text.parse::<u64>()
        };
        let v = v.map_err(|_| self.err(start, self.i, "integer literal out of range"))?;
        self.push(Tok::Int(v), start);
        Ok(())
    }

    /// Lex a quoted string whose opening quote is at `self.i`; `start` is where the token began
    /// (before any prefix). Returns the decoded value.
    fn string(&mut self, start: usize, raw: bool) -> Result<String, ExprError> {
        let quote = self.b[self.i];
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        let unterminated = |lx: &Self| {
            let line_end = lx.src[start..]
                .find(['\r', '\n'])
                .map_or(lx.src.len(), |k| start + k);
            lx.err(
                start,
                line_end.min(start + 40),
                "unterminated string literal",
            )
        };
        loop {
            let Some(c) = self.peek_at(self.i) else {
                return Err(unterminated(self));
            };
            match c {
                b'\r' | b'\n' => return Err(unterminated(self)),
                c if c == quote => {
                    self.i += 1;
                    break;
                }
                b'\\' if raw => {
                    // A backslash is kept verbatim; it only stops the next character from closing.
                    match self.peek_at(self.i + 1) {
                        None | Some(b'\r' | b'\n') => return Err(unterminated(self)),
                        Some(_) => {
                            out.push(b'\\');
                            self.i += 1;
                            let len = self.src[self.i..].chars().next().map_or(1, char::len_utf8);
                            out.extend_from_slice(&self.b[self.i..self.i + len]);
                            self.i += len;
                        }
                    }
                }
                b'\\' => self.escape(&mut out, start)?,
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out)
            .map_err(|_| self.err(start, self.i, "string literal is not valid UTF-8"))
    }

    /// Decode one escape sequence at `self.i` (a backslash), Go `strconv.Unquote` style.
    fn escape(&mut self, out: &mut Vec<u8>, start: usize) -> Result<(), ExprError> {
        let esc = self.i;
        let Some(c) = self.peek_at(esc + 1) else {
            return Err(self.err(start, self.b.len(), "unterminated string literal"));
        };
        let simple = match c {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
            self.i += 2;
            return Ok(());
        }
        let hex = |lx: &Self, from: usize, n: usize| -> Option<u32> {
            let s = lx.src.get(from..from + n)?;
            if s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit()) {
                u32::from_str_radix(s, 16).ok()
            } else {
                None
            }
        };
        match c {
            b'0'..=b'7' => {
                let s = self.src.get(esc + 1..esc + 4).unwrap_or("");
                let v = (s.len() == 3 && s.bytes().all(|c| (b'0'..=b'7').contains(&c)))
                    .then(|| u32::from_str_radix(s, 8).ok())
                    .flatten()
                    .filter(|v| *v <= 255)
                    .ok_or_else(|| {
                        self.err(
                            esc,
                            esc + 4,
                            "invalid octal escape (need exactly 3 octal digits, at most \\377)",
                        )
                    })?;
                out.push(v as u8);
                self.i = esc + 4;
            }
            b'x' => {
                let v = hex(self, esc + 2, 2).ok_or_else(|| {
                    self.err(esc, esc + 4, "invalid \\x escape (need 2 hex digits)")
                })?;
                out.push(v as u8);
                self.i = esc + 4;
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                let ch = hex(self, esc + 2, n)
                    .and_then(char::from_u32)
                    .ok_or_else(|| self.err(esc, esc + 2 + n, "invalid unicode escape"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                self.i = esc + 2 + n;
            }
            _ => return Err(self.err_char_range(esc, "invalid escape sequence")),
        }
        Ok(())
    }

    /// Error covering the backslash at `pos` and the character after it.
    fn err_char_range(&self, pos: usize, message: &str) -> ExprError {
        let len = self.src[pos + 1..].chars().next().map_or(0, char::len_utf8);
        self.err(pos, pos + 1 + len, message)
    }

    fn word(&mut self) -> Result<(), ExprError> {
        let start = self.i;
        while self.peek_at(self.i).is_some_and(is_ident_char) {
            self.i += 1;
        }
        let text = &self.src[start..self.i];
        let next = self.peek_at(self.i);
        if matches!(next, Some(b'"' | b'\'')) {
            // Encoding prefixes (ignored) and raw strings.
            match text {
                "u8" | "u" | "U" | "L" => {
                    let s = self.string(start, false)?;
                    self.push(Tok::Str(s), start);
                    return Ok(());
                }
                "r" | "R" => {
                    let s = self.string(start, true)?;
                    self.push(Tok::Str(s), start);
                    return Ok(());
                }
                _ => {}
            }
        }
        let tok = match text {
            "and" | "AND" => Tok::And,
            "or" | "OR" => Tok::Or,
            "not" | "NOT" => Tok::Not,
            "in" | "IN" => Tok::In,
            "like" | "LIKE" => Tok::Like,
            "exists" | "EXISTS" => Tok::Exists,
            "true" | "True" | "TRUE" => Tok::Bool(true),
            "false" | "False" | "FALSE" => Tok::Bool(false),
            "is" | "IS" => {
                if let Some((tok, end)) = self.is_null_suffix(self.i) {
                    self.i = end;
                    tok
                } else {
                    return self.name_or_path(text.to_string(), start);
                }
            }
            _ => return self.name_or_path(text.to_string(), start),
        };
        self.push(tok, start);
        Ok(())
    }

    /// After `is`: ` null` or ` not null` (each word all-lowercase or all-uppercase).
    fn is_null_suffix(&self, mut j: usize) -> Option<(Tok, usize)> {
        let word = |j: &mut usize| -> Option<&'a str> {
            let ws = *j;
            while matches!(self.peek_at(*j), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                *j += 1;
            }
            if *j == ws {
                return None;
            }
            let s = *j;
            while self.peek_at(*j).is_some_and(is_ident_char) {
                *j += 1;
            }
            Some(&self.src[s..*j])
        };
        match word(&mut j)? {
            "null" | "NULL" => Some((Tok::IsNull, j)),
            "not" | "NOT" => match word(&mut j)? {
                "null" | "NULL" => Some((Tok::IsNotNull, j)),
                _ => None,
            },
            _ => None,
        }
    }

    /// An identifier just lexed (ending at `self.i`), possibly followed by a JSON path.
    fn name_or_path(&mut self, name: String, start: usize) -> Result<(), ExprError> {
        if self.peek_at(self.i) != Some(b'[') {
            self.push(Tok::Ident(name), start);
            return Ok(());
        }
        let mut path = Vec::new();
        while self.peek_at(self.i) == Some(b'[') {
            self.i += 1;
            self.skip_ws();
            let seg_start = self.i;
            let seg = match self.peek_at(self.i) {
                Some(b'"' | b'\'') => PathSeg::Key(self.string(seg_start, false)?),
                Some(b'r' | b'R') if matches!(self.peek_at(self.i + 1), Some(b'"' | b'\'')) => {
                    self.i += 1;
                    PathSeg::Key(self.string(seg_start, true)?)
                }
                Some(b'0'..=b'9') => {
                    self.digits(|c| c.is_ascii_digit());
                    let text = &self.src[seg_start..self.i];
                    if text.len() > 1 && text.starts_with('0') {
                        return Err(self.err(
                            seg_start,
                            self.i,
                            "JSON array index must not have leading zeros",
                        ));
                    }
                    let n = text.parse::<u64>().map_err(|_| {
                        self.err(seg_start, self.i, "JSON array index out of range")
                    })?;
                    PathSeg::Index(n)
                }
                Some(_) => {
                    return Err(self.err_char(
                        seg_start,
                        "a JSON path key must be a quoted string or a non-negative integer index",
                    ));
                }
                None => {
                    return Err(self.err(
                        self.b.len(),
                        self.b.len(),
                        "unterminated JSON path: expected ']'",
                    ));
                }
            };
            if let PathSeg::Key(k) = &seg
                && k.is_empty()
            {
                return Err(self.err(seg_start, self.i, "a JSON path key must not be empty"));
            }
            self.skip_ws();
            if self.peek_at(self.i) != Some(b']') {
                return Err(if self.i >= self.b.len() {
                    self.err(self.i, self.i, "unterminated JSON path: expected ']'")
                } else {
                    self.err_char(self.i, "expected ']' in JSON path")
                });
            }
            self.i += 1;
            path.push(seg);
        }
        self.push(Tok::JsonIdent(name, path), start);
        Ok(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek_at(self.i), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("0x1F 0b101 017 0 42"),
            vec![
                Tok::Int(31),
                Tok::Int(5),
                Tok::Int(15),
                Tok::Int(0),
                Tok::Int(42),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("1.5 .5 1. 1e3 2.5E-1 1.e2"),
            vec![
                Tok::Float(1.5),
                Tok::Float(0.5),
                Tok::Float(1.0),
                Tok::Float(1000.0),
                Tok::Float(0.25),
                Tok::Float(100.0),
                Tok::Eof
            ]
        );
        assert!(lex("09").is_err());
        assert!(lex("1e").is_err());
        assert!(lex("1e999").is_err());
        assert!(lex("99999999999999999999").is_err());
        assert_eq!(
            toks("18446744073709551615"),
            vec![Tok::Int(u64::MAX), Tok::Eof]
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a\"b" 'c\'d' "\x41\101\u00e9\n" 'x"y' r"a\%b" u8"z""#),
            vec![
                Tok::Str("a\"b".into()),
                Tok::Str("c'd".into()),
                Tok::Str("AAé\n".into()),
                Tok::Str("x\"y".into()),
                Tok::Str("a\\%b".into()),
                Tok::Str("z".into()),
                Tok::Eof
            ]
        );
        let e = lex(r#"x == "abc"#).unwrap_err();
        assert!(
            matches!(e, ExprError::Syntax { pos: 5, ref token, .. } if token == "\"abc"),
            "{e:?}"
        );
        assert!(lex(r#""\q""#).is_err());
        assert!(lex(r#""\xff""#).is_err(), "invalid UTF-8");
    }

    #[test]
    fn words_paths_and_operators() {
        assert_eq!(
            toks("a and B AND c && d || e OR f not g NOT h ! i"),
            vec![
                Tok::Ident("a".into()),
                Tok::And,
                Tok::Ident("B".into()),
                Tok::And,
                Tok::Ident("c".into()),
                Tok::And,
                Tok::Ident("d".into()),
                Tok::Or,
                Tok::Ident("e".into()),
                Tok::Or,
                Tok::Ident("f".into()),
                Tok::Not,
                Tok::Ident("g".into()),
                Tok::Not,
                Tok::Ident("h".into()),
                Tok::Not,
                Tok::Ident("i".into()),
                Tok::Eof
            ]
        );
        assert_eq!(toks("And"), vec![Tok::Ident("And".into()), Tok::Eof]);
        assert_eq!(
            toks(r#"m["a"][0]['b'] $meta["k"]"#),
            vec![
                Tok::JsonIdent(
                    "m".into(),
                    vec![
                        PathSeg::Key("a".into()),
                        PathSeg::Index(0),
                        PathSeg::Key("b".into())
                    ]
                ),
                Tok::JsonIdent("$meta".into(), vec![PathSeg::Key("k".into())]),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("x is null y IS NOT NULL is"),
            vec![
                Tok::Ident("x".into()),
                Tok::IsNull,
                Tok::Ident("y".into()),
                Tok::IsNotNull,
                Tok::Ident("is".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("<= >= < > == != ** * << ="),
            vec![
                Tok::Le,
                Tok::Ge,
                Tok::Lt,
                Tok::Gt,
                Tok::EqEq,
                Tok::Ne,
                Tok::Pow,
                Tok::Star,
                Tok::Unsupported("<<"),
                Tok::Unsupported("="),
                Tok::Eof
            ]
        );
        assert!(lex(r#"m[""]"#).is_err());
        assert!(lex("m[01]").is_err());
        assert!(lex("m[abc]").is_err());
        assert!(lex("é").is_err());
    }
}
