//! Index selection: turns the filters above a scan into an [`IndexConstraint`] on
//! the best index, drops sorts of rows already in order, pushes LIMITs into
//! scans and filters on the preserved side of left, semi and anti joins into
//! that side.
//!
//! For every index the longest run of leading key columns fixed by equality
//! (or `IN` lists of constants) is found, then a range on the next column; the
//! index with the most constrained columns wins, the primary index on ties. The
//! filter stays above the scan (re-checking a row that already satisfies it is
//! cheap), so the chosen spans only ever narrow what is read.

use tardigrade_encoding::Direction;
use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

use super::bind::{and_all, conjuncts, referenced_columns};
use super::memo::Memo;
use super::rules::{Rule, Rules};
use super::{IndexConstraint, JoinKind, Rel, Scalar, Scan};
use crate::catalog::{IndexDesc, TableDesc};

/// Most `IN` alternatives expanded into separate spans.
const MAX_ALTERNATIVES: usize = 256;

/// Chooses indexes and pushes limits throughout the tree, then join and
/// aggregation algorithms ([`super::physical`]).
pub fn optimize(rel: Rel) -> Rel {
    optimize_with(rel, Rules::all())
}

/// [`optimize`] with only the rules `rules` enables (tests).
pub fn optimize_with(rel: Rel, rules: Rules) -> Rel {
    let rel = super::physical::choose(optimize_logical_with(rel, rules));
    let rel = if rules.enabled(Rule::Covering) {
        super::covering::mark(rel)
    } else {
        rel
    };
    let rel = if rules.enabled(Rule::Prune) {
        super::prune::prune(rel)
    } else {
        rel
    };
    super::sync_cte_scans(rel)
}

/// Every optimization but the choice of join and aggregation algorithms:
/// normalization, join order, then index selection (what `EXPLAIN (OPT)`
/// shows).
pub fn optimize_logical(rel: Rel) -> Rel {
    optimize_logical_with(rel, Rules::all())
}

/// [`optimize_logical`] with only the rules `rules` enables (tests).
pub fn optimize_logical_with(rel: Rel, rules: Rules) -> Rel {
    optimize_logical_recording(rel, rules, &mut Vec::new())
}

/// [`optimize_logical_with`], adding the memo of every join tree it
/// reorders to `memos` (what `EXPLAIN (OPT, MEMO)` prints).
pub fn optimize_logical_recording(rel: Rel, rules: Rules, memos: &mut Vec<Memo>) -> Rel {
    // Materialized CTEs' scans are estimated from their normalized plans.
    let rel = super::sync_cte_scans(super::norm::normalize_with(rel, rules));
    super::sync_cte_scans(explore(rel, rules, memos))
}

/// The stages after normalization. Subqueries' plans were normalized with
/// their query, so they go through these stages only.
fn explore(rel: Rel, rules: Rules, memos: &mut Vec<Memo>) -> Rel {
    let rel = super::map_subquery_plans(rel, &mut |p| {
        super::physical::choose(explore(p, rules, memos))
    });
    let rel = if rules.enabled(Rule::JoinOrder) {
        super::join_order::reorder_recording(rel, memos)
    } else {
        rel
    };
    // Join ordering puts a projection over each reordered tree (to restore
    // the written column order); merge it into the one above.
    let rel = if rules.enabled(Rule::MergeProject) {
        super::norm::merge_project::merge(rel)
    } else {
        rel
    };
    choose_indexes(rel)
}

