//! Column pruning: every operator's output narrowed to the columns
//! something above it reads.
//!
//! Takes the final physical plan (after [`super::covering`]); gives the
//! same plan with the same output columns at its root, but with each scan
//! producing only the table columns read above it ([`super::Scan::project`])
//! and joins, filters and sorts carrying only those. Without it a scan's
//! rows have every column of the table, NULL where nothing reads them, and
//! a join of five tables carries every column of all five: memory traffic,
//! hashing and copying for columns nobody reads.
//!
//! It walks down from the root with the set of each operator's output
//! columns that are read, prunes the inputs, and rewrites the operator's
//! expressions through the returned maps (old position → new position).
//! An operator keeps its needed columns in their order, so every map is
//! monotone. What it does not narrow:
//! - an operator's input whose expressions hold a correlated subquery (the
//!   subquery's plan reads that row by position, as outer columns), and a
//!   `LATERAL` join's left side (its right side reads it the same way);
//! - set operations and recursive unions (they compare whole rows), window
//!   and set-returning-function inputs, `VALUES`, and aggregation outputs;
//! - a projection's expression with side effects (`nextval`, volatile
//!   functions), which runs even when nothing reads its result.
//!
//! A map that misses a column is a bug here; the whole plan is then kept
//! unpruned (and debug builds fail loudly).

use std::sync::Arc;

use super::covering::{group_reads, join_reads, reads as mark};
use super::{JoinKind, Rel, Scalar, Scan};

/// Old output position → new one (`None`: the column is gone).
type ColumnMap = Vec<Option<usize>>;

/// `rel` with every operator's output narrowed to what is read above it;
/// its own output columns are unchanged.
pub fn prune(rel: Rel) -> Rel {
    let rel = super::map_subquery_plans(rel, &mut prune);
    let width = rel.width();
    match walk(rel.clone(), vec![true; width]) {
        Some((pruned, _)) => pruned,
        None => {
            debug_assert!(false, "column pruning lost a column");
            rel
        }
    }
}

fn identity(width: usize) -> ColumnMap {
    (0..width).map(Some).collect()
}

/// Whether a projection may leave `e` out when nothing reads it.
fn droppable(e: &Scalar) -> bool {
    let mut effects = false;
    super::norm::visit(e, &mut |n| {
        effects |= match n {
            Scalar::NextVal { .. } | Scalar::Subquery(_) | Scalar::UniqueRowId => true,
            Scalar::Func { name, .. } => super::is_volatile(name),
            _ => false,
        }
    });
    !effects
}

/// `e` with its column references moved through `map`.
fn remap(e: Scalar, map: &[Option<usize>]) -> Option<Scalar> {
    e.transform(&mut |n| match n {
        Scalar::Column { index, ty } => match map.get(index).copied().flatten() {
            Some(index) => Ok(Scalar::Column { index, ty }),
            None => Err(tardigrade_sqltypes::SqlError::internal(
                "pruned column read",
            )),
        },
        other => Ok(other),
    })
    .ok()
}

/// Rewrites every expression of `rel`'s own (not its inputs') through `map`.
fn remap_node(rel: Rel, map: &[Option<usize>]) -> Option<Rel> {
    let mut ok = true;
    let rel = rel.map_scalars(&mut |s| match remap(s.clone(), map) {
        Some(r) => r,
        None => {
            ok = false;
            s
        }
    });
    ok.then_some(rel)
}

/// The map of a join's output given its sides' maps (`left` of `lw` old
/// columns, narrowed to `new_lw`).
fn concat(left: &ColumnMap, right: &ColumnMap, new_lw: usize) -> ColumnMap {
    left.iter()
        .copied()
        .chain(right.iter().map(|r| r.map(|i| new_lw + i)))
        .collect()
}

fn new_width(map: &ColumnMap) -> usize {
    map.iter().flatten().count()
}

/// Prunes `rel` given which of its output columns are `read`; gives the
/// pruned operator and the map of its output columns.
fn walk(rel: Rel, read: Vec<bool>) -> Option<(Rel, ColumnMap)> {
    crate::stack::grow(move || walk_node(rel, read))
}

