//! Cardinality estimation: how many rows a plan produces, how many distinct
//! values one of its columns holds, and what fraction of rows a predicate
//! keeps. Join ordering and the physical choices cost plans with these.
//!
//! With table statistics ([`crate::stats`]) a scan's rows are the collected
//! row count, an equality on a column keeps `1 / distinct` of the rows, a
//! range keeps the fraction of the histogram it covers (interpolating inside
//! a bucket for numbers, dates and times), `IS NULL` the null fraction. A join
//! on column equalities produces `|L| × |R| / max(distinct(l), distinct(r))`
//! per equality. Without statistics a table has 1000 rows (CockroachDB's
//! default too), a column that is a one-column unique key has as many distinct
//! values as rows and any other column a tenth as many, a range keeps a third
//! and anything else a third. Outputs are never estimated below one row.

use tardigrade_sqltypes::Value;
use tardigrade_sqltypes::ops::{BinOp, UnOp};

use super::bind::conjuncts;
use super::{JoinKind, Rel, Scalar, Scan, SetOpKind};
use crate::catalog::TableDesc;
use crate::stats::{Bucket, ColumnStats};

/// Rows assumed for a table without statistics.
pub const DEFAULT_TABLE_ROWS: f64 = 1000.0;
/// Distinct values of a non-key column without statistics, per row.
const DEFAULT_DISTINCT_FRACTION: f64 = 0.1;
/// What a range predicate keeps without a histogram.
const RANGE_SELECTIVITY: f64 = 1.0 / 3.0;
/// What any other predicate keeps.
const DEFAULT_SELECTIVITY: f64 = 1.0 / 3.0;
/// The NULL fraction of a nullable column without statistics.
const DEFAULT_NULL_FRACTION: f64 = 0.01;

/// Estimated rows `rel` produces.
pub fn rows(rel: &Rel) -> f64 {
    crate::stack::grow(|| rows_inner(rel)).max(1.0)
}