fn choose_indexes(rel: Rel) -> Rel {
    match rel {
        Rel::Filter { input, predicate } => match *input {
            Rel::Scan(scan) => {
                let scan = constrain_scan(scan, &predicate);
                Rel::Filter {
                    input: Box::new(Rel::Scan(scan)),
                    predicate,
                }
            }
            Rel::Join {
                kind: kind @ (JoinKind::Left | JoinKind::Semi | JoinKind::Anti),
                left,
                right,
                on,
                equi,
            } => {
                // Conjuncts on the left (preserved) side's columns only filter
                // the left input (the binder pushes filters below inner joins).
                let lw = left.width();
                let mut parts = Vec::new();
                conjuncts(predicate, &mut parts);
                let (mut down, keep): (Vec<Scalar>, Vec<Scalar>) =
                    parts.into_iter().partition(|p| {
                        let mut cols = Vec::new();
                        referenced_columns(p, &mut cols);
                        !p.needs_async() && !cols.is_empty() && cols.iter().all(|c| *c < lw)
                    });
                let left = match *left {
                    Rel::Filter { input, predicate } => {
                        down.insert(0, predicate);
                        match and_all(down) {
                            Some(p) => Rel::Filter {
                                input,
                                predicate: p,
                            },
                            None => *input,
                        }
                    }
                    other => match and_all(down) {
                        Some(p) => Rel::Filter {
                            input: Box::new(other),
                            predicate: p,
                        },
                        None => other,
                    },
                };
                let join = choose_indexes(Rel::Join {
                    kind,
                    left: Box::new(left),
                    right,
                    on,
                    equi,
                });
                match and_all(keep) {
                    Some(p) => Rel::Filter {
                        input: Box::new(join),
                        predicate: p,
                    },
                    None => join,
                }
            }
            other => Rel::Filter {
                input: Box::new(choose_indexes(other)),
                predicate,
            },
        },
        Rel::Limit {
            input,
            limit,
            offset,
        } => {
            let input = choose_indexes(*input);
            let input = match (&limit, &offset) {
                (
                    Some(Scalar::Literal {
                        value: tardigrade_sqltypes::Value::Int(n),
                        ..
                    }),
                    off,
                ) => {
                    let skip = match off {
                        None => Some(0),
                        Some(Scalar::Literal {
                            value: tardigrade_sqltypes::Value::Int(o),
                            ..
                        }) => Some(*o),
                        _ => None,
                    };
                    match skip {
                        Some(skip) if *n >= 0 && skip >= 0 => push_limit(input, (*n + skip) as u64),
                        _ => input,
                    }
                }
                _ => input,
            };
            Rel::Limit {
                input: Box::new(input),
                limit,
                offset,
            }
        }
        Rel::Project { input, exprs } => Rel::project(choose_indexes(*input), exprs),
        Rel::Sort { input, keys } => {
            // A sort of rows that already come in its order (a scan in index
            // order) goes, so a LIMIT above can reach the scan.
            let input = choose_indexes(*input);
            if super::physical::provides(&input, &keys) {
                return input;
            }
            // Or the same scan read backwards (`ORDER BY pk DESC`).
            if let Some(reversed) = reverse_scan(&input)
                && super::physical::provides(&reversed, &keys)
            {
                return reversed;
            }
            Rel::Sort {
                input: Box::new(input),
                keys,
            }
        }
        other => other.map_inputs(&mut choose_indexes),
    }
}

/// The plan with its scan read in the other direction, when rows reach the
/// top in scan order (through filters and projections only).
fn reverse_scan(rel: &Rel) -> Option<Rel> {
    match rel {
        Rel::Scan(scan) if scan.limit.is_none() => {
            let mut scan = scan.clone();
            scan.reverse = !scan.reverse;
            Some(Rel::Scan(scan))
        }
        Rel::Filter { input, predicate } => Some(Rel::Filter {
            input: Box::new(reverse_scan(input)?),
            predicate: predicate.clone(),
        }),
        Rel::Project { input, exprs } => Some(Rel::Project {
            input: Box::new(reverse_scan(input)?),
            exprs: exprs.clone(),
        }),
        _ => None,
    }
}

/// A scan under a limit (through projections only) needs read no more rows.
fn push_limit(rel: Rel, n: u64) -> Rel {
    match rel {
        Rel::Scan(mut scan) => {
            scan.limit = Some(scan.limit.map_or(n, |l| l.min(n)));
            Rel::Scan(scan)
        }
        Rel::Project { input, exprs } if !exprs.iter().any(|e| e.needs_async()) => Rel::Project {
            input: Box::new(push_limit(*input, n)),
            exprs,
        },
        other => other,
    }
}

/// What the filter says about one table column.
#[derive(Default, Clone)]
struct ColumnFacts {
    /// Alternatives for equality (one for `=`, several for `IN`).
    eq: Option<Vec<Scalar>>,
    lower: Option<(Scalar, bool)>,
    upper: Option<(Scalar, bool)>,
}

fn constrain_scan(mut scan: Scan, predicate: &Scalar) -> Scan {
    let mut parts = Vec::new();
    conjuncts(predicate.clone(), &mut parts);
    let mut facts: Vec<ColumnFacts> = vec![ColumnFacts::default(); scan.table.columns.len()];
    for p in &parts {
        collect_fact(p, &scan.table, &mut facts);
    }
    let mut best: Option<(usize, IndexConstraint, &IndexDesc)> = None;
    let indexes = std::iter::once(&scan.table.primary_index).chain(scan.table.indexes.iter());
    for index in indexes {
        let Some((score, constraint)) = constraint_for(index, &scan.table, &facts) else {
            continue;
        };
        if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
            best = Some((score, constraint, index));
        }
    }
    if let Some((_, constraint, index)) = best {
        scan.index = index.id;
        // Index-only when the index holds every column of the table;
        // `covering::mark` later compares with the columns the plan reads.
        scan.covering = crate::rowenc::index_covers_table(&scan.table, index.id);
        scan.constraint = Some(constraint);
    }
    scan
}

