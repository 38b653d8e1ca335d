//! Planning: from the AST to the physical plan execution runs.
//!
//! The stages, each taking a [`Rel`] and giving one with the same output
//! columns:
//!
//! 1. [`bind`] resolves names against scopes, type-checks, folds constants
//!    and builds a [`Rel`] tree (scan, filter, project, aggregate, join,
//!    sort, limit, distinct, set operations, values, and [`Rel::With`] for
//!    the CTEs computed once, read by [`Rel::CteScan`]s) whose scalar
//!    expressions are [`Scalar`]s over column positions; [`dml`] binds
//!    INSERT, UPDATE and DELETE the same way ([`dml::BoundDml`]). Binding
//!    is a folder of its own stages, one file each: `bind/query.rs` (WITH,
//!    set operations, ORDER BY / LIMIT, VALUES), `select.rs` (select list,
//!    GROUP BY, aggregation, DISTINCT ON), `from.rs` (FROM and joins),
//!    `expr.rs` (expressions, one helper per kind), `cte.rs` (which CTEs
//!    are inlined and which computed once), `functions.rs`,
//!    `subquery.rs`, `window.rs`, `types.rs` (operators, coercion, casts),
//!    with the binder, its scopes and entry points in `bind/mod.rs`;
//!    `predicate.rs` (conjuncts, [`bind::push_filter`], equi-join keys) and
//!    `rewrite.rs` ([`bind::fold`]) serve the later stages too.
//! 2. [`norm`]: normalization rules, one file each.
//! 3. [`join_order`]: inner join trees reordered by cost, from
//!    [`cardinality`] estimates fed by table statistics: the alternatives
//!    (orders, commuted inputs, hash or lookup joins) are costed in a
//!    [`memo`] by the [`cost`] model.
//! 4. [`index`]: index selection and spans for each scan (and the driver
//!    of the stages: [`index::optimize`]).
//! 5. [`physical`]: lookup / merge / hash joins (costed by the same
//!    [`cost`] model), streaming aggregation.
//! 6. [`covering`]: index-only reads.
//! 7. [`prune`]: each operator's output narrowed to the columns something
//!    above reads (scans decode and carry only those).
//!
//! [`rules`] lets tests turn rules off; [`explain`] prints plans;
//! [`eval`] evaluates [`Scalar`]s (the binder folds constants with it, the
//! executor evaluates rows with it). Nothing here imports [`crate::exec`].
//! TODO(issue 12): index choice and merge joins as memo alternatives, and
//! column ids instead of positions.

pub mod bind;
pub mod cardinality;
pub mod cost;
pub mod covering;
pub mod dml;
pub mod eval;
pub mod explain;
pub mod index;
pub mod join_order;
pub mod memo;
pub mod norm;
pub mod physical;
pub mod prune;
pub mod rules;

use std::sync::Arc;

use tardigrade_sqltypes::ops::{BinOp, UnOp};
use tardigrade_sqltypes::{SqlType, Value};

use crate::catalog::{IndexId, TableDesc};

pub use bind::{Binder, describe};

pub use crate::batch::Row;

/// `rel` with `f` applied to the plan of every subquery in its expressions
/// (throughout the tree; the subqueries nested in those plans are `f`'s to
/// handle).
pub fn map_subquery_plans(rel: Rel, f: &mut dyn FnMut(Rel) -> Rel) -> Rel {
    let rel = rel.map_inputs(&mut |r| map_subquery_plans(r, f));
    map_own_subquery_plans(rel, f)
}

/// `rel` with `f` applied to the plan of every subquery in its own
/// expressions (not its inputs').
fn map_own_subquery_plans(rel: Rel, f: &mut dyn FnMut(Rel) -> Rel) -> Rel {
    rel.map_scalars(&mut |s| {
        if !s.needs_async() {
            return s;
        }
        // The rewrite never fails; on an error the expression stays as it was.
        let unchanged = s.clone();
        s.transform(&mut |e| {
            Ok(match e {
                Scalar::Subquery(mut sub) => {
                    sub.plan = Arc::new(f((*sub.plan).clone()));
                    Scalar::Subquery(sub)
                }
                other => other,
            })
        })
        .unwrap_or(unchanged)
    })
}

/// `rel` with every [`Rel::CteScan`] in it (in its inputs, CTE plans and
/// subqueries' plans, throughout) replaced by `f(scan)`; `f`'s result is
/// not searched again.
pub fn map_cte_scans(rel: Rel, f: &mut dyn FnMut(CteScan) -> Rel) -> Rel {
    match rel {
        Rel::CteScan(scan) => f(scan),
        other => {
            let rel = other.map_inputs(&mut |r| map_cte_scans(r, f));
            map_own_subquery_plans(rel, &mut |p| map_cte_scans(p, f))
        }
    }
}

/// Whether `pred` holds for some expression node anywhere in `rel`: in its
/// operators' expressions (not scans' constraints, which the optimizer
/// adds), its inputs, CTE plans and subqueries' plans, at any depth.
pub fn any_scalar(rel: &Rel, pred: &mut dyn FnMut(&Scalar) -> bool) -> bool {
    fn walk(rel: Rel, pred: &mut dyn FnMut(&Scalar) -> bool, found: &mut bool) -> Rel {
        let rel = rel.map_inputs(&mut |r| walk(r, pred, found));
        rel.map_scalars(&mut |s| {
            visit(&s, pred, found);
            s
        })
    }
    fn visit(s: &Scalar, pred: &mut dyn FnMut(&Scalar) -> bool, found: &mut bool) {
        if *found {
            return;
        }
        *found |= pred(s);
        if let Scalar::Subquery(sub) = s {
            walk((*sub.plan).clone(), pred, found);
        }
        s.for_each_child(&mut |c| visit(c, pred, found));
    }
    let mut found = false;
    walk(rel.clone(), pred, &mut found);
    found
}

