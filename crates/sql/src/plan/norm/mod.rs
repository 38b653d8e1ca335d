//! Normalization: rewrites of the bound plan that are always improvements,
//! applied before join ordering, index selection and the physical choices.
//!
//! Takes the binder's plan and gives an equivalent one (same output columns,
//! same rows). Each rule lives in its own file with its own tests and is
//! applied by [`normalize`] in the order below; a rule that does not apply
//! leaves the tree unchanged.
//!
//! - [`or_factor`]: conjuncts common to every branch of an OR move out of
//!   it, so a join equality repeated in each branch becomes a join key.
//! - [`semi_join`]: `EXISTS`, `NOT EXISTS` and `IN (subquery)` conjuncts of a
//!   filter or an inner join condition become semi and anti joins, so a
//!   correlated subquery no longer runs once per outer row.
//! - [`scalar_subquery`]: a correlated scalar subquery computing an
//!   aggregate in a filter becomes a left join with the aggregate grouped by
//!   the correlation columns.
//! - [`outer_join`]: a left, right or full join whose null-extended rows a
//!   filter or join condition above rejects becomes an inner (or one-sided)
//!   join, which join ordering and filter pushdown can then work on.
//! - [`push_filter`]: filters move below projections, aggregations (on
//!   group columns), sorts, DISTINCT, set operations and into inner joins,
//!   and outer, semi and anti joins' conditions on the side that may go
//!   unmatched move into that side, so conditions on views and derived
//!   tables reach their scans.
//! - [`fold_constants`]: constant expressions the rules above created are
//!   folded; AND/OR with TRUE/FALSE simplify; a filter that is always true
//!   goes, one that is never true empties its input.
//! - [`join_elimination`]: a left join whose right side matches at most
//!   one row (a unique key equated) and whose right columns nobody reads
//!   is replaced by its left input.
//! - [`merge_project`]: a projection of a projection becomes one, and a
//!   projection that changes nothing disappears.
//! - [`push_limit`]: a LIMIT (and its ORDER BY) is copied into the left
//!   side of a left join ordered by left columns, and into each branch of a
//!   UNION ALL.
//!
//! To add a rule: a new file here with a function `Rel -> Rel` (recursing
//! through [`Rel::map_inputs`]), a variant in [`super::rules::Rule`], a line
//! in [`normalize_with`], and a file under `testdata/opt/` whose plans show
//! it, with the same query planned with `disable=<rule>` (so disabling or
//! breaking it fails the test).
//! TODO(issue 12): inner-join elimination through foreign keys (a join to
//! the referenced table whose columns nobody reads).

pub mod fold_constants;
pub(crate) use fold_constants::simplify as simplify_scalar;
pub mod join_elimination;
pub mod merge_project;
pub mod or_factor;
pub mod outer_join;
pub mod push_filter;
pub mod push_limit;
pub mod scalar_subquery;
pub mod semi_join;

use super::Rel;
use super::rules::{Rule, Rules};

/// Applies every normalization rule, to subqueries' plans first.
pub fn normalize(rel: Rel) -> Rel {
    normalize_with(rel, Rules::all())
}

/// Applies the normalization rules `rules` enables, to subqueries' plans
/// first.
pub fn normalize_with(rel: Rel, rules: Rules) -> Rel {
    // Subqueries first: one correlated only with its own enclosing block is
    // rewritten inside it.
    let mut rel = super::map_subquery_plans(rel, &mut |p| normalize_with(p, rules));
    let steps: [(Rule, fn(Rel) -> Rel); 9] = [
        (Rule::OrFactor, or_factor::factor),
        // Semi joins first: a scalar subquery's outer side then includes
        // them, so its estimate counts what they filter out.
        (Rule::SemiJoin, semi_join::decorrelate),
        (Rule::ScalarSubquery, scalar_subquery::decorrelate),
        // After the subquery rules (their left joins' filters may reject
        // NULLs) and before filter pushdown (an inner join takes filters).
        (Rule::OuterJoin, outer_join::simplify),
        (Rule::PushFilter, push_filter::push_down),
        // After pushdown, which substitutes expressions into conditions.
        (Rule::FoldConstants, fold_constants::fold_constants),
        // After pushdown (a filter above may read the right side until it
        // moves) and before merging projections (it leaves one).
        (Rule::JoinElimination, join_elimination::eliminate),
        // Last: the rules above leave projections behind.
        (Rule::MergeProject, merge_project::merge),
        (Rule::PushLimit, push_limit::push_down),
    ];
    for (rule, apply) in steps {
        if rules.enabled(rule) {
            rel = apply(rel);
        }
    }
    rel
}

use super::Scalar;
use super::bind::{and_all, conjuncts};

