//! The byte-comparable MVCC key: escaped user key, terminator, inverted timestamp.
//!
//! TODO(issue 2)
