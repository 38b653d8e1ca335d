//! `EXPLAIN`: renders a physical plan as an indented tree, one operator per
//! line followed by its details: the index and spans a scan reads, join
//! conditions and keys, the estimated row count from
//! [`super::cardinality`], and, for `EXPLAIN ANALYZE`, what each operator
//! actually produced and how long it took. Expressions are printed in SQL
//! syntax over column names (`total > 5`), qualified with their table where a
//! name is ambiguous. `EXPLAIN (VERBOSE)` adds each operator's output columns
//! and the ordering its rows arrive in.

use std::collections::HashMap;

use tardigrade_sqltypes::Value;
use tardigrade_sqltypes::ops::{BinOp, UnOp};

use super::{AggCall, IndexConstraint, JoinKind, Rel, Scalar, SetOpKind, SubqueryKind};
use crate::catalog::{IndexId, TableDesc};

/// How much to show.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Output columns and orderings of every operator.
    pub verbose: bool,
    /// Leave out estimates (tests of plan shape only).
    pub no_estimates: bool,
}

/// What one operator did while the statement ran (`EXPLAIN ANALYZE`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub rows: u64,
    pub batches: u64,
    /// Time spent in the operator and its inputs.
    pub nanos: u64,
    /// The most bytes its hash table held (0: none, or not tracked).
    pub memory: u64,
}

/// Measurements by plan node ([`node_key`]).
pub type Measurements = HashMap<usize, Measured>;

/// Identifies a plan node for the duration of one execution (its address:
/// the plan is not moved while it runs).
pub fn node_key(rel: &Rel) -> usize {
    rel as *const Rel as usize
}

/// Renders the plan with estimates.
pub fn render(rel: &Rel) -> Vec<String> {
    render_with(rel, Options::default(), None)
}

/// Renders the plan; with `measured`, each operator's actual rows and time.
pub fn render_with(rel: &Rel, options: Options, measured: Option<&Measurements>) -> Vec<String> {
    let mut out = Vec::new();
    let r = Renderer { options, measured };
    r.walk(rel, 0, &mut out);
    out
}

/// A column as EXPLAIN names it: its name and, when it comes straight from a
/// table, the table (to qualify it when the name is ambiguous).
#[derive(Clone, Debug)]
struct Name {
    table: Option<String>,
    name: String,
}

type Names = Vec<Name>;

