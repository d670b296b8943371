//! The compiled plan: a tree of resolved nodes (field indexes, typed literals, prepared patterns
//! and sets) evaluated per row without name lookups or allocation.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value as Json;

use super::ast::CmpOp;
use super::like::LikePattern;
use crate::value::{PrimaryKey, ValueRef};

/// One row, as the evaluator reads it. `field_index` indexes `CollectionSchema::fields`.
pub trait RowAccess {
    fn get(&self, field_index: usize) -> ValueRef<'_>;
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Plan {
    pub(crate) root: Node,
    pub(crate) fields: Vec<usize>,
    /// Index and type of the primary key field (for [`Plan::primary_keys`]).
    pub(crate) pk: Option<(usize, PkKind)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PkKind {
    Int,
    Str,
}

impl Plan {
    /// The plan of the empty expression.
    pub fn match_all() -> Plan {
        Plan {
            root: Node::Const(true),
            fields: Vec::new(),
            pk: None,
        }
    }

    /// Does `row` pass the filter?
    #[inline]
    pub fn eval(&self, row: &dyn RowAccess) -> bool {
        self.root.eval(row) == Tri::True
    }

    /// True if every row passes (empty expression, or one that folds to `true`).
    pub fn is_match_all(&self) -> bool {
        matches!(self.root, Node::Const(true))
    }

    /// If the whole plan is `pk in [..]` or `pk == x` (or an `or` of such) on the primary key,
    /// the keys (deduplicated, in order of appearance).
    pub fn primary_keys(&self) -> Option<Vec<PrimaryKey>> {
        let (pk, kind) = self.pk?;
        let mut out = Vec::new();
        if !collect_pks(&self.root, pk, kind, &mut out) {
            return None;
        }
        let mut seen = HashSet::new();
        out.retain(|k| seen.insert(k.clone()));
        Some(out)
    }

    /// Fields (indexes into `schema.fields`) the plan reads, ascending.
    pub fn fields(&self) -> Vec<usize> {
        self.fields.clone()
    }
}

fn collect_pks(node: &Node, pk: usize, kind: PkKind, out: &mut Vec<PrimaryKey>) -> bool {
    let push = |lit: &Lit, out: &mut Vec<PrimaryKey>| match (kind, lit) {
        (PkKind::Int, Lit::Int(i)) => out.push(PrimaryKey::Int(*i)),
        (PkKind::Int, Lit::Float(f)) => {
            // An integral float names an integer key; any other float matches no key.
            if let Some(i) = f64_as_i64(*f) {
                out.push(PrimaryKey::Int(i));
            }
        }
        (PkKind::Str, Lit::Str(s)) => out.push(PrimaryKey::Str(s.to_string())),
        _ => {}
    };
    match node {
        Node::Cmp {
            val: ValExpr::Field(f),
            op: CmpOp::Eq,
            lit,
        } if *f == pk => {
            push(lit, out);
            true
        }
        Node::In {
            val: ValExpr::Field(f),
            values,
            ..
        } if *f == pk => {
            values.iter().for_each(|v| push(v, out));
            true
        }
        Node::Or(children) => children.iter().all(|c| collect_pks(c, pk, kind, out)),
        _ => false,
    }
}

/// Milvus' per-row result: a value bit and a valid bit. A null field value makes a leaf "null"
/// (false and invalid); `not` keeps it false, `and`/`or` are valid if either side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    False,
    True,
    Null,
}

#[inline]
fn tri(b: bool) -> Tri {
    if b { Tri::True } else { Tri::False }
}

/// A literal, typed at compile time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    List(Box<[Lit]>),
}

impl Lit {
    #[inline]
    pub(crate) fn scalar(&self) -> Scalar<'_> {
        match self {
            Lit::Bool(b) => Scalar::Bool(*b),
            Lit::Int(i) => Scalar::Int(*i),
            Lit::Float(f) => Scalar::Float(*f),
            Lit::Str(s) => Scalar::Str(s),
            Lit::List(l) => Scalar::Arr(Arr::Lit(l)),
        }
    }
}

