//! What a proxy caches: collection records by name and alias, and routes by collection id.
//!
//! Entries are dropped wholesale when the catalogue version changes (seen by the watcher), on
//! every DDL through this proxy, and when a node's answer says the cache is stale. A fetch that
//! raced with a drop must not put its (possibly older) answer back: each fetch notes the
//! generation before asking, and its answer is only cached if no drop happened meanwhile.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::api::{CollectionRecord, CollectionRoutes};
use crate::security::SecurityState;

/// The generation a fetch started in (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

#[derive(Debug, Default)]
pub(crate) struct CatalogCache {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    records_gen: u64,
    routes_gen: u64,
    /// Collection names and aliases → record.
    records: HashMap<String, Arc<CollectionRecord>>,
    routes: HashMap<i64, Arc<CollectionRoutes>>,
    /// Users, roles and grants (dropped with the records).
    security: Option<Arc<SecurityState>>,
}

impl CatalogCache {
    pub fn record(&self, name: &str) -> Option<Arc<CollectionRecord>> {
        self.inner.lock().records.get(name).cloned()
    }

    pub fn records_generation(&self) -> Generation {
        Generation(self.inner.lock().records_gen)
    }

    /// Cache a record fetched in generation `since` under its name and its aliases, unless the
    /// cache was dropped meanwhile. Whether it was cached.
    pub fn put_record(&self, since: Generation, rec: Arc<CollectionRecord>) -> bool {
        let mut st = self.inner.lock();
        if st.records_gen != since.0 {
            return false;
        }
        for alias in &rec.aliases {
            st.records.insert(alias.clone(), rec.clone());
        }
        st.records.insert(rec.name.clone(), rec);
        true
    }

    pub fn routes(&self, collection_id: i64) -> Option<Arc<CollectionRoutes>> {
        self.inner.lock().routes.get(&collection_id).cloned()
    }

    pub fn routes_generation(&self) -> Generation {
        Generation(self.inner.lock().routes_gen)
    }

    /// Cache routes fetched in generation `since`, unless routes were dropped meanwhile.
    pub fn put_routes(&self, since: Generation, routes: Arc<CollectionRoutes>) -> bool {
        let mut st = self.inner.lock();
        if st.routes_gen != since.0 {
            return false;
        }
        st.routes.insert(routes.collection_id, routes);
        true
    }

    /// Drop the routes of a collection if they are still `used` (a failure with them proved
    /// them stale; newer routes someone else already fetched are kept). Whether they were.
    pub fn drop_routes(&self, used: &Arc<CollectionRoutes>) -> bool {
        let mut st = self.inner.lock();
        match st.routes.get(&used.collection_id) {
            Some(current) if Arc::ptr_eq(current, used) => {
                st.routes.remove(&used.collection_id);
                st.routes_gen += 1;
                true
            }
            _ => false,
        }
    }

    pub fn security(&self) -> Option<Arc<SecurityState>> {
        self.inner.lock().security.clone()
    }

    /// Cache the security state fetched in records generation `since`, unless dropped meanwhile.
    pub fn put_security(&self, since: Generation, state: Arc<SecurityState>) -> bool {
        let mut st = self.inner.lock();
        if st.records_gen != since.0 {
            return false;
        }
        st.security = Some(state);
        true
    }

    /// Drop every record and every route.
    pub fn clear(&self) {
        let mut st = self.inner.lock();
        st.security = None;
        st.records.clear();
        st.routes.clear();
        st.records_gen += 1;
        st.routes_gen += 1;
    }

    /// Cached (records, routes) counts.
    #[cfg(test)]
    pub fn sizes(&self) -> (usize, usize) {
        let st = self.inner.lock();
        (st.records.len(), st.routes.len())
    }
}
