//! Pratt parser following the operator precedence of Milvus' `Plan.g4`.

use super::ast::*;
use super::lexer::{Tok, Token, lex};
use super::{ExprError, MAX_DEPTH};

pub(crate) fn parse(input: &str) -> Result<Expr, ExprError> {
    let toks = lex(input)?;
    let mut p = Parser {
        toks,
        i: 0,
        src: input,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(p.err_here("empty expression"));
    }
    let (e, _) = p.expr(0)?;
    match p.peek() {
        Tok::Eof => Ok(e),
        Tok::RParen => Err(p.err_here("unbalanced ')': no matching '('")),
        Tok::Unsupported(op) => Err(p.err_here(unsupported_message(op))),
        _ => Err(p.err_here("unexpected token: expected an operator or the end of the expression")),
    }
}

fn unsupported_message(op: &str) -> String {
    match op {
        "=" => "'=' is not an operator: use '==' to compare".to_string(),
        "=~" | "!~" => format!("the regular-expression operator '{op}' is not supported"),
        _ => format!("the bitwise operator '{op}' is not supported"),
    }
}

struct Parser<'a> {
    toks: Vec<Token>,
    i: usize,
    src: &'a str,
    depth: usize,
}

type Parsed = (Expr, usize);

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].tok
    }
    fn peek_n(&self, n: usize) -> &Tok {
        let k = (self.i + n).min(self.toks.len() - 1);
        &self.toks[k].tok
    }
    fn span(&self) -> Span {
        self.toks[self.i].span
    }
    fn bump(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn token_text(&self, k: usize) -> String {
        let t = &self.toks[k];
        if t.tok == Tok::Eof {
            "<EOF>".to_string()
        } else {
            self.src[t.span.start..t.span.end].to_string()
        }
    }

    fn err_at(&self, k: usize, message: impl Into<String>) -> ExprError {
        ExprError::Syntax {
            pos: self.toks[k].span.start,
            token: self.token_text(k),
            message: message.into(),
        }
    }
    fn err_here(&self, message: impl Into<String>) -> ExprError {
        self.err_at(self.i, message)
    }

    fn too_deep(&self, span: Span) -> ExprError {
        ExprError::Syntax {
            pos: span.start,
            token: self.token_text(self.i),
            message: format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
        }
    }

    fn check_depth(&self, d: usize, span: Span) -> Result<usize, ExprError> {
        if d > MAX_DEPTH {
            Err(self.too_deep(span))
        } else {
            Ok(d)
        }
    }

    /// Parse an expression whose operators all bind at least as tightly as `min`.
    ///
    /// The recursive path (`expr` → `expr_inner` → `prefix`/`infix` → …) is split into small,
    /// non-inlined functions so each nesting level costs little stack even in debug builds.
    fn expr(&mut self, min: u8) -> Result<Parsed, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.too_deep(self.span()));
        }
        let r = self.expr_inner(min);
        self.depth -= 1;
        r
    }

    #[inline(never)]
    fn expr_inner(&mut self, min: u8) -> Result<Parsed, ExprError> {
        let mut acc = self.prefix()?;
        loop {
            let Some((lvl, kind)) = infix_of(self.peek(), self.peek_n(1)) else {
                if let Tok::Unsupported(op) = self.peek() {
                    return Err(self.unsupported_here(op));
                }
                break;
            };
            if lvl < min {
                break;
            }
            acc = self.infix(acc, lvl, kind)?;
        }
        Ok(acc)
    }

    #[inline(never)]
    fn infix(&mut self, lhs: Parsed, lvl: u8, kind: Infix) -> Result<Parsed, ExprError> {
        match kind {
            Infix::Or | Infix::And => self.nary(lhs, lvl, kind),
            Infix::Rel(op1) if self.is_range_ahead(op1) => self.range(lhs, op1),
            Infix::Rel(op) => self.binary(lhs, lvl, 1, move |l, r| ExprKind::Binary {
                op: BinaryOp::from_cmp(op),
                lhs: l,
                rhs: r,
            }),
            Infix::Bin(op) => self.binary(lhs, lvl, 1, move |l, r| ExprKind::Binary {
                op,
                lhs: l,
                rhs: r,
            }),
            Infix::In(negated) => {
                self.binary(lhs, lvl, if negated { 2 } else { 1 }, move |l, r| {
                    ExprKind::In {
                        lhs: l,
                        rhs: r,
                        negated,
                    }
                })
            }
            Infix::Like => self.binary(lhs, lvl, 1, |l, r| ExprKind::Like { lhs: l, pattern: r }),
        }
    }

    /// A left-associative binary operator (`ntoks` tokens long) at level `lvl`.
    #[inline(never)]
    fn binary(
        &mut self,
        (lhs, depth): Parsed,
        lvl: u8,
        ntoks: usize,
        make: impl FnOnce(Box<Expr>, Box<Expr>) -> ExprKind,
    ) -> Result<Parsed, ExprError> {
        for _ in 0..ntoks {
            self.bump();
        }
        let (rhs, rd) = self.expr(lvl + 1)?;
        let span = Span::new(lhs.span.start, rhs.span.end);
        let depth = self.check_depth(depth.max(rd) + 1, span)?;
        Ok((Expr::new(make(Box::new(lhs), Box::new(rhs)), span), depth))
    }

    /// `a or b or …` / `a and b and …` collected into one n-ary node.
    #[inline(never)]
    fn nary(&mut self, (lhs, depth): Parsed, lvl: u8, kind: Infix) -> Result<Parsed, ExprError> {
        let start = lhs.span.start;
        let mut items = vec![lhs];
        let mut d = depth;
        while matches!(infix_of(self.peek(), self.peek_n(1)), Some((_, k)) if k == kind) {
            self.bump();
            let (e, ed) = self.expr(lvl + 1)?;
            d = d.max(ed);
            items.push(e);
        }
        let span = Span::new(start, items.last().map_or(start, |e| e.span.end));
        let depth = self.check_depth(d + 1, span)?;
        let kind = if kind == Infix::Or {
            ExprKind::Or(items)
        } else {
            ExprKind::And(items)
        };
        Ok((Expr::new(kind, span), depth))
    }

    #[inline(never)]
    fn range(&mut self, (first, depth): Parsed, op1: CmpOp) -> Result<Parsed, ExprError> {
        self.bump();
        let t = self.bump();
        let target = match t.tok {
            Tok::Ident(name) => Expr::new(ExprKind::Ident(name), t.span),
            Tok::JsonIdent(base, path) => Expr::new(ExprKind::JsonPath { base, path }, t.span),
            _ => unreachable!("is_range_ahead checked the target token"),
        };
        let op2 = match self.bump().tok {
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            _ => unreachable!("is_range_ahead checked the second operator"),
        };
        let (second, sd) = self.expr(LVL_REL + 1)?;
        let span = Span::new(first.span.start, second.span.end);
        let depth = self.check_depth(depth.max(sd) + 1, span)?;
        let kind = ExprKind::Range {
            first: Box::new(first),
            op1,
            target: Box::new(target),
            op2,
            second: Box::new(second),
        };
        Ok((Expr::new(kind, span), depth))
    }

    /// At a relational operator: is this the grammar's `Range`/`ReverseRange` form
    /// `expr op1 (Identifier | JSONIdentifier) op2 expr` with both ops pointing the same way?
    fn is_range_ahead(&self, op1: CmpOp) -> bool {
        let target_ok = matches!(self.peek_n(1), Tok::Ident(_) | Tok::JsonIdent(..));
        let ascending = matches!(op1, CmpOp::Lt | CmpOp::Le);
        let op2_ok = match self.peek_n(2) {
            Tok::Lt | Tok::Le => ascending,
            Tok::Gt | Tok::Ge => !ascending,
            _ => false,
        };
        target_ok && op2_ok
    }

    #[inline(never)]
    fn prefix(&mut self) -> Result<Parsed, ExprError> {
        match self.peek() {
            Tok::LParen => self.paren(),
            Tok::Minus => self.minus(),
            Tok::Plus => {
                // Unary plus is the identity (Milvus drops it too).
                self.bump();
                self.expr(LVL_UNARY)
            }
            Tok::Not => self.unary(UnaryOp::Not, LVL_UNARY),
            Tok::Exists => self.unary(UnaryOp::Not, LVL_EXISTS),
            Tok::LBracket => self.list(),
            Tok::Ident(_) => self.name(),
            _ => self.leaf(),
        }
    }

    #[inline(never)]
    fn paren(&mut self) -> Result<Parsed, ExprError> {
        let open = self.bump().span;
        let (e, d) = self.expr(0)?;
        if self.peek() != &Tok::RParen {
            return Err(self.unclosed_paren(open));
        }
        self.bump();
        Ok((e, d))
    }

    #[cold]
    #[inline(never)]
    fn unclosed_paren(&self, open: Span) -> ExprError {
        self.err_here(format!(
            "expected ')' to close the '(' at position {}",
            open.start
        ))
    }

    #[cold]
    #[inline(never)]
    fn unsupported_here(&self, op: &str) -> ExprError {
        self.err_here(unsupported_message(op))
    }

    /// `-`: the literal -5 unless a tighter operator (`**`, `like`) follows the number.
    #[inline(never)]
    fn minus(&mut self) -> Result<Parsed, ExprError> {
        let literal_follows = matches!(self.peek_n(1), Tok::Int(_) | Tok::Float(_))
            && !matches!(self.peek_n(2), Tok::Pow | Tok::Like);
        if !literal_follows {
            return self.unary(UnaryOp::Neg, LVL_UNARY);
        }
        let start = self.bump().span.start;
        let lk = self.i;
        let lt = self.bump();
        let kind = match lt.tok {
            Tok::Int(v) if v <= i64::MAX as u64 => ExprKind::Int(-(v as i64)),
            Tok::Int(v) if v == 1u64 << 63 => ExprKind::Int(i64::MIN),
            Tok::Int(_) => return Err(self.err_at(lk, "integer literal out of range for Int64")),
            Tok::Float(x) => ExprKind::Float(-x),
            _ => unreachable!("checked above"),
        };
        Ok((Expr::new(kind, Span::new(start, lt.span.end)), 1))
    }

    /// A prefix operator (`not`, `-`, or `exists` when `lvl` is `LVL_EXISTS`).
    #[inline(never)]
    fn unary(&mut self, op: UnaryOp, lvl: u8) -> Result<Parsed, ExprError> {
        let start = self.bump().span.start;
        let (operand, d) = self.expr(lvl)?;
        let full = Span::new(start, operand.span.end);
        let d = self.check_depth(d + 1, full)?;
        let operand = Box::new(operand);
        let kind = if lvl == LVL_EXISTS {
            ExprKind::Exists(operand)
        } else {
            ExprKind::Unary { op, operand }
        };
        Ok((Expr::new(kind, full), d))
    }

    /// An identifier: a call, `x is [not] null`, or a plain name.
    #[inline(never)]
    fn name(&mut self) -> Result<Parsed, ExprError> {
        let t = self.bump();
        let Tok::Ident(name) = t.tok else {
            unreachable!("prefix checked the token")
        };
        if self.peek() == &Tok::LParen {
            return self.call(name, t.span);
        }
        self.maybe_is_null(Expr::new(ExprKind::Ident(name), t.span))
    }

    /// Literals, JSON paths, templates, and the errors for tokens that cannot start an expression.
    #[inline(never)]
    fn leaf(&mut self) -> Result<Parsed, ExprError> {
        let k = self.i;
        let t = self.bump();
        let span = t.span;
        let leaf = |kind| Ok((Expr::new(kind, span), 1));
        match t.tok {
            Tok::Int(v) => match i64::try_from(v) {
                Ok(v) => leaf(ExprKind::Int(v)),
                Err(_) => Err(self.err_at(k, "integer literal out of range for Int64")),
            },
            Tok::Float(x) => leaf(ExprKind::Float(x)),
            Tok::Str(s) => leaf(ExprKind::Str(s)),
            Tok::Bool(b) => leaf(ExprKind::Bool(b)),
            Tok::JsonIdent(base, path) => {
                self.maybe_is_null(Expr::new(ExprKind::JsonPath { base, path }, span))
            }
            Tok::LBrace => {
                let name = match self.peek().clone() {
                    Tok::Ident(n) => n,
                    _ => return Err(self.err_here("expected a template variable name after '{'")),
                };
                self.bump();
                if self.peek() != &Tok::RBrace {
                    return Err(self.err_here("expected '}' to close the template variable"));
                }
                let end = self.bump().span.end;
                Ok((
                    Expr::new(ExprKind::Template(name), Span::new(span.start, end)),
                    1,
                ))
            }
            Tok::Unsupported(op) => Err(self.err_at(k, unsupported_message(op))),
            Tok::Eof => Err(self.err_at(k, "expected an expression")),
            Tok::RParen => Err(self.err_at(k, "unbalanced ')': expected an expression")),
            Tok::IsNull | Tok::IsNotNull => {
                Err(self.err_at(k, "'is null' must follow a field name or JSON path"))
            }
            _ => Err(self.err_at(k, "unexpected token: expected an expression")),
        }
    }

    fn maybe_is_null(&mut self, e: Expr) -> Result<Parsed, ExprError> {
        let negated = match self.peek() {
            Tok::IsNull => false,
            Tok::IsNotNull => true,
            _ => return Ok((e, 1)),
        };
        let end = self.bump().span.end;
        let span = Span::new(e.span.start, end);
        Ok((
            Expr::new(
                ExprKind::IsNull {
                    operand: Box::new(e),
                    negated,
                },
                span,
            ),
            2,
        ))
    }

    /// Comma-separated expressions up to `close`, with an optional trailing comma.
    #[inline(never)]
    fn items(
        &mut self,
        close: Tok,
        what: &str,
        open: Span,
    ) -> Result<(Vec<Expr>, usize, usize), ExprError> {
        let mut items = Vec::new();
        let mut depth = 0;
        loop {
            if self.peek() == &close {
                break;
            }
            let (e, d) = self.expr(0)?;
            depth = depth.max(d);
            items.push(e);
            match self.peek() {
                Tok::Comma => {
                    self.bump();
                }
                t if t == &close => break,
                _ => return Err(self.unclosed_items(what, open)),
            }
        }
        let end = self.bump().span.end;
        Ok((items, depth, end))
    }

    #[cold]
    #[inline(never)]
    fn unclosed_items(&self, what: &str, open: Span) -> ExprError {
        self.err_here(format!(
            "expected ',' or the end of the {what} opened at position {}",
            open.start
        ))
    }

    #[inline(never)]
    fn list(&mut self) -> Result<Parsed, ExprError> {
        let open = self.bump().span;
        let (items, d, end) = self.items(Tok::RBracket, "list", open)?;
        let span = Span::new(open.start, end);
        let d = self.check_depth(d + 1, span)?;
        Ok((Expr::new(ExprKind::List(items), span), d))
    }

    #[inline(never)]
    fn call(&mut self, name: String, name_span: Span) -> Result<Parsed, ExprError> {
        let open = self.bump().span;
        let (args, d, end) = self.items(Tok::RParen, "argument list", open)?;
        let span = Span::new(name_span.start, end);
        let d = self.check_depth(d + 1, span)?;
        Ok((Expr::new(ExprKind::Call { name, args }, span), d))
    }
}

