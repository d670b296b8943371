//! AST → [`Plan`]: resolves names against the schema, type-checks as Milvus' plan parser does,
//! folds constants and prepares literals, sets and patterns for evaluation.

use super::ExprError;
use super::ast::*;
use super::like::LikePattern;
use super::plan::*;
use crate::schema::{CollectionSchema, DataType};

pub(crate) fn compile(expr: &Expr, schema: &CollectionSchema) -> Result<Plan, ExprError> {
    let c = Compiler {
        schema,
        dynamic: schema.fields.iter().position(|f| f.is_dynamic),
    };
    let root = c.pred(expr)?;
    let mut fields = Vec::new();
    root.collect_fields(&mut fields);
    fields.sort_unstable();
    fields.dedup();
    let pk = schema
        .fields
        .iter()
        .position(|f| f.is_primary)
        .and_then(|i| match schema.fields[i].data_type {
            DataType::Int64 => Some((i, PkKind::Int)),
            DataType::VarChar => Some((i, PkKind::Str)),
            _ => None,
        });
    Ok(Plan { root, fields, pk })
}

/// Static type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Int,
    Float,
    Str,
    /// A JSON value (type known only per row).
    Json,
    List,
}

enum ValKind {
    Const(Lit),
    Dyn(ValExpr),
}

struct Val {
    kind: ValKind,
    ty: Ty,
    /// Type name for messages (Milvus' data type names).
    label: &'static str,
}

impl Val {
    fn lit(l: Lit) -> Val {
        let (ty, label) = match &l {
            Lit::Bool(_) => (Ty::Bool, "Bool"),
            Lit::Int(_) => (Ty::Int, "Int64"),
            Lit::Float(_) => (Ty::Float, "Double"),
            Lit::Str(_) => (Ty::Str, "VarChar"),
            Lit::List(_) => (Ty::List, "Array"),
        };
        Val {
            kind: ValKind::Const(l),
            ty,
            label,
        }
    }
    fn dynamic(x: ValExpr, ty: Ty, label: &'static str) -> Val {
        Val {
            kind: ValKind::Dyn(x),
            ty,
            label,
        }
    }
    fn is_const(&self) -> bool {
        matches!(self.kind, ValKind::Const(_))
    }
    fn into_expr(self) -> ValExpr {
        match self.kind {
            ValKind::Const(l) => ValExpr::Const(l),
            ValKind::Dyn(x) => x,
        }
    }
    fn is_numeric(&self) -> bool {
        matches!(self.ty, Ty::Int | Ty::Float | Ty::Json)
    }
}

fn short(e: &Expr) -> String {
    let s = e.to_string();
    if s.chars().count() <= 80 {
        return s;
    }
    let mut t: String = s.chars().take(77).collect();
    t.push_str("...");
    t
}

fn type_err(e: &Expr, message: impl Into<String>) -> ExprError {
    ExprError::Type {
        pos: e.span.start,
        token: short(e),
        message: message.into(),
    }
}

fn describe(v: &Val, e: &Expr) -> String {
    match &e.kind {
        ExprKind::Ident(_) | ExprKind::JsonPath { .. } => format!("{} field {}", v.label, short(e)),
        _ if v.is_const() => format!("{} value {}", v.label, short(e)),
        _ => format!("{} expression {}", v.label, short(e)),
    }
}

fn template_missing(e: &Expr, name: &str) -> ExprError {
    ExprError::Template {
        pos: e.span.start,
        name: name.to_string(),
        message: "no value was supplied for this template variable".to_string(),
    }
}

fn path_step(seg: &PathSeg) -> PathStep {
    match seg {
        PathSeg::Key(k) => {
            let canonical = k == "0"
                || (k.starts_with(|c: char| c.is_ascii_digit() && c != '0')
                    && k.bytes().all(|c| c.is_ascii_digit()));
            PathStep {
                key: k.as_str().into(),
                index: if canonical { k.parse().ok() } else { None },
            }
        }
        PathSeg::Index(i) => PathStep {
            key: i.to_string().into(),
            index: usize::try_from(*i).ok(),
        },
    }
}

