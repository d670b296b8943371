//! The catalogue: its records, their metadata keys, the in-memory [`Catalog`] (an immutable
//! snapshot swapped after every committed change), [`Edit`] (clone → change → one fenced
//! transaction → swap) and [`CatalogLoader`] (decoding a listing, incrementally: a standby keeps
//! its decoded copy warm and a takeover only decodes what changed).
//!
//! ```text
//! catalog/collections/<cid>        CollectionRecord (JSON)
//! catalog/channels/<cid>/<shard>   ChannelRecord: owner, term, last checkpoint
//! catalog/segments/<cid>/<sid>     SegmentRecord
//! catalog/replicas/<cid>/<rid>     ReplicaRecord: nodes, segment → node, shard → delegator
//! catalog/dropped/<cid>            DroppedCollection: its objects and segment records are garbage
//! catalog/version                  the catalogue version proxies watch (decimal)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferrovus_core::CoreError;
use ferrovus_core::request::{IndexSpec, IndexType};
use ferrovus_core::schema::DataType;
use ferrovus_core::shard::ShardCheckpoint;
use ferrovus_core::store::{KeyValue, MetaChange, MetaOp};
use serde::{Deserialize, Serialize};

use crate::api::{
    ChannelId, ChannelRoute, CollectionRecord, NodeId, SegmentRecord, SegmentState, TargetSegment,
};
use crate::security::SecurityState;

pub const CATALOG_PREFIX: &str = "catalog/";
const COLLECTIONS: &str = "catalog/collections/";
const CHANNELS: &str = "catalog/channels/";
const SEGMENTS: &str = "catalog/segments/";
const REPLICAS: &str = "catalog/replicas/";
const DROPPED: &str = "catalog/dropped/";
pub const VERSION_KEY: &str = "catalog/version";
/// Users, roles and grants: one record (see [`crate::security`]).
pub const SECURITY_KEY: &str = "catalog/security";

/// etcd refuses transactions of more than 128 operations: batches stay below.
pub const MAX_TXN_OPS: usize = 100;

pub fn collection_key(cid: i64) -> String {
    format!("{COLLECTIONS}{cid}")
}
pub fn channel_key(ch: ChannelId) -> String {
    format!("{CHANNELS}{}/{}", ch.collection_id, ch.shard)
}
pub fn segment_key(cid: i64, sid: i64) -> String {
    format!("{SEGMENTS}{cid}/{sid}")
}
pub fn replica_key(cid: i64, rid: i64) -> String {
    format!("{REPLICAS}{cid}/{rid}")
}
pub fn dropped_key(cid: i64) -> String {
    format!("{DROPPED}{cid}")
}

/// Where a channel lives (`catalog/channels/<cid>/<shard>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRecord {
    pub channel: ChannelId,
    /// The owning streaming node; `None` until first assigned.
    pub node: Option<NodeId>,
    pub addr: String,
    /// Grows at every (re)assignment.
    pub term: u64,
    /// The last committed checkpoint, without its segment list (the shard's segments are
    /// catalogue records).
    #[serde(default)]
    pub checkpoint: Option<ShardCheckpoint>,
}

impl ChannelRecord {
    pub fn unassigned(channel: ChannelId) -> Self {
        ChannelRecord {
            channel,
            node: None,
            addr: String::new(),
            term: 0,
            checkpoint: None,
        }
    }

    pub fn route(&self) -> Option<ChannelRoute> {
        self.node.map(|node| ChannelRoute {
            channel: self.channel,
            node,
            addr: self.addr.clone(),
            term: self.term,
        })
    }

    /// The snapshot timestamp of the last checkpoint (0: none yet).
    pub fn applied_ts(&self) -> u64 {
        self.checkpoint.as_ref().map_or(0, |c| c.applied_ts)
    }
}

