//! Ferrovus operator (being written).