fn rows_inner(rel: &Rel) -> f64 {
    match rel {
        Rel::Scan(s) => scan_rows(s),
        Rel::Values { rows, .. } => rows.len() as f64,
        Rel::Filter { input, predicate } => {
            let base = match input.as_ref() {
                // The filter stays above a constrained scan and holds every
                // condition the constraint came from: start from the table.
                Rel::Scan(s) => {
                    let r = table_rows(s) * selectivity(predicate, input);
                    return s.limit.map_or(r, |l| r.min(l as f64));
                }
                other => rows(other),
            };
            base * selectivity(predicate, input)
        }
        Rel::Project { input, .. } | Rel::Sort { input, .. } | Rel::Window { input, .. } => {
            rows(input)
        }
        // A guess, as PostgreSQL's 10 rows per set-returning function call.
        Rel::ProjectSet { input, .. } => rows(input) * 10.0,
        Rel::Distinct { input, key_len } => {
            let input_rows = rows(input);
            (0..*key_len)
                .map(|c| distinct(input, c))
                .product::<f64>()
                .min(input_rows)
        }
        Rel::Limit { input, limit, .. } => match limit {
            Some(Scalar::Literal {
                value: Value::Int(n),
                ..
            }) => rows(input).min((*n).max(0) as f64),
            _ => rows(input),
        },
        Rel::Aggregate { input, group, .. } | Rel::StreamAggregate { input, group, .. } => {
            if group.is_empty() {
                return 1.0;
            }
            let input_rows = rows(input);
            group
                .iter()
                .map(|g| match g {
                    Scalar::Column { index, .. } => distinct(input, *index),
                    _ => input_rows,
                })
                .product::<f64>()
                .min(input_rows)
        }
        Rel::Join {
            kind,
            left,
            right,
            on,
            ..
        } => join_rows(*kind, left, right, on.as_ref()),
        // The right side's estimate is per left row.
        Rel::Lateral {
            kind, left, right, ..
        } => {
            let l = rows(left);
            let joined = l * rows(right);
            if *kind == JoinKind::Left {
                joined.max(l)
            } else {
                joined
            }
        }
        Rel::MergeJoin {
            kind,
            left,
            right,
            keys,
            on,
        } => {
            let l = rows(left);
            let r = rows(right);
            let pairs: Vec<(usize, usize)> = keys.iter().map(|k| (k.left, k.right)).collect();
            let mut sel = equalities_selectivity(left, right, &pairs);
            if let Some(on) = on {
                sel *= residual_selectivity(on, left.width(), left, right);
            }
            join_output(*kind, l, r, sel)
        }
        Rel::LookupJoin(j) => {
            let l = rows(&j.left);
            let scan = Scan {
                table: j.table.clone(),
                index: j.index,
                constraint: None,
                reverse: false,
                limit: None,
                covering: true,
                stats: j.stats.clone(),
                reads: None,
                project: None,
                index_exprs: None,
            };
            let right = Rel::Scan(scan);
            let mut r = table_rows_of(&j.table, j.stats.as_deref());
            if let Some(f) = &j.right_filter {
                r *= selectivity(f, &right);
            }
            let mut sel = 1.0;
            let index_columns: Vec<usize> = j
                .table
                .index(j.index)
                .map(|i| {
                    i.columns
                        .iter()
                        .filter_map(|c| j.table.column_position(*c))
                        .collect()
                })
                .unwrap_or_default();
            for (k, &left_col) in j.keys.iter().enumerate() {
                let right_distinct = index_columns
                    .get(k)
                    .map_or(r, |&p| column_distinct(&j.table, j.stats.as_deref(), p, r));
                sel /= distinct(&j.left, left_col).max(right_distinct).max(1.0);
            }
            join_output(j.kind, l, r, sel)
        }
        // A guess: the base rows and ten times as many from the steps.
        Rel::RecursiveUnion { base, .. } => rows(base) * 10.0,
        Rel::WorkTable { .. } => 100.0,
        Rel::With { body, .. } => rows(body),
        // The CTE's rows, computed once however many scans read them.
        Rel::CteScan(s) => rows(&s.source),
        Rel::SetOp {
            op, left, right, ..
        } => match op {
            SetOpKind::Union => rows(left) + rows(right),
            SetOpKind::Intersect => rows(left).min(rows(right)),
            SetOpKind::Except => rows(left),
        },
        Rel::Series { start, stop, step } => match (start, stop) {
            (
                Scalar::Literal {
                    value: Value::Int(a),
                    ..
                },
                Scalar::Literal {
                    value: Value::Int(b),
                    ..
                },
            ) => {
                let step = match step {
                    Some(Scalar::Literal {
                        value: Value::Int(s),
                        ..
                    }) if *s != 0 => *s,
                    _ => 1,
                };
                (((b - a) / step) + 1).max(0) as f64
            }
            _ => DEFAULT_TABLE_ROWS,
        },
    }
}

/// Rows out of a join of `left` and `right` on `on`.
pub fn join_rows(kind: JoinKind, left: &Rel, right: &Rel, on: Option<&Scalar>) -> f64 {
    let l = rows(left);
    let r = rows(right);
    let sel = on.map_or(1.0, |on| {
        residual_selectivity(on, left.width(), left, right)
    });
    join_output(kind, l, r, sel)
}

/// Rows out of a join of `l` and `r` rows whose condition keeps `sel` of the
/// pairs.
pub fn join_output(kind: JoinKind, l: f64, r: f64, sel: f64) -> f64 {
    let inner = (l * r * sel).max(1.0);
    match kind {
        JoinKind::Inner => inner,
        JoinKind::Left => inner.max(l),
        JoinKind::Right => inner.max(r),
        JoinKind::Full => inner.max(l + r),
        // A left row matches when one of the right rows does.
        JoinKind::Semi => (l * (r * sel).min(1.0)).max(1.0),
        JoinKind::Anti => (l * (1.0 - (r * sel).min(1.0))).max(l * 0.1).max(1.0),
    }
}

/// The fraction of (left ++ right) pairs a join condition keeps.
fn residual_selectivity(on: &Scalar, left_width: usize, left: &Rel, right: &Rel) -> f64 {
    let mut parts = Vec::new();
    conjuncts(on.clone(), &mut parts);
    let mut pairs = Vec::new();
    let mut sel = 1.0;
    for p in &parts {
        match column_equality(p) {
            Some((a, b)) if (a < left_width) != (b < left_width) => {
                let (l, r) = if a < left_width { (a, b) } else { (b, a) };
                pairs.push((l, r - left_width));
            }
            Some((a, b)) => {
                let da = side_distinct(a, left_width, left, right);
                let db = side_distinct(b, left_width, left, right);
                sel *= 1.0 / da.max(db).max(1.0);
            }
            None => sel *= DEFAULT_SELECTIVITY,
        }
    }
    sel * equalities_selectivity(left, right, &pairs)
}

