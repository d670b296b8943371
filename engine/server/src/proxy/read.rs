//! Reads: search and query (pymilvus' `get` is a query on primary keys). The collection is
//! looked up first, so a missing collection is reported before bad parameters.

use ferrovus_proto::milvus::*;

use super::Proxy;
use crate::convert::*;
use crate::error::{ApiError, ApiResult};

pub(super) async fn search(p: &Proxy, r: SearchRequest) -> ApiResult<SearchResults> {
    check_db(&r.db_name)?;
    p.limits.charge_search(&r.collection_name, r.nq)?;
    let c = p.backend.describe_collection(&r.collection_name).await?;
    let plan = parse_search(&r)?;
    let res = p.backend.search(plan.request).await?;
    Ok(search_results(
        &c,
        res,
        &r.output_fields,
        plan.round_decimal,
        r.guarantee_timestamp,
    ))
}

pub(super) async fn hybrid_search(_p: &Proxy, _r: HybridSearchRequest) -> ApiResult<SearchResults> {
    Err(ApiError::Unimplemented("HybridSearch"))
}

pub(super) async fn query(p: &Proxy, r: QueryRequest) -> ApiResult<QueryResults> {
    check_db(&r.db_name)?;
    let c = p.backend.describe_collection(&r.collection_name).await?;
    let req = parse_query(&r)?;
    let res = p.backend.query(req).await?;
    Ok(query_results(&c, res, &r.output_fields))
}
