//! Schema changes: CREATE/DROP DATABASE, TABLE, INDEX, VIEW, SEQUENCE; ALTER TABLE;
//! TRUNCATE.
//!
//! TODO(issue 4): implemented by the catalog work.
