//! Users, roles and grants: the state, the operations that change it, and their validation.
//!
//! Pure data: the coordinator keeps one [`SecurityState`] in its catalogue (one record, written
//! in the same fenced transactions as the rest of the catalogue) and applies [`SecurityOp`]s to
//! it; proxies hold a copy to authenticate and authorise requests. Passwords only ever appear
//! here as salted argon2id hashes (PHC strings, see [`super::password`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::SecurityError;
use super::privileges::{ObjectType, Privilege};

/// The superuser: every privilege, cannot be deleted.
pub const ROOT_USER: &str = "root";
/// Built-in role with every privilege; it cannot be dropped.
pub const ADMIN_ROLE: &str = "admin";
/// Built-in role every user has; it cannot be dropped.
pub const PUBLIC_ROLE: &str = "public";
/// Object name meaning "every object of the type".
pub const ANY_OBJECT: &str = "*";
/// The database grants apply to when none is named.
pub const DEFAULT_DB: &str = "default";

/// Milvus' limits (`proxy.maxUsernameLength`, `proxy.minPasswordLength`,
/// `proxy.maxPasswordLength`, `proxy.maxNameLength`).
pub const MAX_USERNAME_LEN: usize = 32;
pub const MIN_PASSWORD_LEN: usize = 6;
pub const MAX_PASSWORD_LEN: usize = 256;
pub const MAX_ROLE_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2id PHC string (algorithm, parameters, salt, hash).
    pub password_hash: String,
    /// Roles granted to the user (`public` is implicit and never listed here).
    pub roles: BTreeSet<String>,
}

/// One privilege on one object (or every object of a type: [`ANY_OBJECT`]) granted to a role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub role: String,
    pub object_type: ObjectType,
    pub object_name: String,
    pub db_name: String,
    pub privilege: Privilege,
    /// Who granted it (reported by SelectGrant).
    pub grantor: String,
}

impl Grant {
    fn same_target(&self, other: &Grant) -> bool {
        self.role == other.role
            && self.object_type == other.object_type
            && self.object_name == other.object_name
            && self.db_name == other.db_name
            && self.privilege == other.privilege
    }
}

/// Everything the security layer stores.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SecurityState {
    pub users: BTreeMap<String, UserRecord>,
    /// Custom roles (the built-in `admin` and `public` always exist and are not stored).
    pub roles: BTreeSet<String>,
    pub grants: Vec<Grant>,
}

/// A change to the security state; the proxy hashes passwords before sending one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecurityOp {
    /// First start: the root user with the configured password and the `public` role's default
    /// grants, unless root already exists.
    Bootstrap {
        root_hash: String,
    },
    CreateUser {
        name: String,
        password_hash: String,
    },
    UpdatePassword {
        name: String,
        password_hash: String,
    },
    DeleteUser {
        name: String,
    },
    CreateRole {
        name: String,
    },
    DropRole {
        name: String,
        force: bool,
    },
    AddUserToRole {
        user: String,
        role: String,
    },
    RemoveUserFromRole {
        user: String,
        role: String,
    },
    Grant(Grant),
    Revoke(Grant),
}

/// The database a request or grant names: `default` when it names none.
pub fn db_or_default(db: &str) -> String {
    if db.is_empty() { DEFAULT_DB } else { db }.to_string()
}

