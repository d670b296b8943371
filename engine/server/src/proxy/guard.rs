//! Authentication and authorisation of each Milvus request, before any work is done.
//!
//! With `security.authorization_enabled`, every RPC must carry the `authorization` metadata
//! (base64 of `user:password`, as pymilvus sends it): a missing or wrong one is refused with
//! gRPC UNAUTHENTICATED, which clients do not retry. Then the privilege the request needs (the
//! `privilege_ext_obj` of its message in milvus-proto, [`Guarded`]) is checked against the
//! caller's roles; a refusal is gRPC PERMISSION_DENIED naming the user, privilege and object.
//! The handler then runs with the caller known ([`caller`]).

use std::sync::Arc;

use ferrovus_proto::milvus::*;
use tonic::metadata::MetadataMap;

use super::Proxy;
use crate::config::SecurityConfig;
use crate::error::ApiError;
use crate::security::credentials;
use crate::security::model::ROOT_USER;
use crate::security::password::{VerifiedCache, hash_password_blocking, verify_password_blocking};
use crate::security::privileges::check;
use crate::security::{
    ObjectType, Privilege, Requirement, SecurityError, SecurityOp, SecurityState,
};

/// The proxy's security settings and its cache of verified credentials.
pub(super) struct Guard {
    pub enabled: bool,
    root_password: String,
    verified: VerifiedCache,
}

impl Guard {
    pub fn new(cfg: &SecurityConfig) -> Self {
        Guard {
            enabled: cfg.authorization_enabled,
            root_password: cfg.root_password.expose().to_string(),
            verified: VerifiedCache::default(),
        }
    }
}

tokio::task_local! {
    static CALLER: Option<String>;
}

/// The authenticated user of the request being handled (`None` when authorisation is off).
pub(super) fn caller() -> Option<String> {
    CALLER.try_with(Clone::clone).ok().flatten()
}

/// Run `f` as `user`.
pub(super) async fn as_caller<F: Future>(user: Option<String>, f: F) -> F::Output {
    CALLER.scope(user, f).await
}

/// The privilege a request needs, if any (requests without one only need a valid login).
pub(super) trait Guarded {
    fn requirement(&self) -> Option<Requirement>;
}

impl Proxy {
    /// Create the root user with the configured password unless it exists (Milvus' first start).
    pub async fn bootstrap_security(&self) -> Result<(), ApiError> {
        let root_hash = hash_password_blocking(self.guard.root_password.clone()).await?;
        if self
            .backend
            .security_op(SecurityOp::Bootstrap { root_hash })
            .await?
        {
            tracing::info!(user = ROOT_USER, "created the root user");
        }
        Ok(())
    }

    /// Who sends this request, and whether they may: `Ok(None)` when authorisation is off.
    pub(super) async fn authorize<R: Guarded>(
        &self,
        meta: &MetadataMap,
        req: &R,
    ) -> Result<Option<String>, SecurityError> {
        if !self.guard.enabled {
            return Ok(None);
        }
        let (user, state) = self.authenticate(meta).await?;
        if let Some(need) = req.requirement() {
            check(&state, &user, &need)?;
        }
        Ok(Some(user))
    }

    pub(super) async fn security_state(&self) -> Result<Arc<SecurityState>, SecurityError> {
        self.backend.security_state().await.map_err(|e| {
            SecurityError::Internal(format!("reading users and privileges failed: {e}"))
        })
    }

    /// The user the credentials name (when they are right), and the state they were checked
    /// against, which the privilege check then uses too.
    async fn authenticate(
        &self,
        meta: &MetadataMap,
    ) -> Result<(String, Arc<SecurityState>), SecurityError> {
        let creds = credentials::parse(meta.get("authorization").map(|v| v.as_bytes()))?;
        let state = self.security_state().await?;
        let refused = || {
            SecurityError::Unauthenticated(format!(
                "auth check failure, please check username and password are correct[user={}]",
                creds.user
            ))
        };
        let Some(record) = state.users.get(&creds.user) else {
            return Err(refused());
        };
        let hash = record.password_hash.clone();
        if self.guard.verified.hit(&creds.user, &creds.password, &hash) {
            return Ok((creds.user, state));
        }
        if !verify_password_blocking(creds.password.clone(), hash.clone()).await {
            tracing::info!(user = %creds.user, "refused a request: wrong password");
            return Err(refused());
        }
        self.guard
            .verified
            .remember(&creds.user, &creds.password, &hash);
        Ok((creds.user, state))
    }
}

/// A refusal as the gRPC status Milvus answers with.
pub(super) fn to_grpc(e: &SecurityError) -> tonic::Status {
    match e {
        SecurityError::Unauthenticated(m) => tonic::Status::unauthenticated(m.clone()),
        SecurityError::PermissionDenied { .. } | SecurityError::UserNotFound(_) => {
            tonic::Status::permission_denied(e.to_string())
        }
        other => tonic::Status::unavailable(other.to_string()),
    }
}

fn collection(p: Privilege, db: &str, name: &str) -> Option<Requirement> {
    Some(Requirement::new(ObjectType::Collection, p, db).on(name))
}

