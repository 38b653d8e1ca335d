//! Rule: `EXISTS (subquery)`, `NOT EXISTS (subquery)` and `x IN (subquery)`
//! conjuncts become semi and anti joins.
//!
//! Takes a filter (or an inner join) one of whose top-level conjuncts is such
//! a subquery; gives a semi join (anti join for `NOT EXISTS`) of the filter's
//! input with the subquery's plan, whose condition is the subquery's
//! correlated conjuncts (outer references becoming left columns, its own
//! columns right columns) plus, for `IN`, `x = <its column>`. The semi join
//! outputs the left columns only, so everything above is unchanged.
//!
//! Why it is correct: as a WHERE conjunct, `EXISTS` keeps a row iff some
//! subquery row satisfies its correlated conditions — the semi join's
//! definition; `NOT EXISTS` is the anti join. `x IN (…)` keeps a row iff some
//! subquery value equals `x`; NULL and false both drop the row in a filter, so
//! the semi join on `x = value` (NULLs never equal) agrees. `NOT IN` is left
//! alone (a NULL in the subquery makes it NULL for every row).
//!
//! The rule only fires when every outer reference of the subquery's plan is
//! in a conjunct of its filters or inner join conditions, at depth 1
//! ([`super::pull_correlated`]): otherwise the subquery keeps running per
//! outer row.

use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::{BinOp, UnOp};

use crate::plan::bind::{and_all, conjuncts, equi_pairs};
use crate::plan::{JoinKind, Rel, Scalar, Subquery, SubqueryKind};

/// Applies the rule everywhere in the tree.
pub fn decorrelate(rel: Rel) -> Rel {
    crate::stack::grow(|| decorrelate_node(rel))
}

fn decorrelate_node(rel: Rel) -> Rel {
    let rel = rel.map_inputs(&mut decorrelate);
    match rel {
        Rel::Filter { input, predicate } => {
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            let (rel, rest) = absorb(*input, parts);
            match and_all(rest) {
                Some(p) => Rel::Filter {
                    input: Box::new(rel),
                    predicate: p,
                },
                None => rel,
            }
        }
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on: Some(on),
            equi,
        } if on.needs_async() => {
            let mut parts = Vec::new();
            conjuncts(on, &mut parts);
            let (subqueries, plain): (Vec<Scalar>, Vec<Scalar>) =
                parts.into_iter().partition(|p| semi_join_form(p).is_some());
            if subqueries.is_empty() {
                return Rel::Join {
                    kind: JoinKind::Inner,
                    left,
                    right,
                    on: and_all(plain),
                    equi,
                };
            }
            let join = Rel::Join {
                kind: JoinKind::Inner,
                left,
                right,
                on: and_all(plain),
                equi,
            };
            let (rel, rest) = absorb(join, subqueries);
            match and_all(rest) {
                Some(p) => Rel::Filter {
                    input: Box::new(rel),
                    predicate: p,
                },
                None => rel,
            }
        }
        other => other,
    }
}

/// Turns every conjunct it can into a semi or anti join above `input`;
/// returns the new input and the conjuncts left.
fn absorb(mut input: Rel, parts: Vec<Scalar>) -> (Rel, Vec<Scalar>) {
    let mut rest = Vec::new();
    for p in parts {
        match semi_join_form(&p).and_then(|(kind, sub)| build(&input, kind, sub)) {
            Some((right, on)) => {
                let lw = input.width();
                let kind = match &p {
                    Scalar::Unary { op: UnOp::Not, .. } => JoinKind::Anti,
                    _ => JoinKind::Semi,
                };
                let equi = equi_pairs(&on, lw);
                input = Rel::Join {
                    kind,
                    left: Box::new(input),
                    right: Box::new(right),
                    on: Some(on),
                    equi,
                };
            }
            None => rest.push(p),
        }
    }
    (input, rest)
}

#[derive(Clone, Copy)]
enum Form {
    Exists,
    In,
}

/// `EXISTS`, `NOT EXISTS` or `IN (subquery)` with `=`.
fn semi_join_form(p: &Scalar) -> Option<(Form, &Subquery)> {
    match p {
        Scalar::Subquery(sub) => match &sub.kind {
            SubqueryKind::Exists => Some((Form::Exists, sub)),
            SubqueryKind::In { cmp: BinOp::Eq, .. } => Some((Form::In, sub)),
            _ => None,
        },
        Scalar::Unary {
            op: UnOp::Not,
            expr,
            ..
        } => match expr.as_ref() {
            Scalar::Subquery(sub) if matches!(sub.kind, SubqueryKind::Exists) => {
                Some((Form::Exists, sub))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The right input and the join condition, or `None` when the subquery's
/// shape is not one the rule handles.
fn build(input: &Rel, form: Form, sub: &Subquery) -> Option<(Rel, Scalar)> {
    let lw = input.width();
    let plan: &Rel = &sub.plan;
    // EXISTS ignores the projection; IN needs the one projected column.
    let (body, projected) = match (form, plan) {
        (Form::Exists, Rel::Project { input, .. }) => (input.as_ref(), None),
        (Form::In, Rel::Project { input, exprs }) => match exprs.as_slice() {
            [Scalar::Column { index, ty }] => (input.as_ref(), Some((*index, *ty))),
            _ => return None,
        },
        (Form::In, other) if other.width() == 1 => (other, Some((0, SqlType::Unknown))),
        (Form::In, _) => return None,
        (Form::Exists, other) => (other, None),
    };
    let (right, correlated) = super::pull_correlated(body)?;
    if matches!(form, Form::Exists) && correlated.is_empty() {
        // Uncorrelated: evaluated once already, nothing to gain.
        return None;
    }
    let mut on: Vec<Scalar> = correlated.into_iter().map(|c| to_join(c, lw)).collect();
    if let (Form::In, SubqueryKind::In { expr, .. }) = (form, &sub.kind) {
        if expr.needs_async() {
            return None;
        }
        let (col, ty) = projected?;
        let ty = if ty == SqlType::Unknown {
            crate::plan::join_order::output_types(&right)
                .first()
                .copied()
                .unwrap_or(SqlType::Unknown)
        } else {
            ty
        };
        on.push(Scalar::Binary {
            op: BinOp::Eq,
            left: expr.clone(),
            right: Box::new(Scalar::Column {
                index: lw + col,
                ty,
            }),
            ty: SqlType::Bool,
        });
    }
    let on = and_all(on).unwrap_or(Scalar::Literal {
        value: tardigrade_sqltypes::Value::Bool(true),
        ty: SqlType::Bool,
    });
    Some((right, on))
}

/// A correlated conjunct over the joined row: outer references become left
/// columns, the subquery's columns shift right.
fn to_join(c: Scalar, left_width: usize) -> Scalar {
    let unchanged = c.clone();
    c.transform(&mut |n| {
        Ok(match n {
            Scalar::Outer { index, ty, .. } => Scalar::Column { index, ty },
            Scalar::Column { index, ty } => Scalar::Column {
                index: index + left_width,
                ty,
            },
            other => other,
        })
    })
    .unwrap_or(unchanged)
}