/// The fraction of `left` × `right` pairs that equal on every (left
/// column, right column) of `pairs`. When one side's columns are a key of
/// it (each row of the other side matches at most one of its rows), the
/// equalities are one condition on that key: `1 / max(key side's rows,
/// distinct combinations on the other side)`. The other side's combinations
/// are taken to come from the key's table (as a foreign key's do), so they
/// are no more than its rows before filters: otherwise TPC-H Q9's
/// lineitem × partsupp on (partkey, suppkey), where every lineitem row
/// matches, came out at 80,000 rows instead of 600,000 (the independent
/// distinct counts multiply past lineitem's own row count). Otherwise each equality
/// counts on its own (`1 / max(distinct)` each), which underestimates
/// correlated columns — TPC-H Q20's join of partsupp with lineitem grouped
/// by (partkey, suppkey) came out at 280 rows instead of ~700,000.
pub fn equalities_selectivity(left: &Rel, right: &Rel, pairs: &[(usize, usize)]) -> f64 {
    if pairs.is_empty() {
        return 1.0;
    }
    let combined = |rel: &Rel, cols: &mut dyn Iterator<Item = usize>| {
        cols.map(|c| distinct(rel, c))
            .fold(1.0f64, |acc, d| (acc * d).min(f64::MAX))
            .min(rows(rel))
            .max(1.0)
    };
    let left_cols: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    let right_cols: Vec<usize> = pairs.iter().map(|p| p.1).collect();
    let (left_key, right_key) = (is_key(left, &left_cols), is_key(right, &right_cols));
    if left_key && right_key {
        // One to one: no more rows than the smaller side.
        return 1.0 / rows(left).max(rows(right)).max(1.0);
    }
    if right_key {
        let other = combined(left, &mut left_cols.iter().copied()).min(key_domain(right));
        return 1.0 / rows(right).max(other).max(1.0);
    }
    if left_key {
        let other = combined(right, &mut right_cols.iter().copied()).min(key_domain(left));
        return 1.0 / rows(left).max(other).max(1.0);
    }
    pairs
        .iter()
        .map(|&(l, r)| 1.0 / distinct(left, l).max(distinct(right, r)).max(1.0))
        .product()
}

/// How many key values the table under `rel` has: the rows of a scanned
/// table before filters (infinite when `rel` is not a filtered scan).
fn key_domain(rel: &Rel) -> f64 {
    match rel {
        Rel::Scan(s) => table_rows(s),
        Rel::Filter { input, .. } => key_domain(input),
        _ => f64::INFINITY,
    }
}

/// Whether no two rows of `rel` are equal on the output columns `cols`: they
/// include its table's primary key or a unique index's columns, its group
/// columns, or its DISTINCT key.
pub fn is_key(rel: &Rel, cols: &[usize]) -> bool {
    crate::stack::grow(|| is_key_inner(rel, cols))
}

fn is_key_inner(rel: &Rel, cols: &[usize]) -> bool {
    match rel {
        Rel::Scan(s) => {
            let positions = |ids: &[crate::catalog::ColumnId]| -> Option<Vec<usize>> {
                ids.iter().map(|id| s.table.column_position(*id)).collect()
            };
            s.table
                .all_indexes()
                .filter(|i| (i.id == s.table.primary_index.id || i.unique) && !i.is_partial())
                .filter_map(|i| positions(&i.columns))
                .any(|key| {
                    !key.is_empty()
                        && key
                            .iter()
                            .all(|c| cols.iter().any(|&o| s.table_position(o) == *c))
                })
        }
        Rel::Filter { input, .. }
        | Rel::Sort { input, .. }
        | Rel::Limit { input, .. }
        | Rel::Window { input, .. } => is_key(input, cols),
        Rel::Distinct { key_len, .. } => (0..*key_len).all(|c| cols.contains(&c)),
        Rel::Project { input, exprs } => {
            let below: Vec<usize> = cols
                .iter()
                .filter_map(|&c| match exprs.get(c) {
                    Some(Scalar::Column { index, .. }) => Some(*index),
                    _ => None,
                })
                .collect();
            is_key(input, &below)
        }
        Rel::Aggregate { group, .. } | Rel::StreamAggregate { group, .. } => {
            (0..group.len()).all(|c| cols.contains(&c))
        }
        Rel::Join {
            kind: JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        } => is_key(left, cols),
        Rel::With { body, .. } => is_key(body, cols),
        Rel::CteScan(s) => is_key(&s.source, cols),
        _ => false,
    }
}

