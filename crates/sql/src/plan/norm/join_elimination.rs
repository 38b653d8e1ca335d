//! Rule: redundant left joins are removed.
//!
//! A left join keeps every left row exactly once when each left row matches
//! at most one right row — when the join condition equates every column of
//! a unique key of the right table (its primary key, or a unique index) to
//! an expression over the left row. If, besides, nothing above reads the
//! right side's columns, the join only copies its left input, and reading
//! the right table is wasted work. Views that join a lookup table "just in
//! case" and ORMs' eager loading produce this shape; PostgreSQL removes
//! such joins too (`remove_useless_joins`).
//!
//! Takes a projection or an aggregation whose input is such a left join
//! and reads only left columns; gives the same node over the left input,
//! padded with typed NULLs in place of the right columns (so every column
//! keeps its position; the merge of projections that follows drops them).
//!
//! Why it is correct: a unique key matches at most one right row per key
//! value, and an equality never matches a NULL key, so each left row has
//! zero or one match; extra conditions in the join or a filter on the right
//! input can only turn a match into none. Either way the left row appears
//! once, and its left columns are the same.
//!
//! Only keys of types whose equality is identity (integers, text, bytes,
//! booleans, dates, timestamps, UUIDs) count: `1.0 = 1.00` is true for
//! decimals, and a unique index on a decimal or float column does not make
//! `=` match one row. Join conditions with subqueries are left alone.

use tardigrade_sqltypes::SqlType;

use crate::plan::bind::{conjuncts, referenced_columns};
use crate::plan::join_order::output_types;
use crate::plan::{AggCall, JoinKind, Rel, Scalar};
use tardigrade_sqltypes::ops::BinOp;

/// Applies the rule everywhere in the tree.
pub fn eliminate(rel: Rel) -> Rel {
    crate::stack::grow(|| eliminate_node(rel))
}

fn eliminate_node(rel: Rel) -> Rel {
    match rel.map_inputs(&mut eliminate) {
        Rel::Project { input, exprs } => {
            let reads = max_column(exprs.iter());
            Rel::Project {
                input: Box::new(without_right(*input, reads)),
                exprs,
            }
        }
        Rel::Aggregate { input, group, aggs } => {
            let reads = max_column(group.iter().chain(agg_scalars(&aggs)));
            Rel::Aggregate {
                input: Box::new(without_right(*input, reads)),
                group,
                aggs,
            }
        }
        other => other,
    }
}

fn agg_scalars(aggs: &[AggCall]) -> impl Iterator<Item = &Scalar> {
    aggs.iter()
        .flat_map(|a| a.args.iter().chain(a.filter.as_ref()))
}

/// One past the highest input column the expressions read (0: none);
/// `usize::MAX` when one holds a subquery, which may read any.
fn max_column<'a>(exprs: impl Iterator<Item = &'a Scalar>) -> usize {
    let mut max = 0;
    for e in exprs {
        if e.needs_async() {
            return usize::MAX;
        }
        let mut cols = Vec::new();
        referenced_columns(e, &mut cols);
        max = cols.iter().map(|c| c + 1).fold(max, usize::max);
    }
    max
}

/// `rel` without its right side, when it is a left join whose right
/// columns nobody reads (`reads` ≤ the left width) and whose right side
/// matches at most one row per left row.
fn without_right(rel: Rel, reads: usize) -> Rel {
    let Rel::Join {
        kind: JoinKind::Left,
        left,
        right,
        on,
        equi,
    } = rel
    else {
        return rel;
    };
    let lw = left.width();
    if reads > lw || !at_most_one_match(&right, on.as_ref(), lw) {
        return Rel::Join {
            kind: JoinKind::Left,
            left,
            right,
            on,
            equi,
        };
    }
    let mut exprs: Vec<Scalar> = output_types(&left)
        .into_iter()
        .enumerate()
        .map(|(index, ty)| Scalar::Column { index, ty })
        .collect();
    exprs.extend(output_types(&right).into_iter().map(|ty| Scalar::Literal {
        value: tardigrade_sqltypes::Value::Null,
        ty,
    }));
    Rel::Project { input: left, exprs }
}

/// Whether the condition equates every column of a unique key of the right
/// side's table (a scan, possibly filtered) to an expression over the left
/// row.
fn at_most_one_match(right: &Rel, on: Option<&Scalar>, lw: usize) -> bool {
    let mut rel = right;
    while let Rel::Filter { input, .. } = rel {
        rel = input;
    }
    let Rel::Scan(scan) = rel else {
        return false;
    };
    let Some(on) = on else { return false };
    if on.needs_async() {
        return false;
    }
    let mut parts = Vec::new();
    conjuncts(on.clone(), &mut parts);
    // Right columns (table positions) fixed by a left-row expression.
    let fixed: Vec<usize> = parts.iter().filter_map(|p| fixed_column(p, lw)).collect();
    let table = &scan.table;
    table.all_indexes().any(|index| {
        (index.unique || index.id == table.primary_index.id)
            && !index.is_partial()
            && index.columns.iter().all(|id| {
                table.column_position(*id).is_some_and(|pos| {
                    fixed.contains(&pos) && identity_equality(table.columns[pos].ty)
                })
            })
    })
}

/// `right column = expression over left columns` (either way round): the
/// right column's position in the right input.
fn fixed_column(p: &Scalar, lw: usize) -> Option<usize> {
    let Scalar::Binary {
        op: BinOp::Eq,
        left,
        right,
        ..
    } = p
    else {
        return None;
    };
    let left_only = |s: &Scalar| {
        let mut cols = Vec::new();
        referenced_columns(s, &mut cols);
        cols.iter().all(|&c| c < lw) && crate::plan::norm::deterministic(s)
    };
    for (col, other) in [(left, right), (right, left)] {
        if let Scalar::Column { index, ty } = col.as_ref()
            && *index >= lw
            && same_domain(*ty, other.ty())
            && left_only(other)
        {
            return Some(index - lw);
        }
    }
    None
}

/// Equality between the two types compares values as they are: the same
/// type, or two integer types.
fn same_domain(a: SqlType, b: SqlType) -> bool {
    let int = |t| matches!(t, SqlType::Int2 | SqlType::Int4 | SqlType::Int8);
    a == b || (int(a) && int(b))
}

fn identity_equality(ty: SqlType) -> bool {
    matches!(
        ty,
        SqlType::Int2
            | SqlType::Int4
            | SqlType::Int8
            | SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Bytes
            | SqlType::Bool
            | SqlType::Date
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::TimestampTz
            | SqlType::Uuid
    )
}