/// Points every [`Rel::CteScan`] at the current plan of its CTE (the
/// plans change as the optimizer rewrites them; scans keep the one they
/// were bound with until this runs), so that estimates read through them
/// see the plan that runs.
pub fn sync_cte_scans(rel: Rel) -> Rel {
    let rel = rel.map_inputs(&mut sync_cte_scans);
    let rel = map_own_subquery_plans(rel, &mut sync_cte_scans);
    let Rel::With { ctes, body } = rel else {
        return rel;
    };
    let current: std::collections::HashMap<usize, Arc<Rel>> =
        ctes.iter().map(|c| (c.id, c.plan.clone())).collect();
    let mut point = |scan: CteScan| -> Rel {
        let source = current
            .get(&scan.id)
            .cloned()
            .unwrap_or_else(|| scan.source.clone());
        Rel::CteScan(CteScan { source, ..scan })
    };
    // A CTE may read the ones before it.
    let ctes = ctes
        .into_iter()
        .map(|c| Cte {
            plan: Arc::new(map_cte_scans(Arc::unwrap_or_clone(c.plan), &mut point)),
            ..c
        })
        .collect();
    Rel::With {
        ctes,
        body: Box::new(map_cte_scans(*body, &mut point)),
    }
}

/// A key span `[start, end)` of an index.
pub type KeySpan = (Vec<u8>, Vec<u8>);

/// A relational expression.
#[derive(Clone, Debug)]
pub enum Rel {
    /// Rows of a table read through one of its indexes, in table column layout.
    Scan(Scan),
    /// Literal rows.
    Values {
        rows: Vec<Vec<Scalar>>,
        types: Vec<SqlType>,
    },
    Filter {
        input: Box<Rel>,
        predicate: Scalar,
    },
    Project {
        input: Box<Rel>,
        exprs: Vec<Scalar>,
    },
    /// Output: the group keys, then one column per aggregate.
    Aggregate {
        input: Box<Rel>,
        group: Vec<Scalar>,
        aggs: Vec<AggCall>,
    },
    /// Output: the left columns then the right columns. `equi` are pairs of
    /// (left column, right column) the executor can hash on; `on` is the full
    /// condition (it includes the equalities).
    Join {
        kind: JoinKind,
        left: Box<Rel>,
        right: Box<Rel>,
        on: Option<Scalar>,
        equi: Vec<(usize, usize)>,
    },
    /// A join whose right side reads the left row (`LATERAL`, or a
    /// function in FROM over earlier items' columns): `right` runs again
    /// for each left row, its [`Scalar::Outer`] references at depth 1
    /// reading that row (the enclosing queries' rows are one level further
    /// out). `kind` is inner or left; `on` is over (left ++ right).
    /// Output: the left columns then the right columns.
    Lateral {
        kind: JoinKind,
        left: Box<Rel>,
        right: Box<Rel>,
        on: Option<Scalar>,
    },
    Sort {
        input: Box<Rel>,
        keys: Vec<SortKey>,
    },
    Limit {
        input: Box<Rel>,
        limit: Option<Scalar>,
        offset: Option<Scalar>,
    },
    /// Removes duplicate rows, keyed on the first `key_len` columns.
    Distinct {
        input: Box<Rel>,
        key_len: usize,
    },
    SetOp {
        op: SetOpKind,
        all: bool,
        left: Box<Rel>,
        right: Box<Rel>,
    },
    /// Each input row repeated for the rows of the set-returning functions
    /// of a select list (`SELECT id, unnest(tags) FROM t`), which run in
    /// lockstep per input row, the shorter ones padded with NULLs (as in
    /// PostgreSQL 10+); an input row for which every function returns no
    /// rows is dropped. Output: the input columns, then one per function.
    ProjectSet {
        input: Box<Rel>,
        srfs: Vec<SrfCall>,
    },
    /// Window functions over one window's partitions and order
    /// (`row_number() OVER (PARTITION BY a ORDER BY b)`): the input's rows
    /// (in partition and order order), each with one more column per
    /// function, computed over the row's partition (or frame of it).
    /// Output: the input columns, then one per function. A select list
    /// with windows of several partitionings or orders stacks one node per
    /// window.
    Window {
        input: Box<Rel>,
        partition: Vec<Scalar>,
        order: Vec<SortKey>,
        funcs: Vec<WindowFunc>,
    },
    /// `WITH RECURSIVE`: `base`'s rows, then `step`'s run again and again
    /// over the rows the previous run produced (the [`Rel::WorkTable`] with
    /// this `id`) until a run produces none; `UNION` (not ALL) drops rows
    /// seen before. Output: `base`'s columns.
    RecursiveUnion {
        id: usize,
        all: bool,
        base: Box<Rel>,
        step: Box<Rel>,
    },
    /// The rows of the current iteration of the [`Rel::RecursiveUnion`]
    /// with this `id` (the recursive CTE's name inside its own definition).
    WorkTable {
        id: usize,
        types: Vec<SqlType>,
    },
    /// Common table expressions computed once per execution of this node
    /// (a CTE read more than once, or written `AS MATERIALIZED`), then
    /// `body`, whose [`Rel::CteScan`]s (in its subqueries too) read their
    /// rows. Each CTE is computed when first read (never, if nothing
    /// reads it), in full, and kept until `body` ends; a later CTE may
    /// read an earlier one. The node sits where the `WITH` was written, so
    /// a CTE reads the same outer rows as the query around it. Output:
    /// `body`'s columns.
    With {
        ctes: Vec<Cte>,
        body: Box<Rel>,
    },
    /// The rows of the materialized CTE `id` of an enclosing [`Rel::With`].
    CteScan(CteScan),
    /// `generate_series(start, stop[, step])` over integers.
    Series {
        start: Scalar,
        stop: Scalar,
        step: Option<Scalar>,
    },
    /// A join that reads the right table by key lookups, a batch of left rows
    /// at a time (chosen by [`physical`]).
    LookupJoin(Box<LookupJoin>),
    /// A join of two inputs both ordered on `keys`, by merging them (chosen by
    /// [`physical`]). Output as for [`Rel::Join`], in the left input's order.
    MergeJoin {
        kind: JoinKind,
        left: Box<Rel>,
        right: Box<Rel>,
        keys: Vec<MergeKey>,
        /// The rest of the join condition (the key equalities are not repeated).
        on: Option<Scalar>,
    },
    /// An aggregation whose input arrives ordered on the group columns, so one
    /// group is built at a time (chosen by [`physical`]); `group` are plain
    /// input columns. Output as for [`Rel::Aggregate`].
    StreamAggregate {
        input: Box<Rel>,
        group: Vec<Scalar>,
        aggs: Vec<AggCall>,
    },
}

