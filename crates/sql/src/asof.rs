//! `AS OF SYSTEM TIME`: reading the database as it was at a time in the
//! past, as CockroachDB does (its "time travel queries").
//!
//! A query (`SELECT … FROM t AS OF SYSTEM TIME '-10s'`), or a whole
//! transaction (`BEGIN AS OF SYSTEM TIME …`, or `SET TRANSACTION AS OF
//! SYSTEM TIME …` before the transaction's first read), reads at one fixed
//! timestamp. The parser cuts the clause out of the statement
//! ([`crate::parse::as_of`]); this module turns its expression into that
//! timestamp ([`timestamp`]); the session runs the statement or the block
//! in a KV transaction fixed there ([`tardigrade_kv::Txn::set_fixed_timestamp`]):
//!
//! - the read timestamp never moves: the uncertainty limit is the
//!   timestamp itself (no read is uncertain, so none restarts), and a
//!   refresh, which would move it, fails instead;
//! - it is read-only: writes and DDL fail with 25006 "cannot execute … in a
//!   read-only transaction" (the session's settings report
//!   `transaction_read_only` on, [`crate::settings::Settings::set_historical`]),
//!   and the KV transaction refuses writes besides;
//! - the schema is the one at that time: the catalog reads descriptors and
//!   names through the statement's transaction, so at its timestamp, and its
//!   node cache serves only transactions that read the same catalog version
//!   ([`crate::catalog`]): a table created later does not exist, a column
//!   added later is not there;
//! - `now()` is that time.
//!
//! The expression is evaluated once, before the statement runs, and must be
//! a constant (or a call of `follower_read_timestamp()`); as in
//! CockroachDB's `DatumToHLC`, its value may be
//!
//! - a TIMESTAMP or TIMESTAMPTZ;
//! - an INT of nanoseconds since the epoch, or a DECIMAL in the HLC form
//!   `cluster_logical_timestamp()` gives (`<nanoseconds>.<logical as ten
//!   digits>`);
//! - a negative INTERVAL, added to the statement's time;
//! - a string holding any of those (a timestamp is tried first, then a
//!   decimal, then an interval): `'2026-12-07 10:00:00'`,
//!   `'1733568000000000000.0000000001'`, `'-10s'`.
//!
//! Errors follow CockroachDB's text. Those of the evaluation carry
//! CockroachDB's code for errors without a PostgreSQL one, XXUUU
//! (`codes::UNCATEGORIZED`), as CockroachDB reports them: "AS OF SYSTEM
//! TIME: cannot specify timestamp in the future (…)", "AS OF SYSTEM TIME:
//! expected timestamp, decimal, or interval, got …", "AS OF SYSTEM TIME:
//! interval value '10s' too large, AS OF interval must be <= -1µs", "AS OF
//! SYSTEM TIME: only constant expressions or follower_read_timestamp are
//! allowed". Nested clauses naming another time are 0A000, "cannot specify
//! AS OF SYSTEM TIME with different timestamps".
//!
//! Timestamp strings without an offset are read as UTC.
//!
//! TODO(issue 14): follower reads: a read this far in the past could be
//! served by any replica below its closed timestamp instead of the
//! leaseholder; today every read goes to the leaseholder.
//! TODO(issue 14): reads below the GC threshold are not refused yet (once
//! old versions are collected, such a read must fail rather than return a
//! partial past).
//! TODO(issue 14): `with_min_timestamp()` and `with_max_staleness()`
//! (bounded staleness reads).

use std::collections::HashMap;

use sqlparser::ast::Expr;
use tardigrade_hlc::Timestamp;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, datetime};

use crate::parse::AsOf;
use crate::plan::Scalar;
use crate::plan::bind::Binder;
use crate::plan::eval::{EvalCtx, eval};

/// The timestamp a statement's clauses name, evaluated at `now` (the
/// statement's time, from the node's clock): the one the statement reads
/// at. Nested clauses must name the same one; none may be in the future.
pub fn timestamp(as_of: &AsOf, now: Timestamp) -> SqlResult<Timestamp> {
    let ts = evaluate(&as_of.expr, now)?;
    for nested in &as_of.nested {
        if evaluate(nested, now)? != ts {
            return Err(SqlError::unsupported(
                "cannot specify AS OF SYSTEM TIME with different timestamps",
            ));
        }
    }
    if ts > now {
        return Err(error(format!(
            "cannot specify timestamp in the future ({ts} > {now})"
        )));
    }
    Ok(ts)
}

/// The error 0A000 of a statement whose time is not the one its explicit
/// transaction reads at.
pub fn inconsistent(expected: Timestamp, got: Timestamp) -> SqlError {
    SqlError::new(
        codes::FEATURE_NOT_SUPPORTED,
        format!("inconsistent AS OF SYSTEM TIME timestamp; expected: {expected}, got: {got}"),
    )
    .with_hint("try SET TRANSACTION AS OF SYSTEM TIME")
}

