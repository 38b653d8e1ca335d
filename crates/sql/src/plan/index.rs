//! Index selection: turns the filters above a scan into an [`IndexConstraint`]
//! on the cheapest index, drops sorts of rows already in order (or that an
//! index can give in order for less than the sort costs), pushes LIMITs
//! into scans and filters on the preserved side of left, semi and anti
//! joins into that side.
//!
//! Every index of the table is an alternative: for each, the longest run of
//! leading key columns fixed by equality (or `IN` lists of constants) is
//! found, then a range on the next column; an index nothing constrains is
//! read whole. Each alternative is costed by [`super::cost::scan`] from the
//! rows it reads ([`super::cardinality`], with histograms when there are
//! statistics), how wide its entries are, and whether it holds every column
//! the plan reads from the table (otherwise each row costs a lookup of the
//! primary row, the "index join"). The cheapest wins, the primary index on
//! ties; the alternatives of each scan with more than one are kept in a
//! [`Memo`] (`EXPLAIN (OPT, MEMO)`). The filter stays above the scan
//! (re-checking a row that already satisfies it is cheap), so the chosen
//! spans only ever narrow what is read.
//!
//! The columns a scan's rows are read for come from a pass of
//! [`super::covering`] over the tree just before (positions are stable
//! until [`super::prune`]).

use tardigrade_encoding::Direction;
use tardigrade_sqltypes::SqlType;
use tardigrade_sqltypes::ops::BinOp;

use super::bind::{and_all, conjuncts, referenced_columns};
use super::memo::{Memo, Op};
use super::rules::{Rule, Rules};
use super::{IndexConstraint, JoinKind, Rel, Scalar, Scan, SortKey};
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
    // What each scan's rows are read for decides which indexes cover it,
    // for join ordering's costs and for index selection (again after
    // reordering, whose projections read differently).
    let annotate = |rel: Rel| {
        if rules.enabled(Rule::Covering) {
            super::covering::annotate_reads(rel)
        } else {
            rel
        }
    };
    let rel = annotate(rel);
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
    let rel = annotate(rel);
    Chooser {
        memos,
        order_matters: 0,
    }
    .choose(rel)
}

/// Index selection over one tree, recording each scan's alternatives.
struct Chooser<'m> {
    memos: &'m mut Vec<Memo>,
    /// How many operators above the node being chosen may rely on the
    /// order of its rows (joins, which may merge; grouping, which may
    /// stream; sorts, DISTINCT and windows, which may be avoided).
    order_matters: usize,
}

