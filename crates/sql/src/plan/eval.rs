//! Scalar evaluation over one row.
//!
//! Takes a bound [`Scalar`], a row and an [`EvalCtx`]; gives the value. It is
//! the meaning of the plan's scalar expressions, so it sits with them: the
//! binder folds constants with it ([`eval_constant_scalar`]) and the executor
//! evaluates every row with it (re-exported as `crate::exec::eval`).
//!
//! Evaluation is synchronous: the values of subqueries (and `nextval`) are computed
//! by the operator beforehand and handed in through [`EvalCtx`], so per-row work
//! never awaits.

use std::cmp::Ordering;
use std::collections::HashMap;

use tardigrade_sqltypes::array;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp, UnOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use crate::plan::{Scalar, SubqueryKind};

/// A computed subquery.
#[derive(Clone, Debug)]
pub enum SubValue {
    Scalar(Value),
    Exists(bool),
    /// The single column of every row, for IN / ANY / ALL.
    Column(Vec<Value>),
}

/// What evaluation may read besides the row.
#[derive(Default)]
pub struct EvalCtx<'a> {
    pub params: &'a [Value],
    /// Rows of the enclosing queries, innermost last.
    pub outer: &'a [Vec<Value>],
    /// Uncorrelated subqueries, computed once per statement.
    pub subqueries: Option<&'a HashMap<usize, SubValue>>,
    /// Correlated subqueries and `nextval`s computed for the current row.
    pub row_values: Option<&'a RowValues>,
    /// Statement time, microseconds since the Unix epoch (in a transaction
    /// reading AS OF SYSTEM TIME, that time).
    pub now_micros: i64,
    /// The transaction's (read) timestamp: `cluster_logical_timestamp()`.
    pub txn_timestamp: tardigrade_hlc::Timestamp,
    pub node_id: u32,
    pub database: &'a str,
    pub user: &'a str,
    /// The session's run-time parameters (`current_setting`, `set_config`);
    /// their defaults when `None`.
    pub settings: Option<&'a crate::settings::Settings>,
}

impl EvalCtx<'static> {
    /// A context outside any statement, for immutable expressions (stored
    /// generated columns, index expressions): no parameters, outer rows,
    /// subqueries, session or statement time.
    pub fn detached() -> EvalCtx<'static> {
        EvalCtx {
            params: &[],
            outer: &[],
            subqueries: None,
            row_values: None,
            now_micros: 0,
            txn_timestamp: Default::default(),
            node_id: 0,
            database: "",
            user: "",
            settings: None,
        }
    }
}

/// Per-row results of asynchronous scalars.
#[derive(Default, Debug)]
pub struct RowValues {
    pub subqueries: HashMap<usize, SubValue>,
    /// By the call's id ([`Scalar::NextVal`]).
    pub nextvals: HashMap<usize, i64>,
    /// Results of the advisory lock functions, by the address of their
    /// call in the plan (the executor runs them before the row).
    pub advisory: HashMap<usize, Value>,
}

/// How far in the past `follower_read_timestamp()` is: CockroachDB's
/// default (its closed timestamp target, 3 s, plus the side transport's
/// interval and slack), a time that followers can serve reads at.
pub const FOLLOWER_READ_OFFSET_MICROS: i64 = 4_800_000;

/// The value of `cluster_logical_timestamp()` for an HLC timestamp, in
/// CockroachDB's decimal form: wall nanoseconds, then the logical counter
/// as ten decimal places (`1733568000000000000.0000000001`).
pub fn hlc_decimal(ts: tardigrade_hlc::Timestamp) -> SqlResult<Value> {
    format!("{}.{:010}", ts.wall, ts.logical)
        .parse()
        .map(Value::Decimal)
        .map_err(|_| SqlError::internal(format!("timestamp {ts} as a decimal")))
}

/// Evaluates a constant expression (no row, no parameters), for folding.
pub fn eval_constant_scalar(s: &Scalar) -> SqlResult<Value> {
    eval(s, &[], &EvalCtx::default())
}

