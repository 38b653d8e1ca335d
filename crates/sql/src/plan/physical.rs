//! Physical choices, made after index selection: which algorithm each join
//! (hash, merge or lookup) and each aggregation (hash or streaming) uses.
//!
//! Every plan node has an *ordering*: the output columns its rows are known to
//! be sorted on (lexicographically, each ascending or descending). Scans are
//! ordered on their index's key columns, sorts on their plain-column keys, and
//! filters, limits, projections (of those columns), DISTINCT and the joins that
//! keep their left input's order (inner, left, semi, anti — the executor emits
//! a left row's matches before the next left row's) pass it on. NULL placement
//! matters only for dropping a sort (`provides`, used by index selection): merge
//! joins skip NULL keys and streaming aggregation only needs equal group keys
//! to be adjacent, which holds wherever NULLs sort.
//!
//! Row estimates come from [`super::cardinality`] (table statistics when
//! collected, fixed guesses otherwise). An inner, left, semi or anti join
//! with column equalities takes the cheapest algorithm it allows, by the
//! cost model join ordering used ([`super::cost`]; lookup on ties):
//!
//! - **lookup join** when the right side is a scan (possibly under a filter)
//!   of a table with an index whose leading key columns are all given by
//!   left columns of key-compatible types: one key lookup per left row, plus
//!   a primary-row read per matched row when a secondary index does not hold
//!   the table's columns, and no read of the whole right side. Among
//!   indexes, the one fixing more key columns wins, then the primary index.
//! - **merge join** when both inputs are ordered on (a leading part of) the
//!   equality columns, in the same directions and with key-compatible types.
//! - **hash join** always (the only one for right and full joins, and for
//!   conditions with subqueries).
//!
//! An aggregation with GROUP BY columns is **streaming** when its input is
//! ordered on exactly those columns (in any order) first.
//!
//! Join order is chosen before, by [`super::join_order`], whose memo costs
//! these same algorithms for every order it considers.

use tardigrade_encoding::Direction;
use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

use super::bind::{and_all, conjuncts};
use super::cardinality;
use super::cost::{self, Estimate, JoinAlgorithm};
use super::{JoinKind, LookupJoin, MergeKey, Rel, Scalar, Scan, SortKey};
use crate::catalog::IndexId;

/// One column of an ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCol {
    pub column: usize,
    pub descending: bool,
    /// Where the column's NULLs are, if it may hold any (`None`: no NULLs).
    pub nulls_first: Option<bool>,
}

/// The columns `rel`'s output is sorted on, most significant first.
pub fn ordering(rel: &Rel) -> Vec<OrderCol> {
    match rel {
        Rel::Scan(scan) => scan_ordering(scan),
        Rel::Project { input, exprs } => map_ordering(&ordering(input), exprs),
        // Hash aggregation also emits groups in the order they first appear.
        Rel::StreamAggregate { input, group, .. } => map_ordering(&ordering(input), group),
        Rel::Aggregate { input, group, .. } if arrives_grouped(input, group) => {
            map_ordering(&ordering(input), group)
        }
        Rel::Sort { keys, .. } => keys
            .iter()
            .map_while(|k| match &k.expr {
                Scalar::Column { index, .. } => Some(OrderCol {
                    column: *index,
                    descending: k.descending,
                    nulls_first: Some(k.nulls_first),
                }),
                _ => None,
            })
            .collect(),
        other => same_order_input(other).map_or_else(Vec::new, ordering),
    }
}

/// The input whose rows come out in the same order, with the leading columns
/// unchanged: filters, limits, DISTINCT, a WITH's body, and the left side of
/// the joins that keep its order.
fn same_order_input(rel: &Rel) -> Option<&Rel> {
    match rel {
        Rel::Filter { input, .. }
        | Rel::Limit { input, .. }
        | Rel::Distinct { input, .. }
        | Rel::With { body: input, .. } => Some(input),
        Rel::Join {
            kind: JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        }
        | Rel::MergeJoin {
            kind: JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        } => Some(left),
        Rel::LookupJoin(j) => Some(&j.left),
        _ => None,
    }
}

/// The input ordering seen through output expressions: it lasts as long as its
/// columns are passed through as plain columns.
fn map_ordering(input: &[OrderCol], exprs: &[Scalar]) -> Vec<OrderCol> {
    input
        .iter()
        .map_while(|o| {
            exprs
                .iter()
                .position(|e| matches!(e, Scalar::Column { index, .. } if *index == o.column))
                .map(|p| OrderCol { column: p, ..*o })
        })
        .collect()
}

