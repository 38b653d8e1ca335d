//! Index-only reads: a scan of a secondary index (or a lookup join through
//! one) whose index holds every column the plan reads from it skips the
//! lookup of the primary row (the "index join").
//!
//! Takes the physical plan; gives it with `covering` set on those scans and
//! lookup joins. Runs last, once the plan's shape is fixed: it walks down
//! from the root with the set of each operator's output columns that
//! something above reads (a filter's, a join condition's, a sort key's, a
//! projection's, a group key's or an aggregate's column, or the statement's
//! output), and compares a scan's set with the columns its index holds.
//! Columns nobody reads stay NULL in the scan's rows: each scan and lookup
//! join gets the mask of the columns to decode ([`super::Scan::reads`]).
//!
//! An expression holding a correlated subquery may read any column of its
//! row (the subquery's plan reads them as outer columns), so every column
//! of that row counts as read.
//!
//! The same walk runs once before index selection ([`annotate_reads`]), so
//! that [`super::index`] knows which indexes hold what a scan is read for.

use std::sync::Arc;

use super::bind::referenced_columns;
use super::{AggCall, ColumnMask, Cte, Rel, Scalar, Scan};

/// Marks the scans and lookup joins of `rel` that need no index join, given
/// that every output column of `rel` is read.
pub fn mark(rel: Rel) -> Rel {
    let width = rel.width();
    let rel = super::map_subquery_plans(rel, &mut mark);
    walk(rel, vec![true; width])
}

/// Sets each scan's [`Scan::reads`] to the columns the plan reads from it
/// (subqueries' plans are left as they are), for index selection.
pub(super) fn annotate_reads(rel: Rel) -> Rel {
    let width = rel.width();
    walk(rel, vec![true; width])
}

/// Adds the columns `e` reads to `read`; all of them when `e` holds a
/// correlated subquery.
pub(super) fn reads(e: &Scalar, read: &mut [bool]) {
    let mut correlated = false;
    super::norm::visit(e, &mut |n| {
        if let Scalar::Subquery(s) = n {
            correlated |= s.correlated;
        }
    });
    if correlated {
        read.iter_mut().for_each(|r| *r = true);
        return;
    }
    let mut cols = Vec::new();
    referenced_columns(e, &mut cols);
    for c in cols {
        if let Some(r) = read.get_mut(c) {
            *r = true;
        }
    }
}

/// What an aggregation reads of its input (of `width` columns): its group
/// keys and its aggregates' arguments and filters.
pub(super) fn group_reads(width: usize, group: &[Scalar], aggs: &[AggCall]) -> Vec<bool> {
    let mut read = vec![false; width];
    group.iter().for_each(|g| reads(g, &mut read));
    for a in aggs {
        a.args.iter().for_each(|e| reads(e, &mut read));
        if let Some(f) = &a.filter {
            reads(f, &mut read);
        }
    }
    read
}

/// What a join reads of its left and right inputs: the output columns read
/// above (`read`, over left ++ right), its condition's columns and its key
/// pairs (left column, right column).
pub(super) fn join_reads(
    mut read: Vec<bool>,
    widths: (usize, usize),
    on: Option<&Scalar>,
    keys: impl Iterator<Item = (usize, usize)>,
) -> (Vec<bool>, Vec<bool>) {
    let (lw, rw) = widths;
    read.resize(lw + rw, false);
    if let Some(on) = on {
        reads(on, &mut read);
    }
    for (l, r) in keys {
        if let Some(x) = read.get_mut(l) {
            *x = true;
        }
        if let Some(x) = read.get_mut(lw + r) {
            *x = true;
        }
    }
    let right = read.split_off(lw);
    (read, right)
}

/// Whether `index` holds every column `read` marks.
pub(super) fn index_holds(
    scan_table: &crate::catalog::TableDesc,
    index: u32,
    read: &[bool],
) -> bool {
    if index == scan_table.primary_index.id {
        return true;
    }
    let held = crate::rowenc::index_covers(scan_table, index);
    scan_table
        .columns
        .iter()
        .zip(read)
        .all(|(c, &r)| !r || held.contains(&c.id))
}

/// The columns a scan of `table` decodes: those read above and the primary
/// key's (a read through a secondary index finds the primary row by them);
/// `None` when that is every column.
fn column_mask(table: &crate::catalog::TableDesc, mut read: Vec<bool>) -> Option<ColumnMask> {
    read.resize(table.columns.len(), true);
    for id in &table.primary_index.columns {
        if let Some(r) = table.column_position(*id).and_then(|p| read.get_mut(p)) {
            *r = true;
        }
    }
    (!read.iter().all(|r| *r)).then(|| read.into())
}

