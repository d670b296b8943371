//! Ferrovus server roles (being written).
