//! The credentials a Milvus client sends: gRPC metadata `authorization` = base64 of
//! `user:password` (pymilvus' `user`/`password` arguments, and `token="user:password"`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::SecurityError;

/// A user name and password from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Display for Credentials {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:***", self.user)
    }
}

/// Parse the value of the `authorization` metadata; `None` (no metadata) is refused too.
pub fn parse(value: Option<&[u8]>) -> Result<Credentials, SecurityError> {
    // Milvus' texts, so what users search for finds the answer.
    let refused = |text: &str| SecurityError::Unauthenticated(text.to_string());
    let Some(raw) = value else {
        return Err(refused(
            "missing authorization in header (connect with user and password, or token=\"user:password\")",
        ));
    };
    let decoded = std::str::from_utf8(raw)
        .ok()
        .and_then(|raw| STANDARD.decode(raw.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| refused("invalid token format"))?;
    let Some((user, password)) = decoded.split_once(':') else {
        return Err(refused(
            "auth check failure, please check api key is correct (API keys are not supported: use token=\"user:password\")",
        ));
    };
    Ok(Credentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// The base64 form a client puts into the metadata.
pub fn encode(user: &str, password: &str) -> String {
    STANDARD.encode(format!("{user}:{password}"))
}

/// Passwords in CreateCredential/UpdateCredential travel base64-encoded (pymilvus encodes them).
pub fn decode_password(field: &str, value: &str) -> Result<String, SecurityError> {
    STANDARD
        .decode(value.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| SecurityError::Invalid {
            field: field.to_string(),
            message: "the password must be base64-encoded UTF-8 (as pymilvus sends it)".into(),
        })
}