/// One replica group of a loaded collection (`catalog/replicas/<cid>/<rid>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaRecord {
    pub replica_id: i64,
    pub collection_id: i64,
    /// Query nodes of the group (a node is in at most one replica of a collection).
    pub nodes: Vec<NodeId>,
    /// Segment → the node that should hold it.
    pub placement: BTreeMap<i64, NodeId>,
    /// Shard → its delegator.
    pub leaders: BTreeMap<u32, NodeId>,
}

/// A dropped collection whose objects and segment records are still being deleted
/// (`catalog/dropped/<cid>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedCollection {
    pub collection_id: i64,
    pub num_shards: u32,
}

/// A collection and everything the catalogue keeps about it.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionState {
    pub record: CollectionRecord,
    /// Indexed by shard.
    pub channels: Vec<ChannelRecord>,
    pub segments: BTreeMap<i64, SegmentRecord>,
    pub replicas: BTreeMap<i64, ReplicaRecord>,
}

impl CollectionState {
    pub fn id(&self) -> i64 {
        self.record.id
    }

    pub fn is_loaded(&self) -> bool {
        self.record.load.is_some()
    }

    pub fn partition_alive(&self, partition_id: i64) -> bool {
        self.record.partitions.iter().any(|p| p.id == partition_id)
    }

    pub fn channel(&self, shard: u32) -> Option<&ChannelRecord> {
        self.channels.get(shard as usize)
    }

    /// The shard's live segments: flushed (not replaced by a compaction) and of a partition
    /// that still exists. This is what the channel owner recovers from and what delegators
    /// must cover.
    pub fn live_segments(&self, shard: u32) -> impl Iterator<Item = &SegmentRecord> + '_ {
        self.segments
            .values()
            .filter(move |s| s.shard == shard && self.is_live(s))
    }

    pub fn is_live(&self, s: &SegmentRecord) -> bool {
        s.state == SegmentState::Flushed && self.partition_alive(s.meta.partition_id)
    }

    /// Index specs that are built per segment (vector fields, not FLAT).
    pub fn built_specs(&self) -> impl Iterator<Item = &IndexSpec> + '_ {
        self.record.indexes.iter().filter(|s| {
            s.index_type != IndexType::Flat
                && self
                    .record
                    .schema
                    .field_by_id(s.field_id)
                    .is_some_and(|f| f.data_type == DataType::FloatVector)
        })
    }

    /// Whether the segment has every built index of the collection.
    pub fn is_indexed(&self, s: &SegmentRecord) -> bool {
        self.built_specs().all(|spec| has_index(s, spec))
    }

    /// Sources of `s` (a compaction result) still in the catalogue.
    pub fn sources_present(&self, s: &SegmentRecord) -> bool {
        s.compacted_from
            .iter()
            .any(|id| self.segments.contains_key(id))
    }

    /// A query node may be asked to hold the segment: live, and a compaction result only
    /// once its indexes exist (its sources stay served meanwhile); a replaced source while it
    /// is still in the catalogue.
    pub fn is_placeable(&self, s: &SegmentRecord) -> bool {
        match s.state {
            SegmentState::Compacted => true,
            SegmentState::Flushed => {
                self.partition_alive(s.meta.partition_id)
                    && (s.compacted_from.is_empty() || self.is_indexed(s))
            }
        }
    }

    /// What a delegator of `shard` must cover.
    pub fn targets(&self, shard: u32) -> Vec<TargetSegment> {
        self.live_segments(shard)
            .map(|s| TargetSegment {
                segment_id: s.id(),
                compacted_from: s.compacted_from.clone(),
            })
            .collect()
    }
}

pub fn has_index(s: &SegmentRecord, spec: &IndexSpec) -> bool {
    s.meta
        .indexes
        .iter()
        .any(|i| i.field_id == spec.field_id && i.index_id == spec.index_id)
}

/// The catalogue in memory: an immutable snapshot (cheap to clone: collections are shared
/// until changed).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub collections: BTreeMap<i64, Arc<CollectionState>>,
    names: BTreeMap<String, i64>,
    aliases: BTreeMap<String, i64>,
    pub dropped: BTreeMap<i64, DroppedCollection>,
    /// Segment records of dropped collections, by collection.
    pub orphans: BTreeMap<i64, BTreeMap<i64, SegmentRecord>>,
    pub security: Arc<SecurityState>,
    pub version: u64,
}