/// Error 42601 of `BEGIN … AS OF SYSTEM TIME … READ WRITE`: a historical
/// transaction is read-only.
pub fn read_write() -> SqlError {
    SqlError::syntax("AS OF SYSTEM TIME specified with READ WRITE mode")
}

/// An evaluation error, as CockroachDB words and codes it.
fn error(message: impl std::fmt::Display) -> SqlError {
    SqlError::new(
        codes::UNCATEGORIZED,
        format!("AS OF SYSTEM TIME: {message}"),
    )
}

/// One clause's expression as a timestamp.
fn evaluate(expr: &Expr, now: Timestamp) -> SqlResult<Timestamp> {
    refuse_subqueries_and_placeholders(expr)?;
    let tables = HashMap::new();
    let mut binder = Binder::new(&tables, &[]);
    let bound = binder.bind_expr(expr, &Vec::new())?;
    let follower_read = matches!(
        &bound,
        Scalar::Func { name, .. } if name == "follower_read_timestamp"
    );
    if !follower_read && !bound.is_constant() {
        return Err(error(
            "only constant expressions or follower_read_timestamp are allowed",
        ));
    }
    let ctx = EvalCtx {
        now_micros: now.wall.div_euclid(1000),
        txn_timestamp: now,
        ..EvalCtx::default()
    };
    let value = eval(&bound, &[], &ctx)?;
    value_timestamp(&value, bound.ty(), now).map_err(error)
}