fn global(p: Privilege, db: &str) -> Option<Requirement> {
    Some(Requirement::new(ObjectType::Global, p, db))
}

fn user(p: Privilege, name: &str) -> Option<Requirement> {
    let name = if name.is_empty() { "*" } else { name };
    Some(Requirement::new(ObjectType::User, p, "").on(name))
}

/// Requests on one collection (`collection_name`, `db_name`).
macro_rules! on_collection {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl Guarded for $t {
            fn requirement(&self) -> Option<Requirement> {
                collection(Privilege::$p, &self.db_name, &self.collection_name)
            }
        }
    )*};
}

/// Global requests of a database (`db_name`).
macro_rules! on_global {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl Guarded for $t {
            fn requirement(&self) -> Option<Requirement> {
                global(Privilege::$p, &self.db_name)
            }
        }
    )*};
}

/// Global requests outside any database (users and roles).
macro_rules! on_instance {
    ($($t:ty => $p:ident),* $(,)?) => {$(
        impl Guarded for $t {
            fn requirement(&self) -> Option<Requirement> {
                global(Privilege::$p, "")
            }
        }
    )*};
}

/// Requests any logged-in user may make (ShowCollections and ListDatabases filter instead).
macro_rules! open {
    ($($t:ty),* $(,)?) => {$(
        impl Guarded for $t {
            fn requirement(&self) -> Option<Requirement> {
                None
            }
        }
    )*};
}

on_collection! {
    LoadCollectionRequest => Load,
    LoadPartitionsRequest => Load,
    ReleaseCollectionRequest => Release,
    ReleasePartitionsRequest => Release,
    GetCollectionStatisticsRequest => GetStatistics,
    GetPartitionStatisticsRequest => GetStatistics,
    CreatePartitionRequest => CreatePartition,
    DropPartitionRequest => DropPartition,
    HasPartitionRequest => HasPartition,
    ShowPartitionsRequest => ShowPartitions,
    CreateIndexRequest => CreateIndex,
    DescribeIndexRequest => IndexDetail,
    GetIndexStateRequest => IndexDetail,
    GetIndexBuildProgressRequest => IndexDetail,
    DropIndexRequest => DropIndex,
    InsertRequest => Insert,
    UpsertRequest => Upsert,
    DeleteRequest => Delete,
    SearchRequest => Search,
    HybridSearchRequest => Search,
    QueryRequest => Query,
    GetLoadingProgressRequest => GetLoadState,
    GetLoadStateRequest => GetLoadState,
    GetFlushStateRequest => GetFlushState,
}

on_global! {
    CreateAliasRequest => CreateAlias,
    DropAliasRequest => DropAlias,
    AlterAliasRequest => CreateAlias,
    DescribeAliasRequest => DescribeAlias,
    ListAliasesRequest => ListAliases,
    CreateCollectionRequest => CreateCollection,
    DropCollectionRequest => DropCollection,
    AlterCollectionRequest => CreateCollection,
    DescribeCollectionRequest => DescribeCollection,
    CreateDatabaseRequest => CreateDatabase,
    DropDatabaseRequest => DropDatabase,
    DescribeDatabaseRequest => DescribeDatabase,
}

on_instance! {
    ListDatabasesRequest => ListDatabases,
}

on_instance! {
    CreateCredentialRequest => CreateOwnership,
    DeleteCredentialRequest => DropOwnership,
    ListCredUsersRequest => SelectOwnership,
    CreateRoleRequest => CreateOwnership,
    DropRoleRequest => DropOwnership,
    OperateUserRoleRequest => ManageOwnership,
    SelectRoleRequest => SelectOwnership,
    SelectGrantRequest => SelectOwnership,
    OperatePrivilegeRequest => ManageOwnership,
    OperatePrivilegeV2Request => ManageOwnership,
}

open! {
    ConnectRequest,
    GetVersionRequest,
    CheckHealthRequest,
    GetComponentStatesRequest,
    AllocTimestampRequest,
    HasCollectionRequest,
    ShowCollectionsRequest,
    GetPersistentSegmentInfoRequest,
    GetQuerySegmentInfoRequest,
    GetReplicasRequest,
    GetMetricsRequest,
}

impl Guarded for RenameCollectionRequest {
    fn requirement(&self) -> Option<Requirement> {
        global(Privilege::RenameCollection, &self.db_name)
    }
}

impl Guarded for FlushRequest {
    fn requirement(&self) -> Option<Requirement> {
        let mut r = Requirement::new(ObjectType::Collection, Privilege::Flush, &self.db_name);
        r.objects.clone_from(&self.collection_names);
        Some(r)
    }
}

impl Guarded for UpdateCredentialRequest {
    fn requirement(&self) -> Option<Requirement> {
        user(Privilege::UpdateUser, &self.username)
    }
}

impl Guarded for SelectUserRequest {
    fn requirement(&self) -> Option<Requirement> {
        let name = self.user.as_ref().map(|u| u.name.as_str()).unwrap_or("");
        user(Privilege::SelectUser, name)
    }
}