fn walk(rel: Rel, mut read: Vec<bool>) -> Rel {
    crate::stack::grow(move || match rel {
        Rel::Scan(scan) => {
            let covering = scan.covering || index_holds(&scan.table, scan.index, &read);
            let reads = column_mask(&scan.table, read);
            Rel::Scan(Scan {
                covering,
                reads,
                ..scan
            })
        }
        Rel::Filter { input, predicate } => {
            reads(&predicate, &mut read);
            Rel::Filter {
                input: Box::new(walk(*input, read)),
                predicate,
            }
        }
        Rel::Project { input, exprs } => {
            let mut below = vec![false; input.width()];
            for (e, r) in exprs.iter().zip(&read) {
                if *r {
                    reads(e, &mut below);
                }
            }
            Rel::Project {
                input: Box::new(walk(*input, below)),
                exprs,
            }
        }
        Rel::ProjectSet { input, srfs } => {
            let width = input.width();
            let mut below: Vec<bool> = read.iter().take(width).copied().collect();
            below.resize(width, false);
            for c in &srfs {
                for a in &c.args {
                    reads(a, &mut below);
                }
            }
            Rel::ProjectSet {
                input: Box::new(walk(*input, below)),
                srfs,
            }
        }
        Rel::Window {
            input,
            partition,
            order,
            funcs,
        } => {
            let width = input.width();
            let mut below: Vec<bool> = read.iter().take(width).copied().collect();
            below.resize(width, false);
            partition.iter().for_each(|p| reads(p, &mut below));
            order.iter().for_each(|k| reads(&k.expr, &mut below));
            for f in &funcs {
                f.args.iter().for_each(|a| reads(a, &mut below));
                if let Some(filter) = &f.filter {
                    reads(filter, &mut below);
                }
            }
            Rel::Window {
                input: Box::new(walk(*input, below)),
                partition,
                order,
                funcs,
            }
        }
        Rel::Aggregate { input, group, aggs } => {
            let below = group_reads(input.width(), &group, &aggs);
            Rel::Aggregate {
                input: Box::new(walk(*input, below)),
                group,
                aggs,
            }
        }
        Rel::StreamAggregate { input, group, aggs } => {
            let below = group_reads(input.width(), &group, &aggs);
            Rel::StreamAggregate {
                input: Box::new(walk(*input, below)),
                group,
                aggs,
            }
        }
        Rel::Sort { input, keys } => {
            keys.iter().for_each(|k| reads(&k.expr, &mut read));
            Rel::Sort {
                input: Box::new(walk(*input, read)),
                keys,
            }
        }
        Rel::Limit {
            input,
            limit,
            offset,
        } => Rel::Limit {
            input: Box::new(walk(*input, read)),
            limit,
            offset,
        },
        Rel::Distinct { input, key_len } => {
            read.iter_mut().take(key_len).for_each(|r| *r = true);
            Rel::Distinct {
                input: Box::new(walk(*input, read)),
                key_len,
            }
        }
        Rel::Join {
            kind,
            left,
            right,
            on,
            equi,
        } => {
            let widths = (left.width(), right.width());
            let (l, r) = join_reads(read, widths, on.as_ref(), equi.iter().copied());
            Rel::Join {
                kind,
                left: Box::new(walk(*left, l)),
                right: Box::new(walk(*right, r)),
                on,
                equi,
            }
        }
        Rel::MergeJoin {
            kind,
            left,
            right,
            keys,
            on,
        } => {
            let widths = (left.width(), right.width());
            let pairs = keys.iter().map(|k| (k.left, k.right));
            let (l, r) = join_reads(read, widths, on.as_ref(), pairs);
            Rel::MergeJoin {
                kind,
                left: Box::new(walk(*left, l)),
                right: Box::new(walk(*right, r)),
                keys,
                on,
            }
        }
        // The right side may read any left column (as outer columns).
        Rel::Lateral {
            kind,
            left,
            right,
            on,
        } => {
            let widths = (left.width(), right.width());
            let (_, r) = join_reads(read, widths, on.as_ref(), std::iter::empty());
            let l = vec![true; widths.0];
            Rel::Lateral {
                kind,
                left: Box::new(walk(*left, l)),
                right: Box::new(walk(*right, r)),
                on,
            }
        }
        Rel::LookupJoin(mut j) => {
            let widths = (j.left.width(), j.table.columns.len());
            // The right key columns are the index's own.
            let (mut l, mut r) = join_reads(read, widths, j.on.as_ref(), std::iter::empty());
            for &k in &j.keys {
                if let Some(x) = l.get_mut(k) {
                    *x = true;
                }
            }
            if let Some(f) = &j.right_filter {
                reads(f, &mut r);
            }
            j.covering = j.covering || index_holds(&j.table, j.index, &r);
            j.right_reads = column_mask(&j.table, r);
            j.left = walk(j.left, l);
            Rel::LookupJoin(j)
        }
        // Set operations compare whole rows.
        other @ (Rel::SetOp { .. } | Rel::RecursiveUnion { .. }) => other.map_inputs(&mut |r| {
            let w = r.width();
            walk(r, vec![true; w])
        }),
        // The body's output is the node's; each CTE's rows are read whole
        // by its scans.
        Rel::With { ctes, body } => Rel::With {
            ctes: ctes
                .into_iter()
                .map(|c| {
                    let plan = Arc::unwrap_or_clone(c.plan);
                    let w = plan.width();
                    Cte {
                        plan: Arc::new(walk(plan, vec![true; w])),
                        ..c
                    }
                })
                .collect(),
            body: Box::new(walk(*body, read)),
        },
        other @ (Rel::Values { .. }
        | Rel::Series { .. }
        | Rel::WorkTable { .. }
        | Rel::CteScan(_)) => other,
    })
}
