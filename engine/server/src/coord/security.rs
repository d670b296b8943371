//! Users, roles and grants: one record of the catalogue, changed by one fenced transaction per
//! operation (validated by [`SecurityState::apply`]); proxies read it whole.

use super::catalog::Edit;
use super::leader::Leader;
use crate::api::Empty;
use crate::rpc::ClusterError;
use crate::security::{SecurityOp, SecurityState};

impl Leader {
    pub async fn security_op(&self, op: SecurityOp) -> Result<bool, ClusterError> {
        let g = self.lock().await?;
        let cat = self.snapshot();
        let mut state = (*cat.security).clone();
        let what = op_name(&op);
        let changed = state.apply(op).map_err(ClusterError::Security)?;
        if changed {
            let mut e = Edit::new(&cat);
            e.put_security(state);
            self.commit(&g, e).await?;
            tracing::info!(operation = what, "security change committed");
        }
        Ok(changed)
    }

    pub async fn security_state(&self, _: Empty) -> Result<SecurityState, ClusterError> {
        self.check()?;
        Ok((*self.snapshot().security).clone())
    }
}

/// The operation's kind for the log (never its passwords or hashes).
fn op_name(op: &SecurityOp) -> &'static str {
    match op {
        SecurityOp::Bootstrap { .. } => "bootstrap",
        SecurityOp::CreateUser { .. } => "create_user",
        SecurityOp::UpdatePassword { .. } => "update_password",
        SecurityOp::DeleteUser { .. } => "delete_user",
        SecurityOp::CreateRole { .. } => "create_role",
        SecurityOp::DropRole { .. } => "drop_role",
        SecurityOp::AddUserToRole { .. } => "grant_role",
        SecurityOp::RemoveUserFromRole { .. } => "revoke_role",
        SecurityOp::Grant(_) => "grant_privilege",
        SecurityOp::Revoke(_) => "revoke_privilege",
    }
}
