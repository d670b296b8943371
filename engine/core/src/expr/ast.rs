//! The expression AST and its canonical printed form.

use std::fmt::{self, Write as _};

/// Byte range of a node in the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// An expression node. Equality ignores spans, so a re-parsed canonical form equals the original.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr { kind, span }
    }
    /// Byte offset of the node's first token.
    pub fn pos(&self) -> usize {
        self.span.start
    }
}

/// One step of a JSON path: `["key"]` or `[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`, `!x`
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    /// The operator with its operands swapped (`a < b` ⇔ `b > a`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::Ne => CmpOp::Ne,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }
    /// Apply to the result of a comparison; `None` (incomparable: type mismatch, missing value,
    /// NaN) is false for every operator except `!=`.
    #[inline]
    pub fn test(self, ord: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ord == Some(Equal),
            CmpOp::Ne => ord != Some(Equal),
            CmpOp::Lt => ord == Some(Less),
            CmpOp::Le => matches!(ord, Some(Less | Equal)),
            CmpOp::Gt => ord == Some(Greater),
            CmpOp::Ge => matches!(ord, Some(Greater | Equal)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "**",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
        }
    }
    pub fn as_cmp(self) -> Option<CmpOp> {
        Some(match self {
            BinaryOp::Eq => CmpOp::Eq,
            BinaryOp::Ne => CmpOp::Ne,
            BinaryOp::Lt => CmpOp::Lt,
            BinaryOp::Le => CmpOp::Le,
            BinaryOp::Gt => CmpOp::Gt,
            BinaryOp::Ge => CmpOp::Ge,
            _ => return None,
        })
    }
    pub fn from_cmp(op: CmpOp) -> BinaryOp {
        match op {
            CmpOp::Eq => BinaryOp::Eq,
            CmpOp::Ne => BinaryOp::Ne,
            CmpOp::Lt => BinaryOp::Lt,
            CmpOp::Le => BinaryOp::Le,
            CmpOp::Gt => BinaryOp::Gt,
            CmpOp::Ge => BinaryOp::Ge,
        }
    }
    pub fn is_arith(self) -> bool {
        self.as_cmp().is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// `[a, b, c]`
    List(Vec<Expr>),
    /// A plain name: a field, a dynamic key, or `$meta`.
    Ident(String),
    /// `base["k"][0]…` (`base` may be `$meta`); `path` is never empty.
    JsonPath {
        base: String,
        path: Vec<PathSeg>,
    },
    /// `{name}`
    Template(String),
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `a and b and …` (at least two operands).
    And(Vec<Expr>),
    /// `a or b or …` (at least two operands).
    Or(Vec<Expr>),
    /// `first op1 target op2 second` with both ops in `<`/`<=` or both in `>`/`>=`.
    Range {
        first: Box<Expr>,
        op1: CmpOp,
        target: Box<Expr>,
        op2: CmpOp,
        second: Box<Expr>,
    },
    /// `lhs in rhs`, `lhs not in rhs`
    In {
        lhs: Box<Expr>,
        rhs: Box<Expr>,
        negated: bool,
    },
    /// `lhs like pattern`
    Like {
        lhs: Box<Expr>,
        pattern: Box<Expr>,
    },
    /// `exists operand`
    Exists(Box<Expr>),
    /// `operand is null`, `operand is not null`
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
    /// `name(args…)`
    Call {
        name: String,
        args: Vec<Expr>,
    },
}

// Binding levels (higher binds tighter); they mirror the parser's.
pub(crate) const LVL_OR: u8 = 1;
pub(crate) const LVL_AND: u8 = 2;
pub(crate) const LVL_EQ: u8 = 6;
pub(crate) const LVL_REL: u8 = 7;
pub(crate) const LVL_IN: u8 = 9;
pub(crate) const LVL_ADD: u8 = 11;
pub(crate) const LVL_MUL: u8 = 12;
pub(crate) const LVL_UNARY: u8 = 13;
pub(crate) const LVL_POW: u8 = 14;
pub(crate) const LVL_LIKE: u8 = 15;
pub(crate) const LVL_EXISTS: u8 = 16;
const LVL_PRIMARY: u8 = 17;

pub(crate) fn binary_level(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Eq | BinaryOp::Ne => LVL_EQ,
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => LVL_REL,
        BinaryOp::Add | BinaryOp::Sub => LVL_ADD,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => LVL_MUL,
        BinaryOp::Pow => LVL_POW,
    }
}

