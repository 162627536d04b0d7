//! Outgoing email (being written).