impl Catalog {
    pub fn get(&self, cid: i64) -> Option<&Arc<CollectionState>> {
        self.collections.get(&cid)
    }

    /// A collection by name or alias (an alias wins, as in standalone).
    pub fn resolve(&self, name: &str) -> Option<&Arc<CollectionState>> {
        let id = self.aliases.get(name).or_else(|| self.names.get(name))?;
        self.collections.get(id)
    }

    /// A collection by its own name (aliases not considered).
    pub fn by_name(&self, name: &str) -> Option<&Arc<CollectionState>> {
        self.collections.get(self.names.get(name)?)
    }

    pub fn alias_target(&self, alias: &str) -> Option<i64> {
        self.aliases.get(alias).copied()
    }

    /// Collections ordered by name.
    pub fn by_names(&self) -> impl Iterator<Item = &Arc<CollectionState>> + '_ {
        self.names
            .values()
            .filter_map(|id| self.collections.get(id))
    }

    fn reindex(&mut self) {
        self.names.clear();
        self.aliases.clear();
        for (id, c) in &self.collections {
            self.names.insert(c.record.name.clone(), *id);
            for a in &c.record.aliases {
                self.aliases.insert(a.clone(), *id);
            }
        }
    }
}

/// A record to write.
#[derive(Debug, Clone)]
enum Pending {
    Collection(CollectionRecord),
    Channel(ChannelRecord),
    Segment(SegmentRecord),
    Replica(ReplicaRecord),
    Dropped(DroppedCollection),
    Security(SecurityState),
    Delete,
}

/// A change of the catalogue: applied to a copy (`cat`) while the matching metadata operations
/// are collected, committed as one transaction by the leader, then swapped in.
#[derive(Debug)]
pub struct Edit {
    pub cat: Catalog,
    ops: BTreeMap<String, Pending>,
    bump: bool,
}

