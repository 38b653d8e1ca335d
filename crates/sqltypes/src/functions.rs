//! Built-in scalar functions: result types and evaluation (PostgreSQL 15 semantics).
//!
//! Names are lower-case. Functions are strict (NULL in, NULL out) unless noted
//! (`concat`, `concat_ws`, `greatest`, `least` skip NULLs).

use crate::{SqlError, SqlResult, SqlType, Value};

fn undefined(name: &str, args: &[SqlType]) -> SqlError {
    let list: Vec<String> = args.iter().map(|t| t.to_string()).collect();
    SqlError::undefined_function(format!("function {name}({}) does not exist", list.join(", ")))
        .with_hint("No function matches the given name and argument types. You might need to add explicit type casts.")
}

/// The result type of `name(args…)`; 42883 when no such function exists.
pub fn function_type(name: &str, args: &[SqlType]) -> SqlResult<SqlType> {
    Err(undefined(name, args))
}

/// Calls the scalar function `name` on `args` of types `arg_types`.
pub fn call_function(name: &str, args: &[Value], arg_types: &[SqlType]) -> SqlResult<Value> {
    let _ = args;
    Err(undefined(name, arg_types))
}
