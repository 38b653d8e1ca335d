//! Rule: a correlated scalar subquery that aggregates, used in a filter,
//! becomes a left join with the aggregate grouped by the correlation columns.
//!
//! Takes `Filter(input, … (SELECT f(agg(x)) FROM t WHERE t.k = outer.c …) …)`;
//! gives
//!
//! ```text
//! Project(input columns,
//!   Filter(input ⟕ Aggregate(group: t.k, agg(x)) ON outer.c = t.k,
//!          … f(agg column) …))
//! ```
//!
//! so the aggregate is computed once per group instead of once per outer row
//! (TPC-H Q2, Q17, Q20 have this shape).
//!
//! When the outer side is much smaller than the subquery's input (TPC-H
//! Q17: 20 parts against all of lineitem), aggregating every group is most
//! of the work although few groups are read. The aggregate then only
//! covers the outer side's keys:
//!
//! ```text
//! Aggregate(group: d.c, agg(x))
//!   (Distinct(Project(input, outer.c)) ⋈ t ON d.c = t.k)
//! ```
//!
//! an inner join that join ordering turns into a lookup of `t` by its index
//! on `k` when there is one. The outer side is read twice, so this form is
//! only taken when it reads the same rows both times (base tables, filters,
//! joins and projections without volatile functions) and when its distinct
//! keys are estimated at under a tenth of the subquery's groups. The
//! filter's other conjuncts (without subqueries, deterministic) move onto
//! the outer side first, so that its estimate counts them.
//!
//! Why it is correct: every correlated conjunct is an equality `t.k =
//! outer.c`, so the subquery's rows for an outer row are exactly the group
//! whose keys equal the outer values; grouping yields one row per key, so the
//! left join neither duplicates nor drops outer rows. An outer row with no
//! group (no rows, or a NULL key) gets NULL, which is what `sum`, `avg`,
//! `min` and `max` give over no rows — the rule only fires for those (the
//! "count bug": `count` would give 0, not NULL). The aggregate must be
//! ungrouped and the value an expression of the aggregates alone.

use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

use super::{Depth, outer_depths};
use crate::plan::bind::{and_all, conjuncts, equi_pairs};
use crate::plan::cardinality;
use crate::plan::{JoinKind, Rel, Scalar, Subquery, SubqueryKind};

/// Aggregates whose value over no rows is NULL.
const NULL_ON_EMPTY: &[&str] = &["sum", "avg", "min", "max"];

/// Applies the rule everywhere in the tree.
pub fn decorrelate(rel: Rel) -> Rel {
    crate::stack::grow(|| decorrelate_node(rel))
}

fn decorrelate_node(rel: Rel) -> Rel {
    let rel = lift_from_join(rel.map_inputs(&mut decorrelate));
    let Rel::Filter { input, predicate } = rel else {
        return rel;
    };
    let mut input = *input;
    let width = input.width();
    let mut predicate = predicate;
    let mut changed = false;
    if first_candidate(&predicate).is_some() {
        // Plain conjuncts filter the outer side before the subquery's join.
        let mut parts = Vec::new();
        conjuncts(predicate.clone(), &mut parts);
        let (plain, rest): (Vec<Scalar>, Vec<Scalar>) = parts.into_iter().partition(|p| {
            let mut subquery = false;
            super::visit(p, &mut |n| subquery |= matches!(n, Scalar::Subquery(_)));
            !subquery && super::deterministic(p) && !p.needs_async()
        });
        if let (Some(p), Some(rest)) = (and_all(plain), and_all(rest)) {
            input = Rel::Filter {
                input: Box::new(input),
                predicate: p,
            };
            predicate = rest;
        }
    }
    // One subquery at a time: each rewrite widens the input.
    while let Some(sub) = first_candidate(&predicate) {
        let id = sub.id;
        let Some((joined, value)) = rewrite(&input, &sub) else {
            break;
        };
        input = joined;
        predicate = replace_subquery(predicate, id, &value);
        changed = true;
    }
    if !changed {
        return Rel::Filter {
            input: Box::new(input),
            predicate,
        };
    }
    let types = crate::plan::join_order::output_types(&input);
    Rel::Project {
        exprs: (0..width)
            .map(|i| Scalar::Column {
                index: i,
                ty: types.get(i).copied().unwrap_or(SqlType::Unknown),
            })
            .collect(),
        input: Box::new(Rel::Filter {
            input: Box::new(input),
            predicate,
        }),
    }
}