fn fold_and(nodes: Vec<Node>) -> Node {
    if nodes.iter().any(|n| matches!(n, Node::Const(false))) {
        return Node::Const(false);
    }
    if nodes.iter().all(|n| matches!(n, Node::Const(true))) {
        return Node::Const(true);
    }
    // `true` operands are kept: under Milvus' valid-bit rules `true and null` is false, not null.
    let mut flat = Vec::with_capacity(nodes.len());
    for n in nodes {
        match n {
            Node::And(inner) => flat.extend(inner.into_vec()),
            n => flat.push(n),
        }
    }
    if flat.len() == 1 {
        flat.pop().expect("one node")
    } else {
        Node::And(flat.into())
    }
}

fn fold_or(nodes: Vec<Node>) -> Node {
    if nodes.iter().any(|n| matches!(n, Node::Const(true))) {
        return Node::Const(true);
    }
    if nodes.iter().all(|n| matches!(n, Node::Const(false))) {
        return Node::Const(false);
    }
    let mut flat = Vec::with_capacity(nodes.len());
    for n in nodes {
        match n {
            Node::Or(inner) => flat.extend(inner.into_vec()),
            n => flat.push(n),
        }
    }
    if flat.len() == 1 {
        flat.pop().expect("one node")
    } else {
        Node::Or(flat.into())
    }
}

fn fold_not(n: Node) -> Node {
    match n {
        Node::Const(b) => Node::Const(!b),
        Node::Not(inner) => *inner,
        n => Node::Not(Box::new(n)),
    }
}

fn scalar_to_lit(s: Scalar<'_>) -> Option<Lit> {
    match s {
        Scalar::Int(i) => Some(Lit::Int(i)),
        Scalar::Float(f) => Some(Lit::Float(f)),
        Scalar::Bool(b) => Some(Lit::Bool(b)),
        _ => None,
    }
}

struct Compiler<'s> {
    schema: &'s CollectionSchema,
    dynamic: Option<usize>,
}

