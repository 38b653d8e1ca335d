//! Rule: filters move down through projections, aggregations (on their
//! grouping columns), sorts, DISTINCT and set operations, and into both
//! sides of inner joins,
//! so that a condition written over a view or a derived table reaches the
//! scan it restricts (where index selection turns it into spans).
//!
//! Takes `Filter(p, X)`; gives `X` with the conjuncts of `p` that may move
//! placed below it, and a filter of the others left above.
//!
//! Why it is correct:
//! - a projection maps each row to one row: a conjunct over its outputs holds
//!   for a row iff the conjunct with each output column replaced by its
//!   expression holds for the input row — provided those expressions are
//!   deterministic (no volatile functions, `nextval`, subqueries);
//! - an aggregation's group columns are constant within a group: a conjunct
//!   over group columns only keeps or drops whole groups, the same before or
//!   after aggregating (not for a scalar aggregation, which has a row even
//!   with no input);
//! - sorting and DISTINCT neither create nor change rows, nor does a WITH
//!   around its body;
//! - a set operation (UNION, INTERSECT, EXCEPT, with or without ALL) outputs
//!   rows of its inputs (each branch is already cast to the output types):
//!   a row-wise condition keeps an output row iff it keeps that row in
//!   either input, so filtering both inputs first gives the same rows and
//!   the same duplicate counts;
//! - inner joins: [`crate::plan::bind::push_filter`].
//!
//! The conditions of left, right, semi and anti joins that read only the
//! side whose rows may go unmatched move into that side too
//! ([`push_join_condition`]).

use super::deterministic;
use crate::plan::bind::{and_all, conjuncts, push_filter, referenced_columns, shift_columns};
use crate::plan::{JoinKind, Rel, Scalar};

/// Applies the rule everywhere in the tree.
pub fn push_down(rel: Rel) -> Rel {
    crate::stack::grow(|| push_down_node(rel))
}

fn push_down_node(rel: Rel) -> Rel {
    match rel.map_inputs(&mut push_down) {
        Rel::Filter { input, predicate } => {
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            place(*input, parts)
        }
        Rel::Join {
            kind,
            left,
            right,
            on: Some(on),
            equi,
        } if matches!(
            kind,
            JoinKind::Left | JoinKind::Right | JoinKind::Semi | JoinKind::Anti
        ) =>
        {
            push_join_condition(kind, *left, *right, on, equi)
        }
        other => other,
    }
}

/// The conjuncts of an outer, semi or anti join's condition that read only
/// the side whose rows may go unmatched (the right side of a left, semi or
/// anti join; the left side of a right join) move into that side as a
/// filter: a row failing them matches nothing, exactly as a row that is not
/// there. (Not for a full join, where an unmatched row of either side is
/// still output, null-extended; and not conditions on the preserved side,
/// which decide whether its rows match, not whether they are output.)
fn push_join_condition(
    kind: JoinKind,
    left: Rel,
    right: Rel,
    on: Scalar,
    equi: Vec<(usize, usize)>,
) -> Rel {
    let lw = left.width();
    let mut parts = Vec::new();
    conjuncts(on, &mut parts);
    let (mut to_left, mut to_right, mut keep) = (Vec::new(), Vec::new(), Vec::new());
    for p in parts {
        let mut cols = Vec::new();
        referenced_columns(&p, &mut cols);
        let movable = !cols.is_empty() && !p.needs_async() && deterministic(&p);
        if movable && kind != JoinKind::Right && cols.iter().all(|&c| c >= lw) {
            to_right.push(shift_columns(p, lw));
        } else if movable && kind == JoinKind::Right && cols.iter().all(|&c| c < lw) {
            to_left.push(p);
        } else {
            keep.push(p);
        }
    }
    Rel::Join {
        kind,
        left: Box::new(place(left, to_left)),
        right: Box::new(place(right, to_right)),
        on: and_all(keep),
        equi,
    }
}

/// `input` with `parts` applied, as far down as each may go.
fn place(input: Rel, parts: Vec<Scalar>) -> Rel {
    if parts.is_empty() {
        return input;
    }
    crate::stack::grow(|| place_inner(input, parts))
}