fn side_distinct(col: usize, left_width: usize, left: &Rel, right: &Rel) -> f64 {
    if col < left_width {
        distinct(left, col)
    } else {
        distinct(right, col - left_width)
    }
}

/// `a = b` between two columns.
pub fn column_equality(p: &Scalar) -> Option<(usize, usize)> {
    match p {
        Scalar::Binary {
            op: BinOp::Eq,
            left,
            right,
            ..
        } => match (left.as_ref(), right.as_ref()) {
            (Scalar::Column { index: a, .. }, Scalar::Column { index: b, .. }) => Some((*a, *b)),
            _ => None,
        },
        _ => None,
    }
}

/// The index entries a lookup join into `right` (a scan, possibly
/// filtered) on its columns `key` reads for `left_rows` lookups that give
/// `matched` rows: its filter is applied to the rows the lookups found, so
/// they are the matches before the filter (TPC-H Q14: 20,000 parts look
/// up 600,000 lineitems, of which a one-month filter keeps 7,400), and no
/// more than the table's rows per value of the key for each lookup.
pub fn lookup_fetched(right: &Rel, key: &[usize], left_rows: f64, matched: f64) -> f64 {
    let mut base = right;
    while let Rel::Filter { input, .. } = base {
        base = input;
    }
    let Rel::Scan(scan) = base else {
        return matched;
    };
    let table = table_rows(scan).max(1.0);
    let kept = (rows(right) / table).min(1.0);
    let before_filter = if kept > 0.0 { matched / kept } else { matched };
    let combinations = key
        .iter()
        .map(|&c| distinct(base, c))
        .fold(1.0f64, |acc, d| (acc * d).min(table));
    let per_key = table / combinations.max(1.0);
    before_filter.min(left_rows * per_key).max(matched)
}

/// Rows of the scanned table (before any constraint or limit).
pub fn table_rows(s: &Scan) -> f64 {
    table_rows_of(&s.table, s.stats.as_deref())
}

fn table_rows_of(_table: &TableDesc, stats: Option<&crate::stats::TableStats>) -> f64 {
    stats.map_or(DEFAULT_TABLE_ROWS, |s| s.row_count as f64)
}

/// Index entries a scan reads: its table's rows narrowed by its constraint
/// and limit.
pub fn scan_rows(s: &Scan) -> f64 {
    let table = table_rows(s);
    let rows = match &s.constraint {
        None => table,
        Some(c) => {
            let alternatives = c.prefixes.len().max(1) as f64;
            let fixed = c.prefixes.first().map_or(0, |p| p.len());
            let key: Vec<usize> = s
                .table
                .index(s.index)
                .map(|i| {
                    i.columns
                        .iter()
                        .filter_map(|c| s.table.column_position(*c))
                        .collect()
                })
                .unwrap_or_default();
            let ranged = c.lower.is_some() || c.upper.is_some();
            let mut r = table;
            if fixed > 0 && fixes_unique_key(s, fixed) {
                r = 1.0;
            } else {
                for &p in key.iter().take(fixed) {
                    r /= column_distinct(&s.table, s.stats.as_deref(), p, table).max(1.0);
                }
            }
            if ranged {
                r *= key
                    .get(fixed)
                    .and_then(|&p| constraint_range_fraction(s, p, c))
                    .unwrap_or(RANGE_SELECTIVITY);
            }
            (r * alternatives).min(table)
        }
    };
    s.limit.map_or(rows, |l| rows.min(l as f64))
}

/// The fraction of the table a constraint's range keeps on column
/// `position`, from its histogram (literal bounds only).
fn constraint_range_fraction(s: &Scan, position: usize, c: &super::IndexConstraint) -> Option<f64> {
    let stats = column_stats(&s.table, s.stats.as_deref(), position)?;
    if stats.histogram.is_empty() || stats.row_count == 0 {
        return None;
    }
    let h = (stats.histogram.as_slice(), stats.row_count as f64);
    let mut fraction = 1.0;
    if let Some((bound, inclusive)) = &c.lower {
        let v = literal_value(bound).filter(|v| !v.is_null())?;
        fraction *= histogram_range(h, if *inclusive { BinOp::GtEq } else { BinOp::Gt }, v);
    }
    if let Some((bound, inclusive)) = &c.upper {
        let v = literal_value(bound).filter(|v| !v.is_null())?;
        let below = histogram_range(h, if *inclusive { BinOp::LtEq } else { BinOp::Lt }, v);
        // Both bounds: the rows between them.
        fraction = if c.lower.is_some() {
            (fraction + below - 1.0).max(0.0)
        } else {
            below
        };
    }
    Some(fraction)
}