/// Evaluates a boolean predicate: NULL counts as false.
pub fn eval_predicate(s: &Scalar, row: &[Value], ctx: &EvalCtx<'_>) -> SqlResult<bool> {
    Ok(matches!(eval(s, row, ctx)?, Value::Bool(true)))
}

pub fn eval(s: &Scalar, row: &[Value], ctx: &EvalCtx<'_>) -> SqlResult<Value> {
    crate::stack::grow(|| eval_node(s, row, ctx))
}

/// [`eval`], borrowing instead of copying when `s` is a column, a literal
/// or a parameter: an operator over them (`price > 0.05`, per row) then
/// copies no value (a NUMERIC or TEXT copy allocates).
fn eval_borrowed<'v>(
    s: &'v Scalar,
    row: &'v [Value],
    ctx: &'v EvalCtx<'_>,
) -> SqlResult<std::borrow::Cow<'v, Value>> {
    use std::borrow::Cow;
    Ok(match s {
        Scalar::Column { index, .. } => match row.get(*index) {
            Some(v) => Cow::Borrowed(v),
            None => return eval(s, row, ctx).map(Cow::Owned),
        },
        Scalar::Literal { value, .. } => Cow::Borrowed(value),
        Scalar::Param { index, .. } => match ctx.params.get(*index) {
            Some(v) => Cow::Borrowed(v),
            None => return eval(s, row, ctx).map(Cow::Owned),
        },
        other => Cow::Owned(eval(other, row, ctx)?),
    })
}