/// An inner join whose condition holds candidate subqueries (the binder
/// puts WHERE conjuncts with subqueries there): those conjuncts move to a
/// filter above it, which is equivalent for an inner join.
fn lift_from_join(rel: Rel) -> Rel {
    match rel {
        Rel::Join {
            kind: JoinKind::Inner,
            left,
            right,
            on: Some(on),
            equi,
        } if first_candidate(&on).is_some() => {
            let mut parts = Vec::new();
            conjuncts(on, &mut parts);
            let (lifted, kept): (Vec<Scalar>, Vec<Scalar>) = parts
                .into_iter()
                .partition(|p| first_candidate(p).is_some());
            let join = Rel::Join {
                kind: JoinKind::Inner,
                left,
                right,
                on: and_all(kept),
                equi,
            };
            match and_all(lifted) {
                Some(p) => Rel::Filter {
                    input: Box::new(join),
                    predicate: p,
                },
                None => join,
            }
        }
        other => other,
    }
}

/// The first correlated scalar subquery in `s` the rule may rewrite.
fn first_candidate(s: &Scalar) -> Option<Subquery> {
    let mut found: Option<Subquery> = None;
    super::visit(s, &mut |n| {
        if found.is_none()
            && let Scalar::Subquery(sub) = n
            && matches!(sub.kind, SubqueryKind::Scalar)
            && sub.correlated
            && shape(&sub.plan).is_some()
        {
            found = Some((**sub).clone());
        }
    });
    found
}

/// The value expression (over the aggregate's output), the aggregate and its
/// input, when the plan is `[Project(e)] Aggregate(no group, aggs)`.
fn shape(plan: &Rel) -> Option<(Scalar, &Rel)> {
    let (value, agg) = match plan {
        Rel::Project { input, exprs } if exprs.len() == 1 => (exprs[0].clone(), input.as_ref()),
        Rel::Aggregate { aggs, .. } if aggs.len() == 1 => (
            Scalar::Column {
                index: 0,
                ty: aggs[0].ty,
            },
            plan,
        ),
        _ => return None,
    };
    let Rel::Aggregate { group, aggs, .. } = agg else {
        return None;
    };
    let simple_value = matches!(outer_depths(&value), Depth::None) && !value.needs_async();
    let null_on_empty = aggs
        .iter()
        .all(|a| NULL_ON_EMPTY.contains(&a.name.as_str()) && a.filter.is_none());
    (group.is_empty() && simple_value && null_on_empty).then_some((value, agg))
}

/// The input left-joined with the grouped aggregate, and the subquery's value
/// over the joined row.
fn rewrite(input: &Rel, sub: &Subquery) -> Option<(Rel, Scalar)> {
    let (value, agg) = shape(&sub.plan)?;
    let Rel::Aggregate {
        input: agg_input,
        aggs,
        ..
    } = agg
    else {
        return None;
    };
    let (body, correlated) = super::pull_correlated(agg_input)?;
    if correlated.is_empty() {
        return None;
    }
    // Every correlated conjunct: inner column = outer column.
    let mut keys = Vec::new();
    for c in &correlated {
        let Scalar::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } = c
        else {
            return None;
        };
        match (left.as_ref(), right.as_ref()) {
            (
                Scalar::Column { index, ty },
                Scalar::Outer {
                    index: o, ty: oty, ..
                },
            )
            | (
                Scalar::Outer {
                    index: o, ty: oty, ..
                },
                Scalar::Column { index, ty },
            ) => {
                keys.push((*index, *ty, *o, *oty));
            }
            _ => return None,
        }
    }
    let lw = input.width();
    let k = keys.len();
    let full = Rel::Aggregate {
        input: Box::new(body.clone()),
        group: keys
            .iter()
            .map(|(i, ty, _, _)| Scalar::Column { index: *i, ty: *ty })
            .collect(),
        aggs: aggs.clone(),
    };
    // The reduced aggregate groups by the outer columns: same types only.
    let same_types = keys.iter().all(|(_, ty, _, oty)| ty == oty);
    let grouped = if same_types && repeatable(input) {
        let outer_keys = distinct_outer_keys(input, &keys);
        if cardinality::rows(&outer_keys) * OUTER_FRACTION < cardinality::rows(&full) {
            reduced_aggregate(outer_keys, body, &keys, aggs)
        } else {
            full
        }
    } else {
        full
    };
    let on = and_all(
        keys.iter()
            .enumerate()
            .map(|(g, (_, ty, o, oty))| Scalar::Binary {
                op: BinOp::Eq,
                left: Box::new(Scalar::Column {
                    index: *o,
                    ty: *oty,
                }),
                right: Box::new(Scalar::Column {
                    index: lw + g,
                    ty: *ty,
                }),
                ty: SqlType::Bool,
            })
            .collect(),
    )?;
    let equi = equi_pairs(&on, lw);
    let joined = Rel::Join {
        kind: JoinKind::Left,
        left: Box::new(input.clone()),
        right: Box::new(grouped),
        on: Some(on),
        equi,
    };
    // The value read the aggregate's output (aggregates from 0); they now
    // follow the input and the group keys.
    let unchanged = value.clone();
    let value = value
        .transform(&mut |n| {
            Ok(match n {
                Scalar::Column { index, ty } => Scalar::Column {
                    index: lw + k + index,
                    ty,
                },
                other => other,
            })
        })
        .unwrap_or(unchanged);
    Some((joined, value))
}