/// CockroachDB refuses these before evaluating: 0A000 and 42P02.
fn refuse_subqueries_and_placeholders(expr: &Expr) -> SqlResult<()> {
    use sqlparser::ast::Value as V;
    let mut found = Ok(());
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        found = match e {
            Expr::Subquery(_)
            | Expr::Exists { .. }
            | Expr::In {
                target: sqlparser::ast::InTarget::Subquery(_),
                ..
            } => Err(SqlError::unsupported(
                "subqueries are not allowed in AS OF SYSTEM TIME",
            )),
            Expr::Value(v) => match &v.value {
                V::Placeholder(p) => Err(SqlError::new(
                    codes::UNDEFINED_PARAMETER,
                    format!("no value provided for placeholder: {p}"),
                )),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        if found.is_err() {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    found
}

/// CockroachDB's `DatumToHLC` for AS OF SYSTEM TIME; the error without its
/// "AS OF SYSTEM TIME: " prefix.
fn value_timestamp(value: &Value, ty: SqlType, now: Timestamp) -> Result<Timestamp, String> {
    let ts = match value {
        Value::Text(s) => string_timestamp(s, now)?,
        Value::Timestamp(micros) | Value::TimestampTz(micros) => micros_timestamp(*micros)?,
        Value::Int(nanos) => Timestamp::new(*nanos, 0),
        Value::Decimal(d) => decimal_timestamp(&d.to_string())?,
        Value::Interval(iv) => {
            if datetime::interval_span(*iv) >= 0 {
                let mut text = String::new();
                datetime::write_interval(&mut text, *iv);
                return Err(format!(
                    "interval value '{text}' too large, AS OF interval must be <= -1µs"
                ));
            }
            before(now, *iv)?
        }
        _ => {
            let ty = match value {
                Value::Null => SqlType::Unknown,
                _ => ty,
            };
            return Err(format!(
                "expected timestamp, decimal, or interval, got {ty}"
            ));
        }
    };
    if ts.is_zero() {
        return Err("zero timestamp is invalid".into());
    }
    if ts < Timestamp::ZERO {
        return Err("timestamp before 1970-01-01T00:00:00Z is invalid".into());
    }
    Ok(ts)
}

/// A string: a timestamp, else a decimal, else an interval (which must be
/// negative and at least a microsecond).
fn string_timestamp(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(micros) = datetime::parse_timestamp(s, true) {
        return micros_timestamp(micros);
    }
    if s.trim()
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && let Ok(d) = s.trim().parse::<tardigrade_encoding::decimal::Decimal>()
    {
        return decimal_timestamp(&d.to_string());
    }
    if let Ok(iv) = datetime::parse_interval(s) {
        let span = datetime::interval_span(iv);
        if span == 0 {
            return Err(format!(
                "interval value '{s}' too small, absolute value must be >= 1µs"
            ));
        }
        if span > 0 {
            return Err(format!(
                "interval value '{s}' too large, AS OF interval must be <= -1µs"
            ));
        }
        return before(now, iv);
    }
    Err("value is neither timestamp, decimal, nor interval".into())
}

fn micros_timestamp(micros: i64) -> Result<Timestamp, String> {
    micros
        .checked_mul(1000)
        .map(|wall| Timestamp::new(wall, 0))
        .ok_or_else(|| "timestamp out of range".to_string())
}

/// `now` plus a (negative) interval, to the nanosecond of `now`.
fn before(now: Timestamp, iv: tardigrade_sqltypes::Interval) -> Result<Timestamp, String> {
    let micros = datetime::add_interval(now.wall.div_euclid(1000), iv).map_err(|e| e.message)?;
    let wall = micros_timestamp(micros)?.wall + now.wall.rem_euclid(1000);
    Ok(Timestamp::new(wall, 0))
}

/// The HLC decimal form: wall nanoseconds, and the logical counter as (up
/// to) ten decimal places.
fn decimal_timestamp(text: &str) -> Result<Timestamp, String> {
    if text.starts_with('-') {
        return Err("timestamp before 1970-01-01T00:00:00Z is invalid".into());
    }
    let (wall, logical) = text.split_once('.').unwrap_or((text, ""));
    let wall: i64 = wall.parse().map_err(|_| "value out of range".to_string())?;
    if logical.len() > 10 {
        return Err(format!(
            "logical part has too many digits: {text} (expected at most 10)"
        ));
    }
    let logical = if logical.is_empty() {
        0
    } else {
        format!("{logical:0<10}")
            .parse::<i32>()
            .map_err(|_| format!("logical part of {text} out of range"))?
    };
    Ok(Timestamp::new(wall, logical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(sql: &str, now: Timestamp) -> SqlResult<Timestamp> {
        let expr = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .expect("expression parses");
        timestamp(
            &AsOf {
                expr,
                nested: Vec::new(),
            },
            now,
        )
    }

    const NOW: Timestamp = Timestamp::new(1_800_000_000_123_456_789, 3);

    #[test]
    fn values_become_timestamps() {
        let second = 1_000_000_000;
        assert_eq!(
            ts("'-10s'", NOW).unwrap(),
            Timestamp::new(NOW.wall - 10 * second, 0)
        );
        assert_eq!(
            ts("INTERVAL '-1 minute'", NOW).unwrap(),
            Timestamp::new(NOW.wall - 60 * second, 0)
        );
        assert_eq!(
            ts("-('1000' || 'us')::INTERVAL", NOW).unwrap(),
            Timestamp::new(NOW.wall - 1_000_000, 0)
        );
        assert_eq!(
            ts("'2026-12-07 10:00:00'", NOW).unwrap(),
            Timestamp::new(1_796_637_600 * second, 0)
        );
        assert_eq!(
            ts("'2026-12-07 10:00:00+01'", NOW).unwrap(),
            Timestamp::new(1_796_634_000 * second, 0)
        );
        assert_eq!(
            ts("'1733568000000000000.0000000001'", NOW).unwrap(),
            Timestamp::new(1_733_568_000_000_000_000, 1)
        );
        assert_eq!(
            ts("1733568000000000000.05", NOW).unwrap(),
            Timestamp::new(1_733_568_000_000_000_000, 500_000_000)
        );
        assert_eq!(
            ts("1733568000000000000", NOW).unwrap(),
            Timestamp::new(1_733_568_000_000_000_000, 0)
        );
        assert_eq!(
            ts("follower_read_timestamp()", NOW).unwrap(),
            Timestamp::new((NOW.wall / 1000 - 4_800_000) * 1000, 0)
        );
    }

    #[test]
    fn errors_are_cockroachdbs() {
        let e = |sql: &str| ts(sql, NOW).unwrap_err();
        let future = e("'2200-01-01'");
        assert_eq!(future.code, "XXUUU");
        assert!(
            future
                .message
                .starts_with("AS OF SYSTEM TIME: cannot specify timestamp in the future ("),
            "{future:?}"
        );
        assert_eq!(
            e("'10s'").message,
            "AS OF SYSTEM TIME: interval value '10s' too large, AS OF interval must be <= -1µs"
        );
        assert_eq!(
            e("'0.1us'").message,
            "AS OF SYSTEM TIME: interval value '0.1us' too small, absolute value must be >= 1µs"
        );
        assert_eq!(
            e("true").message,
            "AS OF SYSTEM TIME: expected timestamp, decimal, or interval, got boolean"
        );
        assert_eq!(
            e("'nonsense'").message,
            "AS OF SYSTEM TIME: value is neither timestamp, decimal, nor interval"
        );
        assert_eq!(
            e("'0'").message,
            "AS OF SYSTEM TIME: zero timestamp is invalid"
        );
        assert_eq!(
            e("now()").message,
            "AS OF SYSTEM TIME: only constant expressions or follower_read_timestamp are allowed"
        );
        assert_eq!(e("(SELECT 1)").code, "0A000");
        assert_eq!(e("$1").code, "42P02");
        let nested = timestamp(
            &AsOf {
                expr: Expr::value(sqlparser::ast::Value::SingleQuotedString("-1s".into())),
                nested: vec![Expr::value(sqlparser::ast::Value::SingleQuotedString(
                    "-2s".into(),
                ))],
            },
            NOW,
        )
        .unwrap_err();
        assert_eq!(nested.code, "0A000");
    }
}