/// Takes the correlated conjuncts (those reading the enclosing query's row,
/// at depth 1) out of a subquery's plan: from its top filter and from the
/// filters and conditions of an inner join tree under it. Returns the plan
/// without them and the conjuncts over the plan's output columns, or `None`
/// when an outer reference stays anywhere else (or reaches further out),
/// in which case the subquery cannot be turned into a join.
pub(crate) fn pull_correlated(rel: &Rel) -> Option<(Rel, Vec<Scalar>)> {
    let mut pulled = Vec::new();
    let rest = pull(rel.clone(), 0, &mut pulled)?;
    if refers_outside(&rest) {
        return None;
    }
    Some((rest, pulled))
}

fn pull(rel: Rel, offset: usize, out: &mut Vec<Scalar>) -> Option<Rel> {
    match rel {
        Rel::Filter { input, predicate } => {
            let mut parts = Vec::new();
            conjuncts(predicate, &mut parts);
            let mut keep = Vec::new();
            for p in parts {
                match outer_depths(&p) {
                    Depth::None => keep.push(p),
                    Depth::One if !p.needs_async() => out.push(shift(p, offset)),
                    _ => return None,
                }
            }
            let input = pull(*input, offset, out)?;
            Some(match and_all(keep) {
                Some(p) => Rel::Filter {
                    input: Box::new(input),
                    predicate: p,
                },
                None => input,
            })
        }
        Rel::Join {
            kind: super::JoinKind::Inner,
            left,
            right,
            on,
            equi,
        } => {
            let lw = left.width();
            let mut keep = Vec::new();
            if let Some(on) = on {
                let mut parts = Vec::new();
                conjuncts(on, &mut parts);
                for p in parts {
                    match outer_depths(&p) {
                        Depth::None => keep.push(p),
                        Depth::One if !p.needs_async() => out.push(shift(p, offset)),
                        _ => return None,
                    }
                }
            }
            let left = pull(*left, offset, out)?;
            let right = pull(*right, offset + lw, out)?;
            Some(Rel::Join {
                kind: super::JoinKind::Inner,
                left: Box::new(left),
                right: Box::new(right),
                on: and_all(keep),
                equi,
            })
        }
        // The body's columns are the node's.
        Rel::With { ctes, body } => Some(Rel::With {
            ctes,
            body: Box::new(pull(*body, offset, out)?),
        }),
        other => Some(other),
    }
}

fn shift(s: Scalar, offset: usize) -> Scalar {
    if offset == 0 {
        return s;
    }
    let unchanged = s.clone();
    s.transform(&mut |n| {
        Ok(match n {
            Scalar::Column { index, ty } => Scalar::Column {
                index: index + offset,
                ty,
            },
            other => other,
        })
    })
    .unwrap_or(unchanged)
}

pub(crate) enum Depth {
    None,
    One,
    Deeper,
}

/// Whether `s` reads the enclosing query's row (depth 1) or beyond.
pub(crate) fn outer_depths(s: &Scalar) -> Depth {
    let mut one = false;
    let mut deeper = false;
    visit(s, &mut |n| match n {
        Scalar::Outer { depth: 1, .. } => one = true,
        Scalar::Outer { .. } => deeper = true,
        Scalar::Subquery(sub) if sub.correlated => deeper = true,
        _ => {}
    });
    if deeper {
        Depth::Deeper
    } else if one {
        Depth::One
    } else {
        Depth::None
    }
}

pub(crate) fn visit(s: &Scalar, f: &mut dyn FnMut(&Scalar)) {
    f(s);
    s.for_each_child(&mut |c| visit(c, f));
}

/// Any outer reference or correlated subquery anywhere in the plan.
pub(crate) fn refers_outside(rel: &Rel) -> bool {
    let mut found = false;
    let _ = rel.clone().map_scalars(&mut |s| {
        visit(&s, &mut |n| match n {
            Scalar::Outer { .. } => found = true,
            Scalar::Subquery(sub) if sub.correlated => found = true,
            _ => {}
        });
        s
    });
    if found {
        return true;
    }
    let mut inner = false;
    let _ = rel.clone().map_inputs(&mut |r| {
        inner |= refers_outside(&r);
        r
    });
    inner
}

/// Whether `s` gives the same result each time it is evaluated on the
/// same row: no volatile function, `nextval` or `unique_rowid`. Only such
/// expressions may be moved, duplicated or merged by a rule.
pub(super) fn deterministic(s: &Scalar) -> bool {
    let mut ok = true;
    visit(s, &mut |n| match n {
        Scalar::Func { name, .. } if crate::plan::is_volatile(name) => ok = false,
        Scalar::NextVal { .. } | Scalar::UniqueRowId => ok = false,
        _ => {}
    });
    ok
}