fn fixes_unique_key(s: &Scan, fixed: usize) -> bool {
    match s.table.index(s.index) {
        Some(i) if i.id == s.table.primary_index.id || i.unique => fixed >= i.columns.len(),
        _ => false,
    }
}

/// Distinct values of table column `position` in a table of `rows` rows.
fn column_distinct(
    table: &TableDesc,
    stats: Option<&crate::stats::TableStats>,
    position: usize,
    rows: f64,
) -> f64 {
    if let Some(c) = column_stats(table, stats, position) {
        return (c.distinct_count as f64).max(1.0);
    }
    let Some(col) = table.columns.get(position) else {
        return rows;
    };
    let unique = table
        .all_indexes()
        .filter(|i| (i.id == table.primary_index.id || i.unique) && !i.is_partial())
        .any(|i| i.columns.len() == 1 && i.columns[0] == col.id);
    if unique {
        rows
    } else {
        (rows * DEFAULT_DISTINCT_FRACTION).max(1.0)
    }
}

fn column_stats<'s>(
    table: &TableDesc,
    stats: Option<&'s crate::stats::TableStats>,
    position: usize,
) -> Option<&'s ColumnStats> {
    let id = table.columns.get(position)?.id;
    stats?.column(id)
}

/// Distinct values in column `col` of `rel`'s output. Follows one path down
/// the tree (so it stays linear in the tree's depth); a filter directly over a
/// scan caps it at the filter's rows.
pub fn distinct(rel: &Rel, col: usize) -> f64 {
    crate::stack::grow(|| distinct_inner(rel, col)).max(1.0)
}

fn distinct_inner(rel: &Rel, col: usize) -> f64 {
    match rel {
        // The table's count: a constrained scan always has the filter its
        // constraint came from above it, which caps the count.
        Rel::Scan(s) => column_distinct(
            &s.table,
            s.stats.as_deref(),
            s.table_position(col),
            table_rows(s),
        ),
        Rel::Filter { input, .. } if matches!(input.as_ref(), Rel::Scan(_)) => {
            distinct(input, col).min(rows(rel))
        }
        Rel::Filter { input, .. }
        | Rel::Sort { input, .. }
        | Rel::Limit { input, .. }
        | Rel::Distinct { input, .. } => distinct(input, col),
        Rel::Window { input, .. } if col < input.width() => distinct(input, col),
        Rel::Project { input, exprs } => match exprs.get(col) {
            Some(Scalar::Column { index, .. }) => distinct(input, *index),
            Some(Scalar::Literal { .. }) => 1.0,
            _ => rows(rel),
        },
        Rel::Aggregate { input, group, .. } | Rel::StreamAggregate { input, group, .. } => {
            match group.get(col) {
                Some(Scalar::Column { index, .. }) => distinct(input, *index),
                _ => rows(rel),
            }
        }
        Rel::Join {
            kind, left, right, ..
        }
        | Rel::MergeJoin {
            kind, left, right, ..
        } => {
            let lw = left.width();
            if col < lw {
                distinct(left, col)
            } else if matches!(kind, JoinKind::Semi | JoinKind::Anti) {
                rows(rel)
            } else {
                distinct(right, col - lw)
            }
        }
        Rel::LookupJoin(j) => {
            let lw = j.left.width();
            if col < lw {
                distinct(&j.left, col)
            } else {
                let stats = j.stats.as_deref();
                let rows = table_rows_of(&j.table, stats);
                column_distinct(&j.table, stats, j.right_table_position(col - lw), rows)
            }
        }
        Rel::With { body, .. } => distinct(body, col),
        Rel::CteScan(s) => distinct(&s.source, col),
        _ => rows(rel),
    }
}

/// The fraction of `input`'s rows `predicate` keeps.
pub fn selectivity(predicate: &Scalar, input: &Rel) -> f64 {
    crate::stack::grow(|| selectivity_inner(predicate, input)).clamp(0.0, 1.0)
}