/// An array seen by the evaluator: a JSON array of a row, or a list literal.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arr<'a> {
    Json(&'a [Json]),
    Lit(&'a [Lit]),
}

impl<'a> Arr<'a> {
    fn len(&self) -> usize {
        match self {
            Arr::Json(a) => a.len(),
            Arr::Lit(a) => a.len(),
        }
    }
    fn get(&self, i: usize) -> Scalar<'a> {
        match self {
            Arr::Json(a) => json_scalar(&a[i]),
            Arr::Lit(a) => a[i].scalar(),
        }
    }
}

/// A value during evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    /// The field's value is null (nullable field): comparisons are "null".
    Null,
    /// Absent JSON key, JSON `null`, or no result (division by zero): comparisons are false.
    Missing,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Arr(Arr<'a>),
    /// A JSON object: never equal to anything.
    Obj,
}

#[inline]
pub(crate) fn json_scalar(v: &Json) -> Scalar<'_> {
    match v {
        Json::Null => Scalar::Missing,
        Json::Bool(b) => Scalar::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => n.as_f64().map_or(Scalar::Missing, Scalar::Float),
        },
        Json::String(s) => Scalar::Str(s),
        Json::Array(a) => Scalar::Arr(Arr::Json(a)),
        Json::Object(_) => Scalar::Obj,
    }
}

#[inline(always)]
fn field_scalar(v: ValueRef<'_>) -> Scalar<'_> {
    match v {
        ValueRef::Null => Scalar::Null,
        ValueRef::Bool(b) => Scalar::Bool(b),
        ValueRef::Int(i) => Scalar::Int(i),
        ValueRef::Float(f) => Scalar::Float(f),
        ValueRef::Str(s) => Scalar::Str(s),
        ValueRef::Json(j) => json_scalar(j),
        ValueRef::FloatVector(_) => Scalar::Missing,
    }
}

/// Compare a field value with a literal: the common typed pairs directly, the rest generically.
#[inline(always)]
fn cmp_field_lit(v: ValueRef<'_>, lit: &Lit) -> Option<Ordering> {
    match (v, lit) {
        (ValueRef::Int(x), Lit::Int(y)) => Some(x.cmp(y)),
        (ValueRef::Float(x), Lit::Float(y)) => x.partial_cmp(y),
        (ValueRef::Str(x), Lit::Str(y)) => Some(x.cmp(&**y)),
        (v, l) => compare(&field_scalar(v), &l.scalar()),
    }
}

/// `f` as an i64 if it is integral and in range.
#[inline]
pub(crate) fn f64_as_i64(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; every integral f64 in [-2^63, 2^63) fits in i64.
    (f.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f))
        .then_some(f as i64)
}

/// Exact comparison of an i64 with an f64 (no rounding of large integers).
#[inline]
pub(crate) fn cmp_i64_f64(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= 9_223_372_036_854_775_808.0 {
        return Some(Ordering::Less);
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - t)),
        o => Some(o),
    }
}

/// Compare two values the way Milvus does: numbers numerically (int vs float exactly), strings
/// and bools with their own kind, arrays for equality only; anything else is incomparable.
#[inline]
pub(crate) fn compare(a: &Scalar<'_>, b: &Scalar<'_>) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Int(x), Scalar::Int(y)) => Some(x.cmp(y)),
        (Scalar::Int(x), Scalar::Float(y)) => cmp_i64_f64(*x, *y),
        (Scalar::Float(x), Scalar::Int(y)) => cmp_i64_f64(*y, *x).map(Ordering::reverse),
        (Scalar::Float(x), Scalar::Float(y)) => x.partial_cmp(y),
        (Scalar::Str(x), Scalar::Str(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(y)),
        (Scalar::Arr(x), Scalar::Arr(y)) => {
            let eq = x.len() == y.len()
                && (0..x.len()).all(|i| compare(&x.get(i), &y.get(i)) == Some(Ordering::Equal));
            eq.then_some(Ordering::Equal)
        }
        _ => None,
    }
}

#[inline]
fn equal(a: &Scalar<'_>, b: &Scalar<'_>) -> bool {
    compare(a, b) == Some(Ordering::Equal)
}

