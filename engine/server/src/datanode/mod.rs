//! data node
