//! Milvus boolean filter expressions: parse → typed plan → evaluate.
//! (Being written; see the module's public API below.)

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ExprError {
    #[error("syntax error at position {pos} near {token:?}: {message}")]
    Syntax { pos: usize, token: String, message: String },
    #[error("type error at position {pos}: {message}")]
    Type { pos: usize, message: String },
    #[error("field {0} does not exist")]
    UnknownField(String),
}
