//! Rule: conjuncts common to every branch of an OR move out of it:
//! `(a AND b) OR (a AND c)` becomes `a AND (b OR c)`.
//!
//! Takes a filter or an inner join whose condition has such an OR; gives the
//! same node with the common conjuncts beside the OR, so a join equality
//! written inside every branch (TPC-H Q19) becomes a join key instead of
//! forcing a nested-loop join. Correct by distributivity of AND over OR,
//! which holds in SQL's three-valued logic too.
//!
//! It also adds what such an OR implies about each relation it joins alone
//! ([`add_restrictions`]), so each relation is filtered before the join.
//!
//! Conjuncts are compared structurally (`Scalar`'s `Eq`); a conjunct that
//! is not deterministic (`random()`, `nextval`) is never considered common:
//! each branch's call is its own.

use std::ops::Range;

use super::deterministic;
use crate::plan::bind::{and_all, conjuncts, equi_pairs, referenced_columns};
use crate::plan::{JoinKind, Rel, Scalar};
use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

/// Applies the rule everywhere in the tree.
pub fn factor(rel: Rel) -> Rel {
    crate::stack::grow(|| factor_node(rel))
}

fn factor_node(rel: Rel) -> Rel {
    match rel.map_inputs(&mut factor) {
        Rel::Filter { input, predicate } => {
            let mut ranges = Vec::new();
            relation_ranges(&input, 0, &mut ranges);
            Rel::Filter {
                predicate: add_restrictions(factor_predicate(predicate), &ranges),
                input,
            }
        }
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on: Some(on),
            mut equi,
        } => {
            let mut ranges = Vec::new();
            relation_ranges(&left, 0, &mut ranges);
            relation_ranges(&right, left.width(), &mut ranges);
            let on = add_restrictions(factor_predicate(on), &ranges);
            for pair in equi_pairs(&on, left.width()) {
                if !equi.contains(&pair) {
                    equi.push(pair);
                }
            }
            Rel::Join {
                kind: JoinKind::Inner,
                left,
                right,
                on: Some(on),
                equi,
            }
        }
        other => other,
    }
}

/// Rewrites each OR conjunct of `p`, keeping the others.
fn factor_predicate(p: Scalar) -> Scalar {
    let mut parts = Vec::new();
    conjuncts(p, &mut parts);
    let mut out = Vec::new();
    for c in parts {
        out.extend(factor_or(c));
    }
    and_all(out).unwrap_or(Scalar::Literal {
        value: tardigrade_sqltypes::Value::Bool(true),
        ty: SqlType::Bool,
    })
}

/// The column ranges of the relations an inner join tree joins (one range
/// for anything else), from column `offset` on.
fn relation_ranges(rel: &Rel, offset: usize, out: &mut Vec<Range<usize>>) {
    match rel {
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            ..
        } => {
            relation_ranges(left, offset, out);
            relation_ranges(right, offset + left.width(), out);
        }
        other => out.push(offset..offset + other.width()),
    }
}

/// Adds, beside each OR conjunct of `p` that spans several of the
/// relations `ranges`, the condition it implies on each relation alone:
/// when every branch has conjuncts over only that relation's columns, the
/// OR of those. `(l.a = 1 AND p.b = 2) OR (l.a = 3 AND p.b = 4)` implies
/// `p.b = 2 OR p.b = 4`, which filters `p` before the join (TPC-H Q19's
/// part table: a few hundred rows instead of 200,000 at SF 1). The OR
/// itself stays: the derived conditions are weaker. PostgreSQL derives the
/// same (`extract_restriction_or_clauses`).
fn add_restrictions(p: Scalar, ranges: &[Range<usize>]) -> Scalar {
    if ranges.len() < 2 {
        return p;
    }
    let mut parts = Vec::new();
    conjuncts(p, &mut parts);
    let mut derived: Vec<Scalar> = Vec::new();
    for c in &parts {
        if !matches!(c, Scalar::Binary { op: BinOp::Or, .. }) {
            continue;
        }
        let mut bs = Vec::new();
        branches(c.clone(), &mut bs);
        for r in ranges {
            let within = |x: &Scalar| {
                let mut cols = Vec::new();
                referenced_columns(x, &mut cols);
                !cols.is_empty()
                    && cols.iter().all(|c| r.contains(c))
                    && deterministic(x)
                    && !x.needs_async()
            };
            // Already a condition on this relation alone.
            if bs.iter().all(|b| b.iter().all(within)) {
                continue;
            }
            let per_branch: Option<Vec<Vec<Scalar>>> = bs
                .iter()
                .map(|b| {
                    let mine: Vec<Scalar> = b.iter().filter(|x| within(x)).cloned().collect();
                    (!mine.is_empty()).then_some(mine)
                })
                .collect();
            if let Some(per_branch) = per_branch {
                let d = or_all(per_branch);
                if !derived.contains(&d) {
                    derived.push(d);
                }
            }
        }
    }
    parts.extend(derived);
    and_all(parts).unwrap_or(Scalar::Literal {
        value: tardigrade_sqltypes::Value::Bool(true),
        ty: SqlType::Bool,
    })
}

/// An OR's branches as lists of conjuncts.
fn branches(s: Scalar, out: &mut Vec<Vec<Scalar>>) {
    match s {
        Scalar::Binary {
            op: BinOp::Or,
            left,
            right,
            ..
        } => {
            branches(*left, out);
            branches(*right, out);
        }
        other => {
            let mut c = Vec::new();
            conjuncts(other, &mut c);
            out.push(c);
        }
    }
}

/// The common conjuncts of an OR, then the OR of what is left of each
/// branch (or nothing, when a branch is left empty: it is then true).
fn factor_or(s: Scalar) -> Vec<Scalar> {
    if !matches!(s, Scalar::Binary { op: BinOp::Or, .. }) {
        return vec![s];
    }
    let mut bs = Vec::new();
    branches(s, &mut bs);
    let Some((first, rest)) = bs.split_first() else {
        return Vec::new();
    };
    let common: Vec<Scalar> = first
        .iter()
        .filter(|c| super::deterministic(c) && rest.iter().all(|b| b.contains(c)))
        .cloned()
        .collect();
    if common.is_empty() {
        return vec![or_all(bs)];
    }
    let mut remaining = Vec::new();
    let mut some_branch_empty = false;
    for b in bs {
        let left: Vec<Scalar> = b.into_iter().filter(|d| !common.contains(d)).collect();
        match and_all(left) {
            Some(x) => remaining.push(vec![x]),
            None => some_branch_empty = true,
        }
    }
    let mut out = common;
    if !some_branch_empty {
        out.push(or_all(remaining));
    }
    out
}

fn or_all(bs: Vec<Vec<Scalar>>) -> Scalar {
    let mut iter = bs.into_iter().filter_map(and_all);
    let first = iter.next().unwrap_or(Scalar::Literal {
        value: tardigrade_sqltypes::Value::Bool(false),
        ty: SqlType::Bool,
    });
    iter.fold(first, |acc, b| Scalar::Binary {
        op: BinOp::Or,
        left: Box::new(acc),
        right: Box::new(b),
        ty: SqlType::Bool,
    })
}
