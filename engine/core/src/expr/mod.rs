//! Milvus boolean filter expressions: parse → typed plan → evaluate.
//!
//! The language follows Milvus' `Plan.g4` (milvus-io/milvus `internal/parser/planparserv2`):
//!
//! * literals: integers (decimal, `0x` hex, `0b` binary, leading-`0` octal), floats (`1.5`, `.5`,
//!   `1.`, `1e-3`), strings in `"…"` or `'…'` with Go/C escapes (and raw `r"…"`), `true`/`True`/`TRUE`,
//!   `false`/…, lists `[1, 2, 3]`, templates `{name}`;
//! * names: schema fields, JSON paths `meta["a"][0]`, `$meta["k"]`; a name that is not a field is a
//!   key of the dynamic field (`$meta["name"]`) when the schema has one;
//! * operators, tightest first: `like`; `**`; unary `-` `+` `not`/`!`; `* / %`; `+ -`; `in`/`not in`;
//!   `< <= > >=` and the ranges `a < x <= b`, `b > x >= a`; `== !=`; `and`/`&&`; `or`/`||`.
//!   `exists x` binds tighter than all of them; `x is null` / `x is not null` is a primary.
//!   Keywords are all lowercase or all uppercase (`and`, `AND`), as in the grammar.
//!   Note that, as in Milvus, unary `not` binds tighter than comparisons: write `not (a > 1)`.
//! * functions: `json_contains`, `json_contains_all`, `json_contains_any` (and the `array_*`
//!   spellings), `array_length`.
//!
//! [`parse`] gives an [`Expr`] (whose `Display` is a canonical form that parses back to an equal
//! AST), [`compile`] resolves names against a schema and type-checks into a [`Plan`], and
//! [`Plan::eval`] evaluates one row through [`RowAccess`].
//!
//! Evaluation follows Milvus: integers and floats compare numerically; JSON values compare by JSON
//! type (a missing key, a JSON `null` or a value of another type makes `==`, `<`, `in`, … false and
//! `!=` true); a null value of a nullable field makes a comparison "null", which `not` keeps false
//! (Milvus' valid-bitmap semantics).

mod ast;
mod compile;
mod lexer;
mod like;
mod parser;
mod plan;
mod template;

use std::collections::HashMap;

use thiserror::Error;

use crate::schema::CollectionSchema;

pub use ast::{BinaryOp, CmpOp, Expr, ExprKind, PathSeg, Span, UnaryOp};
pub use plan::{Plan, RowAccess};
pub use template::substitute_params;

/// Maximum nesting depth of an expression (parenthesised or operator nesting).
pub const MAX_DEPTH: usize = 192;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExprError {
    /// The text is not a well-formed expression. `pos` is a byte offset into the input and `token`
    /// the offending token's text (`<EOF>` at the end of the input).
    #[error("syntax error at position {pos} near {token:?}: {message}")]
    Syntax {
        pos: usize,
        token: String,
        message: String,
    },
    /// The expression is well-formed but does not type-check against the schema. `token` is the
    /// offending sub-expression in canonical form.
    #[error("type error at position {pos} near {token:?}: {message}")]
    Type {
        pos: usize,
        token: String,
        message: String,
    },
    /// A name is neither a schema field nor (without a dynamic field) a dynamic key.
    #[error("field {name} does not exist (at position {pos})")]
    UnknownField { pos: usize, name: String },
    /// A template placeholder `{name}` has no value or an unusable one.
    #[error("template variable {{{name}}} at position {pos}: {message}")]
    Template {
        pos: usize,
        name: String,
        message: String,
    },
}

impl ExprError {
    /// Byte offset of the error in the expression text.
    pub fn pos(&self) -> usize {
        match self {
            ExprError::Syntax { pos, .. }
            | ExprError::Type { pos, .. }
            | ExprError::UnknownField { pos, .. }
            | ExprError::Template { pos, .. } => *pos,
        }
    }
}

/// Parse an expression into an AST with byte positions.
pub fn parse(input: &str) -> Result<Expr, ExprError> {
    parser::parse(input)
}

/// Resolve names against `schema`, type-check, fold constants and build an evaluation plan.
pub fn compile(expr: &Expr, schema: &CollectionSchema) -> Result<Plan, ExprError> {
    compile::compile(expr, schema)
}

/// Like [`compile`], first replacing `{name}` placeholders by the values in `params`.
pub fn compile_with_params(
    expr: &Expr,
    schema: &CollectionSchema,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Plan, ExprError> {
    let expr = substitute_params(expr, params)?;
    compile::compile(&expr, schema)
}

/// Parse and compile. An empty or all-whitespace expression gives the match-all plan.
pub fn compile_str(input: &str, schema: &CollectionSchema) -> Result<Plan, ExprError> {
    if input.trim().is_empty() {
        return Ok(Plan::match_all());
    }
    compile(&parse(input)?, schema)
}

/// Parse, substitute the template values (`{name}` placeholders; scalars and lists) and compile.
/// An empty or all-whitespace expression gives the match-all plan.
pub fn compile_str_with_params(
    input: &str,
    schema: &CollectionSchema,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Plan, ExprError> {
    if input.trim().is_empty() {
        return Ok(Plan::match_all());
    }
    compile_with_params(&parse(input)?, schema, params)
}