impl Edit {
    pub fn new(base: &Catalog) -> Self {
        Edit {
            cat: base.clone(),
            ops: BTreeMap::new(),
            bump: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the change is visible to proxies (the catalogue version moves).
    pub fn bumps(&self) -> bool {
        self.bump
    }

    fn state(&mut self, cid: i64) -> Option<&mut CollectionState> {
        self.cat.collections.get_mut(&cid).map(Arc::make_mut)
    }

    /// A new collection with unassigned channels.
    pub fn create_collection(&mut self, record: CollectionRecord) {
        let channels = record.channels().map(ChannelRecord::unassigned).collect();
        let id = record.id;
        self.ops
            .insert(collection_key(id), Pending::Collection(record.clone()));
        self.cat.collections.insert(
            id,
            Arc::new(CollectionState {
                record,
                channels,
                segments: BTreeMap::new(),
                replicas: BTreeMap::new(),
            }),
        );
        self.cat.reindex();
        self.bump = true;
    }

    /// Replace an existing collection's record.
    pub fn put_collection(&mut self, record: CollectionRecord) {
        let id = record.id;
        self.ops
            .insert(collection_key(id), Pending::Collection(record.clone()));
        if let Some(st) = self.state(id) {
            st.record = record;
        }
        self.cat.reindex();
        self.bump = true;
    }

    pub fn put_channel(&mut self, ch: ChannelRecord) {
        self.ops
            .insert(channel_key(ch.channel), Pending::Channel(ch.clone()));
        if let Some(st) = self.state(ch.channel.collection_id)
            && let Some(slot) = st.channels.get_mut(ch.channel.shard as usize)
        {
            // Routes change only with the owner or term, not with a checkpoint.
            let moved = slot.node != ch.node || slot.term != ch.term;
            *slot = ch;
            self.bump |= moved;
        }
    }

    pub fn put_segment(&mut self, seg: SegmentRecord) {
        self.ops.insert(
            segment_key(seg.collection_id, seg.id()),
            Pending::Segment(seg.clone()),
        );
        if let Some(st) = self.state(seg.collection_id) {
            st.segments.insert(seg.id(), seg);
        }
    }

    pub fn delete_segment(&mut self, cid: i64, sid: i64) {
        self.ops.insert(segment_key(cid, sid), Pending::Delete);
        if let Some(st) = self.state(cid) {
            st.segments.remove(&sid);
        }
        if let Some(o) = self.cat.orphans.get_mut(&cid) {
            o.remove(&sid);
            if o.is_empty() {
                self.cat.orphans.remove(&cid);
            }
        }
    }

    pub fn put_replica(&mut self, r: ReplicaRecord) {
        self.ops.insert(
            replica_key(r.collection_id, r.replica_id),
            Pending::Replica(r.clone()),
        );
        if let Some(st) = self.state(r.collection_id) {
            st.replicas.insert(r.replica_id, r);
        }
        self.bump = true;
    }

    pub fn delete_replica(&mut self, cid: i64, rid: i64) {
        self.ops.insert(replica_key(cid, rid), Pending::Delete);
        if let Some(st) = self.state(cid) {
            st.replicas.remove(&rid);
        }
        self.bump = true;
    }

    /// Removes the collection's record, channels and replicas and marks it dropped; its
    /// segment records become orphans, deleted with its objects in the background.
    pub fn drop_collection(&mut self, cid: i64) {
        let Some(st) = self.cat.collections.remove(&cid) else {
            return;
        };
        self.ops.insert(collection_key(cid), Pending::Delete);
        for ch in &st.channels {
            self.ops.insert(channel_key(ch.channel), Pending::Delete);
        }
        for rid in st.replicas.keys() {
            self.ops.insert(replica_key(cid, *rid), Pending::Delete);
        }
        let marker = DroppedCollection {
            collection_id: cid,
            num_shards: st.record.num_shards,
        };
        self.ops
            .insert(dropped_key(cid), Pending::Dropped(marker.clone()));
        self.cat.dropped.insert(cid, marker);
        if !st.segments.is_empty() {
            self.cat
                .orphans
                .entry(cid)
                .or_default()
                .extend(st.segments.clone());
        }
        self.cat.reindex();
        self.bump = true;
    }

    /// The dropped collection is fully collected.
    pub fn delete_dropped(&mut self, cid: i64) {
        self.ops.insert(dropped_key(cid), Pending::Delete);
        self.cat.dropped.remove(&cid);
    }

    /// Replace the users, roles and grants (proxies see it through the catalogue version).
    pub fn put_security(&mut self, state: SecurityState) {
        self.ops
            .insert(SECURITY_KEY.into(), Pending::Security(state.clone()));
        self.cat.security = Arc::new(state);
        self.bump = true;
    }

    /// The new catalogue and the operations that persist it.
    pub fn finish(mut self) -> Result<(Catalog, Vec<MetaOp>), CoreError> {
        if self.bump {
            self.cat.version += 1;
            let v = self.cat.version.to_string().into_bytes();
            let mut ops = self.encode()?;
            ops.push(MetaOp::Put {
                key: VERSION_KEY.into(),
                value: v,
            });
            return Ok((self.cat, ops));
        }
        let ops = self.encode()?;
        Ok((self.cat, ops))
    }

    fn encode(&self) -> Result<Vec<MetaOp>, CoreError> {
        let enc = |r: Result<Vec<u8>, serde_json::Error>| {
            r.map_err(|e| CoreError::Internal(format!("encoding a catalogue record: {e}")))
        };
        self.ops
            .iter()
            .map(|(key, p)| {
                let key = key.clone();
                Ok(match p {
                    Pending::Delete => MetaOp::Delete { key },
                    Pending::Collection(r) => MetaOp::Put {
                        key,
                        value: enc(serde_json::to_vec(r))?,
                    },
                    Pending::Channel(r) => MetaOp::Put {
                        key,
                        value: enc(serde_json::to_vec(r))?,
                    },
                    Pending::Segment(r) => MetaOp::Put {
                        key,
                        value: enc(serde_json::to_vec(r))?,
                    },
                    Pending::Replica(r) => MetaOp::Put {
                        key,
                        value: enc(serde_json::to_vec(r))?,
                    },
                    Pending::Dropped(r) => MetaOp::Put {
                        key,
                        value: enc(serde_json::to_vec(r))?,
                    },
                    Pending::Security(r) => MetaOp::Put {
                        key,
                        value: enc(serde_json::to_vec(r))?,
                    },
                })
            })
            .collect()
    }
}

/// One decoded catalogue entry.
#[derive(Debug, Clone)]
enum Entry {
    Collection(CollectionRecord),
    Channel(ChannelRecord),
    Segment(SegmentRecord),
    Replica(ReplicaRecord),
    Dropped(DroppedCollection),
    Security(SecurityState),
    Version(u64),
}

fn decode_entry(kv: &KeyValue) -> Result<Option<Entry>, CoreError> {
    fn json<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, CoreError> {
        serde_json::from_slice(&kv.value).map_err(|e| CoreError::corrupted(&kv.key, e.to_string()))
    }
    let k = kv.key.as_str();
    Ok(Some(if k == VERSION_KEY {
        let v = std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| CoreError::corrupted(k, "not a version number"))?;
        Entry::Version(v)
    } else if k == SECURITY_KEY {
        Entry::Security(json(kv)?)
    } else if k.starts_with(COLLECTIONS) {
        Entry::Collection(json(kv)?)
    } else if k.starts_with(CHANNELS) {
        Entry::Channel(json(kv)?)
    } else if k.starts_with(SEGMENTS) {
        Entry::Segment(json(kv)?)
    } else if k.starts_with(REPLICAS) {
        Entry::Replica(json(kv)?)
    } else if k.starts_with(DROPPED) {
        Entry::Dropped(json(kv)?)
    } else {
        return Ok(None);
    }))
}

/// [`decode_entry`], logging (and skipping) a key the catalogue does not know.
fn decode_known(kv: &KeyValue) -> Result<Option<Entry>, CoreError> {
    let entry = decode_entry(kv)?;
    if entry.is_none() {
        tracing::warn!(key = %kv.key, "ignoring an unknown catalogue key");
    }
    Ok(entry)
}

/// Builds a [`Catalog`] from a listing of `catalog/` or from watched changes, decoding only the
/// keys whose revision changed (a standby follows the catalogue's changes, so a takeover decodes
/// little).
#[derive(Debug, Default)]
pub struct CatalogLoader {
    cache: HashMap<String, (i64, Entry)>,
}

impl CatalogLoader {
    /// Entries decoded by the last call that were not cached.
    pub fn load(&mut self, kvs: &[KeyValue]) -> Result<(Catalog, usize), CoreError> {
        let mut decoded = 0;
        let mut next = HashMap::with_capacity(kvs.len());
        for kv in kvs {
            let entry = match self.cache.remove(&kv.key) {
                Some((rev, e)) if rev == kv.mod_revision => e,
                _ => {
                    let Some(e) = decode_known(kv)? else { continue };
                    decoded += 1;
                    e
                }
            };
            next.insert(kv.key.clone(), (kv.mod_revision, entry));
        }
        self.cache = next;
        Ok((self.build(), decoded))
    }