fn level(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Or(_) => LVL_OR,
        ExprKind::And(_) => LVL_AND,
        ExprKind::Binary { op, .. } => binary_level(*op),
        ExprKind::Range { .. } => LVL_REL,
        ExprKind::In { .. } => LVL_IN,
        ExprKind::Unary { .. } => LVL_UNARY,
        // A negative literal prints with a leading '-', so it binds like a unary minus.
        ExprKind::Int(i) if *i < 0 => LVL_UNARY,
        ExprKind::Float(f) if f.is_sign_negative() => LVL_UNARY,
        ExprKind::Like { .. } => LVL_LIKE,
        ExprKind::Exists(_) => LVL_EXISTS,
        _ => LVL_PRIMARY,
    }
}

fn child(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

/// Write `s` as a double-quoted string literal that the lexer reads back to `s`.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    // `{:?}` always prints a '.', an exponent, or both ("1.0", "1e-7", "1.5e300"), which the lexer
    // reads back as a float; non-finite values have no literal form.
    if x.is_finite() {
        write!(f, "{x:?}")
    } else if x.is_nan() {
        f.write_str("(0.0 / 0.0)")
    } else if x > 0.0 {
        f.write_str("(1.0 / 0.0)")
    } else {
        f.write_str("(-1.0 / 0.0)")
    }
}

fn write_path(f: &mut fmt::Formatter<'_>, base: &str, path: &[PathSeg]) -> fmt::Result {
    f.write_str(base)?;
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                f.write_char('[')?;
                write_quoted(f, k)?;
                f.write_char(']')?;
            }
            PathSeg::Index(i) => write!(f, "[{i}]")?,
        }
    }
    Ok(())
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Int(i) => write!(f, "{i}"),
            ExprKind::Float(x) => write_float(f, *x),
            ExprKind::Str(s) => write_quoted(f, s),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::List(items) => {
                f.write_char('[')?;
                write_list(f, items)?;
                f.write_char(']')
            }
            ExprKind::Ident(name) => f.write_str(name),
            ExprKind::JsonPath { base, path } => write_path(f, base, path),
            ExprKind::Template(name) => write!(f, "{{{name}}}"),
            ExprKind::Call { name, args } => {
                write!(f, "{name}(")?;
                write_list(f, args)?;
                f.write_char(')')
            }
            ExprKind::IsNull { operand, negated } => {
                child(f, operand, level(operand) < LVL_PRIMARY)?;
                f.write_str(if *negated { " is not null" } else { " is null" })
            }
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => {
                f.write_char('-')?;
                // `-5` would read back as the literal -5, so a literal operand keeps its parens.
                let lit = matches!(operand.kind, ExprKind::Int(_) | ExprKind::Float(_));
                child(f, operand, lit || level(operand) < LVL_UNARY)
            }
            ExprKind::Unary {
                op: UnaryOp::Not,
                operand,
            } => {
                f.write_str("not ")?;
                child(f, operand, level(operand) < LVL_UNARY)
            }
            ExprKind::Exists(operand) => {
                f.write_str("exists ")?;
                child(f, operand, level(operand) < LVL_EXISTS)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let p = binary_level(*op);
                // `(a < x) < 5` must keep its parens, or it would read back as the range `a < x < 5`.
                let lp = level(lhs) < p || (p == LVL_REL && level(lhs) == LVL_REL);
                child(f, lhs, lp)?;
                write!(f, " {} ", op.symbol())?;
                child(f, rhs, level(rhs) <= p)
            }
            ExprKind::Range {
                first,
                op1,
                target,
                op2,
                second,
            } => {
                child(f, first, level(first) <= LVL_REL)?;
                write!(f, " {} ", op1.symbol())?;
                child(f, target, level(target) < LVL_PRIMARY)?;
                write!(f, " {} ", op2.symbol())?;
                child(f, second, level(second) <= LVL_REL)
            }
            ExprKind::In { lhs, rhs, negated } => {
                child(f, lhs, level(lhs) < LVL_IN)?;
                f.write_str(if *negated { " not in " } else { " in " })?;
                child(f, rhs, level(rhs) <= LVL_IN)
            }
            ExprKind::Like { lhs, pattern } => {
                child(f, lhs, level(lhs) < LVL_LIKE)?;
                f.write_str(" like ")?;
                child(f, pattern, level(pattern) <= LVL_LIKE)
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                let (p, word) = if matches!(self.kind, ExprKind::And(_)) {
                    (LVL_AND, " and ")
                } else {
                    (LVL_OR, " or ")
                };
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(word)?;
                    }
                    child(f, e, level(e) <= p)?;
                }
                Ok(())
            }
        }
    }
}