/// A scan returns rows in index key order (the primary key follows the
/// columns of a secondary index), reversed for a reverse scan.
fn scan_ordering(scan: &Scan) -> Vec<OrderCol> {
    let Some(index) = scan.table.index(scan.index) else {
        return Vec::new();
    };
    let pk = &scan.table.primary_index.columns;
    // The constraint's columns hold no NULLs in what the scan reads (`=`
    // and ranges never match NULL).
    let constrained = scan.constraint.as_ref().map_or(0, |c| {
        c.prefixes.first().map_or(0, |p| p.len())
            + usize::from(c.lower.is_some() || c.upper.is_some())
    });
    crate::rowenc::full_key_columns(&scan.table, index)
        .into_iter()
        .enumerate()
        .map_while(|(k, (col, dir))| {
            let pos = scan.table.column_position(col)?;
            let descending = (dir == Direction::Descending) != scan.reverse;
            // NULL keys sort first in ascending key order.
            let nullable =
                scan.table.columns[pos].nullable && !pk.contains(&col) && k >= constrained;
            Some(OrderCol {
                // An ordering on a column the scan does not output ends here.
                column: scan.output_of(pos)?,
                descending,
                nulls_first: nullable.then_some(!descending),
            })
        })
        .collect()
}

/// True if `rel`'s rows already come in the order `keys` ask for (so a sort
/// can go).
pub fn provides(rel: &Rel, keys: &[SortKey]) -> bool {
    let constant = constants(rel);
    let mut order = ordering(rel)
        .into_iter()
        .filter(|o| !constant.contains(&o.column));
    keys.iter().all(|k| {
        let Scalar::Column { index, .. } = &k.expr else {
            return false;
        };
        if constant.contains(index) {
            return true;
        }
        order.next().is_some_and(|o| {
            o.column == *index
                && k.descending == o.descending
                && o.nulls_first.is_none_or(|first| first == k.nulls_first)
        })
    })
}

/// Output columns that hold one value (not NULL) in every row: a scan's
/// key columns fixed by a single equality prefix, passed on like orderings.
fn constants(rel: &Rel) -> Vec<usize> {
    match rel {
        Rel::Scan(scan) => match &scan.constraint {
            Some(c) if c.prefixes.len() == 1 => {
                let fixed = c.prefixes[0].len();
                scan_ordering(scan)
                    .iter()
                    .take(fixed)
                    .map(|o| o.column)
                    .collect()
            }
            _ => Vec::new(),
        },
        Rel::Sort { input, .. } => constants(input),
        Rel::Project { input, exprs } => constants(input)
            .into_iter()
            .filter_map(|c| {
                exprs
                    .iter()
                    .position(|e| matches!(e, Scalar::Column { index, .. } if *index == c))
            })
            .collect(),
        other => same_order_input(other).map_or_else(Vec::new, constants),
    }
}

/// Chooses join and aggregation algorithms throughout the tree (after index
/// selection, so scans have their indexes).
pub fn choose(rel: Rel) -> Rel {
    match rel {
        Rel::Join {
            kind,
            left,
            right,
            on,
            equi,
        } => join(kind, choose(*left), choose(*right), on, equi),
        Rel::Aggregate { input, group, aggs } => {
            let input = choose(*input);
            if arrives_grouped(&input, &group) {
                Rel::StreamAggregate {
                    input: Box::new(input),
                    group,
                    aggs,
                }
            } else {
                Rel::Aggregate {
                    input: Box::new(input),
                    group,
                    aggs,
                }
            }
        }
        other => other.map_inputs(&mut choose),
    }
}

/// True if the input is ordered on the group columns (all plain columns) first.
fn arrives_grouped(input: &Rel, group: &[Scalar]) -> bool {
    if group.is_empty() {
        return false;
    }
    let mut cols: Vec<usize> = Vec::with_capacity(group.len());
    for g in group {
        match g {
            Scalar::Column { index, .. } => {
                if !cols.contains(index) {
                    cols.push(*index);
                }
            }
            _ => return false,
        }
    }
    // Columns with one value in every row do not split groups.
    let constant = constants(input);
    cols.retain(|c| !constant.contains(c));
    let order: Vec<usize> = ordering(input)
        .iter()
        .map(|o| o.column)
        .filter(|c| !constant.contains(c))
        .take(cols.len())
        .collect();
    order.len() == cols.len() && order.iter().all(|c| cols.contains(c))
}

/// A column equality across a join: left column, right column (relative to
/// the right input) and their types.
#[derive(Clone, Copy, Debug)]
struct Pair {
    left: usize,
    right: usize,
    left_ty: SqlType,
    right_ty: SqlType,
}

fn pairs(on: Option<&Scalar>, left_width: usize) -> Vec<Pair> {
    let mut parts = Vec::new();
    if let Some(on) = on {
        conjuncts(on.clone(), &mut parts);
    }
    parts
        .iter()
        .filter_map(|p| {
            let (a, ta, b, tb) = column_equality(p)?;
            if a < left_width && b >= left_width {
                Some(Pair {
                    left: a,
                    right: b - left_width,
                    left_ty: ta,
                    right_ty: tb,
                })
            } else if b < left_width && a >= left_width {
                Some(Pair {
                    left: b,
                    right: a - left_width,
                    left_ty: tb,
                    right_ty: ta,
                })
            } else {
                None
            }
        })
        .collect()
}