/// Scores an index: 2 per equality column, 1 for a trailing range.
fn constraint_for(
    index: &IndexDesc,
    table: &TableDesc,
    facts: &[ColumnFacts],
) -> Option<(usize, IndexConstraint)> {
    let mut prefixes: Vec<Vec<Scalar>> = vec![Vec::new()];
    let mut score = 0;
    let mut lower = None;
    let mut upper = None;
    for (k, column_id) in index.columns.iter().enumerate() {
        let pos = table.columns.iter().position(|c| c.id == *column_id)?;
        let f = &facts[pos];
        if let Some(alts) = &f.eq {
            if prefixes.len() * alts.len() > MAX_ALTERNATIVES {
                break;
            }
            prefixes = prefixes
                .into_iter()
                .flat_map(|p| {
                    alts.iter().map(move |a| {
                        let mut p = p.clone();
                        p.push(a.clone());
                        p
                    })
                })
                .collect();
            score += 2;
            continue;
        }
        let ascending = index
            .directions
            .get(k)
            .copied()
            .unwrap_or(Direction::Ascending)
            == Direction::Ascending;
        if ascending && (f.lower.is_some() || f.upper.is_some()) {
            lower = f.lower.clone();
            upper = f.upper.clone();
            score += 1;
        }
        break;
    }
    if score == 0 {
        return None;
    }
    Some((
        score,
        IndexConstraint {
            prefixes,
            lower,
            upper,
        },
    ))
}

fn collect_fact(p: &Scalar, table: &TableDesc, facts: &mut [ColumnFacts]) {
    match p {
        Scalar::Binary {
            op, left, right, ..
        } => {
            let (col, value, op) = match (left.as_ref(), right.as_ref()) {
                (Scalar::Column { index, .. }, v) if is_runtime_constant(v) => (*index, v, *op),
                (v, Scalar::Column { index, .. }) if is_runtime_constant(v) => {
                    (*index, v, flip(*op))
                }
                _ => return,
            };
            let Some(column) = table.columns.get(col) else {
                return;
            };
            let Some(value) = key_value(value, column.ty) else {
                return;
            };
            let f = &mut facts[col];
            match op {
                BinOp::Eq => f.eq = Some(vec![value]),
                BinOp::Gt => f.lower = Some((value, false)),
                BinOp::GtEq => f.lower = Some((value, true)),
                BinOp::Lt => f.upper = Some((value, false)),
                BinOp::LtEq => f.upper = Some((value, true)),
                _ => {}
            }
        }
        Scalar::InList {
            expr,
            list,
            negated: false,
        } => {
            let Scalar::Column { index, .. } = expr.as_ref() else {
                return;
            };
            let Some(column) = table.columns.get(*index) else {
                return;
            };
            let mut alts = Vec::with_capacity(list.len());
            for item in list {
                if !is_runtime_constant(item) {
                    return;
                }
                match key_value(item, column.ty) {
                    Some(v) => alts.push(v),
                    None => return,
                }
            }
            if !alts.is_empty() {
                facts[*index].eq = Some(alts);
            }
        }
        _ => {}
    }
}

/// Literals and parameters: known before the scan starts.
fn is_runtime_constant(s: &Scalar) -> bool {
    match s {
        Scalar::Literal { .. } | Scalar::Param { .. } => true,
        Scalar::Cast { expr, .. } => is_runtime_constant(expr),
        _ => false,
    }
}

/// The bound as a value of the column's type, when that conversion is exact
/// in the key order (integers for integer columns, any number for float
/// columns, strings for strings, same type otherwise).
fn key_value(v: &Scalar, column: SqlType) -> Option<Scalar> {
    let ty = v.ty();
    let ok = (column.is_integer() && ty.is_integer())
        || (matches!(column, SqlType::Float4 | SqlType::Float8)
            // float = numeric compares as float8 in PostgreSQL: the cast is exact
            // for the comparison.
            && (ty.is_integer() || matches!(ty, SqlType::Float4 | SqlType::Float8 | SqlType::Decimal(_))))
        || (matches!(column, SqlType::Decimal(_))
            && (ty.is_integer() || matches!(ty, SqlType::Decimal(_))))
        || (column.is_string() && ty.is_string() && !matches!(column, SqlType::Char(_)))
        || column == ty;
    if !ok {
        return None;
    }
    if column == ty
        || (column.is_integer() && ty.is_integer())
        || (column.is_string() && ty.is_string())
    {
        Some(v.clone())
    } else {
        Some(Scalar::Cast {
            expr: Box::new(v.clone()),
            to: column,
        })
    }
}

pub(super) fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::LtEq => BinOp::GtEq,
        BinOp::Gt => BinOp::Lt,
        BinOp::GtEq => BinOp::LtEq,
        other => other,
    }
}