/// Milvus' username rule: a letter first, then letters, digits and underscores, at most 32.
pub fn validate_username(name: &str) -> Result<(), SecurityError> {
    let invalid = |message: String| SecurityError::Invalid {
        field: "username".into(),
        message,
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("invalid empty username".into()));
    };
    if name.chars().count() > MAX_USERNAME_LEN {
        return Err(invalid(format!(
            "invalid username {name} with length {}, the length of username must be less than {MAX_USERNAME_LEN}",
            name.chars().count()
        )));
    }
    if !first.is_ascii_alphabetic() {
        return Err(invalid(format!(
            "invalid user name {name}, the first character must be a letter, but got {first}"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(invalid(format!(
            "invalid user name {name}, user name can only contain numbers, letters and underscores, but got {c}"
        )));
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), SecurityError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&n) {
        return Err(SecurityError::Invalid {
            field: "password".into(),
            message: format!(
                "the length of password must be at least {MIN_PASSWORD_LEN} and at most {MAX_PASSWORD_LEN} characters, got {n}"
            ),
        });
    }
    Ok(())
}

/// Role (and object) names: a letter or underscore first, then letters, digits and underscores.
pub fn validate_role_name(name: &str) -> Result<(), SecurityError> {
    let invalid = |message: String| SecurityError::Invalid {
        field: "role_name".into(),
        message,
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("the role name should not be empty".into()));
    };
    if name.chars().count() > MAX_ROLE_NAME_LEN {
        return Err(invalid(format!(
            "the length of a role name must be less than {MAX_ROLE_NAME_LEN} characters, got {}",
            name.chars().count()
        )));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(invalid(format!(
            "the first character of role name {name} must be an underscore or letter, but got {first}"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(invalid(format!(
            "role name {name} can only contain numbers, letters and underscores, but got {c}"
        )));
    }
    Ok(())
}

impl SecurityState {
    pub fn role_exists(&self, role: &str) -> bool {
        role == ADMIN_ROLE || role == PUBLIC_ROLE || self.roles.contains(role)
    }

    /// Every role, built-ins first.
    pub fn all_roles(&self) -> Vec<String> {
        let mut out = vec![ADMIN_ROLE.to_string(), PUBLIC_ROLE.to_string()];
        out.extend(self.roles.iter().cloned());
        out
    }

    /// Users holding `role` (`public`: everyone).
    pub fn users_of(&self, role: &str) -> Vec<String> {
        self.users
            .iter()
            .filter(|(_, u)| role == PUBLIC_ROLE || u.roles.contains(role))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut UserRecord, SecurityError> {
        self.users
            .get_mut(name)
            .ok_or_else(|| SecurityError::UserNotFound(name.to_string()))
    }

    fn require_role(&self, role: &str) -> Result<(), SecurityError> {
        if self.role_exists(role) {
            Ok(())
        } else {
            Err(SecurityError::RoleNotFound(role.to_string()))
        }
    }

    /// Apply `op`; on error the state is unchanged. Whether anything changed (idempotent
    /// repeats, such as a bootstrap after the first, change nothing).
    pub fn apply(&mut self, op: SecurityOp) -> Result<bool, SecurityError> {
        match op {
            SecurityOp::Bootstrap { root_hash } => {
                if self.users.contains_key(ROOT_USER) {
                    return Ok(false);
                }
                self.users.insert(
                    ROOT_USER.into(),
                    UserRecord {
                        password_hash: root_hash,
                        roles: BTreeSet::new(),
                    },
                );
                for g in super::privileges::public_defaults() {
                    if !self.grants.iter().any(|h| h.same_target(&g)) {
                        self.grants.push(g);
                    }
                }
                Ok(true)
            }
            SecurityOp::CreateUser {
                name,
                password_hash,
            } => {
                validate_username(&name)?;
                if self.users.contains_key(&name) {
                    return Err(SecurityError::UserExists(name));
                }
                self.users.insert(
                    name,
                    UserRecord {
                        password_hash,
                        roles: BTreeSet::new(),
                    },
                );
                Ok(true)
            }
            SecurityOp::UpdatePassword {
                name,
                password_hash,
            } => {
                self.user_mut(&name)?.password_hash = password_hash;
                Ok(true)
            }
            SecurityOp::DeleteUser { name } => {
                if name == ROOT_USER {
                    return Err(SecurityError::NotAllowed(
                        "the root user cannot be deleted".into(),
                    ));
                }
                // Deleting a missing user succeeds, as in Milvus.
                Ok(self.users.remove(&name).is_some())
            }
            SecurityOp::CreateRole { name } => {
                validate_role_name(&name)?;
                if self.role_exists(&name) {
                    return Err(SecurityError::RoleExists(name));
                }
                self.roles.insert(name);
                Ok(true)
            }
            SecurityOp::DropRole { name, force } => {
                if name == ADMIN_ROLE || name == PUBLIC_ROLE {
                    return Err(SecurityError::NotAllowed(format!(
                        "the built-in role {name} cannot be dropped"
                    )));
                }
                self.require_role(&name)?;
                let holders: Vec<String> = self
                    .users
                    .iter()
                    .filter(|(_, u)| u.roles.contains(&name))
                    .map(|(n, _)| n.clone())
                    .collect();
                let granted = self.grants.iter().any(|g| g.role == name);
                if !force && (!holders.is_empty() || granted) {
                    return Err(SecurityError::NotAllowed(format!(
                        "role {name} is still granted to users {holders:?} or holds privileges: revoke them first or drop it with force_drop"
                    )));
                }
                for h in holders {
                    self.user_mut(&h)?.roles.remove(&name);
                }
                self.grants.retain(|g| g.role != name);
                self.roles.remove(&name);
                Ok(true)
            }
            SecurityOp::AddUserToRole { user, role } => {
                self.require_role(&role)?;
                let u = self.user_mut(&user)?;
                if role == PUBLIC_ROLE {
                    return Ok(false);
                }
                Ok(u.roles.insert(role))
            }
            SecurityOp::RemoveUserFromRole { user, role } => {
                self.require_role(&role)?;
                if user == ROOT_USER && role == ADMIN_ROLE {
                    return Err(SecurityError::NotAllowed(
                        "the root user cannot be removed from the admin role".into(),
                    ));
                }
                Ok(self.user_mut(&user)?.roles.remove(&role))
            }
            SecurityOp::Grant(g) => {
                self.require_role(&g.role)?;
                g.privilege.check_object(g.object_type)?;
                if self.grants.iter().any(|h| h.same_target(&g)) {
                    return Ok(false);
                }
                self.grants.push(g);
                self.grants.sort();
                Ok(true)
            }
            SecurityOp::Revoke(g) => {
                self.require_role(&g.role)?;
                g.privilege.check_object(g.object_type)?;
                let before = self.grants.len();
                self.grants.retain(|h| !h.same_target(&g));
                Ok(self.grants.len() != before)
            }
        }
    }
}