/// One CTE of a [`Rel::With`].
#[derive(Clone, Debug)]
pub struct Cte {
    /// Unique within the statement (its [`Rel::CteScan`]s name it).
    pub id: usize,
    pub name: String,
    pub plan: Arc<Rel>,
}

/// A read of a materialized CTE ([`Rel::CteScan`]).
#[derive(Clone, Debug)]
pub struct CteScan {
    pub id: usize,
    /// The CTE's name and column names (EXPLAIN).
    pub name: String,
    pub columns: Vec<String>,
    pub types: Vec<SqlType>,
    /// The CTE's plan, for estimates only ([`cardinality`] reads its rows
    /// and distinct values through it): refreshed from the [`Rel::With`]
    /// by [`sync_cte_scans`]; the executor reads the rows the `With`
    /// computed.
    pub source: Arc<Rel>,
}

/// A set-returning function called in a select list ([`Rel::ProjectSet`]):
/// `generate_series` (integers), `unnest`, `generate_subscripts`,
/// `jsonb_array_elements[_text]`, `jsonb_object_keys`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SrfCall {
    pub name: String,
    pub args: Vec<Scalar>,
    pub ty: SqlType,
}

/// One window function call of a [`Rel::Window`]: a ranking or value
/// function (`row_number`, `rank`, `lag`, `first_value`, …) or an aggregate
/// (`is_agg`, named as for [`AggCall`]) over the frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowFunc {
    pub name: String,
    pub args: Vec<Scalar>,
    pub arg_types: Vec<SqlType>,
    pub is_agg: bool,
    /// An aggregate's `FILTER (WHERE …)`.
    pub filter: Option<Scalar>,
    pub frame: WindowFrame,
    pub ty: SqlType,
}

/// A window frame: which rows of the partition, around the current row, an
/// aggregate or `first_value`/`last_value`/`nth_value` sees.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WindowFrame {
    pub units: FrameUnits,
    pub start: FrameBound,
    pub end: FrameBound,
    pub exclude: FrameExclude,
}