/// The outer side's distinct keys must be estimated at fewer than the
/// subquery's groups divided by this for the aggregate to cover only them.
const OUTER_FRACTION: f64 = 10.0;

/// `Distinct(outer keys)`: the correlation values the outer side has.
fn distinct_outer_keys(input: &Rel, keys: &[(usize, SqlType, usize, SqlType)]) -> Rel {
    Rel::Distinct {
        input: Box::new(Rel::Project {
            input: Box::new(input.clone()),
            exprs: keys
                .iter()
                .map(|(_, _, o, oty)| Scalar::Column {
                    index: *o,
                    ty: *oty,
                })
                .collect(),
        }),
        key_len: keys.len(),
    }
}

/// The aggregate over only the rows of `body` whose keys the outer side
/// has (`outer_keys`, from [`distinct_outer_keys`]):
/// `Aggregate(group: d, aggs)(outer_keys ⋈ body ON d = k)`. Its output is
/// laid out as the full aggregate's: the keys, then the aggregates.
fn reduced_aggregate(
    outer_keys: Rel,
    body: Rel,
    keys: &[(usize, SqlType, usize, SqlType)],
    aggs: &[crate::plan::AggCall],
) -> Rel {
    let k = keys.len();
    let on = and_all(
        keys.iter()
            .enumerate()
            .map(|(g, (i, ty, _, oty))| Scalar::Binary {
                op: BinOp::Eq,
                left: Box::new(Scalar::Column { index: g, ty: *oty }),
                right: Box::new(Scalar::Column {
                    index: k + i,
                    ty: *ty,
                }),
                ty: SqlType::Bool,
            })
            .collect(),
    );
    let equi = on.as_ref().map(|o| equi_pairs(o, k)).unwrap_or_default();
    // The aggregates read the body's columns, which now follow the keys.
    let shift = |s: Scalar| {
        let unchanged = s.clone();
        s.transform(&mut |n| {
            Ok(match n {
                Scalar::Column { index, ty } => Scalar::Column {
                    index: k + index,
                    ty,
                },
                other => other,
            })
        })
        .unwrap_or(unchanged)
    };
    let aggs = aggs
        .iter()
        .map(|a| crate::plan::AggCall {
            args: a.args.iter().cloned().map(shift).collect(),
            filter: a.filter.clone().map(shift),
            ..a.clone()
        })
        .collect();
    Rel::Aggregate {
        input: Box::new(Rel::Join {
            kind: JoinKind::Inner,
            left: Box::new(outer_keys),
            right: Box::new(body),
            on,
            equi,
        }),
        group: keys
            .iter()
            .enumerate()
            .map(|(g, (_, _, _, oty))| Scalar::Column { index: g, ty: *oty })
            .collect(),
        aggs,
    }
}

/// Whether evaluating `rel` twice gives the same rows: base tables and
/// materialized CTEs, filters, inner, semi and anti joins and projections of deterministic
/// expressions.
fn repeatable(rel: &Rel) -> bool {
    let pure = |s: &Scalar| super::deterministic(s) && !s.needs_async();
    match rel {
        // A materialized CTE's rows are computed once, however often read.
        Rel::Scan(_) | Rel::CteScan(_) => true,
        Rel::Filter { input, predicate } => pure(predicate) && repeatable(input),
        Rel::Project { input, exprs } => exprs.iter().all(pure) && repeatable(input),
        Rel::Join {
            kind: JoinKind::Inner | JoinKind::Semi | JoinKind::Anti,
            left,
            right,
            on,
            ..
        } => on.as_ref().is_none_or(pure) && repeatable(left) && repeatable(right),
        _ => false,
    }
}

/// `s` with the subquery `id` replaced by `value`.
fn replace_subquery(s: Scalar, id: usize, value: &Scalar) -> Scalar {
    let unchanged = s.clone();
    s.transform(&mut |n| {
        Ok(match n {
            Scalar::Subquery(sub) if sub.id == id => value.clone(),
            other => other,
        })
    })
    .unwrap_or(unchanged)
}
