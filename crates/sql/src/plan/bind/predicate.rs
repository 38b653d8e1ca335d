//! Predicates over bound plans: conjuncts, filter pushdown, equi-join keys.
//!
//! Takes a bound predicate and gives it split into conjuncts ([`conjuncts`],
//! [`and_all`] to join them again), the columns it reads
//! ([`referenced_columns`]), or a plan with it placed: [`push_filter`] pushes
//! its conjuncts below inner joins to the side they read and turns column
//! equalities across a join into the join's hash keys ([`equi_pairs`]). The
//! binder places WHERE and join conditions with these; the normalization
//! rules and the join orderer use them the same way.

use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

use crate::plan::{JoinKind, Rel, Scalar};

/// Splits an AND tree into its conjuncts.
pub fn conjuncts(s: Scalar, out: &mut Vec<Scalar>) {
    match s {
        Scalar::Binary {
            op: BinOp::And,
            left,
            right,
            ..
        } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        other => out.push(other),
    }
}

pub fn and_all(mut items: Vec<Scalar>) -> Option<Scalar> {
    let first = if items.is_empty() {
        return None;
    } else {
        items.remove(0)
    };
    Some(items.into_iter().fold(first, |acc, s| Scalar::Binary {
        op: BinOp::And,
        left: Box::new(acc),
        right: Box::new(s),
        ty: SqlType::Bool,
    }))
}

/// Columns a scalar reads from its own row (not from outer rows).
pub fn referenced_columns(s: &Scalar, out: &mut Vec<usize>) {
    if let Scalar::Column { index, .. } = s {
        out.push(*index);
    }
    s.for_each_child(&mut |c| referenced_columns(c, out));
}

/// Shifts column references by `-offset` (for pushing a filter into a join's right side).
pub(crate) fn shift_columns(s: Scalar, offset: usize) -> Scalar {
    s.transform(&mut |node| {
        Ok(match node {
            Scalar::Column { index, ty } => Scalar::Column {
                index: index - offset,
                ty,
            },
            other => other,
        })
    })
    .unwrap_or_else(|_| Scalar::null())
}

/// Equality conjuncts between a left column and a right column.
pub(in crate::plan) fn equi_pairs(on: &Scalar, left_width: usize) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    conjuncts(on.clone(), &mut parts);
    let mut out = Vec::new();
    for p in parts {
        if let Scalar::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } = &p
            && let (Scalar::Column { index: a, ty: ta }, Scalar::Column { index: b, ty: tb }) =
                (left.as_ref(), right.as_ref())
            && hash_compatible(*ta, *tb)
        {
            if *a < left_width && *b >= left_width {
                out.push((*a, *b - left_width));
            } else if *b < left_width && *a >= left_width {
                out.push((*b, *a - left_width));
            }
        }
    }
    out
}

/// Equal values of these types hash equally (the value hash treats numbers as numbers).
fn hash_compatible(a: SqlType, b: SqlType) -> bool {
    (a.is_numeric() && b.is_numeric()) || (a.is_string() && b.is_string()) || a == b
}

/// Adds a filter above `rel`, pushing conjuncts below inner joins to the side whose
/// columns they read (so scans can use them to choose spans), and turning
/// column equalities across an inner join into its hash-join keys.
pub fn push_filter(rel: Rel, predicate: Scalar) -> Rel {
    let mut parts = Vec::new();
    conjuncts(predicate, &mut parts);
    push_conjuncts(rel, parts)
}

fn push_conjuncts(rel: Rel, parts: Vec<Scalar>) -> Rel {
    if parts.is_empty() {
        return rel;
    }
    match rel {
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on,
            equi,
        } => {
            let lw = left.width();
            let mut to_left = Vec::new();
            let mut to_right = Vec::new();
            let mut to_join = Vec::new();
            for p in parts {
                if p.needs_async() {
                    to_join.push(p);
                    continue;
                }
                let mut cols = Vec::new();
                referenced_columns(&p, &mut cols);
                if cols.is_empty() {
                    to_join.push(p);
                } else if cols.iter().all(|c| *c < lw) {
                    to_left.push(p);
                } else if cols.iter().all(|c| *c >= lw) {
                    to_right.push(shift_columns(p, lw));
                } else {
                    to_join.push(p);
                }
            }
            let left = push_conjuncts(*left, to_left);
            let right = push_conjuncts(*right, to_right);
            let mut all_on = Vec::new();
            if let Some(o) = on {
                conjuncts(o, &mut all_on);
            }
            all_on.extend(to_join);
            let on = and_all(all_on);
            let mut equi = equi;
            if let Some(o) = &on {
                for pair in equi_pairs(o, lw) {
                    if !equi.contains(&pair) {
                        equi.push(pair);
                    }
                }
            }
            Rel::Join {
                kind: JoinKind::Inner,
                left: Box::new(left),
                right: Box::new(right),
                on,
                equi,
            }
        }
        Rel::Filter { input, predicate } => {
            let mut all = Vec::new();
            conjuncts(predicate, &mut all);
            all.extend(parts);
            push_conjuncts(*input, all)
        }
        other => match and_all(parts) {
            Some(p) => Rel::Filter {
                input: Box::new(other),
                predicate: p,
            },
            None => other,
        },
    }
}