/// Arithmetic as in Milvus: integer ops wrap, `/` on integers truncates, `**` gives a float;
/// a non-numeric operand or an integer division by zero gives no value.
#[inline]
pub(crate) fn arith<'a>(op: ArithOp, a: Scalar<'a>, b: Scalar<'a>) -> Scalar<'a> {
    match (a, b) {
        (Scalar::Null, _) | (_, Scalar::Null) => Scalar::Null,
        (Scalar::Int(x), Scalar::Int(y)) => match op {
            ArithOp::Add => Scalar::Int(x.wrapping_add(y)),
            ArithOp::Sub => Scalar::Int(x.wrapping_sub(y)),
            ArithOp::Mul => Scalar::Int(x.wrapping_mul(y)),
            ArithOp::Div => {
                if y == 0 {
                    Scalar::Missing
                } else {
                    Scalar::Int(x.wrapping_div(y))
                }
            }
            ArithOp::Mod => {
                if y == 0 {
                    Scalar::Missing
                } else {
                    Scalar::Int(x.wrapping_rem(y))
                }
            }
            ArithOp::Pow => Scalar::Float((x as f64).powf(y as f64)),
        },
        (x, y) => {
            let (Some(x), Some(y)) = (as_f64(x), as_f64(y)) else {
                return Scalar::Missing;
            };
            Scalar::Float(match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
                ArithOp::Mod => x % y,
                ArithOp::Pow => x.powf(y),
            })
        }
    }
}

#[inline]
fn as_f64(s: Scalar<'_>) -> Option<f64> {
    match s {
        Scalar::Int(i) => Some(i as f64),
        Scalar::Float(f) => Some(f),
        _ => None,
    }
}

#[inline]
pub(crate) fn neg(s: Scalar<'_>) -> Scalar<'_> {
    match s {
        Scalar::Int(i) => Scalar::Int(i.wrapping_neg()),
        Scalar::Float(f) => Scalar::Float(-f),
        Scalar::Null => Scalar::Null,
        _ => Scalar::Missing,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

/// One resolved JSON path step: the key, and the index it means on an array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathStep {
    pub key: Box<str>,
    pub index: Option<usize>,
}

#[inline]
fn resolve<'a>(mut v: &'a Json, path: &[PathStep]) -> Option<&'a Json> {
    for step in path {
        v = match v {
            Json::Object(m) => m.get(&*step.key)?,
            Json::Array(a) => a.get(step.index?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Milvus' "empty" JSON for `exists`: null, or an object/array whose members are all empty.
fn json_is_empty(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::Object(m) => m.values().all(json_is_empty),
        Json::Array(a) => a.iter().all(json_is_empty),
        _ => false,
    }
}

/// A value-producing expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValExpr {
    /// A whole field (a JSON field yields its top-level value).
    Field(usize),
    /// A key path inside a JSON field (non-empty path).
    Json {
        field: usize,
        path: Box<[PathStep]>,
    },
    Const(Lit),
    Neg(Box<ValExpr>),
    Arith {
        op: ArithOp,
        lhs: Box<ValExpr>,
        rhs: Box<ValExpr>,
    },
    ArrayLen(Box<ValExpr>),
}

impl ValExpr {
    #[inline]
    pub(crate) fn eval<'a>(&'a self, row: &'a dyn RowAccess) -> Scalar<'a> {
        match self {
            ValExpr::Field(i) => field_scalar(row.get(*i)),
            ValExpr::Json { field, path } => match row.get(*field) {
                ValueRef::Null => Scalar::Null,
                ValueRef::Json(j) => resolve(j, path).map_or(Scalar::Missing, json_scalar),
                _ => Scalar::Missing,
            },
            ValExpr::Const(l) => l.scalar(),
            ValExpr::Neg(x) => neg(x.eval(row)),
            ValExpr::Arith { op, lhs, rhs } => arith(*op, lhs.eval(row), rhs.eval(row)),
            ValExpr::ArrayLen(x) => match x.eval(row) {
                Scalar::Null => Scalar::Null,
                Scalar::Arr(a) => Scalar::Int(a.len() as i64),
                _ => Scalar::Missing,
            },
        }
    }

    pub(crate) fn collect_fields(&self, out: &mut Vec<usize>) {
        match self {
            ValExpr::Field(i) | ValExpr::Json { field: i, .. } => out.push(*i),
            ValExpr::Const(_) => {}
            ValExpr::Neg(x) | ValExpr::ArrayLen(x) => x.collect_fields(out),
            ValExpr::Arith { lhs, rhs, .. } => {
                lhs.collect_fields(out);
                rhs.collect_fields(out);
            }
        }
    }
}

/// Small sets are scanned, large ones hashed.
const HASH_THRESHOLD: usize = 12;

/// Multiplicative hash for i64 keys of an `in` list (the keys come from the filter itself, so
/// there is no untrusted-input flooding concern that SipHash would guard against).
#[derive(Default, Clone, Copy)]
struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_i64(&mut self, i: i64) {
        let h = (i as u64 ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // Bring the well-mixed high bits down to the bucket-index bits.
        self.0 = h ^ (h >> 32);
    }
}

#[derive(Debug, Clone)]
enum IntSet {
    Small(Box<[i64]>),
    Hash(HashSet<i64, BuildHasherDefault<IntHasher>>),
}

impl IntSet {
    fn new(v: Vec<i64>) -> Self {
        if v.len() > HASH_THRESHOLD {
            IntSet::Hash(v.into_iter().collect())
        } else {
            IntSet::Small(v.into())
        }
    }
    #[inline]
    fn contains(&self, x: i64) -> bool {
        match self {
            IntSet::Small(v) => v.contains(&x),
            IntSet::Hash(h) => h.contains(&x),
        }
    }
}

#[derive(Debug, Clone)]
enum StrSet {
    Small(Box<[Box<str>]>),
    Hash(HashSet<Box<str>>),
}

impl StrSet {
    fn new(v: Vec<Box<str>>) -> Self {
        if v.len() > HASH_THRESHOLD {
            StrSet::Hash(v.into_iter().collect())
        } else {
            StrSet::Small(v.into())
        }
    }
    #[inline]
    fn contains(&self, x: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|s| &**s == x),
            StrSet::Hash(h) => h.contains(x),
        }
    }
}