fn selectivity_inner(p: &Scalar, input: &Rel) -> f64 {
    match p {
        Scalar::Binary { op: BinOp::And, .. } => conjunction_selectivity(p, input),
        Scalar::Binary {
            op: BinOp::Or,
            left,
            right,
            ..
        } => {
            let a = selectivity(left, input);
            let b = selectivity(right, input);
            a + b - a * b
        }
        Scalar::Unary {
            op: UnOp::Not,
            expr,
            ..
        } => 1.0 - selectivity(expr, input),
        Scalar::Literal {
            value: Value::Bool(b),
            ..
        } => {
            if *b {
                1.0
            } else {
                0.0
            }
        }
        Scalar::Literal {
            value: Value::Null, ..
        } => 0.0,
        Scalar::Binary {
            op, left, right, ..
        } => comparison_selectivity(*op, left, right, input),
        Scalar::InList {
            expr,
            list,
            negated,
        } => {
            let s = match expr.as_ref() {
                Scalar::Column { index, .. } => {
                    (list.len() as f64 / distinct(input, *index)).min(1.0)
                }
                _ => DEFAULT_SELECTIVITY,
            };
            if *negated { 1.0 - s } else { s }
        }
        Scalar::IsNull { expr, negated } => {
            let s = match expr.as_ref() {
                Scalar::Column { index, .. } => null_fraction(input, *index),
                _ => DEFAULT_NULL_FRACTION,
            };
            if *negated { 1.0 - s } else { s }
        }
        _ => DEFAULT_SELECTIVITY,
    }
}

/// A conjunction: the product of its conjuncts' selectivities (taken as
/// independent), except that a lower and an upper bound on one column with
/// a histogram are one range: `lo + hi - 1` (PostgreSQL's rule), not
/// `lo × hi` (`d >= '2001-01-01' AND d < '2001-04-01'` over ten years of
/// days keeps 2.5%, not 11%).
fn conjunction_selectivity(p: &Scalar, input: &Rel) -> f64 {
    let mut parts = Vec::new();
    conjuncts(p.clone(), &mut parts);
    // Per column: the most selective lower and upper bound seen.
    let mut bounds: Vec<(usize, Option<f64>, Option<f64>)> = Vec::new();
    let mut sel = 1.0;
    for part in &parts {
        let s = selectivity(part, input);
        match range_bound(part) {
            Some((col, lower)) if histogram(input, col).is_some() => {
                let entry = match bounds.iter_mut().position(|b| b.0 == col) {
                    Some(i) => &mut bounds[i],
                    None => {
                        bounds.push((col, None, None));
                        let last = bounds.len() - 1;
                        &mut bounds[last]
                    }
                };
                let slot = if lower { &mut entry.1 } else { &mut entry.2 };
                *slot = Some(slot.map_or(s, |t: f64| t.min(s)));
            }
            _ => sel *= s,
        }
    }
    for (_, lo, hi) in bounds {
        sel *= match (lo, hi) {
            // A range narrower than the histogram can tell still keeps some
            // rows: at least half a percent of what one bound keeps.
            (Some(lo), Some(hi)) => (lo + hi - 1.0).max(0.005 * lo.min(hi)),
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => 1.0,
        };
    }
    sel
}

/// `column > literal` and the like: the column and whether it is a lower
/// bound.
fn range_bound(p: &Scalar) -> Option<(usize, bool)> {
    let Scalar::Binary {
        op, left, right, ..
    } = p
    else {
        return None;
    };
    let (col, op) = match (left.as_ref(), right.as_ref()) {
        (Scalar::Column { index, .. }, other) if literal_value(other).is_some() => (*index, *op),
        (other, Scalar::Column { index, .. }) if literal_value(other).is_some() => {
            (*index, super::index::flip(*op))
        }
        _ => return None,
    };
    match op {
        BinOp::Gt | BinOp::GtEq => Some((col, true)),
        BinOp::Lt | BinOp::LtEq => Some((col, false)),
        _ => None,
    }
}

fn null_fraction(input: &Rel, col: usize) -> f64 {
    match base_column(input, col) {
        Some((scan, position)) => {
            match column_stats(&scan.table, scan.stats.as_deref(), position) {
                Some(c) if c.row_count > 0 => c.null_count as f64 / c.row_count as f64,
                Some(_) => 0.0,
                None => match scan.table.columns.get(position) {
                    Some(c) if !c.nullable => 0.0,
                    _ => DEFAULT_NULL_FRACTION,
                },
            }
        }
        None => DEFAULT_NULL_FRACTION,
    }
}