fn walk_node(rel: Rel, mut read: Vec<bool>) -> Option<(Rel, ColumnMap)> {
    let width = rel.width();
    read.resize(width, false);
    match rel {
        Rel::Scan(scan) => Some(project_scan(scan, &read)),
        Rel::Filter { input, predicate } => {
            mark(&predicate, &mut read);
            let (input, map) = walk(*input, read)?;
            let rel = Rel::Filter {
                input: Box::new(input),
                predicate,
            };
            Some((remap_node(rel, &map)?, map))
        }
        Rel::Sort { input, keys } => {
            keys.iter().for_each(|k| mark(&k.expr, &mut read));
            let (input, map) = walk(*input, read)?;
            let rel = Rel::Sort {
                input: Box::new(input),
                keys,
            };
            Some((remap_node(rel, &map)?, map))
        }
        Rel::Limit {
            input,
            limit,
            offset,
        } => {
            let (input, map) = walk(*input, read)?;
            let rel = Rel::Limit {
                input: Box::new(input),
                limit,
                offset,
            };
            Some((rel, map))
        }
        Rel::Distinct { input, key_len } => {
            // The key columns are read, so they keep positions 0..key_len.
            read.iter_mut().take(key_len).for_each(|r| *r = true);
            let (input, map) = walk(*input, read)?;
            Some((
                Rel::Distinct {
                    input: Box::new(input),
                    key_len,
                },
                map,
            ))
        }
        Rel::Project { input, exprs } => {
            let keep: Vec<bool> = exprs
                .iter()
                .zip(&read)
                .map(|(e, &r)| r || !droppable(e))
                .collect();
            let mut below = vec![false; input.width()];
            for (e, _) in exprs.iter().zip(&keep).filter(|(_, k)| **k) {
                mark(e, &mut below);
            }
            let (input, inner) = walk(*input, below)?;
            let mut kept = Vec::new();
            let mut map = Vec::with_capacity(exprs.len());
            for (e, k) in exprs.into_iter().zip(keep) {
                if k {
                    map.push(Some(kept.len()));
                    kept.push(remap(e, &inner)?);
                } else {
                    map.push(None);
                }
            }
            Some((
                Rel::Project {
                    input: Box::new(input),
                    exprs: kept,
                },
                map,
            ))
        }
        Rel::Aggregate { input, group, aggs } => {
            let below = group_reads(input.width(), &group, &aggs);
            let (input, inner) = walk(*input, below)?;
            let rel = Rel::Aggregate {
                input: Box::new(input),
                group,
                aggs,
            };
            Some((remap_node(rel, &inner)?, identity(width)))
        }
        Rel::StreamAggregate { input, group, aggs } => {
            let below = group_reads(input.width(), &group, &aggs);
            let (input, inner) = walk(*input, below)?;
            let rel = Rel::StreamAggregate {
                input: Box::new(input),
                group,
                aggs,
            };
            Some((remap_node(rel, &inner)?, identity(width)))
        }
        Rel::Join {
            kind,
            left,
            right,
            on,
            equi,
        } => {
            let j = prune_join(kind, *left, *right, on, &equi, read)?;
            Some((
                Rel::Join {
                    kind,
                    left: Box::new(j.left),
                    right: Box::new(j.right),
                    on: j.on,
                    equi: j.pairs,
                },
                j.map,
            ))
        }
        Rel::MergeJoin {
            kind,
            left,
            right,
            keys,
            on,
        } => {
            let pairs: Vec<(usize, usize)> = keys.iter().map(|k| (k.left, k.right)).collect();
            let j = prune_join(kind, *left, *right, on, &pairs, read)?;
            let keys = keys
                .into_iter()
                .zip(j.pairs)
                .map(|(k, (left, right))| super::MergeKey { left, right, ..k })
                .collect();
            Some((
                Rel::MergeJoin {
                    kind,
                    left: Box::new(j.left),
                    right: Box::new(j.right),
                    keys,
                    on: j.on,
                },
                j.map,
            ))
        }
        Rel::LookupJoin(mut j) => {
            // Both sides narrow: the left input, and the right table's
            // columns the join outputs (its filter runs before, on the whole
            // fetched row).
            let lw = j.left.width();
            let rw = j.right_width();
            let (mut l, r) = join_reads(read, (lw, rw), j.on.as_ref(), std::iter::empty());
            for &k in &j.keys {
                if let Some(x) = l.get_mut(k) {
                    *x = true;
                }
            }
            let positions: Vec<usize> = (0..rw).map(|c| j.right_table_position(c)).collect();
            let (left, lmap) = walk(j.left, l)?;
            let new_lw = new_width(&lmap);
            let mut rmap = Vec::with_capacity(rw);
            let mut project = Vec::new();
            for (c, &keep) in r.iter().enumerate() {
                if keep {
                    rmap.push(Some(project.len()));
                    project.push(positions[c]);
                } else {
                    rmap.push(None);
                }
            }
            let both = concat(&lmap, &rmap, new_lw);
            j.left = left;
            let whole_table = project.iter().copied().eq(0..j.table.columns.len());
            j.right_project = if whole_table {
                None
            } else {
                Some(project.into())
            };
            j.keys = j
                .keys
                .iter()
                .map(|&k| lmap.get(k).copied().flatten())
                .collect::<Option<Vec<_>>>()?;
            j.on = match j.on.take() {
                Some(on) => Some(remap(on, &both)?),
                None => None,
            };
            let out = if matches!(j.kind, JoinKind::Semi | JoinKind::Anti) {
                lmap
            } else {
                both
            };
            Some((Rel::LookupJoin(j), out))
        }
        // The body's output is the node's; each CTE's plan is pruned as a
        // root (its scans read all its columns).
        Rel::With { ctes, body } => {
            let mut pruned = Vec::with_capacity(ctes.len());
            for c in ctes {
                let plan = Arc::unwrap_or_clone(c.plan);
                let w = plan.width();
                let (plan, _) = walk(plan, vec![true; w])?;
                pruned.push(super::Cte {
                    plan: Arc::new(plan),
                    ..c
                });
            }
            let (body, map) = walk(*body, read)?;
            Some((
                Rel::With {
                    ctes: pruned,
                    body: Box::new(body),
                },
                map,
            ))
        }
        // Inputs read whole (see the module doc); their insides still prune.
        // A CTE scan is a leaf whose columns are all read.
        other => {
            // A failure discards this whole result ([`prune`] keeps the
            // original plan), so the placeholder is never used.
            let mut ok = true;
            let rel = other.map_inputs(&mut |r| {
                let w = r.width();
                match walk(r, vec![true; w]) {
                    Some((pruned, _)) => pruned,
                    None => {
                        ok = false;
                        Rel::Values {
                            rows: Vec::new(),
                            types: Vec::new(),
                        }
                    }
                }
            });
            ok.then_some((rel, identity(width)))
        }
    }
}

