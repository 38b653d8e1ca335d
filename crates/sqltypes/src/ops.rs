//! Operators, casts and built-in scalar functions with PostgreSQL's semantics.
//!
//! Type resolution (`binary_type`, `unary_type`, `common_type`, `function_type`) is
//! separate from evaluation (`eval_binary`, `eval_unary`, `cast`, `call_function`) so
//! the planner can type-check a whole expression before running it.

use std::cmp::Ordering;

use crate::{SqlError, SqlResult, SqlType, Value};

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
    Concat,
    Like,
    NotLike,
    ILike,
    NotILike,
    BitAnd,
    BitOr,
    BitXor,
    ShiftLeft,
    ShiftRight,
    JsonGet,
    JsonGetText,
    IsDistinctFrom,
    IsNotDistinctFrom,
}

/// A unary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Plus,
    Not,
    BitNot,
}

pub fn binary_type(op: BinOp, left: SqlType, right: SqlType) -> SqlResult<SqlType> {
    let _ = (op, left, right);
    Err(SqlError::unsupported("binary_type"))
}

pub fn eval_binary(
    op: BinOp,
    left: &Value,
    right: &Value,
    left_ty: SqlType,
    right_ty: SqlType,
) -> SqlResult<Value> {
    let _ = (op, left, right, left_ty, right_ty);
    Err(SqlError::unsupported("eval_binary"))
}

pub fn unary_type(op: UnOp, ty: SqlType) -> SqlResult<SqlType> {
    let _ = (op, ty);
    Err(SqlError::unsupported("unary_type"))
}

pub fn eval_unary(op: UnOp, v: &Value, ty: SqlType) -> SqlResult<Value> {
    let _ = (op, v, ty);
    Err(SqlError::unsupported("eval_unary"))
}

/// SQL comparison: `None` when either side is NULL.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if a.is_null() || b.is_null() {
        return None;
    }
    Some(a.cmp(b))
}

pub fn can_cast(from: SqlType, to: SqlType) -> bool {
    let _ = (from, to);
    false
}

pub fn cast(v: &Value, from: SqlType, to: SqlType) -> SqlResult<Value> {
    let _ = (v, from, to);
    Err(SqlError::unsupported("cast"))
}

pub fn common_type(types: &[SqlType]) -> SqlResult<SqlType> {
    let _ = types;
    Err(SqlError::unsupported("common_type"))
}

pub fn function_type(name: &str, args: &[SqlType]) -> SqlResult<SqlType> {
    let _ = args;
    Err(SqlError::unsupported(format!("function {name}")))
}

pub fn call_function(name: &str, args: &[Value], arg_types: &[SqlType]) -> SqlResult<Value> {
    let _ = (args, arg_types);
    Err(SqlError::unsupported(format!("function {name}")))
}