/// The right-hand side of `in`, split by kind for fast membership tests.
#[derive(Debug, Clone)]
pub(crate) struct ValueSet {
    ints: IntSet,
    /// Floats that are not integers in the i64 range (those are in `ints`).
    floats: Box<[f64]>,
    strs: StrSet,
    has_false: bool,
    has_true: bool,
    lists: Box<[Lit]>,
}

impl ValueSet {
    pub(crate) fn new(values: &[Lit]) -> Self {
        let (mut ints, mut floats, mut strs, mut lists) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut has_false, mut has_true) = (false, false);
        for v in values {
            match v {
                Lit::Int(i) => ints.push(*i),
                Lit::Float(f) => match f64_as_i64(*f) {
                    Some(i) => ints.push(i),
                    None => floats.push(*f),
                },
                Lit::Str(s) => strs.push(s.clone()),
                Lit::Bool(true) => has_true = true,
                Lit::Bool(false) => has_false = true,
                Lit::List(_) => lists.push(v.clone()),
            }
        }
        ints.sort_unstable();
        ints.dedup();
        ValueSet {
            ints: IntSet::new(ints),
            floats: floats.into(),
            strs: StrSet::new(strs),
            has_false,
            has_true,
            lists: lists.into(),
        }
    }

    #[inline]
    pub(crate) fn contains(&self, s: &Scalar<'_>) -> bool {
        match s {
            Scalar::Int(i) => self.ints.contains(*i),
            Scalar::Float(f) => match f64_as_i64(*f) {
                Some(i) => self.ints.contains(i),
                None => self.floats.contains(f),
            },
            Scalar::Str(x) => self.strs.contains(x),
            Scalar::Bool(b) => {
                if *b {
                    self.has_true
                } else {
                    self.has_false
                }
            }
            Scalar::Arr(_) => self.lists.iter().any(|l| equal(s, &l.scalar())),
            Scalar::Null | Scalar::Missing | Scalar::Obj => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainsMode {
    One,
    All,
    Any,
}

/// A boolean node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Const(bool),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// A Bool field, or a JSON value that must be `true`.
    Truthy(ValExpr),
    Cmp {
        val: ValExpr,
        op: CmpOp,
        lit: Lit,
    },
    Cmp2 {
        lhs: ValExpr,
        op: CmpOp,
        rhs: ValExpr,
    },
    Range {
        val: ValExpr,
        lo: Lit,
        lo_incl: bool,
        hi: Lit,
        hi_incl: bool,
    },
    In {
        val: ValExpr,
        set: ValueSet,
        values: Box<[Lit]>,
    },
    Like {
        val: ValExpr,
        pat: LikePattern,
    },
    /// JSON key present and not empty (`val` is a `ValExpr::Json`).
    Exists(ValExpr),
    IsNull {
        field: usize,
        negated: bool,
    },
    JsonContains {
        val: ValExpr,
        mode: ContainsMode,
        elems: Box<[Lit]>,
    },
}

impl Node {
    fn eval(&self, row: &dyn RowAccess) -> Tri {
        match self {
            Node::Const(b) => tri(*b),
            Node::Cmp {
                val: ValExpr::Field(i),
                op,
                lit,
            } => match row.get(*i) {
                ValueRef::Null => Tri::Null,
                v => tri(op.test(cmp_field_lit(v, lit))),
            },
            Node::Cmp { val, op, lit } => match val.eval(row) {
                Scalar::Null => Tri::Null,
                s => tri(op.test(compare(&s, &lit.scalar()))),
            },
            Node::And(children) => {
                let (mut null, mut any_true) = (false, false);
                for c in children.iter() {
                    match c.eval(row) {
                        Tri::False => return Tri::False,
                        Tri::Null => null = true,
                        Tri::True => any_true = true,
                    }
                }
                if !null {
                    Tri::True
                } else if any_true {
                    Tri::False
                } else {
                    Tri::Null
                }
            }
            Node::Or(children) => {
                let mut valid = false;
                for c in children.iter() {
                    match c.eval(row) {
                        Tri::True => return Tri::True,
                        Tri::False => valid = true,
                        Tri::Null => {}
                    }
                }
                if valid { Tri::False } else { Tri::Null }
            }
            Node::Not(c) => match c.eval(row) {
                Tri::True => Tri::False,
                Tri::False => Tri::True,
                Tri::Null => Tri::Null,
            },
            Node::In {
                val: ValExpr::Field(i),
                set,
                ..
            } => match row.get(*i) {
                ValueRef::Null => Tri::Null,
                ValueRef::Int(x) => tri(set.ints.contains(x)),
                ValueRef::Str(x) => tri(set.strs.contains(x)),
                v => tri(set.contains(&field_scalar(v))),
            },
            Node::In { val, set, .. } => match val.eval(row) {
                Scalar::Null => Tri::Null,
                s => tri(set.contains(&s)),
            },
            Node::Range {
                val: ValExpr::Field(i),
                lo,
                lo_incl,
                hi,
                hi_incl,
            } => match row.get(*i) {
                ValueRef::Null => Tri::Null,
                v => {
                    let above = match cmp_field_lit(v, lo) {
                        Some(Ordering::Greater) => true,
                        Some(Ordering::Equal) => *lo_incl,
                        _ => false,
                    };
                    tri(above
                        && match cmp_field_lit(v, hi) {
                            Some(Ordering::Less) => true,
                            Some(Ordering::Equal) => *hi_incl,
                            _ => false,
                        })
                }
            },
            Node::Range {
                val,
                lo,
                lo_incl,
                hi,
                hi_incl,
            } => match val.eval(row) {
                Scalar::Null => Tri::Null,
                s => {
                    let above = match compare(&s, &lo.scalar()) {
                        Some(Ordering::Greater) => true,
                        Some(Ordering::Equal) => *lo_incl,
                        _ => false,
                    };
                    tri(above
                        && match compare(&s, &hi.scalar()) {
                            Some(Ordering::Less) => true,
                            Some(Ordering::Equal) => *hi_incl,
                            _ => false,
                        })
                }
            },
            Node::Like { val, pat } => match val.eval(row) {
                Scalar::Null => Tri::Null,
                Scalar::Str(s) => tri(pat.matches(s)),
                _ => Tri::False,
            },
            Node::Truthy(val) => match val.eval(row) {
                Scalar::Null => Tri::Null,
                Scalar::Bool(b) => tri(b),
                _ => Tri::False,
            },
            Node::Cmp2 { lhs, op, rhs } => match (lhs.eval(row), rhs.eval(row)) {
                (Scalar::Null, _) | (_, Scalar::Null) => Tri::Null,
                (a, b) => tri(op.test(compare(&a, &b))),
            },
            Node::Exists(val) => match val {
                ValExpr::Json { field, path } => match row.get(*field) {
                    ValueRef::Json(j) => tri(resolve(j, path).is_some_and(|v| !json_is_empty(v))),
                    _ => Tri::False,
                },
                _ => Tri::False,
            },
            Node::IsNull { field, negated } => {
                let null = matches!(row.get(*field), ValueRef::Null | ValueRef::Json(Json::Null));
                tri(null != *negated)
            }
            Node::JsonContains { val, mode, elems } => match val.eval(row) {
                Scalar::Null => Tri::Null,
                Scalar::Arr(arr) => {
                    let has = |e: &Lit| {
                        let e = e.scalar();
                        (0..arr.len()).any(|i| equal(&arr.get(i), &e))
                    };
                    tri(match mode {
                        ContainsMode::One | ContainsMode::Any => elems.iter().any(has),
                        ContainsMode::All => elems.iter().all(has),
                    })
                }
                _ => Tri::False,
            },
        }
    }

    pub(crate) fn collect_fields(&self, out: &mut Vec<usize>) {
        match self {
            Node::Const(_) => {}
            Node::And(c) | Node::Or(c) => c.iter().for_each(|n| n.collect_fields(out)),
            Node::Not(c) => c.collect_fields(out),
            Node::Truthy(v)
            | Node::Cmp { val: v, .. }
            | Node::Range { val: v, .. }
            | Node::In { val: v, .. }
            | Node::Like { val: v, .. }
            | Node::Exists(v)
            | Node::JsonContains { val: v, .. } => v.collect_fields(out),
            Node::Cmp2 { lhs, rhs, .. } => {
                lhs.collect_fields(out);
                rhs.collect_fields(out);
            }
            Node::IsNull { field, .. } => out.push(*field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_float_compare_is_exact() {
        assert_eq!(cmp_i64_f64(1, 1.0), Some(Ordering::Equal));
        assert_eq!(cmp_i64_f64(1, 1.5), Some(Ordering::Less));
        assert_eq!(cmp_i64_f64(-1, -1.5), Some(Ordering::Greater));
        assert_eq!(
            cmp_i64_f64(i64::MAX, 9_223_372_036_854_775_808.0),
            Some(Ordering::Less)
        );
        assert_eq!(
            cmp_i64_f64(9_007_199_254_740_993, 9_007_199_254_740_992.0),
            Some(Ordering::Greater)
        );
        assert_eq!(cmp_i64_f64(0, f64::NAN), None);
        assert_eq!(
            cmp_i64_f64(i64::MIN, -9_223_372_036_854_775_808.0),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn value_set_mixes_kinds() {
        let s = ValueSet::new(&[
            Lit::Int(1),
            Lit::Float(2.0),
            Lit::Float(2.5),
            Lit::Str("a".into()),
            Lit::Bool(true),
        ]);
        assert!(s.contains(&Scalar::Int(1)) && s.contains(&Scalar::Float(1.0)));
        assert!(s.contains(&Scalar::Int(2)) && s.contains(&Scalar::Float(2.5)));
        assert!(!s.contains(&Scalar::Int(3)) && !s.contains(&Scalar::Float(1.5)));
        assert!(s.contains(&Scalar::Str("a")) && !s.contains(&Scalar::Str("b")));
        assert!(s.contains(&Scalar::Bool(true)) && !s.contains(&Scalar::Bool(false)));
        assert!(!s.contains(&Scalar::Missing));
        let big: Vec<Lit> = (0..1000).map(Lit::Int).collect();
        let s = ValueSet::new(&big);
        assert!(s.contains(&Scalar::Int(999)) && !s.contains(&Scalar::Int(1000)));
    }

    #[test]
    fn json_empty_rules() {
        assert!(json_is_empty(&serde_json::json!(null)));
        assert!(json_is_empty(&serde_json::json!({})));
        assert!(json_is_empty(&serde_json::json!([])));
        assert!(json_is_empty(&serde_json::json!({"a": null, "b": [null]})));
        assert!(!json_is_empty(&serde_json::json!(0)));
        assert!(!json_is_empty(&serde_json::json!({"a": [1]})));
    }
}