impl WindowFrame {
    /// PostgreSQL's default: `RANGE UNBOUNDED PRECEDING` (to the current
    /// row's last peer; the whole partition without ORDER BY).
    pub fn default_frame() -> WindowFrame {
        WindowFrame {
            units: FrameUnits::Range,
            start: FrameBound::UnboundedPreceding,
            end: FrameBound::CurrentRow,
            exclude: FrameExclude::NoOthers,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameUnits {
    Rows,
    Range,
    Groups,
}

/// A frame bound; offsets are evaluated once per execution (they hold no
/// column, only constants and parameters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FrameBound {
    UnboundedPreceding,
    Preceding(Scalar),
    CurrentRow,
    Following(Scalar),
    UnboundedFollowing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameExclude {
    NoOthers,
    CurrentRow,
    Group,
    Ties,
}

/// Inner, left, semi or anti join reading the right side from an index of
/// `table` by the values of the `keys` columns of each left row.
#[derive(Clone, Debug)]
pub struct LookupJoin {
    pub kind: JoinKind,
    pub left: Rel,
    pub table: Arc<TableDesc>,
    pub index: IndexId,
    /// The index holds every column of the table (no lookup of the primary row).
    pub covering: bool,
    /// Left columns whose values give the index's leading key columns, in
    /// index order.
    pub keys: Vec<usize>,
    /// Filter on the right table's rows (table layout), applied before joining.
    pub right_filter: Option<Scalar>,
    /// The rest of the join condition over (left ++ right) rows.
    pub on: Option<Scalar>,
    /// The right table's statistics, when there are any (estimates).
    pub stats: Option<Arc<crate::stats::TableStats>>,
    /// The right table's columns (table layout) the plan reads; see
    /// [`Scan::reads`].
    pub right_reads: Option<ColumnMask>,
    /// The right table's columns (by position) the join outputs, in this
    /// order, after `right_filter`; `None`: all, in table layout. `on` is
    /// over left ++ these. Set by [`prune`].
    pub right_project: Option<Arc<[usize]>>,
}

impl LookupJoin {
    /// Number of right columns in the join's rows.
    pub fn right_width(&self) -> usize {
        self.right_project
            .as_ref()
            .map_or(self.table.columns.len(), |p| p.len())
    }

    /// The table position of right output column `col`.
    pub fn right_table_position(&self, col: usize) -> usize {
        match &self.right_project {
            Some(p) => p.get(col).copied().unwrap_or(usize::MAX),
            None => col,
        }
    }
}

/// Which columns of a table (by position) a plan reads: the others are
/// left NULL when its rows are decoded, which saves decoding (a decimal
/// parse, a text allocation) for every row. Set by [`covering::mark`].
pub type ColumnMask = Arc<[bool]>;

/// One equality column pair of a merge join, and the direction both inputs
/// are ordered in on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeKey {
    pub left: usize,
    pub right: usize,
    pub descending: bool,
}

#[derive(Clone, Debug)]
pub struct Scan {
    pub table: Arc<TableDesc>,
    pub index: IndexId,
    /// The key constraint that narrows the scan; `None` reads the whole index.
    pub constraint: Option<IndexConstraint>,
    pub reverse: bool,
    /// Stop after this many rows (a LIMIT with nothing in between that filters).
    pub limit: Option<u64>,
    /// The index holds every column the query needs, so no lookup of the primary row.
    pub covering: bool,
    /// The table's statistics, attached by the optimizer when there are any.
    pub stats: Option<Arc<crate::stats::TableStats>>,
    /// The table columns the plan reads (always with the primary key's);
    /// `None`: every column.
    pub reads: Option<ColumnMask>,
    /// The table columns (by position) the scan outputs, in this order;
    /// `None`: every column, in table layout. Set by [`prune`] once the
    /// plan is final, so that operators above carry only what they use.
    pub project: Option<Arc<[usize]>>,
    /// The expressions of the columns the table's indexes made for
    /// themselves ([`crate::catalog::Generated::IndexExpression`]), bound
    /// over the table's columns: (table position, expression). Index
    /// selection finds them in filters (`lower(name) = 'x'` constrains an
    /// index on `lower(name)`) and checks that a filter implies a partial
    /// index's predicate before reading it. `None` for a table without any.
    pub index_exprs: Option<Arc<[(usize, Scalar)]>>,
}

impl Scan {
    /// The table position of output column `col`.
    pub fn table_position(&self, col: usize) -> usize {
        match &self.project {
            Some(p) => p.get(col).copied().unwrap_or(usize::MAX),
            None => col,
        }
    }

    /// The output column of table position `pos`, if the scan outputs it.
    pub fn output_of(&self, pos: usize) -> Option<usize> {
        match &self.project {
            Some(p) => p.iter().position(|&q| q == pos),
            None => (pos < self.table.columns.len()).then_some(pos),
        }
    }

    /// Number of output columns.
    pub fn width(&self) -> usize {
        self.project
            .as_ref()
            .map_or(self.table.columns.len(), |p| p.len())
    }
}

/// Which keys of an index a scan reads, as expressions evaluated when the
/// statement runs (so a prepared statement's `$1` narrows the scan too).
#[derive(Clone, Debug)]
pub struct IndexConstraint {
    /// Alternatives for the leading key columns, each fixed by equality
    /// (several for `IN` lists). Empty alternatives mean no equality prefix.
    pub prefixes: Vec<Vec<Scalar>>,
    /// A range on the key column after the prefix: (bound, inclusive).
    pub lower: Option<(Scalar, bool)>,
    pub upper: Option<(Scalar, bool)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    /// Rows of the left side that have a match (EXISTS / IN decorrelated).
    Semi,
    /// Rows of the left side that have no match.
    Anti,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOpKind {
    Union,
    Intersect,
    Except,
}

#[derive(Clone, Debug)]
pub struct SortKey {
    pub expr: Scalar,
    pub descending: bool,
    pub nulls_first: bool,
}

#[derive(Clone, Debug)]
pub struct AggCall {
    pub name: String,
    pub args: Vec<Scalar>,
    pub arg_types: Vec<SqlType>,
    pub distinct: bool,
    pub filter: Option<Scalar>,
    pub ty: SqlType,
}

/// How a subquery is used.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SubqueryKind {
    /// `(SELECT x …)`: one value (NULL when no row; error when more than one).
    Scalar,
    /// `EXISTS (…)`.
    Exists,
    /// `expr IN (SELECT …)` with the comparison type.
    In { expr: Box<Scalar>, cmp: BinOp },
    /// `expr op ANY/ALL (SELECT …)`.
    Quantified {
        expr: Box<Scalar>,
        op: BinOp,
        all: bool,
    },
}

#[derive(Clone, Debug)]
pub struct Subquery {
    /// Unique within the statement: the executor caches results under it.
    pub id: usize,
    pub plan: Arc<Rel>,
    pub kind: SubqueryKind,
    /// It reads columns of an enclosing query, so it is run once per outer row.
    pub correlated: bool,
    pub ty: SqlType,
}

/// Subqueries are the same when they are the same subquery of the
/// statement: ids are unique within it, and two subqueries written alike
/// are still run (and cached) apart.
impl PartialEq for Subquery {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.kind == other.kind
    }
}

impl Eq for Subquery {}

impl std::hash::Hash for Subquery {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
        self.kind.hash(state);
    }
}

/// A scalar expression over the columns of its input row.
///
/// Equality and hashing are structural (rules find common or repeated
/// expressions with them, and the memo will key expressions on them):
/// the same operator over equal children and types. Literals compare
/// their values as SQL does (`2.0` equals `2.00`), subqueries by id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    Column {
        index: usize,
        ty: SqlType,
    },
    /// A column of an enclosing query's current row; `depth` 1 is the nearest.
    Outer {
        depth: usize,
        index: usize,
        ty: SqlType,
    },
    Literal {
        value: Value,
        ty: SqlType,
    },
    Param {
        index: usize,
        ty: SqlType,
    },
    Binary {
        op: BinOp,
        left: Box<Scalar>,
        right: Box<Scalar>,
        ty: SqlType,
    },
    Unary {
        op: UnOp,
        expr: Box<Scalar>,
        ty: SqlType,
    },
    Cast {
        expr: Box<Scalar>,
        to: SqlType,
    },
    Func {
        name: String,
        args: Vec<Scalar>,
        ty: SqlType,
    },
    Case {
        operand: Option<Box<Scalar>>,
        whens: Vec<(Scalar, Scalar)>,
        otherwise: Option<Box<Scalar>>,
        ty: SqlType,
    },
    Coalesce {
        args: Vec<Scalar>,
        ty: SqlType,
    },
    /// GREATEST (`greatest` true) or LEAST.
    Extreme {
        args: Vec<Scalar>,
        greatest: bool,
        ty: SqlType,
    },
    NullIf {
        left: Box<Scalar>,
        right: Box<Scalar>,
        ty: SqlType,
    },
    IsNull {
        expr: Box<Scalar>,
        negated: bool,
    },
    /// `IS [NOT] TRUE/FALSE`.
    IsBool {
        expr: Box<Scalar>,
        value: bool,
        negated: bool,
    },
    InList {
        expr: Box<Scalar>,
        list: Vec<Scalar>,
        negated: bool,
    },
    Subquery(Box<Subquery>),
    /// `nextval('seq')`: runs outside the transaction, like PostgreSQL's.
    /// Each call in the statement has its own `id` (two calls in one row
    /// take two values).
    NextVal {
        sequence: String,
        id: usize,
    },
    /// `unique_rowid()`.
    UniqueRowId,
    /// Placeholder for an aggregate while binding its query block.
    AggRef {
        index: usize,
        ty: SqlType,
    },
    /// Placeholder for a set-returning function of a select list while
    /// binding it (it becomes a column of the [`Rel::ProjectSet`]).
    SrfRef {
        index: usize,
        ty: SqlType,
    },
    /// Placeholder for a window function of a select list or ORDER BY while
    /// binding it (it becomes a column of a [`Rel::Window`]).
    WindowRef {
        index: usize,
        ty: SqlType,
    },
}

