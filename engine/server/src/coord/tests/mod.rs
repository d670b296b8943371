//! Coordinator tests: DDL results, errors and failure atomicity
//! (`ddl`), channel assignment (`channels`), replicas, placement and delegations
//! (`placement`), compaction and tasks (`tasks`), and leadership against a real etcd (`etcd`).

mod channels;
mod ddl;
mod etcd;
mod placement;
mod role;
mod support;
mod tasks;