impl Chooser<'_> {
    fn choose(&mut self, rel: Rel) -> Rel {
        match rel {
            Rel::Filter { input, predicate } => match *input {
                Rel::Scan(scan) => {
                    let scan = self.constrain_scan(scan, Some(&predicate));
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
                    let join = self.choose(Rel::Join {
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
                    input: Box::new(self.choose(other)),
                    predicate,
                },
            },
            Rel::Scan(scan) => Rel::Scan(self.constrain_scan(scan, None)),
            Rel::Limit {
                input,
                limit,
                offset,
            } => {
                let rows_wanted = literal_limit(limit.as_ref(), offset.as_ref());
                let input = match *input {
                    Rel::Sort { input, keys } => self.choose_sort(*input, keys, rows_wanted),
                    other => self.choose(other),
                };
                let input = match rows_wanted {
                    Some(n) => push_limit(input, n),
                    None => input,
                };
                Rel::Limit {
                    input: Box::new(input),
                    limit,
                    offset,
                }
            }
            Rel::Project { input, exprs } => Rel::project(self.choose(*input), exprs),
            Rel::Sort { input, keys } => self.choose_sort(*input, keys, None),
            other => {
                let ordered = match &other {
                    Rel::Join { .. }
                    | Rel::MergeJoin { .. }
                    | Rel::LookupJoin(_)
                    | Rel::Lateral { .. }
                    | Rel::Distinct { .. }
                    | Rel::Window { .. } => true,
                    Rel::Aggregate { group, .. } | Rel::StreamAggregate { group, .. } => {
                        !group.is_empty()
                    }
                    _ => false,
                };
                self.order_matters += usize::from(ordered);
                let rel = other.map_inputs(&mut |r| self.choose(r));
                self.order_matters -= usize::from(ordered);
                rel
            }
        }
    }
}

/// The row count a `LIMIT n OFFSET m` of literals needs from its input.
fn literal_limit(limit: Option<&Scalar>, offset: Option<&Scalar>) -> Option<u64> {
    let int = |s: Option<&Scalar>| match s {
        Some(Scalar::Literal {
            value: tardigrade_sqltypes::Value::Int(n),
            ..
        }) if *n >= 0 => Some(*n as u64),
        _ => None,
    };
    let n = int(limit)?;
    let skip = match offset {
        None => 0,
        some => int(some)?,
    };
    Some(n.saturating_add(skip))
}

/// One way of reading a scan's table: through one index, with the
/// constraint the filter puts on its keys.
struct ScanOption {
    scan: Scan,
    /// Index entries read.
    rows_read: f64,
    cost: f64,
}

impl Chooser<'_> {
    /// The scan through its cheapest index, given the filter above it
    /// (`None`: none). Alternatives are kept in a memo when there are
    /// several.
    fn constrain_scan(&mut self, scan: Scan, predicate: Option<&Scalar>) -> Scan {
        // An operator above may rely on the primary index's order, so
        // only scans whose order nothing uses read a narrower index whole.
        let whole = if self.order_matters == 0 {
            WholeIndexes::Covering
        } else {
            WholeIndexes::None
        };
        let options = scan_options(&scan, predicate, whole);
        let Some(best) = cheapest(&options) else {
            return scan;
        };
        if options.len() > 1 {
            self.record(&options, best);
        }
        options.into_iter().nth(best).map_or(scan, |o| o.scan)
    }

    fn record(&mut self, options: &[ScanOption], best: usize) {
        let Some(first) = options.first() else {
            return;
        };
        let mut memo = Memo::new(vec![first.scan.table.name.clone()]);
        let rows = options.get(best).map_or(0.0, |o| o.rows_read);
        let g = memo.group(1, rows);
        for o in options {
            let i = memo.scans.len();
            memo.scans.push(describe_option(o));
            memo.add(g, Op::Scan(i), o.cost);
        }
        self.memos.push(memo);
    }

    /// A sort of `input`'s rows on `keys`, under a `LIMIT` that needs
    /// `rows_wanted` of them when there is one. The sort goes when the rows
    /// already come in its order (a scan in index order), read backwards
    /// or not, or when reading them in order through another index of the
    /// scanned table costs less than the sort.
    fn choose_sort(&mut self, input: Rel, keys: Vec<SortKey>, rows_wanted: Option<u64>) -> Rel {
        self.order_matters += 1;
        let input = self.choose(input);
        self.order_matters -= 1;
        if super::physical::provides(&input, &keys) {
            return input;
        }
        if let Some(reversed) = reverse_scan(&input)
            && super::physical::provides(&reversed, &keys)
        {
            return reversed;
        }
        if let Some(ordered) = ordered_alternative(&input, &keys, rows_wanted) {
            return ordered;
        }
        Rel::Sort {
            input: Box::new(input),
            keys,
        }
    }
}

/// Which secondary indexes that nothing constrains are alternatives (the
/// primary index always is).
#[derive(Clone, Copy, PartialEq)]
enum WholeIndexes {
    None,
    /// Those that hold every column read (narrower than the table's rows).
    Covering,
    /// All of them (for their order).
    All,
}