impl Scalar {
    pub fn ty(&self) -> SqlType {
        match self {
            Scalar::Column { ty, .. }
            | Scalar::Outer { ty, .. }
            | Scalar::Literal { ty, .. }
            | Scalar::Param { ty, .. }
            | Scalar::Binary { ty, .. }
            | Scalar::Unary { ty, .. }
            | Scalar::Func { ty, .. }
            | Scalar::Case { ty, .. }
            | Scalar::Coalesce { ty, .. }
            | Scalar::Extreme { ty, .. }
            | Scalar::NullIf { ty, .. }
            | Scalar::AggRef { ty, .. }
            | Scalar::SrfRef { ty, .. }
            | Scalar::WindowRef { ty, .. } => *ty,
            Scalar::Cast { to, .. } => *to,
            Scalar::IsNull { .. } | Scalar::IsBool { .. } | Scalar::InList { .. } => SqlType::Bool,
            Scalar::Subquery(s) => s.ty,
            Scalar::NextVal { .. } | Scalar::UniqueRowId => SqlType::Int8,
        }
    }

    pub fn literal(value: Value, ty: SqlType) -> Scalar {
        Scalar::Literal { value, ty }
    }

    pub fn null() -> Scalar {
        Scalar::Literal {
            value: Value::Null,
            ty: SqlType::Unknown,
        }
    }

    /// Calls `f` on every direct child expression.
    pub fn for_each_child(&self, f: &mut dyn FnMut(&Scalar)) {
        match self {
            Scalar::Column { .. }
            | Scalar::Outer { .. }
            | Scalar::Literal { .. }
            | Scalar::Param { .. }
            | Scalar::NextVal { .. }
            | Scalar::UniqueRowId
            | Scalar::AggRef { .. }
            | Scalar::SrfRef { .. }
            | Scalar::WindowRef { .. } => {}
            Scalar::Binary { left, right, .. } | Scalar::NullIf { left, right, .. } => {
                f(left);
                f(right);
            }
            Scalar::Unary { expr, .. }
            | Scalar::Cast { expr, .. }
            | Scalar::IsNull { expr, .. }
            | Scalar::IsBool { expr, .. } => f(expr),
            Scalar::Func { args, .. }
            | Scalar::Coalesce { args, .. }
            | Scalar::Extreme { args, .. } => args.iter().for_each(f),
            Scalar::Case {
                operand,
                whens,
                otherwise,
                ..
            } => {
                if let Some(o) = operand {
                    f(o);
                }
                for (w, t) in whens {
                    f(w);
                    f(t);
                }
                if let Some(o) = otherwise {
                    f(o);
                }
            }
            Scalar::InList { expr, list, .. } => {
                f(expr);
                list.iter().for_each(f);
            }
            Scalar::Subquery(s) => match &s.kind {
                SubqueryKind::In { expr, .. } | SubqueryKind::Quantified { expr, .. } => f(expr),
                SubqueryKind::Scalar | SubqueryKind::Exists => {}
            },
        }
    }

    /// The direct child expressions.
    pub fn children(&self) -> Vec<&Scalar> {
        let mut out: Vec<&Scalar> = Vec::new();
        match self {
            Scalar::Binary { left, right, .. } | Scalar::NullIf { left, right, .. } => {
                out.push(left);
                out.push(right);
            }
            Scalar::Unary { expr, .. }
            | Scalar::Cast { expr, .. }
            | Scalar::IsNull { expr, .. }
            | Scalar::IsBool { expr, .. } => out.push(expr),
            Scalar::Func { args, .. }
            | Scalar::Coalesce { args, .. }
            | Scalar::Extreme { args, .. } => out.extend(args.iter()),
            Scalar::Case {
                operand,
                whens,
                otherwise,
                ..
            } => {
                out.extend(operand.as_deref());
                for (w, t) in whens {
                    out.push(w);
                    out.push(t);
                }
                out.extend(otherwise.as_deref());
            }
            Scalar::InList { expr, list, .. } => {
                out.push(expr);
                out.extend(list.iter());
            }
            Scalar::Subquery(s) => match &s.kind {
                SubqueryKind::In { expr, .. } | SubqueryKind::Quantified { expr, .. } => {
                    out.push(expr)
                }
                SubqueryKind::Scalar | SubqueryKind::Exists => {}
            },
            _ => {}
        }
        out
    }

    /// Rewrites the expression bottom-up with `f`.
    pub fn transform(
        self,
        f: &mut dyn FnMut(Scalar) -> Result<Scalar, tardigrade_sqltypes::SqlError>,
    ) -> Result<Scalar, tardigrade_sqltypes::SqlError> {
        crate::stack::grow(|| self.transform_node(f))
    }