    /// Applies watched changes to the last loaded state (decoding only the puts of a newer
    /// revision) and builds the catalogue again.
    pub fn apply(&mut self, changes: &[MetaChange]) -> Result<(Catalog, usize), CoreError> {
        let mut decoded = 0;
        for change in changes {
            match change {
                MetaChange::Put(kv) => {
                    if self
                        .cache
                        .get(&kv.key)
                        .is_some_and(|(rev, _)| *rev >= kv.mod_revision)
                    {
                        continue;
                    }
                    let Some(e) = decode_known(kv)? else { continue };
                    decoded += 1;
                    self.cache.insert(kv.key.clone(), (kv.mod_revision, e));
                }
                MetaChange::Delete { key, .. } => {
                    self.cache.remove(key);
                }
            }
        }
        Ok((self.build(), decoded))
    }

    fn build(&self) -> Catalog {
        let mut cat = Catalog::default();
        let mut states: BTreeMap<i64, CollectionState> = BTreeMap::new();
        for (_, e) in self.cache.values() {
            match e {
                Entry::Collection(r) => {
                    states.insert(
                        r.id,
                        CollectionState {
                            channels: r.channels().map(ChannelRecord::unassigned).collect(),
                            record: r.clone(),
                            segments: BTreeMap::new(),
                            replicas: BTreeMap::new(),
                        },
                    );
                }
                Entry::Version(v) => cat.version = *v,
                Entry::Security(s) => cat.security = Arc::new(s.clone()),
                Entry::Dropped(d) => {
                    cat.dropped.insert(d.collection_id, d.clone());
                }
                _ => {}
            }
        }
        for (key, (_, e)) in &self.cache {
            match e {
                Entry::Channel(ch) => {
                    match states
                        .get_mut(&ch.channel.collection_id)
                        .and_then(|st| st.channels.get_mut(ch.channel.shard as usize))
                    {
                        Some(slot) => *slot = ch.clone(),
                        None => tracing::warn!(%key, "channel record without its collection"),
                    }
                }
                Entry::Segment(s) => match states.get_mut(&s.collection_id) {
                    Some(st) => {
                        st.segments.insert(s.id(), s.clone());
                    }
                    None => {
                        cat.orphans
                            .entry(s.collection_id)
                            .or_default()
                            .insert(s.id(), s.clone());
                    }
                },
                Entry::Replica(r) => match states.get_mut(&r.collection_id) {
                    Some(st) => {
                        st.replicas.insert(r.replica_id, r.clone());
                    }
                    None => tracing::warn!(%key, "replica record without its collection"),
                },
                _ => {}
            }
        }
        cat.collections = states.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        cat.reindex();
        cat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrovus_core::request::Consistency;
    use ferrovus_core::schema::CollectionSchema;
    use ferrovus_core::segment::SegmentMeta;

    fn record(id: i64, name: &str) -> CollectionRecord {
        CollectionRecord {
            id,
            name: name.into(),
            schema: CollectionSchema {
                name: name.into(),
                description: String::new(),
                fields: vec![],
                enable_dynamic_field: false,
            },
            num_shards: 2,
            partitions: vec![],
            aliases: vec!["a1".into()],
            indexes: vec![],
            consistency: Consistency::Bounded,
            properties: BTreeMap::new(),
            created_ts: 1,
            load: None,
        }
    }

    fn kvs(ops: &[MetaOp], rev: i64) -> Vec<KeyValue> {
        ops.iter()
            .filter_map(|op| match op {
                MetaOp::Put { key, value } => Some(KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    mod_revision: rev,
                }),
                MetaOp::Delete { .. } => None,
            })
            .collect()
    }

