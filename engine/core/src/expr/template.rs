//! Milvus expression templates: `{name}` placeholders filled from a parameter map.

use std::collections::HashMap;

use super::ExprError;
use super::ast::{Expr, ExprKind, Span};

/// Replace every `{name}` in `expr` by the value of `params[name]` (numbers, strings, bools and
/// lists of them). A placeholder without a value, or with a `null`/object value, is an error.
pub fn substitute_params(
    expr: &Expr,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Expr, ExprError> {
    let sub = |e: &Expr| substitute_params(e, params);
    let boxed = |e: &Expr| substitute_params(e, params).map(Box::new);
    let all = |v: &[Expr]| v.iter().map(sub).collect::<Result<Vec<_>, _>>();
    let kind = match &expr.kind {
        ExprKind::Template(name) => {
            let v = params.get(name).ok_or_else(|| ExprError::Template {
                pos: expr.span.start,
                name: name.clone(),
                message: "no value was supplied for this template variable".to_string(),
            })?;
            return json_to_expr(v, expr.span).map_err(|message| ExprError::Template {
                pos: expr.span.start,
                name: name.clone(),
                message,
            });
        }
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Ident(_)
        | ExprKind::JsonPath { .. } => return Ok(expr.clone()),
        ExprKind::List(items) => ExprKind::List(all(items)?),
        ExprKind::Unary { op, operand } => ExprKind::Unary {
            op: *op,
            operand: boxed(operand)?,
        },
        ExprKind::Binary { op, lhs, rhs } => ExprKind::Binary {
            op: *op,
            lhs: boxed(lhs)?,
            rhs: boxed(rhs)?,
        },
        ExprKind::And(items) => ExprKind::And(all(items)?),
        ExprKind::Or(items) => ExprKind::Or(all(items)?),
        ExprKind::Range {
            first,
            op1,
            target,
            op2,
            second,
        } => ExprKind::Range {
            first: boxed(first)?,
            op1: *op1,
            target: boxed(target)?,
            op2: *op2,
            second: boxed(second)?,
        },
        ExprKind::In { lhs, rhs, negated } => ExprKind::In {
            lhs: boxed(lhs)?,
            rhs: boxed(rhs)?,
            negated: *negated,
        },
        ExprKind::Like { lhs, pattern } => ExprKind::Like {
            lhs: boxed(lhs)?,
            pattern: boxed(pattern)?,
        },
        ExprKind::Exists(operand) => ExprKind::Exists(boxed(operand)?),
        ExprKind::IsNull { operand, negated } => ExprKind::IsNull {
            operand: boxed(operand)?,
            negated: *negated,
        },
        ExprKind::Call { name, args } => ExprKind::Call {
            name: name.clone(),
            args: all(args)?,
        },
    };
    Ok(Expr::new(kind, expr.span))
}

fn json_to_expr(v: &serde_json::Value, span: Span) -> Result<Expr, String> {
    use serde_json::Value as J;
    let kind = match v {
        J::Bool(b) => ExprKind::Bool(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                ExprKind::Int(i)
            } else if n.is_u64() {
                return Err(format!("integer {n} is out of range for Int64"));
            } else {
                ExprKind::Float(
                    n.as_f64()
                        .ok_or_else(|| format!("unsupported number {n}"))?,
                )
            }
        }
        J::String(s) => ExprKind::Str(s.clone()),
        J::Array(items) => ExprKind::List(
            items
                .iter()
                .map(|i| json_to_expr(i, span))
                .collect::<Result<_, _>>()?,
        ),
        J::Null => return Err("null is not a supported template value".to_string()),
        J::Object(_) => return Err("an object is not a supported template value".to_string()),
    };
    Ok(Expr::new(kind, span))
}