fn eval_node(s: &Scalar, row: &[Value], ctx: &EvalCtx<'_>) -> SqlResult<Value> {
    Ok(match s {
        Scalar::Column { index, .. } => row
            .get(*index)
            .cloned()
            .ok_or_else(|| SqlError::internal(format!("column @{} out of range", index + 1)))?,
        Scalar::Outer { depth, index, .. } => {
            let n = ctx.outer.len();
            let outer_row = (*depth <= n)
                .then(|| &ctx.outer[n - depth])
                .ok_or_else(|| SqlError::internal("outer row missing"))?;
            outer_row
                .get(*index)
                .cloned()
                .ok_or_else(|| SqlError::internal("outer column out of range"))?
        }
        Scalar::Literal { value, .. } => value.clone(),
        Scalar::Param { index, ty } => match ctx.params.get(*index) {
            Some(v) => v.clone(),
            None => {
                return Err(SqlError::new(
                    codes::UNDEFINED_PARAMETER,
                    format!("no value for parameter ${} ({ty})", index + 1),
                ));
            }
        },
        Scalar::Binary {
            op, left, right, ..
        } => {
            match op {
                // Short-circuit with three-valued logic.
                BinOp::And => {
                    let l = eval(left, row, ctx)?;
                    if matches!(l, Value::Bool(false)) {
                        return Ok(Value::Bool(false));
                    }
                    let r = eval(right, row, ctx)?;
                    return ops::eval_binary(BinOp::And, &l, &r, SqlType::Bool, SqlType::Bool);
                }
                BinOp::Or => {
                    let l = eval(left, row, ctx)?;
                    if matches!(l, Value::Bool(true)) {
                        return Ok(Value::Bool(true));
                    }
                    let r = eval(right, row, ctx)?;
                    return ops::eval_binary(BinOp::Or, &l, &r, SqlType::Bool, SqlType::Bool);
                }
                _ => {}
            }
            let l = eval_borrowed(left, row, ctx)?;
            let r = eval_borrowed(right, row, ctx)?;
            ops::eval_binary(*op, &l, &r, left.ty(), right.ty())?
        }
        Scalar::Unary { op, expr, .. } => {
            let v = eval(expr, row, ctx)?;
            if *op == UnOp::Not {
                return Ok(match v {
                    Value::Bool(b) => Value::Bool(!b),
                    Value::Null => Value::Null,
                    other => return Err(SqlError::datatype_mismatch(format!("NOT of {other:?}"))),
                });
            }
            ops::eval_unary(*op, &v, expr.ty())?
        }
        Scalar::Cast { expr, to } => {
            let v = eval(expr, row, ctx)?;
            ops::cast(&v, expr.ty(), *to)?
        }
        Scalar::Func { name, args, .. } => match name.as_str() {
            // run by the executor before the row (exec's eval_row)
            n if crate::plan::is_advisory(n) || crate::plan::is_sequence_fn(n) => match ctx
                .row_values
                .and_then(|r| r.advisory.get(&(s as *const Scalar as usize)))
            {
                Some(v) => v.clone(),
                None => {
                    return Err(SqlError::unsupported(format!("{n} is not supported here")));
                }
            },
            "now" => Value::TimestampTz(ctx.now_micros),
            "follower_read_timestamp" => {
                Value::TimestampTz(ctx.now_micros - FOLLOWER_READ_OFFSET_MICROS)
            }
            // TODO(issue 14): CockroachDB gives the commit timestamp and
            // pins it (the transaction can no longer be pushed); this is the
            // read timestamp at the statement's start, which a read-write
            // transaction pushed later commits above. Exact for the
            // read-only transactions AS OF SYSTEM TIME reads back.
            "cluster_logical_timestamp" => hlc_decimal(ctx.txn_timestamp)?,
            "localtimestamp" => Value::Timestamp(ctx.now_micros),
            "current_date" => Value::Date(ctx.now_micros.div_euclid(86_400_000_000) as i32),
            "version" => Value::Text(format!(
                "PostgreSQL 15.0 (Tardigrade {})",
                env!("CARGO_PKG_VERSION")
            )),
            "current_database" | "current_catalog" => Value::Text(ctx.database.to_string()),
            "current_user" | "session_user" | "user" => Value::Text(ctx.user.to_string()),
            "current_schema" => Value::Text("public".into()),
            "current_setting" => {
                let name = match args.first().map(|a| eval(a, row, ctx)).transpose()? {
                    Some(Value::Text(n)) => n,
                    _ => return Ok(Value::Null),
                };
                let missing_ok = match args.get(1).map(|a| eval(a, row, ctx)).transpose()? {
                    Some(Value::Bool(b)) => b,
                    _ => false,
                };
                let defaults;
                let settings = match ctx.settings {
                    Some(s) => s,
                    None => {
                        defaults = crate::settings::Settings::default();
                        &defaults
                    }
                };
                match settings.get(&name, ctx.database) {
                    Some(v) => Value::Text(v),
                    None if missing_ok => Value::Null,
                    None => {
                        let name = crate::settings::canonical_name(&name);
                        return Err(crate::settings::unrecognized(&name));
                    }
                }
            }
            // regclass from and to names, among the statement's relations
            // (the binder's `regclass_call`: the value, their OIDs, their
            // names).
            "regclass" | "regclassout" | "regclass_pair" => {
                let v = match args.first() {
                    Some(a) => eval(a, row, ctx)?,
                    None => Value::Null,
                };
                let (oids, names) = match (args.get(1), args.get(2)) {
                    (
                        Some(Scalar::Literal {
                            value: Value::Array(o),
                            ..
                        }),
                        Some(Scalar::Literal {
                            value: Value::Array(n),
                            ..
                        }),
                    ) => (o.as_slice(), n.as_slice()),
                    _ => (&[][..], &[][..]),
                };
                regclass_fn(name, v, oids, names)?
            }
            "set_config" => {
                let mut vals = Vec::with_capacity(3);
                for a in args {
                    vals.push(eval(a, row, ctx)?);
                }
                let (Some(Value::Text(name)), Some(value), Some(local)) =
                    (vals.first(), vals.get(1), vals.get(2))
                else {
                    return Err(SqlError::new("22023", "SET requires parameter name"));
                };
                let value = match value {
                    Value::Text(v) => Some(v.as_str()),
                    // set_config(name, NULL, …) sets the empty string.
                    _ => Some(""),
                };
                let local = matches!(local, Value::Bool(true));
                let Some(settings) = ctx.settings else {
                    return Err(SqlError::new(
                        "0A000",
                        "set_config() is not available outside a session",
                    ));
                };
                Value::Text(settings.set(name, value, local)?)
            }
            "default" => return Err(SqlError::syntax("DEFAULT is not allowed in this context")),
            // Array functions read columns and literals in place rather than
            // copying an array per row (unnest indexes a literal array once per
            // element; `x = ANY(col)` scans the column's array).
            n if array::is_array_function(n) => {
                let mut owned = Vec::with_capacity(args.len());
                for a in args {
                    owned.push(match a {
                        Scalar::Column { .. } | Scalar::Literal { .. } => None,
                        other => Some(eval(other, row, ctx)?),
                    });
                }
                let mut refs = Vec::with_capacity(args.len());
                let mut types = Vec::with_capacity(args.len());
                for (a, o) in args.iter().zip(&owned) {
                    refs.push(match (a, o) {
                        (_, Some(v)) => v,
                        (Scalar::Literal { value, .. }, None) => value,
                        (Scalar::Column { index, .. }, None) => {
                            row.get(*index).ok_or_else(|| {
                                SqlError::internal(format!("column @{} out of range", index + 1))
                            })?
                        }
                        _ => return Err(SqlError::internal("array function argument")),
                    });
                    types.push(a.ty());
                }
                array::call(n, &refs, &types)?
            }
            _ => {
                let mut values = Vec::with_capacity(args.len());
                let mut types = Vec::with_capacity(args.len());
                for a in args {
                    values.push(eval(a, row, ctx)?);
                    types.push(a.ty());
                }
                ops::call_function(name, &values, &types)?
            }
        },
        Scalar::Case {
            operand: _,
            whens,
            otherwise,
            ..
        } => {
            for (cond, result) in whens {
                if eval_predicate(cond, row, ctx)? {
                    return eval(result, row, ctx);
                }
            }
            match otherwise {
                Some(o) => eval(o, row, ctx)?,
                None => Value::Null,
            }
        }
        Scalar::Coalesce { args, .. } => {
            for a in args {
                let v = eval(a, row, ctx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Value::Null
        }
        Scalar::Extreme { args, greatest, .. } => {
            let mut best: Option<Value> = None;
            for a in args {
                let v = eval(a, row, ctx)?;
                if v.is_null() {
                    continue;
                }
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let ord = ops::compare(&v, &b).unwrap_or(Ordering::Equal);
                        if (*greatest && ord == Ordering::Greater)
                            || (!*greatest && ord == Ordering::Less)
                        {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            best.unwrap_or(Value::Null)
        }
        Scalar::NullIf { left, right, .. } => {
            let l = eval(left, row, ctx)?;
            let r = eval(right, row, ctx)?;
            if ops::compare(&l, &r) == Some(Ordering::Equal) {
                Value::Null
            } else {
                l
            }
        }
        Scalar::IsNull { expr, negated } => {
            Value::Bool(eval(expr, row, ctx)?.is_null() != *negated)
        }
        Scalar::IsBool {
            expr,
            value,
            negated,
        } => {
            let v = eval(expr, row, ctx)?;
            Value::Bool(matches!(v, Value::Bool(b) if b == *value) != *negated)
        }
        Scalar::InList {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, row, ctx)?;
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                items.push(eval(item, row, ctx)?);
            }
            in_values(&v, &items, *negated)
        }
        Scalar::Subquery(sub) => {
            let value = ctx
                .row_values
                .and_then(|r| r.subqueries.get(&sub.id))
                .or_else(|| ctx.subqueries.and_then(|m| m.get(&sub.id)))
                .ok_or_else(|| {
                    SqlError::internal(format!("subquery #{} was not computed", sub.id))
                })?;
            match (&sub.kind, value) {
                (SubqueryKind::Scalar, SubValue::Scalar(v)) => v.clone(),
                (SubqueryKind::Exists, SubValue::Exists(b)) => Value::Bool(*b),
                (SubqueryKind::In { expr, .. }, SubValue::Column(values)) => {
                    let v = eval(expr, row, ctx)?;
                    in_values(&v, values, false)
                }
                (SubqueryKind::Quantified { expr, op, all }, SubValue::Column(values)) => {
                    let v = eval(expr, row, ctx)?;
                    quantified(&v, *op, *all, values, expr.ty(), expr.ty())?
                }
                _ => return Err(SqlError::internal("subquery result of the wrong kind")),
            }
        }
        Scalar::NextVal { id, .. } => match ctx.row_values.and_then(|r| r.nextvals.get(id)) {
            Some(v) => Value::Int(*v),
            None => return Err(SqlError::internal("nextval was not computed")),
        },
        Scalar::UniqueRowId => Value::Int(crate::rowenc::unique_rowid(ctx.node_id)),
        Scalar::AggRef { .. } => {
            return Err(SqlError::internal("aggregate outside of its group-by"));
        }
        Scalar::SrfRef { .. } => {
            return Err(SqlError::internal(
                "set-returning function outside of its select list",
            ));
        }
        Scalar::WindowRef { .. } => {
            return Err(SqlError::internal("window function outside of its window"));
        }
    })
}

/// `v IN (items)` with SQL's NULL rules: true if equal to one; else NULL if any
/// comparison was NULL; else false.
fn in_values(v: &Value, items: &[Value], negated: bool) -> Value {
    if v.is_null() {
        return if items.is_empty() {
            Value::Bool(negated)
        } else {
            Value::Null
        };
    }
    let mut saw_null = false;
    for item in items {
        match ops::compare(v, item) {
            Some(Ordering::Equal) => return Value::Bool(!negated),
            None => saw_null = true,
            _ => {}
        }
    }
    if saw_null {
        Value::Null
    } else {
        Value::Bool(negated)
    }
}

fn quantified(
    v: &Value,
    op: BinOp,
    all: bool,
    values: &[Value],
    lt: SqlType,
    rt: SqlType,
) -> SqlResult<Value> {
    array::quantify(op, all, v, values, lt, rt)
}

/// `regclass` (a name to its OID), `regclassout` (an OID to the name
/// regclass prints: quoted as an identifier when needed, the number when no
/// relation has it) and `regclass_pair` (`[oid, name]`, a regclass as sent
/// to the client), over the relations `oids` / `names` (user relations
/// first, then the system catalogs). NULL gives NULL.
fn regclass_fn(f: &str, v: Value, oids: &[Value], names: &[Value]) -> SqlResult<Value> {
    let oid = match v {
        Value::Null => return Ok(Value::Null),
        Value::Text(name) if f == "regclass" => {
            if let Some(oid) = super::bind::regclass_digits(&name)? {
                return Ok(Value::Int(oid));
            }
            let parts = crate::vtable::split_relation_name(&name)
                .ok_or_else(|| super::bind::undefined_relation(std::slice::from_ref(&name)))?;
            let undefined = || super::bind::undefined_relation(&parts);
            let catalogs = tardigrade_sqltypes::catalog_fns::CATALOG_TABLE_OIDS.len();
            let user = names.len().saturating_sub(catalogs);
            let table = match parts.as_slice() {
                [t] => Some(t),
                [s, t] if s == "public" => Some(t),
                _ => None,
            };
            let found = table.and_then(|t| {
                names
                    .iter()
                    .take(user)
                    .position(|n| matches!(n, Value::Text(n) if n == t))
            });
            return match found.and_then(|i| oids.get(i)) {
                Some(oid) => Ok(oid.clone()),
                None => crate::vtable::catalog_table_oid(&parts)
                    .map(Value::Int)
                    .ok_or_else(undefined),
            };
        }
        Value::Int(oid) => oid,
        other => {
            return Err(SqlError::datatype_mismatch(format!(
                "{f} takes an OID, not {other:?}"
            )));
        }
    };
    let name = oids
        .iter()
        .position(|o| matches!(o, Value::Int(o) if *o == oid))
        .and_then(|i| names.get(i))
        .and_then(|n| match n {
            Value::Text(n) => Some(tardigrade_sqltypes::strings::quote_ident(n)),
            _ => None,
        });
    Ok(match f {
        "regclassout" => Value::Text(name.unwrap_or_else(|| oid.to_string())),
        _ => match name {
            Some(name) => Value::Array(vec![Value::Int(oid), Value::Text(name)]),
            None => Value::Int(oid),
        },
    })
}