/// The scan and table column a plan's output column comes from unchanged.
fn base_column(rel: &Rel, col: usize) -> Option<(&Scan, usize)> {
    match rel {
        Rel::Scan(s) => Some((s, s.table_position(col))),
        Rel::Filter { input, .. }
        | Rel::Sort { input, .. }
        | Rel::Limit { input, .. }
        | Rel::Distinct { input, .. } => base_column(input, col),
        Rel::Project { input, exprs } => match exprs.get(col) {
            Some(Scalar::Column { index, .. }) => base_column(input, *index),
            _ => None,
        },
        Rel::With { body, .. } => base_column(body, col),
        Rel::CteScan(s) => base_column(&s.source, col),
        _ => None,
    }
}

fn literal_value(s: &Scalar) -> Option<&Value> {
    match s {
        Scalar::Literal { value, .. } => Some(value),
        Scalar::Cast { expr, .. } => literal_value(expr),
        _ => None,
    }
}

fn comparison_selectivity(op: BinOp, left: &Scalar, right: &Scalar, input: &Rel) -> f64 {
    let (col, value, op) = match (left, right) {
        (Scalar::Column { index, .. }, other) => (*index, other, op),
        (other, Scalar::Column { index, .. }) => (*index, other, super::index::flip(op)),
        _ => return DEFAULT_SELECTIVITY,
    };
    match op {
        BinOp::Eq => {
            if let Scalar::Column { index: other, .. } = value {
                return 1.0 / distinct(input, col).max(distinct(input, *other));
            }
            if let (Some(v), Some(h)) = (literal_value(value), histogram(input, col))
                && let Some(v) = as_bound_kind(v, h)
                && let Some(s) = histogram_eq(h, &v)
            {
                return s;
            }
            1.0 / distinct(input, col)
        }
        BinOp::NotEq => 1.0 - 1.0 / distinct(input, col),
        // `column LIKE 'prefix…'` (the column on the left: a flipped LIKE
        // matches a pattern column, which says nothing).
        BinOp::Like | BinOp::NotLike if matches!(left, Scalar::Column { .. }) => {
            let s = match literal_value(value) {
                Some(Value::Text(pattern)) => like_selectivity(pattern, input, col),
                _ => DEFAULT_SELECTIVITY,
            };
            if op == BinOp::Like { s } else { 1.0 - s }
        }
        BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq => {
            match (literal_value(value), histogram(input, col)) {
                (Some(v), Some(h)) if !v.is_null() => match as_bound_kind(v, h) {
                    Some(v) => histogram_range(h, op, &v),
                    None => RANGE_SELECTIVITY,
                },
                _ => RANGE_SELECTIVITY,
            }
        }
        _ => DEFAULT_SELECTIVITY,
    }
}

/// `v` as a value of the histogram's kind, so the two compare as the
/// column and `v` would: a timestamp against a date column (`o_orderdate <
/// DATE '1993-07-01' + INTERVAL '3' MONTH`) is taken as its day; values of
/// other kinds that differ from the column's give `None` (values of
/// different kinds do not order by what they mean).
fn as_bound_kind(v: &Value, (buckets, _): (&[Bucket], f64)) -> Option<Value> {
    const DAY: i64 = 86_400_000_000;
    let bound = &buckets.first()?.upper;
    let v = match (bound, v) {
        (Value::Date(_), Value::Timestamp(t) | Value::TimestampTz(t)) => {
            Value::Date(i32::try_from(t.div_euclid(DAY)).ok()?)
        }
        (Value::Timestamp(_), Value::Date(d)) => Value::Timestamp(i64::from(*d) * DAY),
        (Value::TimestampTz(_), Value::Date(d)) => Value::TimestampTz(i64::from(*d) * DAY),
        (Value::Timestamp(_), Value::TimestampTz(t)) => Value::Timestamp(*t),
        (Value::TimestampTz(_), Value::Timestamp(t)) => Value::TimestampTz(*t),
        (Value::Decimal(_), Value::Int(i)) => {
            Value::Decimal(tardigrade_encoding::decimal::Decimal::from(*i))
        }
        _ => v.clone(),
    };
    (std::mem::discriminant(&v) == std::mem::discriminant(bound)).then_some(v)
}

