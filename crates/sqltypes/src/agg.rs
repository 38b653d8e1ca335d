//! Aggregate functions: result types and accumulators (count, sum, avg, min, max,
//! string_agg, bool_and/bool_or/every, stddev/variance).

use crate::{SqlError, SqlResult, SqlType, Value};

/// Folds one group's rows into an aggregate result. NULL arguments are skipped, as in
/// PostgreSQL; `count(*)` is called with empty `args` and counts rows.
pub trait Accumulator: Send {
    fn add(&mut self, args: &[Value]) -> SqlResult<()>;
    fn finish(&mut self) -> SqlResult<Value>;
}

pub fn aggregate_type(name: &str, args: &[SqlType]) -> SqlResult<SqlType> {
    let _ = args;
    Err(SqlError::unsupported(format!("aggregate {name}")))
}

pub fn new_accumulator(name: &str, arg_types: &[SqlType]) -> SqlResult<Box<dyn Accumulator>> {
    let _ = arg_types;
    Err(SqlError::unsupported(format!("aggregate {name}")))
}