    fn transform_node(
        self,
        f: &mut dyn FnMut(Scalar) -> Result<Scalar, tardigrade_sqltypes::SqlError>,
    ) -> Result<Scalar, tardigrade_sqltypes::SqlError> {
        let t = |s: Box<Scalar>,
                 f: &mut dyn FnMut(Scalar) -> Result<Scalar, tardigrade_sqltypes::SqlError>|
         -> Result<Box<Scalar>, tardigrade_sqltypes::SqlError> {
            Ok(Box::new((*s).transform(f)?))
        };
        let rebuilt = match self {
            Scalar::Binary {
                op,
                left,
                right,
                ty,
            } => Scalar::Binary {
                op,
                left: t(left, f)?,
                right: t(right, f)?,
                ty,
            },
            Scalar::NullIf { left, right, ty } => Scalar::NullIf {
                left: t(left, f)?,
                right: t(right, f)?,
                ty,
            },
            Scalar::Unary { op, expr, ty } => Scalar::Unary {
                op,
                expr: t(expr, f)?,
                ty,
            },
            Scalar::Cast { expr, to } => Scalar::Cast {
                expr: t(expr, f)?,
                to,
            },
            Scalar::IsNull { expr, negated } => Scalar::IsNull {
                expr: t(expr, f)?,
                negated,
            },
            Scalar::IsBool {
                expr,
                value,
                negated,
            } => Scalar::IsBool {
                expr: t(expr, f)?,
                value,
                negated,
            },
            Scalar::Func { name, args, ty } => Scalar::Func {
                name,
                args: transform_all(args, f)?,
                ty,
            },
            Scalar::Coalesce { args, ty } => Scalar::Coalesce {
                args: transform_all(args, f)?,
                ty,
            },
            Scalar::Extreme { args, greatest, ty } => Scalar::Extreme {
                args: transform_all(args, f)?,
                greatest,
                ty,
            },
            Scalar::Case {
                operand,
                whens,
                otherwise,
                ty,
            } => Scalar::Case {
                operand: match operand {
                    Some(o) => Some(t(o, f)?),
                    None => None,
                },
                whens: whens
                    .into_iter()
                    .map(|(w, r)| Ok((w.transform(f)?, r.transform(f)?)))
                    .collect::<Result<_, tardigrade_sqltypes::SqlError>>()?,
                otherwise: match otherwise {
                    Some(o) => Some(t(o, f)?),
                    None => None,
                },
                ty,
            },
            Scalar::InList {
                expr,
                list,
                negated,
            } => Scalar::InList {
                expr: t(expr, f)?,
                list: transform_all(list, f)?,
                negated,
            },
            Scalar::Subquery(mut s) => {
                s.kind = match s.kind {
                    SubqueryKind::In { expr, cmp } => SubqueryKind::In {
                        expr: t(expr, f)?,
                        cmp,
                    },
                    SubqueryKind::Quantified { expr, op, all } => SubqueryKind::Quantified {
                        expr: t(expr, f)?,
                        op,
                        all,
                    },
                    k => k,
                };
                Scalar::Subquery(s)
            }
            leaf => leaf,
        };
        f(rebuilt)
    }

    /// True if evaluating needs no row, no parameter and no subquery, and always
    /// gives the same value (so it can be folded at plan time).
    pub fn is_constant(&self) -> bool {
        let own = match self {
            Scalar::Column { .. }
            | Scalar::Outer { .. }
            | Scalar::Param { .. }
            | Scalar::Subquery(_)
            | Scalar::NextVal { .. }
            | Scalar::UniqueRowId
            | Scalar::AggRef { .. }
            | Scalar::SrfRef { .. }
            | Scalar::WindowRef { .. } => false,
            Scalar::Func { name, .. } => !is_volatile(name) && !reads_session(name),
            _ => true,
        };
        if !own {
            return false;
        }
        let mut all = true;
        self.for_each_child(&mut |c| all &= c.is_constant());
        all
    }

    /// True if the expression (outside nested subqueries' own rows) contains a
    /// subquery or another node the executor must compute asynchronously.
    pub fn needs_async(&self) -> bool {
        if matches!(self, Scalar::Subquery(_) | Scalar::NextVal { .. }) || is_sleep(self) {
            return true;
        }
        let mut any = false;
        self.for_each_child(&mut |c| any |= c.needs_async());
        any
    }
}

fn map_aggs(aggs: Vec<AggCall>, f: &mut dyn FnMut(Scalar) -> Scalar) -> Vec<AggCall> {
    aggs.into_iter()
        .map(|a| AggCall {
            args: a.args.into_iter().map(&mut *f).collect(),
            filter: a.filter.map(&mut *f),
            ..a
        })
        .collect()
}

fn map_frame_bound(b: FrameBound, f: &mut dyn FnMut(Scalar) -> Scalar) -> FrameBound {
    match b {
        FrameBound::Preceding(s) => FrameBound::Preceding(f(s)),
        FrameBound::Following(s) => FrameBound::Following(f(s)),
        other => other,
    }
}

fn map_window_funcs(
    funcs: Vec<WindowFunc>,
    f: &mut dyn FnMut(Scalar) -> Scalar,
) -> Vec<WindowFunc> {
    funcs
        .into_iter()
        .map(|w| WindowFunc {
            args: w.args.into_iter().map(&mut *f).collect(),
            filter: w.filter.map(&mut *f),
            frame: WindowFrame {
                start: map_frame_bound(w.frame.start, f),
                end: map_frame_bound(w.frame.end, f),
                ..w.frame
            },
            ..w
        })
        .collect()
}

fn transform_all(
    args: Vec<Scalar>,
    f: &mut dyn FnMut(Scalar) -> Result<Scalar, tardigrade_sqltypes::SqlError>,
) -> Result<Vec<Scalar>, tardigrade_sqltypes::SqlError> {
    args.into_iter().map(|a| a.transform(f)).collect()
}

/// Functions whose result changes between calls.
/// Functions whose value comes from the session (its database and user):
/// the same throughout a statement, but not known when planning, so never
/// folded (a plan may be cached and reused by another session).
pub fn reads_session(name: &str) -> bool {
    matches!(
        name,
        "current_database"
            | "current_catalog"
            | "current_user"
            | "session_user"
            | "user"
            | "current_setting"
            | "set_config"
            | "pg_get_serial_sequence"
    )
}

/// `pg_sleep(seconds)`: the executor waits (cancellably) before the row.
/// The advisory lock functions, which may wait too and need the session,
/// are run there as well.
/// The sequence functions ([`is_sequence_fn`]) too: they need the catalog
/// and the session.
pub fn is_sleep(s: &Scalar) -> bool {
    matches!(s, Scalar::Func { name, .. }
        if name == "pg_sleep" || is_advisory(name) || is_sequence_fn(name))
}