/// The fraction of rows `column LIKE pattern` keeps. A pattern with a
/// literal prefix (`'forest%'`) selects the range of strings starting with
/// it, which the column's histogram measures; what follows the prefix
/// (besides a final `%`) is taken to keep half of that. Without a prefix or
/// a histogram: the default.
fn like_selectivity(pattern: &str, input: &Rel, col: usize) -> f64 {
    let mut prefix = String::new();
    let mut chars = pattern.chars();
    let mut rest = String::new();
    while let Some(c) = chars.next() {
        match c {
            '%' | '_' => {
                rest.push(c);
                rest.extend(chars.by_ref());
                break;
            }
            // PostgreSQL's default escape character.
            '\\' => match chars.next() {
                Some(e) => prefix.push(e),
                None => return DEFAULT_SELECTIVITY,
            },
            c => prefix.push(c),
        }
    }
    let Some(h) = histogram(input, col) else {
        return DEFAULT_SELECTIVITY;
    };
    if rest.is_empty() {
        return histogram_eq(h, &Value::Text(prefix)).unwrap_or(DEFAULT_SELECTIVITY);
    }
    if prefix.is_empty() {
        return DEFAULT_SELECTIVITY;
    }
    // Every string that starts with the prefix sorts below prefix + the
    // largest character.
    let mut upper = prefix.clone();
    upper.push(char::MAX);
    let range = histogram_range(h, BinOp::GtEq, &Value::Text(prefix))
        - histogram_range(h, BinOp::GtEq, &Value::Text(upper));
    let range = range.max(0.0);
    if rest == "%" { range } else { range * 0.5 }
}

/// The histogram of a column that comes straight from a table with
/// statistics, with the fraction of the table's rows it describes.
fn histogram(input: &Rel, col: usize) -> Option<(&[Bucket], f64)> {
    let (scan, position) = base_column(input, col)?;
    let c = column_stats(&scan.table, scan.stats.as_deref(), position)?;
    if c.histogram.is_empty() || c.row_count == 0 {
        return None;
    }
    Some((&c.histogram, c.row_count as f64))
}

fn histogram_eq((buckets, total): (&[Bucket], f64), v: &Value) -> Option<f64> {
    for b in buckets {
        match v.cmp(&b.upper) {
            std::cmp::Ordering::Equal => return Some(b.num_eq / total),
            std::cmp::Ordering::Less => {
                return Some(if b.distinct_range > 0.0 {
                    b.num_range / b.distinct_range / total
                } else {
                    0.0
                });
            }
            std::cmp::Ordering::Greater => {}
        }
    }
    Some(0.0)
}

/// Numbers, dates and times map onto a line so a bucket can be interpolated.
fn numeric(v: &Value) -> Option<f64> {
    Some(match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Decimal(d) => d.to_string().parse().ok()?,
        Value::Date(d) => f64::from(*d),
        Value::Timestamp(t) | Value::TimestampTz(t) | Value::Time(t) => *t as f64,
        _ => return None,
    })
}

/// The fraction of rows `column op v` keeps, from the histogram.
fn histogram_range((buckets, total): (&[Bucket], f64), op: BinOp, v: &Value) -> f64 {
    // Rows strictly below v, and rows equal to v.
    let mut below = 0.0;
    let mut equal = 0.0;
    let mut lower: Option<&Value> = None;
    for b in buckets {
        match v.cmp(&b.upper) {
            std::cmp::Ordering::Greater => {
                below += b.num_range + b.num_eq;
            }
            std::cmp::Ordering::Equal => {
                below += b.num_range;
                equal = b.num_eq;
                break;
            }
            std::cmp::Ordering::Less => {
                // Inside this bucket's range: interpolate where possible.
                let fraction = match (lower.and_then(numeric), numeric(&b.upper), numeric(v)) {
                    (Some(lo), Some(hi), Some(x)) if hi > lo => {
                        ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
                    }
                    _ => 0.5,
                };
                below += b.num_range * fraction;
                break;
            }
        }
        lower = Some(&b.upper);
    }
    let s = match op {
        BinOp::Lt => below,
        BinOp::LtEq => below + equal,
        BinOp::Gt => total - below - equal,
        _ => total - below,
    };
    (s / total).clamp(0.0, 1.0)
}
