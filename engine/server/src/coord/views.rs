//! Catalogue reads (names and aliases resolve), routes for proxies, `watch_catalog`, and
//! timestamps and ids.

use super::ddl::not_found;
use super::fence::store_error;
use super::leader::Leader;
use crate::api::{
    ChannelRoute, CollectionRecord, CollectionRoutes, Empty, NameReq, ReplicaRoute, ReplicaView,
    RoutesReq, SegmentView, ShardLeader, WatchReq,
};
use crate::rpc::ClusterError;

impl Leader {
    pub async fn describe_collection(
        &self,
        req: NameReq,
    ) -> Result<CollectionRecord, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        Ok(cat
            .resolve(&req.name)
            .ok_or_else(|| not_found(&req.name))?
            .record
            .clone())
    }

    /// Every collection, ordered by name.
    pub async fn list_collections(&self, _: Empty) -> Result<Vec<CollectionRecord>, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        Ok(cat.by_names().map(|c| c.record.clone()).collect())
    }

    /// The live sealed segments and the query nodes serving them.
    pub async fn segments(&self, req: NameReq) -> Result<Vec<SegmentView>, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        let c = cat.resolve(&req.name).ok_or_else(|| not_found(&req.name))?;
        let rt = self.rt.lock();
        Ok(c.segments
            .values()
            .filter(|s| c.is_live(s))
            .map(|s| {
                let mut nodes: Vec<u64> = c
                    .replicas
                    .keys()
                    .filter_map(|rid| rt.dists.get(&(c.id(), s.shard, *rid)))
                    .filter_map(|d| d.served.get(&s.id()).copied())
                    .collect();
                nodes.sort_unstable();
                nodes.dedup();
                SegmentView {
                    record: s.clone(),
                    nodes,
                }
            })
            .collect())
    }

    pub async fn replicas(&self, req: NameReq) -> Result<Vec<ReplicaView>, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        let c = cat.resolve(&req.name).ok_or_else(|| not_found(&req.name))?;
        let view = self.view();
        let channels: Vec<ChannelRoute> = c.channels.iter().filter_map(|ch| ch.route()).collect();
        Ok(c.replicas
            .values()
            .map(|r| ReplicaView {
                replica_id: r.replica_id,
                collection_id: c.id(),
                nodes: r.nodes.clone(),
                leaders: r
                    .leaders
                    .iter()
                    .map(|(shard, n)| ShardLeader {
                        shard: *shard,
                        node: *n,
                        addr: view.addr(*n),
                    })
                    .collect(),
                channels: channels.clone(),
            })
            .collect())
    }

    /// Channel owners and, per replica, the delegator of each shard whose node is alive.
    /// `Unavailable` (retriable) while a channel has no streaming node yet.
    pub async fn routes(&self, req: RoutesReq) -> Result<CollectionRoutes, ClusterError> {
        self.check()?;
        let cat = self.snapshot();
        let c = cat
            .get(req.collection_id)
            .ok_or_else(|| not_found(&req.collection_id.to_string()))?;
        let channels = c
            .channels
            .iter()
            .map(|ch| {
                ch.route().ok_or_else(|| {
                    ClusterError::Unavailable(format!(
                        "channel {} has no streaming node yet",
                        ch.channel
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let view = self.view();
        let replicas = c
            .replicas
            .values()
            .map(|r| ReplicaRoute {
                replica_id: r.replica_id,
                nodes: r.nodes.clone(),
                leaders: r
                    .leaders
                    .iter()
                    .filter(|(_, n)| view.nodes.get(n).is_some_and(|s| s.live))
                    .map(|(shard, n)| ShardLeader {
                        shard: *shard,
                        node: *n,
                        addr: view.addr(*n),
                    })
                    .collect(),
            })
            .collect();
        Ok(CollectionRoutes {
            collection_id: c.id(),
            channels,
            replicas,
        })
    }

    /// Answers the catalogue version once it is past `after`, or after `wait_ms`.
    pub async fn watch_catalog(&self, req: WatchReq) -> Result<u64, ClusterError> {
        self.check()?;
        if self.versions().catalog <= req.after {
            let after = req.after;
            self.wait_for(self.wait_time(req.wait_ms), |v| v.catalog > after)
                .await?;
        }
        Ok(self.versions().catalog)
    }

    pub async fn alloc_ts(&self, count: u32) -> Result<u64, ClusterError> {
        self.check()?;
        let ts = self.tso.alloc(count).await.map_err(store_error)?;
        // A deposed leader must not hand out timestamps from its old window.
        self.check()?;
        Ok(ts)
    }

    pub async fn alloc_ids(&self, count: u32) -> Result<i64, ClusterError> {
        self.check()?;
        let id = self.ids.alloc(count).await.map_err(store_error)?;
        self.check()?;
        Ok(id)
    }
}
