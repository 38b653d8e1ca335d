//! Rule: a LIMIT (with the ORDER BY under it) is copied into the inputs
//! that can give no more than that many rows of the result: the left side
//! of a left join ordered by left columns only, and each branch of a UNION
//! ALL.
//!
//! Takes `Limit(n, offset m, [Sort(keys)], X)` with constant `n` and `m`,
//! where X is (through projections of plain columns and deterministic
//! expressions) a left join whose sort keys read only its left columns, or
//! a UNION ALL; gives the same with `Limit(n + m, [Sort(keys)], input)`
//! over the left input (over each branch), the outer LIMIT and sort kept.
//!
//! Why it is correct: a left join gives every left row at least once, with
//! its left columns unchanged, so the first n + m result rows in an order
//! over left columns come from the first n + m left rows in that order
//! (rows equal on the keys may be others than before: SQL leaves their
//! order open); any n + m left rows when there is no order. Every row of a
//! UNION ALL comes from one branch, so its first n + m come from the first
//! n + m of each. Why it helps: the join (the union) reads n + m rows of its
//! input instead of all, and index selection can turn the copied sort and
//! limit into an ordered scan that stops early (the pagination query of an
//! ORM: `… LEFT JOIN … ORDER BY id LIMIT 20`). CockroachDB's
//! `PushLimitIntoLeftJoin` and PostgreSQL's limit pushdown into
//! `Append` do the same.

use tardigrade_sqltypes::{SqlType, Value};

use super::deterministic;
use super::push_filter::substitute;
use crate::plan::bind::referenced_columns;
use crate::plan::{JoinKind, Rel, Scalar, SetOpKind, SortKey};

/// Applies the rule everywhere in the tree.
pub fn push_down(rel: Rel) -> Rel {
    crate::stack::grow(|| push_down_node(rel))
}

fn push_down_node(rel: Rel) -> Rel {
    match rel.map_inputs(&mut push_down) {
        Rel::Limit {
            input,
            limit: Some(limit),
            offset,
        } => {
            let input = match count(&limit, offset.as_ref()) {
                Some(n) => into(*input, n, None),
                None => *input,
            };
            Rel::Limit {
                input: Box::new(input),
                limit: Some(limit),
                offset,
            }
        }
        other => other,
    }
}

/// `limit + offset` when both are integer constants.
fn count(limit: &Scalar, offset: Option<&Scalar>) -> Option<i64> {
    let int = |s: &Scalar| match s {
        Scalar::Literal {
            value: Value::Int(n),
            ..
        } if *n >= 0 => Some(*n),
        _ => None,
    };
    let skip = match offset {
        Some(o) => int(o)?,
        None => 0,
    };
    int(limit)?.checked_add(skip)
}

/// `rel` (whose first `n` rows, in the order of `keys` if any, are all that
/// is read of it) with the limit copied into its inputs where it may go.
fn into(rel: Rel, n: i64, keys: Option<&[SortKey]>) -> Rel {
    match rel {
        Rel::Sort { input, keys: k } if keys.is_none() => {
            let input = into(*input, n, Some(&k));
            Rel::Sort {
                input: Box::new(input),
                keys: k,
            }
        }
        Rel::Project { input, exprs } => {
            // The keys over the projection's input, when each may be
            // computed there.
            let below = |keys: &[SortKey]| -> Option<Vec<SortKey>> {
                keys.iter()
                    .map(|k| {
                        let expr = substitute(k.expr.clone(), &exprs);
                        (deterministic(&expr) && !expr.needs_async())
                            .then(|| SortKey { expr, ..k.clone() })
                    })
                    .collect()
            };
            let input = match keys {
                None => into(*input, n, None),
                Some(keys) => match below(keys) {
                    Some(mapped) => into(*input, n, Some(&mapped)),
                    None => *input,
                },
            };
            Rel::Project {
                input: Box::new(input),
                exprs,
            }
        }
        Rel::Join {
            kind: JoinKind::Left,
            left,
            right,
            on,
            equi,
        } if keys.is_none_or(|k| reads_only_left(k, left.width())) => Rel::Join {
            kind: JoinKind::Left,
            left: Box::new(limited(*left, n, keys)),
            right,
            on,
            equi,
        },
        Rel::SetOp {
            op: SetOpKind::Union,
            all: true,
            left,
            right,
        } if keys.is_none_or(|k| k.iter().all(|k| plain(&k.expr))) => Rel::SetOp {
            op: SetOpKind::Union,
            all: true,
            left: Box::new(limited(*left, n, keys)),
            right: Box::new(limited(*right, n, keys)),
        },
        other => other,
    }
}

/// The keys read only columns below `width`, and may be evaluated there.
fn reads_only_left(keys: &[SortKey], width: usize) -> bool {
    keys.iter().all(|k| {
        let mut cols = Vec::new();
        referenced_columns(&k.expr, &mut cols);
        cols.iter().all(|&c| c < width) && deterministic(&k.expr) && !k.expr.needs_async()
    })
}

/// A key over a union's output: evaluated on each branch's rows (cast to
/// the output types already), it must be deterministic and subquery-free.
fn plain(e: &Scalar) -> bool {
    deterministic(e) && !e.needs_async()
}

/// `Limit(n, Sort(keys, rel))` (no sort without keys), unless `rel` is
/// already limited.
fn limited(rel: Rel, n: i64, keys: Option<&[SortKey]>) -> Rel {
    if matches!(rel, Rel::Limit { .. }) {
        return rel;
    }
    let input = match keys {
        Some(keys) if !keys.is_empty() => Rel::Sort {
            input: Box::new(rel),
            keys: keys.to_vec(),
        },
        _ => rel,
    };
    Rel::Limit {
        input: Box::new(input),
        limit: Some(Scalar::literal(Value::Int(n), SqlType::Int8)),
        offset: None,
    }
}
