//! Milvus wire protocol (work in progress).