    #[test]
    fn edits_round_trip_through_the_loader_and_decode_only_changes() {
        let mut e = Edit::new(&Catalog::default());
        e.create_collection(record(7, "c"));
        let mut ch = ChannelRecord::unassigned(ChannelId::new(7, 1));
        ch.node = Some(3);
        ch.term = 1;
        e.put_channel(ch.clone());
        e.put_segment(SegmentRecord {
            collection_id: 7,
            shard: 1,
            meta: SegmentMeta::new(11, 5, 10, "d".into()),
            state: SegmentState::Flushed,
            compacted_from: vec![],
        });
        let (cat, ops) = e.finish().unwrap();
        assert_eq!(cat.version, 1);
        let mut loader = CatalogLoader::default();
        let all = kvs(&ops, 1);
        let (loaded, decoded) = loader.load(&all).unwrap();
        assert_eq!(decoded, all.len());
        assert_eq!(loaded.version, 1);
        assert_eq!(loaded.get(7), cat.get(7));
        assert_eq!(loaded.resolve("a1").unwrap().id(), 7);
        assert_eq!(loaded.resolve("c").unwrap().channels[1], ch);
        let (_, decoded) = loader.load(&all).unwrap();
        assert_eq!(decoded, 0, "unchanged keys are not decoded again");

        // Replica maps (integer keys) survive the JSON encoding.
        let mut e = Edit::new(&loaded);
        e.put_replica(ReplicaRecord {
            replica_id: 40,
            collection_id: 7,
            nodes: vec![11, 12],
            placement: BTreeMap::from([(11, 12)]),
            leaders: BTreeMap::from([(0, 11), (1, 12)]),
        });
        let (cat, ops) = e.finish().unwrap();
        let mut all = all.clone();
        all.extend(kvs(&ops, 2));
        let (loaded, _) = loader.load(&all).unwrap();
        assert_eq!(
            loaded.get(7).unwrap().replicas,
            cat.get(7).unwrap().replicas
        );
        assert_eq!(loaded.version, 2);

        // Dropping leaves orphan segments and a marker.
        let mut e = Edit::new(&loaded);
        e.drop_collection(7);
        let (cat, ops) = e.finish().unwrap();
        assert!(cat.resolve("c").is_none() && cat.resolve("a1").is_none());
        assert_eq!(cat.orphans[&7].len(), 1);
        assert!(cat.dropped.contains_key(&7));
        assert!(
            ops.iter()
                .any(|o| matches!(o, MetaOp::Delete { key } if key == "catalog/channels/7/1"))
        );
    }

