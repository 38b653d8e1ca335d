//! Rows ↔ KV pairs, and the reads and writes of table data.
//!
//! TODO(issue 4): implemented by the catalog work.
