//! Users, roles and grants: CreateCredential … SelectGrant, as Milvus answers them.
//!
//! Passwords arrive base64-encoded (pymilvus encodes them), are validated and hashed here, and
//! only the hash travels on; the privilege each call needs was checked by the guard.

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use ferrovus_proto::status;

use super::Proxy;
use super::guard::caller;
use crate::error::{ApiError, ApiResult};
use crate::security::credentials::decode_password;
use crate::security::model::{
    ANY_OBJECT, ROOT_USER, db_or_default, validate_password, validate_username,
};
use crate::security::password::{hash_password_blocking, verify_password_blocking};
use crate::security::{Grant, ObjectType, Privilege, SecurityError, SecurityOp};

async fn apply(p: &Proxy, op: SecurityOp) -> ApiResult<Status> {
    p.backend.security_op(op).await?;
    Ok(status::success())
}

fn granted_by() -> String {
    caller().unwrap_or_else(|| ROOT_USER.to_string())
}

/// The privilege a grantor entity names.
fn privilege_of(grantor: Option<GrantorEntity>) -> ApiResult<Privilege> {
    let name = grantor
        .and_then(|g| g.privilege)
        .map(|p| p.name)
        .unwrap_or_default();
    Ok(Privilege::parse(&name)?)
}

pub(super) async fn create_credential(p: &Proxy, r: CreateCredentialRequest) -> ApiResult<Status> {
    validate_username(&r.username)?;
    let password = decode_password("password", &r.password)?;
    validate_password(&password)?;
    let password_hash = hash_password_blocking(password).await?;
    apply(
        p,
        SecurityOp::CreateUser {
            name: r.username,
            password_hash,
        },
    )
    .await
}

/// Changing a password needs the old one (also for root, as in Milvus).
pub(super) async fn update_credential(p: &Proxy, r: UpdateCredentialRequest) -> ApiResult<Status> {
    validate_username(&r.username)?;
    let new = decode_password("newPassword", &r.new_password)?;
    validate_password(&new)?;
    let state = p.security_state().await?;
    let record = state
        .users
        .get(&r.username)
        .ok_or_else(|| SecurityError::UserNotFound(r.username.clone()))?;
    let old = decode_password("oldPassword", &r.old_password)?;
    if !verify_password_blocking(old, record.password_hash.clone()).await {
        // Milvus' text and code (1400) for a wrong old password.
        return Err(SecurityError::Unauthenticated(format!(
            "old password not correct for {}: not authenticated",
            r.username
        ))
        .into());
    }
    let password_hash = hash_password_blocking(new).await?;
    apply(
        p,
        SecurityOp::UpdatePassword {
            name: r.username,
            password_hash,
        },
    )
    .await
}

pub(super) async fn delete_credential(p: &Proxy, r: DeleteCredentialRequest) -> ApiResult<Status> {
    apply(p, SecurityOp::DeleteUser { name: r.username }).await
}

pub(super) async fn list_cred_users(
    p: &Proxy,
    _r: ListCredUsersRequest,
) -> ApiResult<ListCredUsersResponse> {
    let state = p.security_state().await?;
    Ok(ListCredUsersResponse {
        status: Some(status::success()),
        usernames: state.users.keys().cloned().collect(),
    })
}

pub(super) async fn create_role(p: &Proxy, r: CreateRoleRequest) -> ApiResult<Status> {
    let name = r.entity.map(|e| e.name).unwrap_or_default();
    apply(p, SecurityOp::CreateRole { name }).await
}

pub(super) async fn drop_role(p: &Proxy, r: DropRoleRequest) -> ApiResult<Status> {
    apply(
        p,
        SecurityOp::DropRole {
            name: r.role_name,
            force: r.force_drop,
        },
    )
    .await
}

pub(super) async fn operate_user_role(p: &Proxy, r: OperateUserRoleRequest) -> ApiResult<Status> {
    let op = if r.r#type == OperateUserRoleType::RemoveUserFromRole as i32 {
        SecurityOp::RemoveUserFromRole {
            user: r.username,
            role: r.role_name,
        }
    } else {
        SecurityOp::AddUserToRole {
            user: r.username,
            role: r.role_name,
        }
    };
    apply(p, op).await
}

fn role_entity(name: &str) -> RoleEntity {
    RoleEntity {
        name: name.to_string(),
        description: String::new(),
    }
}

pub(super) async fn select_role(p: &Proxy, r: SelectRoleRequest) -> ApiResult<SelectRoleResponse> {
    let state = p.security_state().await?;
    let wanted = r.role.map(|e| e.name).filter(|n| !n.is_empty());
    let names = match wanted {
        Some(n) if !state.role_exists(&n) => return Err(SecurityError::RoleNotFound(n).into()),
        Some(n) => vec![n],
        None => state.all_roles(),
    };
    let results = names
        .iter()
        .map(|n| RoleResult {
            role: Some(role_entity(n)),
            users: if r.include_user_info {
                state
                    .users_of(n)
                    .into_iter()
                    .map(|name| UserEntity { name })
                    .collect()
            } else {
                vec![]
            },
        })
        .collect();
    Ok(SelectRoleResponse {
        status: Some(status::success()),
        results,
    })
}

