//! SQL types, values and the scalar built-ins: the vocabulary the SQL layer computes with.
//!
//! This crate knows nothing of tables, keys or transactions. It defines
//! - [`SqlError`]: an error with its PostgreSQL SQLSTATE, what every SQL path returns;
//! - [`SqlType`]: the column and expression types (with their PostgreSQL OIDs);
//! - [`Value`]: one runtime value, with PostgreSQL's comparison, text output and
//!   text/binary input;
//! - [`array`]: one-dimensional arrays (text and binary formats, array functions,
//!   `ANY`/`ALL`);
//! - [`ops`]: operators, casts and built-in functions with PostgreSQL's semantics
//!   (three-valued logic, overflow and division-by-zero errors, numeric scales);
//! - [`strings`] and [`jsonb`]: the string (`format`, `encode`, `regexp_*`, …)
//!   and jsonb (`@>`, `?`, `#>`, `jsonb_set`, …) built-ins.
//!
//! The `sql` crate (catalog, planning, execution, sessions) builds on it; the pgwire
//! front end uses its text and binary formats.

pub mod agg;
pub mod array;
pub mod catalog_fns;
pub mod datetime;
pub mod error;
pub mod functions;
pub mod inet;
pub mod jsonb;
pub mod num;
pub mod ops;
pub mod strings;
pub mod types;
pub mod tz;
pub mod value;

pub use error::{SqlError, SqlResult};
pub use types::SqlType;
pub use value::{Interval, Value};