/// `currval`, `setval`, `lastval` and `pg_get_serial_sequence`: run by the
/// executor before the row, with the catalog and the session's sequence
/// values (`nextval` is [`Scalar::NextVal`]).
pub fn is_sequence_fn(name: &str) -> bool {
    matches!(
        name,
        "currval" | "setval" | "lastval" | "pg_get_serial_sequence"
    )
}

/// The advisory lock functions ([`crate::advisory`]).
pub fn is_advisory(name: &str) -> bool {
    matches!(
        name,
        "pg_advisory_lock"
            | "pg_advisory_xact_lock"
            | "pg_try_advisory_lock"
            | "pg_try_advisory_xact_lock"
            | "pg_advisory_unlock"
            | "pg_advisory_unlock_all"
    )
}

pub fn is_volatile(name: &str) -> bool {
    matches!(
        name,
        "pg_sleep"
            | "pg_advisory_lock"
            | "pg_advisory_xact_lock"
            | "pg_try_advisory_lock"
            | "pg_try_advisory_xact_lock"
            | "pg_advisory_unlock"
            | "pg_advisory_unlock_all"
            | "random"
            | "gen_random_uuid"
            | "now"
            | "follower_read_timestamp"
            | "cluster_logical_timestamp"
            | "current_timestamp"
            | "current_date"
            | "statement_timestamp"
            | "transaction_timestamp"
            | "clock_timestamp"
            | "localtimestamp"
            | "unique_rowid"
            | "currval"
            | "setval"
            | "lastval"
    )
}

impl Rel {
    /// Rebuilds the node with `f` applied to each of its inputs (the passes
    /// that recurse through here get room on the stack: [`crate::stack`]).
    /// `Project(exprs, input)`, or `input` itself when `exprs` are its
    /// columns in order (such a projection only copies rows).
    pub fn project(input: Rel, exprs: Vec<Scalar>) -> Rel {
        let identity = exprs.len() == input.width()
            && exprs
                .iter()
                .enumerate()
                .all(|(i, e)| matches!(e, Scalar::Column { index, .. } if *index == i));
        if identity {
            input
        } else {
            Rel::Project {
                input: Box::new(input),
                exprs,
            }
        }
    }

    pub fn map_inputs(self, f: &mut dyn FnMut(Rel) -> Rel) -> Rel {
        crate::stack::grow(|| self.map_inputs_node(f))
    }

    fn map_inputs_node(self, f: &mut dyn FnMut(Rel) -> Rel) -> Rel {
        let mut b = |r: Box<Rel>| Box::new(f(*r));
        match self {
            Rel::Filter { input, predicate } => Rel::Filter {
                input: b(input),
                predicate,
            },
            Rel::Project { input, exprs } => Rel::Project {
                input: b(input),
                exprs,
            },
            Rel::ProjectSet { input, srfs } => Rel::ProjectSet {
                input: b(input),
                srfs,
            },
            Rel::Window {
                input,
                partition,
                order,
                funcs,
            } => Rel::Window {
                input: b(input),
                partition,
                order,
                funcs,
            },
            Rel::RecursiveUnion {
                id,
                all,
                base,
                step,
            } => Rel::RecursiveUnion {
                id,
                all,
                base: b(base),
                step: b(step),
            },
            Rel::Aggregate { input, group, aggs } => Rel::Aggregate {
                input: b(input),
                group,
                aggs,
            },
            Rel::StreamAggregate { input, group, aggs } => Rel::StreamAggregate {
                input: b(input),
                group,
                aggs,
            },
            Rel::Join {
                kind,
                left,
                right,
                on,
                equi,
            } => Rel::Join {
                kind,
                left: b(left),
                right: b(right),
                on,
                equi,
            },
            Rel::MergeJoin {
                kind,
                left,
                right,
                keys,
                on,
            } => Rel::MergeJoin {
                kind,
                left: b(left),
                right: b(right),
                keys,
                on,
            },
            Rel::Lateral {
                kind,
                left,
                right,
                on,
            } => Rel::Lateral {
                kind,
                left: b(left),
                right: b(right),
                on,
            },
            Rel::LookupJoin(mut j) => {
                let left = std::mem::replace(
                    &mut j.left,
                    Rel::Values {
                        rows: Vec::new(),
                        types: Vec::new(),
                    },
                );
                j.left = *b(Box::new(left));
                Rel::LookupJoin(j)
            }
            Rel::Sort { input, keys } => Rel::Sort {
                input: b(input),
                keys,
            },
            Rel::Limit {
                input,
                limit,
                offset,
            } => Rel::Limit {
                input: b(input),
                limit,
                offset,
            },
            Rel::Distinct { input, key_len } => Rel::Distinct {
                input: b(input),
                key_len,
            },
            Rel::SetOp {
                op,
                all,
                left,
                right,
            } => Rel::SetOp {
                op,
                all,
                left: b(left),
                right: b(right),
            },
            Rel::With { ctes, body } => Rel::With {
                ctes: ctes
                    .into_iter()
                    .map(|c| Cte {
                        plan: Arc::new(*b(Box::new(Arc::unwrap_or_clone(c.plan)))),
                        ..c
                    })
                    .collect(),
                body: b(body),
            },
            leaf @ (Rel::Scan(_)
            | Rel::Values { .. }
            | Rel::Series { .. }
            | Rel::WorkTable { .. }
            | Rel::CteScan(_)) => leaf,
        }
    }

