//! Aliases: create, drop, alter, describe, list.

use ferrovus_proto::common::Status;
use ferrovus_proto::milvus::*;
use ferrovus_proto::status;

use super::Proxy;
use crate::convert::*;
use crate::error::{ApiError, ApiResult};

pub(super) async fn create_alias(p: &Proxy, r: CreateAliasRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend.create_alias(&r.alias, &r.collection_name).await?;
    Ok(status::success())
}

pub(super) async fn drop_alias(p: &Proxy, r: DropAliasRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend.drop_alias(&r.alias).await?;
    Ok(status::success())
}

pub(super) async fn alter_alias(p: &Proxy, r: AlterAliasRequest) -> ApiResult<Status> {
    check_db(&r.db_name)?;
    p.backend.alter_alias(&r.alias, &r.collection_name).await?;
    Ok(status::success())
}

pub(super) async fn describe_alias(
    p: &Proxy,
    r: DescribeAliasRequest,
) -> ApiResult<DescribeAliasResponse> {
    check_db(&r.db_name)?;
    let target = p
        .backend
        .alias_target(&r.alias)
        .await?
        .ok_or_else(|| ApiError::invalid("alias", format!("alias {} not found", r.alias)))?;
    Ok(DescribeAliasResponse {
        status: Some(status::success()),
        db_name: DEFAULT_DB.into(),
        alias: r.alias,
        collection: target,
    })
}

/// The aliases of one collection, or of every collection when none is named.
pub(super) async fn list_aliases(
    p: &Proxy,
    r: ListAliasesRequest,
) -> ApiResult<ListAliasesResponse> {
    check_db(&r.db_name)?;
    let aliases = if r.collection_name.is_empty() {
        let all = p.backend.list_collections().await?;
        all.into_iter().flat_map(|c| c.aliases).collect()
    } else {
        p.backend
            .describe_collection(&r.collection_name)
            .await?
            .aliases
    };
    Ok(ListAliasesResponse {
        status: Some(status::success()),
        db_name: DEFAULT_DB.into(),
        collection_name: r.collection_name,
        aliases,
    })
}