/// One user (an unknown one gives no result, as in Milvus) or every user.
pub(super) async fn select_user(p: &Proxy, r: SelectUserRequest) -> ApiResult<SelectUserResponse> {
    let state = p.security_state().await?;
    let wanted = r.user.map(|u| u.name).filter(|n| !n.is_empty());
    let results = state
        .users
        .iter()
        .filter(|(name, _)| wanted.as_ref().is_none_or(|w| w == *name))
        .map(|(name, u)| UserResult {
            user: Some(UserEntity { name: name.clone() }),
            roles: if r.include_role_info {
                u.roles.iter().map(|r| role_entity(r)).collect()
            } else {
                vec![]
            },
            description: String::new(),
        })
        .collect();
    Ok(SelectUserResponse {
        status: Some(status::success()),
        results,
    })
}

fn grant_from_entity(e: GrantEntity) -> ApiResult<Grant> {
    let role = e.role.map(|r| r.name).unwrap_or_default();
    let object_type = ObjectType::parse(&e.object.map(|o| o.name).unwrap_or_default())?;
    let privilege = privilege_of(e.grantor)?;
    let object_name = if e.object_name.is_empty() {
        return Err(ApiError::invalid(
            "object_name",
            "the object name must not be empty",
        ));
    } else {
        e.object_name
    };
    Ok(Grant {
        role,
        object_type,
        object_name,
        db_name: db_or_default(&e.db_name),
        privilege,
        grantor: granted_by(),
    })
}

fn grant_or_revoke(kind: i32, g: Grant) -> SecurityOp {
    if kind == OperatePrivilegeType::Revoke as i32 {
        SecurityOp::Revoke(g)
    } else {
        SecurityOp::Grant(g)
    }
}

pub(super) async fn operate_privilege(p: &Proxy, r: OperatePrivilegeRequest) -> ApiResult<Status> {
    let entity = r
        .entity
        .ok_or_else(|| ApiError::invalid("entity", "the grant entity is missing"))?;
    let g = grant_from_entity(entity)?;
    apply(p, grant_or_revoke(r.r#type, g)).await
}

/// The v2 form names a privilege, a database and a collection; the object type follows from
/// the privilege (a Global privilege applies to the database, a Collection one to the
/// collection, `*` for all).
pub(super) async fn operate_privilege_v2(
    p: &Proxy,
    r: OperatePrivilegeV2Request,
) -> ApiResult<Status> {
    let privilege = privilege_of(r.grantor)?;
    let object_type = if privilege == Privilege::All {
        ObjectType::Global
    } else {
        privilege.objects()[0]
    };
    let object_name = match object_type {
        ObjectType::Collection if !r.collection_name.is_empty() => r.collection_name,
        _ => ANY_OBJECT.to_string(),
    };
    let g = Grant {
        role: r.role.map(|e| e.name).unwrap_or_default(),
        object_type,
        object_name,
        db_name: db_or_default(&r.db_name),
        privilege,
        grantor: granted_by(),
    };
    apply(p, grant_or_revoke(r.r#type, g)).await
}

/// The grants of a role, optionally of one object type and name.
pub(super) async fn select_grant(
    p: &Proxy,
    r: SelectGrantRequest,
) -> ApiResult<SelectGrantResponse> {
    let e = r
        .entity
        .ok_or_else(|| ApiError::invalid("entity", "the grant entity is missing"))?;
    let role = e.role.map(|r| r.name).unwrap_or_default();
    let state = p.security_state().await?;
    if !state.role_exists(&role) {
        return Err(SecurityError::RoleNotFound(role).into());
    }
    let object = e.object.map(|o| o.name).filter(|n| !n.is_empty());
    let object_type = object.as_deref().map(ObjectType::parse).transpose()?;
    let db = (!e.db_name.is_empty()).then_some(e.db_name);
    let entities = state
        .grants
        .iter()
        .filter(|g| g.role == role)
        .filter(|g| object_type.is_none_or(|t| g.object_type == t))
        .filter(|g| e.object_name.is_empty() || g.object_name == e.object_name)
        .filter(|g| db.as_ref().is_none_or(|d| &g.db_name == d))
        .map(|g| GrantEntity {
            role: Some(role_entity(&g.role)),
            object: Some(ObjectEntity {
                name: g.object_type.as_str().into(),
            }),
            object_name: g.object_name.clone(),
            grantor: Some(GrantorEntity {
                user: Some(UserEntity {
                    name: g.grantor.clone(),
                }),
                privilege: Some(PrivilegeEntity {
                    name: g.privilege.as_str().into(),
                }),
            }),
            db_name: g.db_name.clone(),
        })
        .collect();
    Ok(SelectGrantResponse {
        status: Some(status::success()),
        entities,
    })
}
