//! Deletes of sealed rows by key after some timestamp, from where they are: the shard's
//! persisted delta objects (up to the channel's last checkpoint) and then the channel owner's
//! in-memory journal (`StreamingApi::deltas`). When the journal no longer reaches back far
//! enough (`Gap`), the delta objects are listed in the object store and read, then the journal
//! is asked again from its start.

use std::collections::HashSet;

use ferrovus_core::delta::{self, Delta, DeltaObjectMeta};
use ferrovus_core::keys;
use ferrovus_core::store::ObjectStore;

use crate::api::{ChannelRoute, DeltasReq, DeltasResp, StreamingApi};
use crate::rpc::ClusterError;

/// Deletes after some timestamp, complete up to `up_to`.
#[derive(Debug, Default)]
pub(crate) struct Pulled {
    pub entries: Vec<Delta>,
    pub up_to: u64,
    /// Delta objects read on the way.
    pub objects_read: usize,
}

/// How many times a `Gap` answer is followed by reading delta objects before giving up.
const GAP_ROUNDS: usize = 3;

/// Read the delta objects of `metas` not read yet that hold deletes after `after`, appending
/// those deletes; returns the highest `to_ts` read. A checkpoint's delta objects hold every
/// delete up to the checkpoint (there is no object for a span without deletes), so the deletes
/// after `after` are complete up to the returned timestamp.
async fn read_objects(
    objects: &dyn ObjectStore,
    metas: &[DeltaObjectMeta],
    after: u64,
    read: &mut HashSet<String>,
    out: &mut Pulled,
) -> Result<u64, ClusterError> {
    let mut metas: Vec<&DeltaObjectMeta> = metas
        .iter()
        .filter(|m| m.to_ts > after && !read.contains(&m.key))
        .collect();
    metas.sort_by_key(|m| (m.from_ts, m.to_ts));
    let mut reached = after;
    for m in metas {
        let bytes = objects.get(&m.key).await?;
        out.entries.extend(
            delta::decode(&bytes, &m.key)?
                .into_iter()
                .filter(|(_, ts)| *ts > after),
        );
        out.objects_read += 1;
        read.insert(m.key.clone());
        reached = reached.max(m.to_ts);
    }
    Ok(reached)
}

/// Every delta object of the shard in the object store.
async fn list_objects(
    objects: &dyn ObjectStore,
    collection_id: i64,
    shard: u32,
) -> Result<Vec<DeltaObjectMeta>, ClusterError> {
    let keys = objects
        .list(&keys::deltas_prefix(collection_id, shard as usize))
        .await?;
    Ok(keys
        .into_iter()
        .filter_map(|key| {
            let (from_ts, to_ts) = keys::parse_delta_object(&key)?;
            Some(DeltaObjectMeta {
                key,
                from_ts,
                to_ts,
                entries: 0,
            })
        })
        .collect())
}

/// Every delete of the shard's sealed rows after `after`, complete up to the owner's applied
/// timestamp: first the delta objects of `hint` (the shard's objects as of a checkpoint, as the
/// coordinator lists them), then the owner's journal after them. When the journal starts later
/// (`Gap`), the delta objects in the object store (written before the journal dropped those
/// entries) are listed and read, and the journal is asked again from its start.
pub(crate) async fn pull(
    objects: &dyn ObjectStore,
    owner: &dyn StreamingApi,
    route: &ChannelRoute,
    after: u64,
    hint: &[DeltaObjectMeta],
) -> Result<Pulled, ClusterError> {
    let mut out = Pulled::default();
    let mut read = HashSet::new();
    let mut reached = read_objects(objects, hint, after, &mut read, &mut out).await?;
    for _ in 0..GAP_ROUNDS {
        let req = DeltasReq {
            channel: route.channel,
            term: route.term,
            after_ts: reached,
        };
        match owner.deltas(req).await? {
            DeltasResp::Entries { entries, up_to } => {
                out.entries
                    .extend(entries.into_iter().filter(|(_, ts)| *ts > after));
                out.entries.sort_by_key(|(_, ts)| *ts);
                out.up_to = up_to.max(reached);
                return Ok(out);
            }
            DeltasResp::Gap { journal_start } if journal_start > reached => {
                let listed =
                    list_objects(objects, route.channel.collection_id, route.channel.shard).await?;
                let listed_to = read_objects(objects, &listed, after, &mut read, &mut out).await?;
                // Every delete up to the journal's start was persisted before the journal
                // dropped it: the objects hold them all.
                reached = reached.max(journal_start).max(listed_to);
            }
            DeltasResp::Gap { journal_start } => {
                return Err(ClusterError::Internal(format!(
                    "the owner of channel {} answered a gap at {journal_start} for deletes \
                     after {reached}",
                    route.channel
                )));
            }
        }
    }
    Err(ClusterError::Unavailable(format!(
        "deletes of channel {} after {reached}: the owner's journal keeps moving past the \
         persisted delta objects",
        route.channel
    )))
}
