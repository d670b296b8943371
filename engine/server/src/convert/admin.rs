//! Administration replies: segments, replicas, metrics.

use ferrovus_proto::common;
use ferrovus_proto::milvus::{
    PersistentSegmentInfo, QuerySegmentInfo, ReplicaInfo as ProtoReplica,
    ShardReplica as ProtoShardReplica,
};

use super::vchannel;
use crate::backend::{ReplicaInfo, SegmentInfo, SegmentState, Totals};

/// A segment as GetPersistentSegmentInfo reports it (sealed segments are `Flushed`).
pub fn persistent_segment_info(s: SegmentInfo) -> PersistentSegmentInfo {
    PersistentSegmentInfo {
        segment_id: s.segment_id,
        collection_id: s.collection_id,
        partition_id: s.partition_id,
        num_rows: s.num_rows as i64,
        state: match s.state {
            SegmentState::Sealed => common::SegmentState::Flushed,
            SegmentState::Growing => common::SegmentState::Growing,
        } as i32,
        insert_channel: vchannel(s.collection_id, s.shard),
        ..Default::default()
    }
}

/// A segment as GetQuerySegmentInfo reports it.
pub fn query_segment_info(s: SegmentInfo) -> QuerySegmentInfo {
    QuerySegmentInfo {
        segment_id: s.segment_id,
        collection_id: s.collection_id,
        partition_id: s.partition_id,
        num_rows: s.num_rows as i64,
        node_id: s.node_ids.first().copied().unwrap_or_default(),
        node_ids: s.node_ids,
        state: match s.state {
            SegmentState::Sealed => common::SegmentState::Sealed,
            SegmentState::Growing => common::SegmentState::Growing,
        } as i32,
        ..Default::default()
    }
}

pub fn replica_info(g: ReplicaInfo) -> ProtoReplica {
    ProtoReplica {
        replica_id: g.replica_id,
        collection_id: g.collection_id,
        partition_ids: g.partition_ids,
        shard_replicas: g
            .shards
            .into_iter()
            .map(|s| ProtoShardReplica {
                leader_id: s.leader_id,
                leader_addr: s.leader_addr,
                dm_channel_name: vchannel(g.collection_id, s.shard),
                node_ids: s.node_ids,
            })
            .collect(),
        node_ids: g.node_ids,
        resource_group_name: g.resource_group,
        ..Default::default()
    }
}

/// GetMetrics' JSON body.
pub fn metrics_body(t: Totals) -> String {
    serde_json::json!({
        "collections": t.collections,
        "rows": t.rows,
        "segments": t.segments,
        "memory_bytes": t.memory_bytes,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ShardReplica;

    fn segment(state: SegmentState) -> SegmentInfo {
        SegmentInfo {
            segment_id: 11,
            collection_id: 7,
            partition_id: 8,
            shard: 1,
            num_rows: 5,
            state,
            node_ids: vec![1],
        }
    }

    #[test]
    fn segments() {
        let p = persistent_segment_info(segment(SegmentState::Sealed));
        assert_eq!(p.state, common::SegmentState::Flushed as i32);
        assert_eq!(p.insert_channel, "ferrovus-dml_1_7v1");
        assert_eq!((p.segment_id, p.partition_id, p.num_rows), (11, 8, 5));
        let q = query_segment_info(segment(SegmentState::Sealed));
        assert_eq!(q.state, common::SegmentState::Sealed as i32);
        assert_eq!((q.node_id, q.node_ids.as_slice()), (1, &[1][..]));
        let g = query_segment_info(segment(SegmentState::Growing));
        assert_eq!(g.state, common::SegmentState::Growing as i32);
    }

    #[test]
    fn replicas_and_metrics() {
        let r = replica_info(ReplicaInfo {
            replica_id: 1,
            collection_id: 7,
            partition_ids: vec![8],
            shards: vec![ShardReplica {
                shard: 0,
                leader_id: 1,
                leader_addr: "localhost".into(),
                node_ids: vec![1],
            }],
            node_ids: vec![1],
            resource_group: "__default_resource_group".into(),
        });
        assert_eq!(r.shard_replicas[0].dm_channel_name, "ferrovus-dml_0_7v0");
        assert_eq!(r.resource_group_name, "__default_resource_group");
        let body: serde_json::Value = serde_json::from_str(&metrics_body(Totals {
            collections: 1,
            rows: 2,
            segments: 3,
            memory_bytes: 4,
        }))
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"collections": 1, "rows": 2, "segments": 3, "memory_bytes": 4})
        );
    }
}