thread_local! {
    /// The column names of the rows enclosing the subquery being rendered,
    /// innermost last (an outer reference of depth d reads the d-th from
    /// the end).
    static OUTER_NAMES: std::cell::RefCell<Vec<Names>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn plain(name: String) -> Name {
    Name { table: None, name }
}

/// The names of `rel`'s output columns.
fn column_names(rel: &Rel) -> Names {
    match rel {
        Rel::Scan(s) => {
            let all = table_names(&s.table);
            match &s.project {
                Some(p) => p.iter().filter_map(|&q| all.get(q).cloned()).collect(),
                None => all,
            }
        }
        Rel::Values { types, .. } => (1..=types.len())
            .map(|i| plain(format!("column{i}")))
            .collect(),
        Rel::Filter { input, .. }
        | Rel::Sort { input, .. }
        | Rel::Limit { input, .. }
        | Rel::Distinct { input, .. } => column_names(input),
        Rel::ProjectSet { input, srfs } => {
            let mut n = column_names(input);
            n.extend(srfs.iter().map(|c| plain(c.name.clone())));
            n
        }
        Rel::Window { input, funcs, .. } => {
            let mut n = column_names(input);
            n.extend(funcs.iter().map(|f| plain(f.name.clone())));
            n
        }
        Rel::Project { input, exprs } => {
            let inner = column_names(input);
            exprs
                .iter()
                .map(|e| match e {
                    Scalar::Column { index, .. } => inner
                        .get(*index)
                        .cloned()
                        .unwrap_or_else(|| plain(format!("@{}", index + 1))),
                    other => plain(sql(other, &inner)),
                })
                .collect()
        }
        Rel::Aggregate { input, group, aggs } | Rel::StreamAggregate { input, group, aggs } => {
            let inner = column_names(input);
            group
                .iter()
                .map(|g| match g {
                    Scalar::Column { index, .. } => inner
                        .get(*index)
                        .cloned()
                        .unwrap_or_else(|| plain(format!("@{}", index + 1))),
                    other => plain(sql(other, &inner)),
                })
                .chain(aggs.iter().map(|a| plain(aggregate(a, &inner))))
                .collect()
        }
        Rel::Join {
            kind: JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        }
        | Rel::MergeJoin {
            kind: JoinKind::Semi | JoinKind::Anti,
            left,
            ..
        } => column_names(left),
        Rel::Join { left, right, .. }
        | Rel::MergeJoin { left, right, .. }
        | Rel::Lateral { left, right, .. } => {
            let mut n = column_names(left);
            n.extend(column_names(right));
            n
        }
        Rel::LookupJoin(j) => {
            let mut n = column_names(&j.left);
            if !matches!(j.kind, JoinKind::Semi | JoinKind::Anti) {
                n.extend(lookup_right_names(j));
            }
            n
        }
        Rel::SetOp { left, .. } => column_names(left),
        Rel::RecursiveUnion { base, .. } => column_names(base),
        Rel::WorkTable { types, .. } => (1..=types.len())
            .map(|i| plain(format!("column{i}")))
            .collect(),
        Rel::Series { .. } => vec![plain("generate_series".into())],
        Rel::With { body, .. } => column_names(body),
        Rel::CteScan(s) => s
            .columns
            .iter()
            .map(|c| Name {
                table: Some(s.name.clone()),
                name: c.clone(),
            })
            .collect(),
    }
}

/// The names of a lookup join's right output columns.
fn lookup_right_names(j: &super::LookupJoin) -> Names {
    let all = table_names(&j.table);
    match &j.right_project {
        Some(p) => p.iter().filter_map(|&q| all.get(q).cloned()).collect(),
        None => all,
    }
}

fn table_names(t: &TableDesc) -> Names {
    t.columns
        .iter()
        .map(|c| Name {
            table: Some(t.name.clone()),
            name: c.name.clone(),
        })
        .collect()
}

/// Column `index` of `names`, qualified when another column has its name.
fn column(names: &[Name], index: usize) -> String {
    let Some(n) = names.get(index) else {
        return format!("@{}", index + 1);
    };
    let ambiguous = names.iter().filter(|o| o.name == n.name).count() > 1;
    match &n.table {
        Some(t) if ambiguous => format!("{t}.{}", n.name),
        _ => n.name.clone(),
    }
}

struct Renderer<'m> {
    options: Options,
    measured: Option<&'m Measurements>,
}