/// Every index of the scan's table as an alternative, constrained by what
/// `predicate` says of its key columns, and those read whole that `whole`
/// allows.
fn scan_options(scan: &Scan, predicate: Option<&Scalar>, whole: WholeIndexes) -> Vec<ScanOption> {
    let mut facts: Vec<ColumnFacts> = vec![ColumnFacts::default(); scan.table.columns.len()];
    let mut parts = Vec::new();
    if let Some(predicate) = predicate {
        conjuncts(predicate.clone(), &mut parts);
        for p in &parts {
            collect_fact(p, &scan.table, &mut facts);
            if let Some(exprs) = &scan.index_exprs {
                // `lower(name) = 'x'` is also a fact on the column an
                // index on `lower(name)` keeps.
                let p = with_index_columns(p.clone(), exprs);
                collect_fact(&p, &scan.table, &mut facts);
            }
        }
    }
    let read: Vec<bool> = match &scan.reads {
        Some(mask) => mask.to_vec(),
        None => vec![true; scan.table.columns.len()],
    };
    let table = &scan.table;
    let indexes = std::iter::once(&table.primary_index).chain(table.indexes.iter());
    let mut options = Vec::new();
    for index in indexes {
        if !predicate_implied(scan, index, &parts) {
            continue;
        }
        let constraint = constraint_for(index, table, &facts);
        let primary = index.id == table.primary_index.id;
        let covering = super::covering::index_holds(table, index.id, &read);
        let allowed = match whole {
            WholeIndexes::None => false,
            WholeIndexes::Covering => covering,
            WholeIndexes::All => true,
        };
        if constraint.is_none() && !primary && !allowed {
            continue;
        }
        let candidate = Scan {
            index: index.id,
            covering,
            constraint,
            ..scan.clone()
        };
        let rows_read = super::cardinality::scan_rows(&candidate);
        let cost = super::cost::scan(rows_read, entry_width(table, index), !covering);
        options.push(ScanOption {
            scan: candidate,
            rows_read,
            cost,
        });
    }
    options
}

/// `p` with every subexpression that is the expression of an index's own
/// column ([`Scan::index_exprs`]) replaced by that column.
fn with_index_columns(p: Scalar, exprs: &[(usize, Scalar)]) -> Scalar {
    p.clone()
        .transform(&mut |n| {
            Ok(match exprs.iter().find(|(_, e)| *e == n) {
                Some((pos, e)) => Scalar::Column {
                    index: *pos,
                    ty: e.ty(),
                },
                None => n,
            })
        })
        .unwrap_or(p)
}

/// Whether the scan may read `index`: any index but a partial one, and a
/// partial one when every conjunct of its predicate is one of the filter's
/// conjuncts `parts` (so every row the query wants is in the index).
///
/// TODO(issue 13): implication beyond equal conjuncts (`a > 10` implies
/// `a > 5`, `a = 1` implies `a IS NOT NULL`), as CockroachDB's
/// partial-index implicator proves.
fn predicate_implied(scan: &Scan, index: &IndexDesc, parts: &[Scalar]) -> bool {
    let Some(col) = index.predicate else {
        return true;
    };
    let Some(pos) = scan.table.column_position(col) else {
        return false;
    };
    let Some((_, predicate)) = scan
        .index_exprs
        .as_deref()
        .and_then(|e| e.iter().find(|(p, _)| *p == pos))
    else {
        return false;
    };
    let mut needed = Vec::new();
    conjuncts(predicate.clone(), &mut needed);
    needed.iter().all(|n| parts.contains(n))
}

/// One way of reading a join's leaf: its `EXPLAIN` description, its cost,
/// and the leaf's output columns its rows come ordered on (ascending, most
/// significant first).
pub(super) struct LeafOption {
    pub description: String,
    pub cost: f64,
    pub order: Vec<usize>,
}

/// The ways of reading a join's leaf that is a scan under filters and
/// projections, for the join memo (none for another leaf). Inside a join,
/// only constrained secondary indexes are alternatives, as
/// [`Chooser::constrain_scan`] then decides.
pub(super) fn leaf_scan_options(rel: &Rel) -> Vec<LeafOption> {
    let Some((scan, predicate)) = scan_under(rel) else {
        return Vec::new();
    };
    scan_options(scan, predicate, WholeIndexes::None)
        .into_iter()
        .map(|o| LeafOption {
            description: describe_option(&o),
            cost: o.cost,
            order: replace_scan(rel, o.scan)
                .map(|r| ascending_order(&r))
                .unwrap_or_default(),
        })
        .collect()
}

/// The columns `rel`'s rows come in ascending order on, most significant
/// first.
pub(super) fn ascending_order(rel: &Rel) -> Vec<usize> {
    super::physical::ordering(rel)
        .into_iter()
        .map_while(|o| (!o.descending).then_some(o.column))
        .collect()
}

/// The least cost a whole-index read is taken to have when choosing: a
/// table's statistics may be from when it was small (automatic statistics
/// run after it grew by a fraction), and a full scan's cost grows with
/// the table while a constrained read's does not, so a constrained read
/// wins over a full scan of a table whose statistics say it is tiny.
const FULL_SCAN_MIN_COST: f64 = 100.0;