fn column_equality(p: &Scalar) -> Option<(usize, SqlType, usize, SqlType)> {
    match p {
        Scalar::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } => match (left.as_ref(), right.as_ref()) {
            (Scalar::Column { index: a, ty: ta }, Scalar::Column { index: b, ty: tb }) => {
                Some((*a, *ta, *b, *tb))
            }
            _ => None,
        },
        _ => None,
    }
}

/// The join condition without the equalities of `used` (left column, combined
/// right column), which the algorithm guarantees.
fn residual(on: Option<Scalar>, used: &[(usize, usize)]) -> Option<Scalar> {
    let mut parts = Vec::new();
    conjuncts(on?, &mut parts);
    parts.retain(|p| match column_equality(p) {
        Some((a, _, b, _)) => !used.contains(&(a, b)) && !used.contains(&(b, a)),
        None => true,
    });
    and_all(parts)
}

fn is_plain_string(t: SqlType) -> bool {
    t.is_string() && !matches!(t, SqlType::Char(_))
}

/// A value of type `left` can be encoded as a key of a `right` column and
/// matches exactly the keys of the values it equals (so a lookup finds what
/// `=` would). Floats (NaN, -0), intervals (equal spans with different
/// fields), `char(n)` (padding) and mixed timestamp kinds are left to hash
/// joins.
fn lookup_compatible(left: SqlType, right: SqlType) -> bool {
    (left.is_integer() && right.is_integer())
        || (matches!(right, SqlType::Decimal(_))
            && (left.is_integer() || matches!(left, SqlType::Decimal(_))))
        || (is_plain_string(left) && is_plain_string(right))
        || (left == right
            && matches!(
                right,
                SqlType::Bool
                    | SqlType::Bytes
                    | SqlType::Date
                    | SqlType::Time
                    | SqlType::Timestamp
                    | SqlType::TimestampTz
                    | SqlType::Uuid
            ))
}

/// Values of these types compare (`Value::cmp`) as their keys sort, and equal
/// exactly when `=` says so.
fn merge_compatible(a: SqlType, b: SqlType) -> bool {
    lookup_compatible(a, b) || lookup_compatible(b, a)
}

fn join(
    kind: JoinKind,
    left: Rel,
    right: Rel,
    on: Option<Scalar>,
    equi: Vec<(usize, usize)>,
) -> Rel {
    let supported = matches!(
        kind,
        JoinKind::Inner | JoinKind::Left | JoinKind::Semi | JoinKind::Anti
    ) && !equi.is_empty()
        && !on.as_ref().is_some_and(|o| o.needs_async());
    if !supported {
        return Rel::Join {
            kind,
            left: Box::new(left),
            right: Box::new(right),
            on,
            equi,
        };
    }
    let lw = left.width();
    let pairs = pairs(on.as_ref(), lw);
    // Every algorithm the join allows, costed by the model join ordering
    // used ([`super::cost`]); the left input's cost is the same for all.
    let l = Estimate {
        rows: cardinality::rows(&left),
        cost: 0.0,
    };
    let r = Estimate {
        rows: cardinality::rows(&right),
        cost: rows_read(&right),
    };
    let matched = cardinality::join_rows(JoinKind::Inner, &left, &right, on.as_ref());
    let mut best = (JoinAlgorithm::Hash, cost::hash_join(l, r, matched));
    let merge = merge_keys(&left, &right, &pairs);
    if merge.is_some() {
        let c = cost::merge_join(l, r, matched);
        if c < best.1 {
            best = (JoinAlgorithm::Merge, c);
        }
    }
    let lookup = lookup_index(&right, &pairs);
    // A semi or anti join that tests only the lookup's keys needs no column
    // of the right rows beyond its index entry: no primary-row reads.
    let existence_only = |keys: &[(usize, usize)], filter: Option<&Scalar>| {
        let used: Vec<(usize, usize)> = keys.iter().map(|(l, r)| (*l, lw + *r)).collect();
        matches!(kind, JoinKind::Semi | JoinKind::Anti)
            && filter.is_none()
            && residual(on.clone(), &used).is_none()
    };
    if let Some((index, keys)) = &lookup
        && let Some((scan, filter)) = as_scan(&right)
    {
        let covers =
            crate::rowenc::index_covers_table(&scan.table, *index) || existence_only(keys, filter);
        let key: Vec<usize> = keys.iter().map(|k| k.1).collect();
        let fetched = cardinality::lookup_fetched(&right, &key, l.rows, matched);
        let c = cost::lookup_join(l, fetched, cost::per_match(covers));
        if c <= best.1 {
            best = (JoinAlgorithm::Lookup, c);
        }
    }
    match best.0 {
        JoinAlgorithm::Lookup => {
            if let Some((index, keys)) = lookup
                && let Some((scan, right_filter)) = into_scan(right.clone())
            {
                let used: Vec<(usize, usize)> = keys.iter().map(|(l, r)| (*l, lw + *r)).collect();
                let covering = crate::rowenc::index_covers_table(&scan.table, index)
                    || existence_only(&keys, right_filter.as_ref());
                return Rel::LookupJoin(Box::new(LookupJoin {
                    kind,
                    left,
                    table: scan.table,
                    index,
                    covering,
                    keys: keys.iter().map(|(l, _)| *l).collect(),
                    right_filter,
                    on: residual(on, &used),
                    stats: scan.stats,
                    right_reads: None,
                    right_project: None,
                }));
            }
        }
        JoinAlgorithm::Merge => {
            if let Some(keys) = merge {
                let used: Vec<(usize, usize)> =
                    keys.iter().map(|k| (k.left, lw + k.right)).collect();
                return Rel::MergeJoin {
                    kind,
                    left: Box::new(left),
                    right: Box::new(right),
                    keys,
                    on: residual(on, &used),
                };
            }
        }
        JoinAlgorithm::Hash => {}
    }
    Rel::Join {
        kind,
        left: Box::new(left),
        right: Box::new(right),
        on,
        equi,
    }
}