impl Renderer<'_> {
    fn walk(&self, rel: &Rel, depth: usize, out: &mut Vec<String>) {
        crate::stack::grow(|| self.walk_node(rel, depth, out))
    }

    /// The plans of the subqueries in the operator's own expressions, under
    /// their ids.
    fn subqueries(&self, rel: &Rel, depth: usize, out: &mut Vec<String>) {
        let mut subs: Vec<super::Subquery> = Vec::new();
        for s in node_scalars(rel) {
            collect_subqueries(s, &mut subs);
        }
        let pad = "  ".repeat(depth);
        // The subquery's outer references read the row this operator
        // evaluates its expressions on: its input's columns (both inputs'
        // for a join).
        let row = match rel {
            Rel::Join { left, right, .. } | Rel::MergeJoin { left, right, .. } => {
                let mut n = column_names(left);
                n.extend(column_names(right));
                n
            }
            Rel::Filter { input, .. }
            | Rel::Project { input, .. }
            | Rel::ProjectSet { input, .. }
            | Rel::Window { input, .. }
            | Rel::Sort { input, .. }
            | Rel::Limit { input, .. }
            | Rel::Aggregate { input, .. }
            | Rel::StreamAggregate { input, .. } => column_names(input),
            Rel::LookupJoin(j) => {
                let mut n = column_names(&j.left);
                n.extend(lookup_right_names(j));
                n
            }
            _ => Vec::new(),
        };
        for sub in subs {
            out.push(format!(
                "{pad}  subquery#{}{}:",
                sub.id,
                if sub.correlated {
                    " (correlated: runs per row)"
                } else {
                    " (runs once)"
                }
            ));
            OUTER_NAMES.with(|o| o.borrow_mut().push(row.clone()));
            self.walk(&sub.plan, depth + 2, out);
            OUTER_NAMES.with(|o| o.borrow_mut().pop());
        }
    }

    /// The lines every operator gets after its own details.
    fn common(&self, rel: &Rel, pad: &str, out: &mut Vec<String>) {
        if self.options.verbose {
            let names = column_names(rel);
            out.push(format!(
                "{pad}  columns: ({})",
                (0..names.len())
                    .map(|i| column(&names, i))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            let ordering = super::physical::ordering(rel);
            if !ordering.is_empty() {
                out.push(format!(
                    "{pad}  ordering: {}",
                    ordering
                        .iter()
                        .map(|o| format!(
                            "{}{}",
                            if o.descending { "-" } else { "+" },
                            column(&names, o.column)
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
        }
        if !self.options.no_estimates {
            out.push(format!(
                "{pad}  estimated row count: {}",
                super::cardinality::rows(rel).round() as u64
            ));
        }
        self.subqueries(rel, pad.len() / 2, out);
        if let Some(m) = self.measured {
            match m.get(&node_key(rel)) {
                Some(m) => out.push(format!(
                    "{pad}  actual row count: {}, batches: {}, time: {:.3} ms{}",
                    m.rows,
                    m.batches,
                    m.nanos as f64 / 1e6,
                    if m.memory > 0 {
                        format!(", memory: {:.1} KiB", m.memory as f64 / 1024.0)
                    } else {
                        String::new()
                    }
                )),
                None => out.push(format!("{pad}  actual row count: 0 (not run)")),
            }
        }
    }

    fn walk_node(&self, rel: &Rel, depth: usize, out: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        let child = |r: &Rel, out: &mut Vec<String>| self.walk(r, depth + 1, out);
        match rel {
            Rel::Scan(scan) => {
                let index = index_name(&scan.table, scan.index);
                out.push(format!("{pad}• scan {}@{}", scan.table.name, index));
                let key = scan_key_names(&scan.table, scan.index);
                match &scan.constraint {
                    Some(c) => out.push(format!("{pad}  spans: {}", describe_constraint(c, &key))),
                    None => out.push(format!("{pad}  spans: FULL SCAN")),
                }
                if !scan.covering {
                    out.push(format!(
                        "{pad}  index join: {}@{}",
                        scan.table.name, scan.table.primary_index.name
                    ));
                }
                if scan.reverse {
                    out.push(format!("{pad}  reverse"));
                }
                if let Some(l) = scan.limit {
                    out.push(format!("{pad}  limit: {l}"));
                }
                self.common(rel, &pad, out);
            }
            Rel::Values { rows, types } => {
                out.push(format!(
                    "{pad}• values ({} rows, {} columns)",
                    rows.len(),
                    types.len()
                ));
                self.common(rel, &pad, out);
            }
            Rel::Filter { input, predicate } => {
                out.push(format!(
                    "{pad}• filter: {}",
                    sql(predicate, &column_names(input))
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::ProjectSet { input, srfs } => {
                let names = column_names(input);
                out.push(format!(
                    "{pad}• project set: {}",
                    srfs.iter()
                        .map(|c| format!(
                            "{}({})",
                            c.name,
                            c.args
                                .iter()
                                .map(|a| sql(a, &names))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::Window {
                input,
                partition,
                order,
                funcs,
            } => {
                let names = column_names(input);
                out.push(format!(
                    "{pad}• window: {}",
                    funcs
                        .iter()
                        .map(|f| describe_window(f, partition, order, &names))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::Project { input, exprs } => {
                let names = column_names(input);
                let list = if exprs.is_empty() {
                    // Only the row count is read (`count(*)` above).
                    "()".to_string()
                } else {
                    exprs
                        .iter()
                        .map(|e| sql(e, &names))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                out.push(format!("{pad}• project: {list}"));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::Aggregate { input, group, aggs } => {
                let kind = if group.is_empty() {
                    "scalar group-by"
                } else {
                    "hash group-by"
                };
                out.push(format!(
                    "{pad}• {kind}: {}",
                    describe_aggregate(group, aggs, &column_names(input))
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::StreamAggregate { input, group, aggs } => {
                out.push(format!(
                    "{pad}• streaming group-by: {}",
                    describe_aggregate(group, aggs, &column_names(input))
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::Join {
                kind,
                left,
                right,
                on,
                equi,
            } => {
                let algo = if equi.is_empty() {
                    "cross/nested-loop join"
                } else {
                    "hash join"
                };
                out.push(format!(
                    "{pad}• {}",
                    join_line(algo, *kind, left, right, on)
                ));
                self.common(rel, &pad, out);
                child(left, out);
                child(right, out);
            }
            Rel::Lateral {
                kind,
                left,
                right,
                on,
            } => {
                out.push(format!(
                    "{pad}• {}",
                    join_line("lateral join", *kind, left, right, on)
                ));
                self.common(rel, &pad, out);
                child(left, out);
                child(right, out);
            }
            Rel::MergeJoin {
                kind,
                left,
                right,
                keys,
                on,
            } => {
                let lw = left.width();
                let mut names = column_names(left);
                names.extend(column_names(right));
                out.push(format!(
                    "{pad}• merge join ({}): keys [{}]{}",
                    kind_name(*kind),
                    keys.iter()
                        .map(|k| format!(
                            "{} = {}{}",
                            column(&names, k.left),
                            column(&names, lw + k.right),
                            if k.descending { " DESC" } else { "" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", "),
                    on.as_ref()
                        .map(|o| format!(" on {}", sql(o, &names)))
                        .unwrap_or_default()
                ));
                self.common(rel, &pad, out);
                child(left, out);
                child(right, out);
            }
            Rel::LookupJoin(j) => {
                let left_names = column_names(&j.left);
                // Key columns are named in table layout; `on` is over the
                // right columns the join outputs.
                let mut names = left_names.clone();
                names.extend(table_names(&j.table));
                let mut on_names = left_names.clone();
                on_names.extend(lookup_right_names(j));
                let key_names: Vec<String> = j
                    .table
                    .index(j.index)
                    .map(|index| crate::rowenc::full_key_columns(&j.table, index))
                    .unwrap_or_default()
                    .iter()
                    .zip(&j.keys)
                    .map(|((col, _), l)| {
                        let right = j
                            .table
                            .column_position(*col)
                            .map(|p| column(&names, left_names.len() + p))
                            .unwrap_or_default();
                        format!("{right} = {}", column(&names, *l))
                    })
                    .collect();
                out.push(format!(
                    "{pad}• lookup join ({}) {}@{}: keys [{}]{}",
                    kind_name(j.kind),
                    j.table.name,
                    index_name(&j.table, j.index),
                    key_names.join(", "),
                    j.on.as_ref()
                        .map(|o| format!(" on {}", sql(o, &on_names)))
                        .unwrap_or_default()
                ));
                if let Some(f) = &j.right_filter {
                    out.push(format!(
                        "{pad}  lookup filter: {}",
                        sql(f, &table_names(&j.table))
                    ));
                }
                if !j.covering {
                    out.push(format!(
                        "{pad}  index join: {}@{}",
                        j.table.name, j.table.primary_index.name
                    ));
                }
                self.common(rel, &pad, out);
                child(&j.left, out);
            }
            Rel::Sort { input, keys } => {
                let names = column_names(input);
                out.push(format!(
                    "{pad}• sort: {}",
                    keys.iter()
                        .map(|k| format!(
                            "{}{}",
                            sql(&k.expr, &names),
                            if k.descending { " DESC" } else { "" }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::Limit {
                input,
                limit,
                offset,
            } => {
                out.push(format!(
                    "{pad}• limit{}{}",
                    limit
                        .as_ref()
                        .map(|l| format!(" {}", sql(l, &[])))
                        .unwrap_or_default(),
                    offset
                        .as_ref()
                        .map(|o| format!(" offset {}", sql(o, &[])))
                        .unwrap_or_default()
                ));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::Distinct { input, .. } => {
                out.push(format!("{pad}• distinct"));
                self.common(rel, &pad, out);
                child(input, out);
            }
            Rel::RecursiveUnion {
                id,
                all,
                base,
                step,
            } => {
                out.push(format!(
                    "{pad}• recursive union{} (work table {id})",
                    if *all { " all" } else { "" }
                ));
                self.common(rel, &pad, out);
                child(base, out);
                child(step, out);
            }
            Rel::WorkTable { id, .. } => {
                out.push(format!("{pad}• work table {id}"));
                self.common(rel, &pad, out);
            }
            Rel::SetOp {
                op,
                all,
                left,
                right,
            } => {
                let name = match op {
                    SetOpKind::Union => "union",
                    SetOpKind::Intersect => "intersect",
                    SetOpKind::Except => "except",
                };
                out.push(format!("{pad}• {name}{}", if *all { " all" } else { "" }));
                self.common(rel, &pad, out);
                child(left, out);
                child(right, out);
            }
            Rel::Series { .. } => {
                out.push(format!("{pad}• generate_series"));
                self.common(rel, &pad, out);
            }
            // Each CTE's plan once, then the query that reads it.
            Rel::With { ctes, body } => {
                out.push(format!(
                    "{pad}• with {}",
                    ctes.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                self.common(rel, &pad, out);
                for c in ctes {
                    out.push(format!("{pad}  cte {} (computed once):", c.name));
                    self.walk(&c.plan, depth + 2, out);
                }
                child(body, out);
            }
            Rel::CteScan(s) => {
                out.push(format!("{pad}• scan cte {}", s.name));
                self.common(rel, &pad, out);
            }
        }
    }
}

fn index_name(table: &TableDesc, index: IndexId) -> String {
    table
        .index(index)
        .map(|i| i.name.clone())
        .unwrap_or_default()
}

/// The names of an index's key columns, in key order.
fn scan_key_names(table: &TableDesc, index: IndexId) -> Vec<String> {
    table
        .index(index)
        .map(|i| {
            i.columns
                .iter()
                .filter_map(|c| table.column_by_id(*c).map(|c| c.name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// `algo (kind) on condition`, the condition over both inputs' columns.
fn join_line(algo: &str, kind: JoinKind, left: &Rel, right: &Rel, on: &Option<Scalar>) -> String {
    let mut names = column_names(left);
    names.extend(column_names(right));
    let on = on
        .as_ref()
        .map(|o| format!(" on {}", sql(o, &names)))
        .unwrap_or_default();
    format!("{algo} ({}){on}", kind_name(kind))
}

fn kind_name(kind: JoinKind) -> &'static str {
    match kind {
        JoinKind::Inner => "inner",
        JoinKind::Left => "left outer",
        JoinKind::Right => "right outer",
        JoinKind::Full => "full outer",
        JoinKind::Semi => "semi",
        JoinKind::Anti => "anti",
    }
}

fn aggregate(a: &AggCall, names: &[Name]) -> String {
    format!(
        "{}({}{})",
        a.name,
        if a.distinct { "DISTINCT " } else { "" },
        a.args
            .iter()
            .map(|e| sql(e, names))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `sum(x) OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND
/// CURRENT ROW)` (the frame only when it is not the default).
fn describe_window(
    f: &super::WindowFunc,
    partition: &[Scalar],
    order: &[super::SortKey],
    names: &[Name],
) -> String {
    use super::{FrameBound, FrameExclude, FrameUnits};
    let list = |v: &[Scalar]| v.iter().map(|e| sql(e, names)).collect::<Vec<_>>();
    let mut spec = Vec::new();
    if !partition.is_empty() {
        spec.push(format!("PARTITION BY {}", list(partition).join(", ")));
    }
    if !order.is_empty() {
        let keys: Vec<String> = order
            .iter()
            .map(|k| {
                format!(
                    "{}{}{}",
                    sql(&k.expr, names),
                    if k.descending { " DESC" } else { "" },
                    match (k.descending, k.nulls_first) {
                        (false, true) => " NULLS FIRST",
                        (true, false) => " NULLS LAST",
                        _ => "",
                    }
                )
            })
            .collect();
        spec.push(format!("ORDER BY {}", keys.join(", ")));
    }
    if f.frame != super::WindowFrame::default_frame() {
        let bound = |b: &FrameBound| match b {
            FrameBound::UnboundedPreceding => "UNBOUNDED PRECEDING".to_string(),
            FrameBound::Preceding(s) => format!("{} PRECEDING", sql(s, names)),
            FrameBound::CurrentRow => "CURRENT ROW".to_string(),
            FrameBound::Following(s) => format!("{} FOLLOWING", sql(s, names)),
            FrameBound::UnboundedFollowing => "UNBOUNDED FOLLOWING".to_string(),
        };
        let units = match f.frame.units {
            FrameUnits::Rows => "ROWS",
            FrameUnits::Range => "RANGE",
            FrameUnits::Groups => "GROUPS",
        };
        let exclude = match f.frame.exclude {
            FrameExclude::NoOthers => "",
            FrameExclude::CurrentRow => " EXCLUDE CURRENT ROW",
            FrameExclude::Group => " EXCLUDE GROUP",
            FrameExclude::Ties => " EXCLUDE TIES",
        };
        spec.push(format!(
            "{units} BETWEEN {} AND {}{exclude}",
            bound(&f.frame.start),
            bound(&f.frame.end)
        ));
    }
    let filter = f
        .filter
        .as_ref()
        .map(|e| format!(" FILTER (WHERE {})", sql(e, names)))
        .unwrap_or_default();
    format!(
        "{}({}){filter} OVER ({})",
        f.name,
        list(&f.args).join(", "),
        spec.join(" ")
    )
}

fn describe_aggregate(group: &[Scalar], aggs: &[AggCall], names: &[Name]) -> String {
    format!(
        "keys [{}] aggregates [{}]",
        group
            .iter()
            .map(|e| sql(e, names))
            .collect::<Vec<_>>()
            .join(", "),
        aggs.iter()
            .map(|a| aggregate(a, names))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The spans a scan reads, as `EXPLAIN` prints them.
pub fn scan_spans(scan: &super::Scan) -> String {
    let key = scan_key_names(&scan.table, scan.index);
    match &scan.constraint {
        Some(c) => describe_constraint(c, &key),
        None => "FULL SCAN".to_string(),
    }
}

fn describe_constraint(c: &IndexConstraint, key: &[String]) -> String {
    let mut parts = Vec::new();
    let fixed = c.prefixes.first().map_or(0, Vec::len);
    if c.prefixes.iter().any(|p| !p.is_empty()) {
        let alts: Vec<String> = c
            .prefixes
            .iter()
            .map(|p| {
                format!(
                    "/{}",
                    p.iter().map(|e| sql(e, &[])).collect::<Vec<_>>().join("/")
                )
            })
            .collect();
        parts.push(alts.join(", "));
    }
    let ranged = key.get(fixed).cloned().unwrap_or_default();
    if let Some((l, inclusive)) = &c.lower {
        parts.push(format!(
            "{ranged} {} {}",
            if *inclusive { ">=" } else { ">" },
            sql(l, &[])
        ));
    }
    if let Some((u, inclusive)) = &c.upper {
        parts.push(format!(
            "{ranged} {} {}",
            if *inclusive { "<=" } else { "<" },
            sql(u, &[])
        ));
    }
    parts.join(" ")
}

/// A scalar in SQL syntax, its columns named from `names`.
pub fn expr(s: &Scalar) -> String {
    sql(s, &[])
}

fn literal(value: &Value, ty: tardigrade_sqltypes::SqlType) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(_) | Value::Float(_) | Value::Decimal(_) => value.to_text(ty),
        other => format!("'{}'", other.to_text(ty).replace('\'', "''")),
    }
}

/// Renders an operand of a binary operator, in parentheses unless it is
/// atomic or the same associative operator.
fn operand(s: &Scalar, parent: BinOp, names: &[Name]) -> String {
    match s {
        Scalar::Binary { op, .. } if *op == parent && matches!(op, BinOp::And | BinOp::Or) => {
            sql(s, names)
        }
        Scalar::Binary { .. } | Scalar::InList { .. } | Scalar::IsNull { .. } => {
            format!("({})", sql(s, names))
        }
        Scalar::IsBool { .. } | Scalar::Unary { .. } => format!("({})", sql(s, names)),
        _ => sql(s, names),
    }
}

fn sql(s: &Scalar, names: &[Name]) -> String {
    crate::stack::grow(|| sql_inner(s, names))
}

fn sql_inner(s: &Scalar, names: &[Name]) -> String {
    let list = |args: &[Scalar]| {
        args.iter()
            .map(|a| sql(a, names))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match s {
        Scalar::Column { index, .. } => column(names, *index),
        Scalar::Outer { depth, index, .. } => OUTER_NAMES.with(|o| {
            let o = o.borrow();
            match o.len().checked_sub(*depth).and_then(|i| o.get(i)) {
                Some(names) if *index < names.len() => format!("outer.{}", column(names, *index)),
                _ => format!("outer{depth}.@{}", index + 1),
            }
        }),
        Scalar::Literal { value, ty } => literal(value, *ty),
        Scalar::Param { index, .. } => format!("${}", index + 1),
        Scalar::Binary {
            op, left, right, ..
        } => format!(
            "{} {} {}",
            operand(left, *op, names),
            op.symbol(),
            operand(right, *op, names)
        ),
        Scalar::Unary { op, expr: e, .. } => match op {
            UnOp::Not => format!("NOT {}", operand(e, BinOp::And, names)),
            UnOp::Neg => format!("-{}", operand(e, BinOp::Mul, names)),
            UnOp::Plus => format!("+{}", operand(e, BinOp::Mul, names)),
            UnOp::BitNot => format!("~{}", operand(e, BinOp::Mul, names)),
        },
        Scalar::Cast { expr: e, to } => format!("{}::{to}", operand(e, BinOp::Mul, names)),
        Scalar::Func { name, args, .. } => format!("{name}({})", list(args)),
        Scalar::Subquery(sub) => {
            let name = format!(
                "subquery#{}{}",
                sub.id,
                if sub.correlated { " (correlated)" } else { "" }
            );
            match &sub.kind {
                SubqueryKind::Scalar => name,
                SubqueryKind::Exists => format!("EXISTS {name}"),
                SubqueryKind::In { expr: e, .. } => {
                    format!("{} IN {name}", operand(e, BinOp::Eq, names))
                }
                SubqueryKind::Quantified { expr: e, op, all } => format!(
                    "{} {} {} {name}",
                    operand(e, *op, names),
                    op.symbol(),
                    if *all { "ALL" } else { "ANY" }
                ),
            }
        }
        Scalar::AggRef { index, .. } => format!("agg#{index}"),
        Scalar::SrfRef { index, .. } => format!("srf#{index}"),
        Scalar::WindowRef { index, .. } => format!("window#{index}"),
        Scalar::InList {
            expr: e,
            list: items,
            negated,
        } => format!(
            "{} {}IN ({})",
            operand(e, BinOp::Eq, names),
            if *negated { "NOT " } else { "" },
            list(items)
        ),
        Scalar::IsNull { expr: e, negated } => format!(
            "{} IS {}NULL",
            operand(e, BinOp::Eq, names),
            if *negated { "NOT " } else { "" }
        ),
        Scalar::IsBool {
            expr: e,
            value,
            negated,
        } => format!(
            "{} IS {}{}",
            operand(e, BinOp::Eq, names),
            if *negated { "NOT " } else { "" },
            value
        ),
        Scalar::Coalesce { args, .. } => format!("coalesce({})", list(args)),
        Scalar::Extreme { args, greatest, .. } => format!(
            "{}({})",
            if *greatest { "greatest" } else { "least" },
            list(args)
        ),
        Scalar::NullIf { left, right, .. } => {
            format!("nullif({}, {})", sql(left, names), sql(right, names))
        }
        Scalar::Case {
            operand: subject,
            whens,
            otherwise,
            ..
        } => format!(
            "CASE {}{}{}END",
            subject
                .as_ref()
                .map(|o| format!("{} ", sql(o, names)))
                .unwrap_or_default(),
            whens
                .iter()
                .map(|(w, t)| format!("WHEN {} THEN {} ", sql(w, names), sql(t, names)))
                .collect::<String>(),
            otherwise
                .as_ref()
                .map(|o| format!("ELSE {} ", sql(o, names)))
                .unwrap_or_default()
        ),
        Scalar::NextVal { sequence, .. } => format!("nextval('{sequence}')"),
        Scalar::UniqueRowId => "unique_rowid()".into(),
    }
}

/// The expressions an operator evaluates itself (not its inputs').
fn node_scalars(rel: &Rel) -> Vec<&Scalar> {
    let mut out: Vec<&Scalar> = Vec::new();
    match rel {
        Rel::Scan(s) => {
            if let Some(c) = &s.constraint {
                out.extend(c.prefixes.iter().flatten());
                out.extend(c.lower.iter().map(|(b, _)| b));
                out.extend(c.upper.iter().map(|(b, _)| b));
            }
        }
        Rel::Values { rows, .. } => out.extend(rows.iter().flatten()),
        Rel::Filter { predicate, .. } => out.push(predicate),
        Rel::Project { exprs, .. } => out.extend(exprs),
        Rel::ProjectSet { srfs, .. } => out.extend(srfs.iter().flat_map(|c| &c.args)),
        Rel::Window {
            partition,
            order,
            funcs,
            ..
        } => {
            out.extend(partition);
            out.extend(order.iter().map(|k| &k.expr));
            for f in funcs {
                out.extend(&f.args);
                out.extend(f.filter.iter());
            }
        }
        Rel::Aggregate { group, aggs, .. } | Rel::StreamAggregate { group, aggs, .. } => {
            out.extend(group);
            for a in aggs {
                out.extend(&a.args);
                out.extend(a.filter.iter());
            }
        }
        Rel::Join { on, .. } | Rel::MergeJoin { on, .. } | Rel::Lateral { on, .. } => {
            out.extend(on.iter())
        }
        Rel::LookupJoin(j) => {
            out.extend(j.on.iter());
            out.extend(j.right_filter.iter());
        }
        Rel::Sort { keys, .. } => out.extend(keys.iter().map(|k| &k.expr)),
        Rel::Limit { limit, offset, .. } => {
            out.extend(limit.iter());
            out.extend(offset.iter());
        }
        Rel::Series { start, stop, step } => {
            out.push(start);
            out.push(stop);
            out.extend(step.iter());
        }
        Rel::Distinct { .. }
        | Rel::SetOp { .. }
        | Rel::RecursiveUnion { .. }
        | Rel::WorkTable { .. }
        | Rel::With { .. }
        | Rel::CteScan(_) => {}
    }
    out
}

fn collect_subqueries(s: &Scalar, out: &mut Vec<super::Subquery>) {
    if let Scalar::Subquery(sub) = s {
        out.push((**sub).clone());
    }
    s.for_each_child(&mut |c| collect_subqueries(c, out));
}