fn place_inner(input: Rel, parts: Vec<Scalar>) -> Rel {
    match input {
        Rel::Project { input, exprs } => {
            let (down, up): (Vec<Scalar>, Vec<Scalar>) =
                parts.into_iter().partition(|p| movable_through(p, &exprs));
            let down: Vec<Scalar> = down.into_iter().map(|p| substitute(p, &exprs)).collect();
            let rel = Rel::Project {
                input: Box::new(place(*input, down)),
                exprs,
            };
            above(rel, up)
        }
        Rel::Aggregate { input, group, aggs } if !group.is_empty() => {
            let n = group.len();
            let (down, up): (Vec<Scalar>, Vec<Scalar>) = parts.into_iter().partition(|p| {
                let mut cols = Vec::new();
                referenced_columns(p, &mut cols);
                cols.iter().all(|&c| c < n) && movable_through(p, &group)
            });
            let down: Vec<Scalar> = down.into_iter().map(|p| substitute(p, &group)).collect();
            let rel = Rel::Aggregate {
                input: Box::new(place(*input, down)),
                group,
                aggs,
            };
            above(rel, up)
        }
        Rel::Sort { input, keys } => Rel::Sort {
            input: Box::new(place(*input, parts)),
            keys,
        },
        // Only conditions on the key: one on the other columns (DISTINCT ON)
        // would change which row of a group is kept.
        Rel::Distinct { input, key_len } => {
            let (down, up): (Vec<Scalar>, Vec<Scalar>) = parts.into_iter().partition(|p| {
                let mut cols = Vec::new();
                referenced_columns(p, &mut cols);
                cols.iter().all(|&c| c < key_len)
            });
            let rel = Rel::Distinct {
                input: Box::new(place(*input, down)),
                key_len,
            };
            above(rel, up)
        }
        Rel::Filter { input, predicate } => {
            let mut all = Vec::new();
            conjuncts(predicate, &mut all);
            all.extend(parts);
            place(*input, all)
        }
        Rel::SetOp {
            op,
            all,
            left,
            right,
        } => {
            let (down, up): (Vec<Scalar>, Vec<Scalar>) = parts
                .into_iter()
                .partition(|p| !p.needs_async() && deterministic(p));
            let rel = Rel::SetOp {
                op,
                all,
                left: Box::new(place(*left, down.clone())),
                right: Box::new(place(*right, down)),
            };
            above(rel, up)
        }
        // The body's rows are the node's (the filter cannot read the CTEs,
        // which only the body sees).
        Rel::With { ctes, body } => Rel::With {
            ctes,
            body: Box::new(place(*body, parts)),
        },
        join @ Rel::Join {
            kind: crate::plan::JoinKind::Inner,
            ..
        } => match and_all(parts) {
            Some(p) => push_filter(join, p),
            None => join,
        },
        other => above(other, parts),
    }
}

fn above(rel: Rel, parts: Vec<Scalar>) -> Rel {
    match and_all(parts) {
        Some(p) => Rel::Filter {
            input: Box::new(rel),
            predicate: p,
        },
        None => rel,
    }
}

/// The conjunct reads only outputs whose expressions may be evaluated below
/// (deterministic, no subquery), and has no subquery itself.
fn movable_through(p: &Scalar, exprs: &[Scalar]) -> bool {
    if p.needs_async() || !deterministic(p) {
        return false;
    }
    let mut cols = Vec::new();
    referenced_columns(p, &mut cols);
    cols.iter().all(|&c| {
        exprs
            .get(c)
            .is_some_and(|e| !e.needs_async() && deterministic(e) && !has_aggregate_ref(e))
    })
}

fn has_aggregate_ref(s: &Scalar) -> bool {
    let mut found = false;
    super::visit(s, &mut |n| {
        if matches!(n, Scalar::AggRef { .. }) {
            found = true;
        }
    });
    found
}

/// `p` with each output column replaced by the expression computing it.
pub(super) fn substitute(p: Scalar, exprs: &[Scalar]) -> Scalar {
    let unchanged = p.clone();
    p.transform(&mut |n| {
        Ok(match n {
            Scalar::Column { index, ty } => exprs
                .get(index)
                .cloned()
                .unwrap_or(Scalar::Column { index, ty }),
            other => other,
        })
    })
    .unwrap_or(unchanged)
}