/// A hash or merge join's inputs, condition and key pairs after pruning,
/// and the map of its output.
struct PrunedJoin {
    left: Rel,
    right: Rel,
    on: Option<Scalar>,
    pairs: Vec<(usize, usize)>,
    map: ColumnMap,
}

fn prune_join(
    kind: JoinKind,
    left: Rel,
    right: Rel,
    on: Option<Scalar>,
    pairs: &[(usize, usize)],
    read: Vec<bool>,
) -> Option<PrunedJoin> {
    let (lw, rw) = (left.width(), right.width());
    let (l, r) = join_reads(read, (lw, rw), on.as_ref(), pairs.iter().copied());
    let (left, lmap) = walk(left, l)?;
    let (right, rmap) = walk(right, r)?;
    let both = concat(&lmap, &rmap, new_width(&lmap));
    let pairs = pairs
        .iter()
        .map(|&(l, r)| Some((lmap.get(l).copied()??, rmap.get(r).copied()??)))
        .collect::<Option<Vec<_>>>()?;
    let on = match on {
        Some(on) => Some(remap(on, &both)?),
        None => None,
    };
    let map = if matches!(kind, JoinKind::Semi | JoinKind::Anti) {
        lmap
    } else {
        both
    };
    Some(PrunedJoin {
        left,
        right,
        on,
        pairs,
        map,
    })
}

/// A scan outputs only the columns read (a correlated read of the whole row
/// keeps them all).
fn project_scan(scan: Scan, read: &[bool]) -> (Rel, ColumnMap) {
    if read.iter().all(|r| *r) {
        let width = read.len();
        return (Rel::Scan(scan), identity(width));
    }
    let mut project = Vec::new();
    let mut map = Vec::with_capacity(read.len());
    for (i, &r) in read.iter().enumerate() {
        if r {
            map.push(Some(project.len()));
            project.push(scan.table_position(i));
        } else {
            map.push(None);
        }
    }
    let project: Arc<[usize]> = project.into();
    (
        Rel::Scan(Scan {
            project: Some(project),
            ..scan
        }),
        map,
    )
}