/// The cheapest option (the first on ties, so the primary index).
fn cheapest(options: &[ScanOption]) -> Option<usize> {
    let risk = |o: &ScanOption| {
        if o.scan.constraint.is_none() {
            o.cost.max(FULL_SCAN_MIN_COST)
        } else {
            o.cost
        }
    };
    let mut best: Option<usize> = None;
    for (i, o) in options.iter().enumerate() {
        if best.is_none_or(|b| risk(o) < risk(&options[b]) * (1.0 - 1e-9)) {
            best = Some(i);
        }
    }
    best
}

/// The fraction of a table's columns an entry of `index` holds.
fn entry_width(table: &TableDesc, index: &IndexDesc) -> f64 {
    let all = table.columns.len().max(1) as f64;
    let held = crate::rowenc::index_covers(table, index.id).len() as f64;
    (held / all).min(1.0)
}

/// `EXPLAIN (OPT, MEMO)`'s line for a scan alternative.
fn describe_option(o: &ScanOption) -> String {
    let table = &o.scan.table;
    let index = table
        .index(o.scan.index)
        .map_or("?", |i| i.name.as_str())
        .to_string();
    let spans = super::explain::scan_spans(&o.scan);
    format!(
        "scan {}@{index} ({spans}) rows={}",
        table.name,
        o.rows_read.round() as u64
    )
}

/// The plan with its scan (under filters and projections) read through
/// the index whose order `keys` ask for, when that costs less than
/// sorting: reading `rows_wanted` rows of a `LIMIT` in order can stop
/// early, a sort cannot.
fn ordered_alternative(input: &Rel, keys: &[SortKey], rows_wanted: Option<u64>) -> Option<Rel> {
    let (scan, predicate) = scan_under(input)?;
    let out_rows = super::cardinality::rows(input).max(1.0);
    let current = scan_options(scan, predicate, WholeIndexes::Covering)
        .into_iter()
        .find(|o| {
            o.scan.index == scan.index && o.scan.constraint.is_some() == scan.constraint.is_some()
        })
        .map_or(super::cardinality::table_rows(scan), |o| o.cost);
    let sorted = current + super::cost::sort(out_rows);
    let mut best: Option<(f64, Rel)> = None;
    for option in scan_options(scan, predicate, WholeIndexes::All) {
        if option.scan.index == scan.index {
            continue;
        }
        for reverse in [false, true] {
            let mut s = option.scan.clone();
            s.reverse = reverse;
            let Some(candidate) = replace_scan(input, s) else {
                continue;
            };
            if !super::physical::provides(&candidate, keys) {
                continue;
            }
            // Read in order, a LIMIT stops the scan after its rows.
            let fraction = rows_wanted.map_or(1.0, |n| (n as f64 / out_rows).min(1.0));
            let cost = option.cost * fraction;
            if cost < sorted && best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, candidate));
            }
        }
    }
    best.map(|(_, rel)| rel)
}

/// The scan at the bottom of a chain of projections and filters, and the
/// filter directly above it.
fn scan_under(rel: &Rel) -> Option<(&Scan, Option<&Scalar>)> {
    match rel {
        Rel::Scan(scan) => Some((scan, None)),
        Rel::Filter { input, predicate } => match input.as_ref() {
            Rel::Scan(scan) => Some((scan, Some(predicate))),
            other => scan_under(other),
        },
        Rel::Project { input, .. } => scan_under(input),
        _ => None,
    }
}

/// `rel` (projections and filters over a scan) with its scan replaced.
fn replace_scan(rel: &Rel, scan: Scan) -> Option<Rel> {
    Some(match rel {
        Rel::Scan(_) => Rel::Scan(scan),
        Rel::Filter { input, predicate } => Rel::Filter {
            input: Box::new(replace_scan(input, scan)?),
            predicate: predicate.clone(),
        },
        Rel::Project { input, exprs } => Rel::Project {
            input: Box::new(replace_scan(input, scan)?),
            exprs: exprs.clone(),
        },
        _ => return None,
    })
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

/// The constraint `facts` put on `index`'s keys: equalities on its leading
/// columns, then a range on the next; `None` when they constrain nothing.
fn constraint_for(
    index: &IndexDesc,
    table: &TableDesc,
    facts: &[ColumnFacts],
) -> Option<IndexConstraint> {
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
    Some(IndexConstraint {
        prefixes,
        lower,
        upper,
    })
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