    fn changes(ops: &[MetaOp], rev: i64) -> Vec<MetaChange> {
        ops.iter()
            .map(|op| match op {
                MetaOp::Put { key, value } => MetaChange::Put(KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    mod_revision: rev,
                }),
                MetaOp::Delete { key } => MetaChange::Delete {
                    key: key.clone(),
                    revision: rev,
                },
            })
            .collect()
    }

    #[test]
    fn watched_changes_give_the_same_catalogue_as_a_listing() {
        let mut e = Edit::new(&Catalog::default());
        e.create_collection(record(7, "c"));
        e.create_collection(record(8, "d"));
        let (_, ops) = e.finish().unwrap();
        let mut watched = CatalogLoader::default();
        let (first, decoded) = watched.apply(&changes(&ops, 1)).unwrap();
        assert!(decoded > 0 && first.resolve("d").is_some());
        // A change replayed (a watch restarted from an older revision) is not decoded again.
        assert_eq!(watched.apply(&changes(&ops, 1)).unwrap().1, 0);

        let mut e = Edit::new(&first);
        e.drop_collection(8);
        let (expected, drop_ops) = e.finish().unwrap();
        let (after, _) = watched.apply(&changes(&drop_ops, 2)).unwrap();
        assert!(after.resolve("d").is_none() && after.dropped.contains_key(&8));
        assert_eq!(after.version, expected.version);

        // The same state listed from scratch.
        let mut listed = kvs(&ops, 1);
        let deleted: Vec<&str> = drop_ops
            .iter()
            .filter_map(|o| match o {
                MetaOp::Delete { key } => Some(key.as_str()),
                MetaOp::Put { .. } => None,
            })
            .collect();
        listed.retain(|kv| !deleted.contains(&kv.key.as_str()));
        for kv in kvs(&drop_ops, 2) {
            listed.retain(|o| o.key != kv.key);
            listed.push(kv);
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        let (from_list, _) = CatalogLoader::default().load(&listed).unwrap();
        assert_eq!(from_list.get(7), after.get(7));
        assert_eq!(from_list.get(8), after.get(8));
        assert_eq!(from_list.dropped, after.dropped);
        assert_eq!(from_list.version, after.version);
    }
}