impl Compiler<'_> {
    /// Compile a boolean expression.
    fn pred(&self, e: &Expr) -> Result<Node, ExprError> {
        match &e.kind {
            ExprKind::Bool(b) => Ok(Node::Const(*b)),
            ExprKind::And(items) => Ok(fold_and(
                items
                    .iter()
                    .map(|i| self.pred(i))
                    .collect::<Result<_, _>>()?,
            )),
            ExprKind::Or(items) => Ok(fold_or(
                items
                    .iter()
                    .map(|i| self.pred(i))
                    .collect::<Result<_, _>>()?,
            )),
            ExprKind::Unary {
                op: UnaryOp::Not,
                operand,
            } => Ok(fold_not(self.pred(operand)?)),
            ExprKind::Binary { op, lhs, rhs } => match op.as_cmp() {
                Some(c) => self.cmp(c, lhs, rhs),
                None => Err(type_err(
                    e,
                    "an arithmetic expression is not a boolean expression",
                )),
            },
            ExprKind::Range {
                first,
                op1,
                target,
                op2,
                second,
            } => self.range(e, first, *op1, target, *op2, second),
            ExprKind::In { lhs, rhs, negated } => self.term(lhs, rhs, *negated),
            ExprKind::Like { lhs, pattern } => self.like(lhs, pattern),
            ExprKind::Exists(operand) => {
                let v = self.value(operand)?;
                match v.kind {
                    ValKind::Dyn(x @ ValExpr::Json { .. }) => Ok(Node::Exists(x)),
                    _ => Err(type_err(
                        operand,
                        "'exists' needs a JSON key path such as meta[\"key\"]",
                    )),
                }
            }
            ExprKind::IsNull { operand, negated } => self.is_null(operand, *negated),
            ExprKind::Call { name, args } => self.call_pred(e, name, args),
            ExprKind::Template(name) => Err(template_missing(e, name)),
            ExprKind::Ident(_) | ExprKind::JsonPath { .. } => {
                let v = self.value(e)?;
                match (v.ty, v.kind) {
                    (Ty::Bool | Ty::Json, ValKind::Dyn(x)) => Ok(Node::Truthy(x)),
                    (_, kind) => {
                        let v = Val { kind, ..v };
                        Err(type_err(
                            e,
                            format!("{} is not a boolean expression", describe(&v, e)),
                        ))
                    }
                }
            }
            ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) | ExprKind::List(_) => {
                Err(type_err(e, "a constant value is not a boolean expression"))
            }
            ExprKind::Unary {
                op: UnaryOp::Neg, ..
            } => Err(type_err(
                e,
                "a numeric expression is not a boolean expression",
            )),
        }
    }

    /// Compile a value-producing expression.
    fn value(&self, e: &Expr) -> Result<Val, ExprError> {
        match &e.kind {
            ExprKind::Int(i) => Ok(Val::lit(Lit::Int(*i))),
            ExprKind::Float(f) => Ok(Val::lit(Lit::Float(*f))),
            ExprKind::Str(s) => Ok(Val::lit(Lit::Str(s.as_str().into()))),
            ExprKind::Bool(b) => Ok(Val::lit(Lit::Bool(*b))),
            ExprKind::List(items) => {
                let mut lits = Vec::with_capacity(items.len());
                for item in items {
                    match self.value(item)?.kind {
                        ValKind::Const(l) => lits.push(l),
                        ValKind::Dyn(_) => {
                            return Err(type_err(item, "list elements must be constant values"));
                        }
                    }
                }
                Ok(Val::lit(Lit::List(lits.into())))
            }
            ExprKind::Ident(name) => self.resolve_ident(e, name),
            ExprKind::JsonPath { base, path } => self.resolve_path(e, base, path),
            ExprKind::Template(name) => Err(template_missing(e, name)),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                operand,
            } => {
                let v = self.value(operand)?;
                if !v.is_numeric() {
                    return Err(type_err(
                        operand,
                        format!(
                            "unary '-' needs a numeric operand, got {}",
                            describe(&v, operand)
                        ),
                    ));
                }
                Ok(match v.kind {
                    ValKind::Const(l) => Val::lit(
                        scalar_to_lit(neg(l.scalar()))
                            .ok_or_else(|| type_err(e, "invalid negation"))?,
                    ),
                    ValKind::Dyn(x) => Val::dynamic(ValExpr::Neg(Box::new(x)), v.ty, v.label),
                })
            }
            ExprKind::Unary {
                op: UnaryOp::Not, ..
            } => Err(type_err(
                e,
                "'not' yields a boolean and binds tighter than comparisons and arithmetic: write not (a > b), not not a > b",
            )),
            ExprKind::Binary { op, lhs, rhs } if op.is_arith() => self.arith(*op, lhs, rhs),
            ExprKind::Call { name, args } if name.eq_ignore_ascii_case("array_length") => {
                let [arg] = args.as_slice() else {
                    return Err(type_err(
                        e,
                        format!("{name} takes 1 argument, got {}", args.len()),
                    ));
                };
                let v = self.value(arg)?;
                match (v.ty, v.kind) {
                    (Ty::Json, ValKind::Dyn(x)) => Ok(Val::dynamic(
                        ValExpr::ArrayLen(Box::new(x)),
                        Ty::Int,
                        "Int64",
                    )),
                    (_, kind) => {
                        let v = Val { kind, ..v };
                        Err(type_err(
                            arg,
                            format!(
                                "{name} needs a JSON field or path, got {}",
                                describe(&v, arg)
                            ),
                        ))
                    }
                }
            }
            ExprKind::Call { name, .. } if !is_known_function(name) => {
                Err(unsupported_function(e, name))
            }
            _ => Err(type_err(
                e,
                "a boolean expression cannot be used as a value here",
            )),
        }
    }

    fn field_val(&self, e: &Expr, i: usize) -> Result<Val, ExprError> {
        let f = &self.schema.fields[i];
        let (ty, label) = match f.data_type {
            DataType::Bool => (Ty::Bool, "Bool"),
            DataType::Int8 => (Ty::Int, "Int8"),
            DataType::Int16 => (Ty::Int, "Int16"),
            DataType::Int32 => (Ty::Int, "Int32"),
            DataType::Int64 => (Ty::Int, "Int64"),
            DataType::Float => (Ty::Float, "Float"),
            DataType::Double => (Ty::Float, "Double"),
            DataType::VarChar => (Ty::Str, "VarChar"),
            DataType::Json => (Ty::Json, "JSON"),
            DataType::FloatVector => {
                return Err(type_err(
                    e,
                    format!(
                        "vector field {} cannot be used in a filter expression",
                        f.name
                    ),
                ));
            }
        };
        Ok(Val::dynamic(ValExpr::Field(i), ty, label))
    }

    fn resolve_ident(&self, e: &Expr, name: &str) -> Result<Val, ExprError> {
        if let Some(i) = self.schema.field_index(name) {
            return self.field_val(e, i);
        }
        match self.dynamic {
            Some(d) => Ok(Val::dynamic(
                ValExpr::Json {
                    field: d,
                    path: vec![path_step(&PathSeg::Key(name.to_string()))].into(),
                },
                Ty::Json,
                "JSON",
            )),
            None => Err(ExprError::UnknownField {
                pos: e.span.start,
                name: name.to_string(),
            }),
        }
    }

    fn resolve_path(&self, e: &Expr, base: &str, path: &[PathSeg]) -> Result<Val, ExprError> {
        let steps: Vec<PathStep> = path.iter().map(path_step).collect();
        if let Some(i) = self.schema.field_index(base) {
            let f = &self.schema.fields[i];
            return match f.data_type {
                DataType::Json => Ok(Val::dynamic(
                    ValExpr::Json {
                        field: i,
                        path: steps.into(),
                    },
                    Ty::Json,
                    "JSON",
                )),
                DataType::FloatVector => Err(type_err(
                    e,
                    format!(
                        "vector field {} cannot be used in a filter expression",
                        f.name
                    ),
                )),
                dt => Err(type_err(
                    e,
                    format!("{dt} field {base} cannot be accessed with [] (only JSON fields can)"),
                )),
            };
        }
        match self.dynamic {
            Some(d) => {
                let mut full = Vec::with_capacity(steps.len() + 1);
                full.push(path_step(&PathSeg::Key(base.to_string())));
                full.extend(steps);
                Ok(Val::dynamic(
                    ValExpr::Json {
                        field: d,
                        path: full.into(),
                    },
                    Ty::Json,
                    "JSON",
                ))
            }
            None => Err(ExprError::UnknownField {
                pos: e.span.start,
                name: base.to_string(),
            }),
        }
    }

    fn arith(&self, op: BinaryOp, lhs: &Expr, rhs: &Expr) -> Result<Val, ExprError> {
        let a = self.value(lhs)?;
        let b = self.value(rhs)?;
        for (v, e) in [(&a, lhs), (&b, rhs)] {
            if !v.is_numeric() {
                return Err(type_err(
                    e,
                    format!(
                        "arithmetic '{}' on {} is not supported",
                        op.symbol(),
                        describe(v, e)
                    ),
                ));
            }
            if op == BinaryOp::Mod && v.ty == Ty::Float {
                return Err(type_err(
                    e,
                    format!(
                        "modulo can only apply on integer types, got {}",
                        describe(v, e)
                    ),
                ));
            }
        }
        if matches!(op, BinaryOp::Div | BinaryOp::Mod) {
            if let ValKind::Const(Lit::Int(0)) = b.kind {
                return Err(type_err(rhs, "division or modulus by zero"));
            }
            if let ValKind::Const(Lit::Float(f)) = b.kind
                && f == 0.0
            {
                return Err(type_err(rhs, "division or modulus by zero"));
            }
        }
        let aop = match op {
            BinaryOp::Add => ArithOp::Add,
            BinaryOp::Sub => ArithOp::Sub,
            BinaryOp::Mul => ArithOp::Mul,
            BinaryOp::Div => ArithOp::Div,
            BinaryOp::Mod => ArithOp::Mod,
            _ => ArithOp::Pow,
        };
        let (ty, label) = if aop == ArithOp::Pow {
            (Ty::Float, "Double")
        } else if a.ty == Ty::Json || b.ty == Ty::Json {
            (Ty::Json, "JSON")
        } else if a.ty == Ty::Float || b.ty == Ty::Float {
            (Ty::Float, "Double")
        } else {
            (Ty::Int, "Int64")
        };
        if let (ValKind::Const(x), ValKind::Const(y)) = (&a.kind, &b.kind) {
            let r = arith(aop, x.scalar(), y.scalar());
            return scalar_to_lit(r)
                .map(Val::lit)
                .ok_or_else(|| type_err(lhs, "invalid constant arithmetic"));
        }
        Ok(Val::dynamic(
            ValExpr::Arith {
                op: aop,
                lhs: Box::new(a.into_expr()),
                rhs: Box::new(b.into_expr()),
            },
            ty,
            label,
        ))
    }

    /// Check that `a op b` is a valid comparison; the error points at the offending operand
    /// (the constant side, else the right-hand side).
    fn check_comparable(
        &self,
        op: CmpOp,
        a: &Val,
        ae: &Expr,
        b: &Val,
        be: &Expr,
    ) -> Result<(), ExprError> {
        let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        let ok = match (a.ty, b.ty) {
            (Ty::List, _) | (_, Ty::List) => {
                if ordering {
                    let e = if a.ty == Ty::List { ae } else { be };
                    return Err(type_err(
                        e,
                        format!(
                            "a list can only be compared with == or !=, not {}",
                            op.symbol()
                        ),
                    ));
                }
                a.ty == Ty::Json || b.ty == Ty::Json || a.ty == b.ty
            }
            (Ty::Json, _) | (_, Ty::Json) => true,
            (Ty::Int | Ty::Float, Ty::Int | Ty::Float) => true,
            (x, y) => x == y,
        };
        if ok {
            return Ok(());
        }
        let bad = if b.is_const() || !a.is_const() {
            be
        } else {
            ae
        };
        Err(type_err(
            bad,
            format!(
                "comparison between {} and {} is not supported",
                describe(a, ae),
                describe(b, be)
            ),
        ))
    }

    fn cmp(&self, op: CmpOp, lhs: &Expr, rhs: &Expr) -> Result<Node, ExprError> {
        let a = self.value(lhs)?;
        let b = self.value(rhs)?;
        self.check_comparable(op, &a, lhs, &b, rhs)?;
        Ok(match (a.kind, b.kind) {
            (ValKind::Const(x), ValKind::Const(y)) => {
                Node::Const(op.test(compare(&x.scalar(), &y.scalar())))
            }
            (ValKind::Dyn(x), ValKind::Const(y)) => Node::Cmp { val: x, op, lit: y },
            (ValKind::Const(x), ValKind::Dyn(y)) => Node::Cmp {
                val: y,
                op: op.flip(),
                lit: x,
            },
            (ValKind::Dyn(x), ValKind::Dyn(y)) => Node::Cmp2 { lhs: x, op, rhs: y },
        })
    }

    fn range(
        &self,
        e: &Expr,
        first: &Expr,
        op1: CmpOp,
        target: &Expr,
        op2: CmpOp,
        second: &Expr,
    ) -> Result<Node, ExprError> {
        let t = self.value(target)?;
        if t.ty == Ty::Bool {
            return Err(type_err(
                target,
                format!(
                    "range comparison on {} is not supported",
                    describe(&t, target)
                ),
            ));
        }
        let f = self.value(first)?;
        let s = self.value(second)?;
        for (v, ve) in [(&f, first), (&s, second)] {
            if !v.is_const() {
                return Err(type_err(
                    ve,
                    "the bounds of a range must be constant values",
                ));
            }
            self.check_comparable(CmpOp::Lt, &t, target, v, ve)?;
        }
        let (ValKind::Const(f), ValKind::Const(s)) = (f.kind, s.kind) else {
            unreachable!("checked constant")
        };
        let ascending = matches!(op1, CmpOp::Lt | CmpOp::Le);
        let (lo, lo_incl, hi, hi_incl) = if ascending {
            (f, op1 == CmpOp::Le, s, op2 == CmpOp::Le)
        } else {
            (s, op2 == CmpOp::Ge, f, op1 == CmpOp::Ge)
        };
        match compare(&lo.scalar(), &hi.scalar()) {
            Some(std::cmp::Ordering::Less) => {}
            Some(std::cmp::Ordering::Equal) if lo_incl && hi_incl => {}
            Some(_) => {
                return Err(type_err(
                    e,
                    "invalid range: the lower bound is greater than the upper bound",
                ));
            }
            None => {
                return Err(type_err(
                    e,
                    "invalid range: the bounds cannot be compared with each other",
                ));
            }
        }
        Ok(match t.kind {
            ValKind::Dyn(val) => Node::Range {
                val,
                lo,
                lo_incl,
                hi,
                hi_incl,
            },
            ValKind::Const(_) => unreachable!("a range target is a name"),
        })
    }

    fn term(&self, lhs: &Expr, rhs: &Expr, negated: bool) -> Result<Node, ExprError> {
        let a = self.value(lhs)?;
        let items = match &rhs.kind {
            ExprKind::List(items) => items,
            ExprKind::Template(name) => return Err(template_missing(rhs, name)),
            _ => return Err(type_err(rhs, "the right-hand side of 'in' must be a list")),
        };
        let mut lits = Vec::with_capacity(items.len());
        for item in items {
            let v = self.value(item)?;
            if !v.is_const() {
                return Err(type_err(item, "list elements must be constant values"));
            }
            self.check_comparable(CmpOp::Eq, &a, lhs, &v, item)?;
            if let ValKind::Const(l) = v.kind {
                lits.push(l);
            }
        }
        let node = match a.kind {
            ValKind::Const(x) => Node::Const(
                lits.iter()
                    .any(|l| compare(&x.scalar(), &l.scalar()) == Some(std::cmp::Ordering::Equal)),
            ),
            ValKind::Dyn(val) => Node::In {
                val,
                set: ValueSet::new(&lits),
                values: lits.into(),
            },
        };
        Ok(if negated { fold_not(node) } else { node })
    }

    fn like(&self, lhs: &Expr, pattern: &Expr) -> Result<Node, ExprError> {
        let a = self.value(lhs)?;
        if !matches!(a.ty, Ty::Str | Ty::Json) {
            return Err(type_err(
                lhs,
                format!(
                    "'like' needs a VarChar or JSON operand, got {}",
                    describe(&a, lhs)
                ),
            ));
        }
        let p = self.value(pattern)?;
        let pat = match p.kind {
            ValKind::Const(Lit::Str(s)) => LikePattern::new(&s),
            _ => {
                return Err(type_err(
                    pattern,
                    "the pattern of 'like' must be a string literal",
                ));
            }
        };
        Ok(match a.kind {
            ValKind::Const(Lit::Str(s)) => Node::Const(pat.matches(&s)),
            ValKind::Const(_) => Node::Const(false),
            ValKind::Dyn(val) => Node::Like { val, pat },
        })
    }

    fn is_null(&self, operand: &Expr, negated: bool) -> Result<Node, ExprError> {
        if !matches!(operand.kind, ExprKind::Ident(_) | ExprKind::JsonPath { .. }) {
            return Err(type_err(
                operand,
                "'is null' needs a field name or JSON path",
            ));
        }
        match self.value(operand)?.kind {
            // A JSON key is null when it does not exist (Milvus rewrites it to `not exists`).
            ValKind::Dyn(x @ ValExpr::Json { .. }) => {
                let exists = Node::Exists(x);
                Ok(if negated {
                    exists
                } else {
                    Node::Not(Box::new(exists))
                })
            }
            ValKind::Dyn(ValExpr::Field(field)) => Ok(Node::IsNull { field, negated }),
            _ => Err(type_err(
                operand,
                "'is null' needs a field name or JSON path",
            )),
        }
    }

    fn call_pred(&self, e: &Expr, name: &str, args: &[Expr]) -> Result<Node, ExprError> {
        let mode = match name.to_ascii_lowercase().as_str() {
            "json_contains" | "array_contains" => ContainsMode::One,
            "json_contains_all" | "array_contains_all" => ContainsMode::All,
            "json_contains_any" | "array_contains_any" => ContainsMode::Any,
            "array_length" => {
                return Err(type_err(
                    e,
                    "array_length(...) is a number, not a boolean expression",
                ));
            }
            _ => return Err(unsupported_function(e, name)),
        };
        let [field, elem] = args else {
            return Err(type_err(
                e,
                format!("{name} takes 2 arguments, got {}", args.len()),
            ));
        };
        let a = self.value(field)?;
        let val = match (a.ty, a.kind) {
            (Ty::Json, ValKind::Dyn(x)) => x,
            (_, kind) => {
                let a = Val { kind, ..a };
                return Err(type_err(
                    field,
                    format!(
                        "{name} needs a JSON field or JSON path, got {}",
                        describe(&a, field)
                    ),
                ));
            }
        };
        let b = self.value(elem)?;
        let lit = match b.kind {
            ValKind::Const(l) => l,
            ValKind::Dyn(_) => {
                return Err(type_err(
                    elem,
                    format!("the second argument of {name} must be a constant"),
                ));
            }
        };
        let elems: Box<[Lit]> = match (mode, lit) {
            (ContainsMode::One, l) => vec![l].into(),
            (_, Lit::List(l)) => l,
            _ => {
                return Err(type_err(
                    elem,
                    format!("the second argument of {name} must be a list"),
                ));
            }
        };
        Ok(Node::JsonContains { val, mode, elems })
    }
}

fn is_known_function(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "json_contains"
            | "array_contains"
            | "json_contains_all"
            | "array_contains_all"
            | "json_contains_any"
            | "array_contains_any"
            | "array_length"
    )
}

fn unsupported_function(e: &Expr, name: &str) -> ExprError {
    type_err(e, format!("function {name} is not supported"))
}