    /// Rewrites every scalar expression of this node (not its inputs') with `f`.
    pub fn map_scalars(self, f: &mut dyn FnMut(Scalar) -> Scalar) -> Rel {
        let all = |v: Vec<Scalar>, f: &mut dyn FnMut(Scalar) -> Scalar| -> Vec<Scalar> {
            v.into_iter().map(&mut *f).collect()
        };
        match self {
            Rel::Values { rows, types } => Rel::Values {
                rows: rows.into_iter().map(|r| all(r, f)).collect(),
                types,
            },
            Rel::Filter { input, predicate } => Rel::Filter {
                input,
                predicate: f(predicate),
            },
            Rel::Project { input, exprs } => Rel::Project {
                input,
                exprs: all(exprs, f),
            },
            Rel::ProjectSet { input, srfs } => Rel::ProjectSet {
                input,
                srfs: srfs
                    .into_iter()
                    .map(|c| SrfCall {
                        args: all(c.args, f),
                        ..c
                    })
                    .collect(),
            },
            Rel::Aggregate { input, group, aggs } => Rel::Aggregate {
                input,
                group: all(group, f),
                aggs: map_aggs(aggs, f),
            },
            Rel::Window {
                input,
                partition,
                order,
                funcs,
            } => Rel::Window {
                input,
                partition: all(partition, f),
                order: order
                    .into_iter()
                    .map(|k| SortKey {
                        expr: f(k.expr),
                        ..k
                    })
                    .collect(),
                funcs: map_window_funcs(funcs, f),
            },
            Rel::StreamAggregate { input, group, aggs } => Rel::StreamAggregate {
                input,
                group: all(group, f),
                aggs: map_aggs(aggs, f),
            },
            Rel::Join {
                kind,
                left,
                right,
                on,
                equi,
            } => Rel::Join {
                kind,
                left,
                right,
                on: on.map(&mut *f),
                equi,
            },
            Rel::MergeJoin {
                kind,
                left,
                right,
                keys,
                on,
            } => Rel::MergeJoin {
                kind,
                left,
                right,
                keys,
                on: on.map(&mut *f),
            },
            Rel::Lateral {
                kind,
                left,
                right,
                on,
            } => Rel::Lateral {
                kind,
                left,
                right,
                on: on.map(&mut *f),
            },
            Rel::LookupJoin(mut j) => {
                j.on = j.on.take().map(&mut *f);
                j.right_filter = j.right_filter.take().map(&mut *f);
                Rel::LookupJoin(j)
            }
            Rel::Sort { input, keys } => Rel::Sort {
                input,
                keys: keys
                    .into_iter()
                    .map(|k| SortKey {
                        expr: f(k.expr),
                        ..k
                    })
                    .collect(),
            },
            Rel::Limit {
                input,
                limit,
                offset,
            } => Rel::Limit {
                input,
                limit: limit.map(&mut *f),
                offset: offset.map(&mut *f),
            },
            Rel::Series { start, stop, step } => Rel::Series {
                start: f(start),
                stop: f(stop),
                step: step.map(&mut *f),
            },
            other @ (Rel::Scan(_)
            | Rel::Distinct { .. }
            | Rel::SetOp { .. }
            | Rel::RecursiveUnion { .. }
            | Rel::WorkTable { .. }
            | Rel::With { .. }
            | Rel::CteScan(_)) => other,
        }
    }

    /// Number of output columns.
    pub fn width(&self) -> usize {
        match self {
            Rel::Scan(s) => s.width(),
            Rel::Values { types, .. } => types.len(),
            Rel::Filter { input, .. }
            | Rel::Sort { input, .. }
            | Rel::Limit { input, .. }
            | Rel::Distinct { input, .. } => input.width(),
            Rel::Project { exprs, .. } => exprs.len(),
            Rel::ProjectSet { input, srfs } => input.width() + srfs.len(),
            Rel::Window { input, funcs, .. } => input.width() + funcs.len(),
            Rel::Aggregate { group, aggs, .. } | Rel::StreamAggregate { group, aggs, .. } => {
                group.len() + aggs.len()
            }
            Rel::Join {
                kind: JoinKind::Semi | JoinKind::Anti,
                left,
                ..
            } => left.width(),
            Rel::Join { left, right, .. } => left.width() + right.width(),
            Rel::MergeJoin {
                kind: JoinKind::Semi | JoinKind::Anti,
                left,
                ..
            } => left.width(),
            Rel::MergeJoin { left, right, .. } => left.width() + right.width(),
            Rel::Lateral { left, right, .. } => left.width() + right.width(),
            Rel::LookupJoin(j) => match j.kind {
                JoinKind::Semi | JoinKind::Anti => j.left.width(),
                _ => j.left.width() + j.right_width(),
            },
            Rel::SetOp { left, .. } => left.width(),
            Rel::RecursiveUnion { base, .. } => base.width(),
            Rel::WorkTable { types, .. } => types.len(),
            Rel::With { body, .. } => body.width(),
            Rel::CteScan(s) => s.types.len(),
            Rel::Series { .. } => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn col(index: usize) -> Scalar {
        Scalar::Column {
            index,
            ty: SqlType::Int8,
        }
    }

    fn gt(l: Scalar, r: Scalar) -> Scalar {
        Scalar::Binary {
            op: BinOp::Gt,
            left: Box::new(l),
            right: Box::new(r),
            ty: SqlType::Bool,
        }
    }

    fn int(v: i64) -> Scalar {
        Scalar::literal(Value::Int(v), SqlType::Int8)
    }

    #[test]
    fn scalars_are_equal_and_hash_alike_when_built_alike() {
        let a = gt(col(3), int(5));
        let b = gt(col(3), int(5));
        assert_eq!(a, b);
        let set: HashSet<Scalar> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1, "equal scalars hash alike");
        assert_ne!(a, gt(col(2), int(5)), "another column");
        assert_ne!(a, gt(col(3), int(6)), "another constant");
        assert_ne!(a, gt(int(5), col(3)), "operands swapped");
        let lt = Scalar::Binary {
            op: BinOp::Lt,
            left: Box::new(col(3)),
            right: Box::new(int(5)),
            ty: SqlType::Bool,
        };
        assert_ne!(a, lt, "another operator");
    }

    #[test]
    fn subqueries_are_equal_only_as_the_same_subquery() {
        let sub = |id: usize| {
            Scalar::Subquery(Box::new(Subquery {
                id,
                plan: Arc::new(Rel::Values {
                    rows: vec![],
                    types: vec![],
                }),
                kind: SubqueryKind::Exists,
                correlated: false,
                ty: SqlType::Bool,
            }))
        };
        assert_eq!(sub(1), sub(1));
        assert_ne!(sub(1), sub(2), "written alike, run apart");
    }
}