/// The infix operator a token starts (`not` only before `in`), with its binding level.
fn infix_of(tok: &Tok, next: &Tok) -> Option<(u8, Infix)> {
    Some(match tok {
        Tok::Or => (LVL_OR, Infix::Or),
        Tok::And => (LVL_AND, Infix::And),
        Tok::EqEq => (LVL_EQ, Infix::Bin(BinaryOp::Eq)),
        Tok::Ne => (LVL_EQ, Infix::Bin(BinaryOp::Ne)),
        Tok::Lt => (LVL_REL, Infix::Rel(CmpOp::Lt)),
        Tok::Le => (LVL_REL, Infix::Rel(CmpOp::Le)),
        Tok::Gt => (LVL_REL, Infix::Rel(CmpOp::Gt)),
        Tok::Ge => (LVL_REL, Infix::Rel(CmpOp::Ge)),
        Tok::In => (LVL_IN, Infix::In(false)),
        Tok::Not if next == &Tok::In => (LVL_IN, Infix::In(true)),
        Tok::Plus => (LVL_ADD, Infix::Bin(BinaryOp::Add)),
        Tok::Minus => (LVL_ADD, Infix::Bin(BinaryOp::Sub)),
        Tok::Star => (LVL_MUL, Infix::Bin(BinaryOp::Mul)),
        Tok::Slash => (LVL_MUL, Infix::Bin(BinaryOp::Div)),
        Tok::Percent => (LVL_MUL, Infix::Bin(BinaryOp::Mod)),
        Tok::Pow => (LVL_POW, Infix::Bin(BinaryOp::Pow)),
        Tok::Like => (LVL_LIKE, Infix::Like),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Infix {
    Or,
    And,
    Bin(BinaryOp),
    Rel(CmpOp),
    In(bool),
    Like,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn canon(s: &str) -> String {
        p(s).to_string()
    }

    #[test]
    fn precedence_matches_grammar() {
        assert_eq!(canon("a or b and c"), "a or b and c");
        assert!(
            matches!(p("a or b and c").kind, ExprKind::Or(ref v) if matches!(v[1].kind, ExprKind::And(_)))
        );
        assert!(
            matches!(p("not a and b").kind, ExprKind::And(ref v) if matches!(v[0].kind, ExprKind::Unary { .. }))
        );
        // `not` binds tighter than comparisons, as in Plan.g4.
        assert!(matches!(
            p("not a == b").kind,
            ExprKind::Binary {
                op: BinaryOp::Eq,
                ..
            }
        ));
        assert_eq!(canon("(a or b) and c"), "(a or b) and c");
        assert_eq!(canon("a + b * c"), "a + b * c");
        assert_eq!(canon("(a + b) * c"), "(a + b) * c");
        assert_eq!(canon("a - (b - c)"), "a - (b - c)");
        assert_eq!(canon("a - b - c"), "a - b - c");
        // ** is left-associative in the grammar and binds tighter than unary minus.
        assert_eq!(canon("2 ** 3 ** 2"), "2 ** 3 ** 2");
        assert!(matches!(
            p("-2 ** 2").kind,
            ExprKind::Unary {
                op: UnaryOp::Neg,
                ..
            }
        ));
        assert!(
            matches!(p("-2 * 2").kind, ExprKind::Binary { ref lhs, .. } if lhs.kind == ExprKind::Int(-2))
        );
        assert_eq!(canon("x in [1, 2] == true"), "x in [1, 2] == true");
        assert_eq!(canon("a && b || !c"), "a and b or not c");
        assert_eq!(canon("A AND B OR NOT C"), "A and B or not C");
    }

    #[test]
    fn ranges() {
        let e = p("1 < x <= 5");
        assert!(matches!(
            e.kind,
            ExprKind::Range {
                op1: CmpOp::Lt,
                op2: CmpOp::Le,
                ..
            }
        ));
        let e = p(r#"10 >= m["a"] > 2"#);
        assert!(matches!(
            e.kind,
            ExprKind::Range {
                op1: CmpOp::Ge,
                op2: CmpOp::Gt,
                ..
            }
        ));
        // Mixed directions are not a range: (1 < x) > 0.
        assert!(matches!(
            p("1 < x > 0").kind,
            ExprKind::Binary {
                op: BinaryOp::Gt,
                ..
            }
        ));
        assert_eq!(canon("(1 < x) < 5"), "(1 < x) < 5");
        assert_eq!(canon("1 + 1 < x < 2 * 3"), "1 + 1 < x < 2 * 3");
    }

    #[test]
    fn literals_and_forms() {
        assert_eq!(p("-9223372036854775808").kind, ExprKind::Int(i64::MIN));
        assert!(parse("9223372036854775808").is_err());
        assert_eq!(canon("x == -(5)"), "x == -(5)");
        assert_eq!(canon("x == - 5"), "x == -5");
        assert_eq!(canon("[1, 'a', 2.5, true,]"), r#"[1, "a", 2.5, true]"#);
        assert_eq!(canon("[ ]"), "[]");
        assert_eq!(
            canon("json_contains(m['a'], 1)"),
            r#"json_contains(m["a"], 1)"#
        );
        assert_eq!(
            canon("x in {ids} and y > { lo }"),
            "x in {ids} and y > {lo}"
        );
        assert_eq!(
            canon("exists m['a'] and m['b'] is not null"),
            r#"exists m["a"] and m["b"] is not null"#
        );
        assert_eq!(canon("x NOT IN [1]"), "x not in [1]");
        assert_eq!(canon("+x > +1"), "x > 1");
        assert_eq!(canon(r#"s like "a%" LIKE "b""#), r#"s like "a%" like "b""#);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("age >").unwrap_err();
        assert_eq!(
            e,
            ExprError::Syntax {
                pos: 5,
                token: "<EOF>".into(),
                message: "expected an expression".into()
            }
        );
        let e = parse("(age > 1").unwrap_err();
        assert!(
            matches!(e, ExprError::Syntax { pos: 8, ref token, .. } if token == "<EOF>"),
            "{e:?}"
        );
        let e = parse("age > 1)").unwrap_err();
        assert!(
            matches!(e, ExprError::Syntax { pos: 7, ref token, .. } if token == ")"),
            "{e:?}"
        );
        let e = parse("age = 1").unwrap_err();
        assert!(
            matches!(e, ExprError::Syntax { pos: 4, ref token, .. } if token == "="),
            "{e:?}"
        );
        let e = parse("a b").unwrap_err();
        assert!(
            matches!(e, ExprError::Syntax { pos: 2, ref token, .. } if token == "b"),
            "{e:?}"
        );
        let e = parse("   ").unwrap_err();
        assert!(matches!(e, ExprError::Syntax { pos: 3, .. }), "{e:?}");
        let e = parse("a & b").unwrap_err();
        assert!(
            matches!(e, ExprError::Syntax { pos: 2, ref token, .. } if token == "&"),
            "{e:?}"
        );
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&deep).is_err());
        let chain = vec!["1"; 5000].join(" + ");
        assert!(parse(&chain).is_err());
        let nots = format!("{}x", "not ".repeat(10_000));
        assert!(parse(&nots).is_err());
        // Long and/or chains are flat, so they are fine.
        let ors = (0..20_000)
            .map(|i| format!("id == {i}"))
            .collect::<Vec<_>>()
            .join(" or ");
        assert!(matches!(parse(&ors).unwrap().kind, ExprKind::Or(ref v) if v.len() == 20_000));
    }
}