/// The right side as a scan a lookup join can replace: a scan without a limit,
/// possibly under a filter without subqueries.
fn as_scan(rel: &Rel) -> Option<(&Scan, Option<&Scalar>)> {
    match rel {
        Rel::Scan(s) if s.limit.is_none() => Some((s, None)),
        Rel::Filter { input, predicate } if !predicate.needs_async() => match input.as_ref() {
            Rel::Scan(s) if s.limit.is_none() => Some((s, Some(predicate))),
            _ => None,
        },
        _ => None,
    }
}

fn into_scan(rel: Rel) -> Option<(Scan, Option<Scalar>)> {
    match rel {
        Rel::Scan(s) => Some((s, None)),
        Rel::Filter { input, predicate } => match *input {
            Rel::Scan(s) => Some((s, Some(predicate))),
            _ => None,
        },
        _ => None,
    }
}

/// The index of the right side's table whose leading key columns the join's
/// equalities fix best, with (left column, right column) per fixed key column.
fn lookup_index(right: &Rel, pairs: &[Pair]) -> Option<(IndexId, Vec<(usize, usize)>)> {
    let (scan, _) = as_scan(right)?;
    let table = &scan.table;
    let mut best: Option<(IndexId, Vec<(usize, usize)>)> = None;
    // A partial index misses rows the join may need.
    let whole = table.indexes.iter().filter(|i| !i.is_partial());
    for index in std::iter::once(&table.primary_index).chain(whole) {
        let mut cols = crate::rowenc::full_key_columns(table, index);
        if index.unique && index.id != table.primary_index.id {
            // Without NULLs a unique index's key holds only its own columns.
            cols.truncate(index.columns.len());
        }
        let mut keys = Vec::new();
        for (col, _) in cols {
            let Some(pos) = table.column_position(col) else {
                break;
            };
            let ty = table.columns[pos].ty;
            match pairs
                .iter()
                .find(|p| p.right == pos && lookup_compatible(p.left_ty, ty))
            {
                Some(p) => keys.push((p.left, pos)),
                None => break,
            }
        }
        if !keys.is_empty() && best.as_ref().is_none_or(|(_, k)| keys.len() > k.len()) {
            best = Some((index.id, keys));
        }
    }
    best
}

/// Merge keys: the longest common leading part of both inputs' orderings that
/// the equalities pair up, in the same directions.
fn merge_keys(left: &Rel, right: &Rel, pairs: &[Pair]) -> Option<Vec<MergeKey>> {
    let lo = ordering(left);
    let ro = ordering(right);
    let keys: Vec<MergeKey> = lo
        .iter()
        .zip(&ro)
        .map_while(|(l, r)| {
            (l.descending == r.descending
                && pairs.iter().any(|p| {
                    p.left == l.column
                        && p.right == r.column
                        && merge_compatible(p.left_ty, p.right_ty)
                }))
            .then_some(MergeKey {
                left: l.column,
                right: r.column,
                descending: l.descending,
            })
        })
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// Rows a plan reads from storage: a filter over a scan reads what the scan
/// reads, however few rows it keeps.
fn rows_read(rel: &Rel) -> f64 {
    match rel {
        Rel::Filter { input, .. } if matches!(input.as_ref(), Rel::Scan(_)) => {
            super::cardinality::rows(input)
        }
        other => super::cardinality::rows(other),
    }
}
