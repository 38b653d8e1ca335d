//! Binding a SELECT block: from its FROM clause to its output columns.
//!
//! Takes a [`Select`] (and the query's ORDER BY, which may name its output
//! columns) and gives a [`BoundQuery`]. The FROM clause comes from
//! [`super::from`] and WHERE becomes a filter over it; then the select list
//! is bound with the block's aggregates, window calls and set-returning
//! functions collected as placeholders ([`Scalar::AggRef`],
//! [`Scalar::WindowRef`], [`Scalar::SrfRef`]). GROUP BY (with the columns the
//! grouped primary keys determine), HAVING, ORDER BY and DISTINCT ON are
//! bound over the same input, and the block is planned bottom-up:
//! [`Rel::Aggregate`] (the placeholders become its columns), the window
//! operators ([`super::window`]), [`Rel::ProjectSet`], then the projection,
//! `DISTINCT [ON]` and the sort. Output column names ([`column_name_of`]) are
//! PostgreSQL's.

use std::collections::HashSet;

use sqlparser::ast::{self as ast, DataType, Expr, GroupByExpr, Select, SelectItem, SetExpr};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType};

use super::predicate::push_filter;
use super::query::sort_key;
use super::rewrite::rebuild_children;
use super::types::sql_type_of;
use super::window::{self, WindowBan};
use super::{Binder, BoundQuery, Scope, ScopeColumn, normalize, table_name};
use crate::plan::{AggCall, Rel, Scalar, SortKey};

impl Binder<'_> {
    pub(super) fn bind_select(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
    ) -> SqlResult<BoundQuery> {
        // The block's own window context: none until its select list.
        let saved_windows = self.windows.take();
        let saved_ban = std::mem::replace(&mut self.window_ban, WindowBan::Here);
        let saved_named = std::mem::replace(&mut self.named_windows, select.named_window.clone());
        let result = self.bind_select_block(select, order_by);
        self.windows = saved_windows;
        self.window_ban = saved_ban;
        self.named_windows = saved_named;
        result
    }

    fn bind_select_block(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
    ) -> SqlResult<BoundQuery> {
        if select.into.is_some() {
            return Err(SqlError::unsupported("SELECT INTO is not supported"));
        }
        // FROM
        let (mut rel, scope) = self.bind_from(&select.from)?;
        // WHERE
        if let Some(selection) = &select.selection {
            let saved = self.aggs.take();
            self.window_ban = WindowBan::In("WHERE");
            let predicate = self.bind_expr(selection, &scope);
            self.window_ban = WindowBan::Here;
            self.aggs = saved;
            let predicate = self.coerce_bool(predicate?, "WHERE")?;
            rel = push_filter(rel, predicate);
        }

        // Select list, with aggregates and window functions collected.
        self.windows = Some(Vec::new());
        let saved_aggs = self.aggs.replace(Vec::new());
        let result = self.bind_select_list(select, order_by, rel, &scope);
        self.aggs = saved_aggs;
        result
    }

    fn bind_select_list(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
        rel: Rel,
        scope: &Scope,
    ) -> SqlResult<BoundQuery> {
        let mut items: Vec<(Scalar, String)> = Vec::new();
        let saved_srfs = self.srfs.replace(Vec::new());
        let bound_items = self.bind_select_items(select, scope, &mut items);
        let srfs = std::mem::replace(&mut self.srfs, saved_srfs).unwrap_or_default();
        bound_items?;
        self.finish_select_list(select, order_by, rel, scope, items, srfs)
    }

    fn bind_select_items(
        &mut self,
        select: &Select,
        scope: &Scope,
        items: &mut Vec<(Scalar, String)>,
    ) -> SqlResult<()> {
        for item in &select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let s = self.bind_expr(e, scope)?;
                    items.push((s, column_name_of(e)));
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let s = self.bind_expr(expr, scope)?;
                    items.push((s, normalize(alias)));
                }
                SelectItem::Wildcard(_) => {
                    if scope.is_empty() {
                        return Err(SqlError::syntax(
                            "SELECT * with no tables specified is not valid",
                        ));
                    }
                    for (i, c) in scope.iter().enumerate() {
                        if !c.hidden {
                            items.push((Scalar::Column { index: i, ty: c.ty }, c.name.clone()));
                        }
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let qualifier = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => table_name(n),
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            e.to_string().to_lowercase()
                        }
                    };
                    let mut any = false;
                    for (i, c) in scope.iter().enumerate() {
                        if !c.hidden && c.table.as_deref() == Some(qualifier.as_str()) {
                            items.push((Scalar::Column { index: i, ty: c.ty }, c.name.clone()));
                            any = true;
                        }
                    }
                    if !any {
                        return Err(SqlError::new(
                            codes::UNDEFINED_TABLE,
                            format!("missing FROM-clause entry for table \"{qualifier}\""),
                        ));
                    }
                }
                SelectItem::ExprWithAliases { .. } => {
                    return Err(SqlError::unsupported("multiple aliases"));
                }
            }
        }
        Ok(())
    }

    /// The rest of a SELECT block once its select list is bound (`items`,
    /// and the set-returning functions they call): GROUP BY, HAVING, ORDER
    /// BY and DISTINCT ON bound over the block's input `rel`, then the plan
    /// above it: aggregation, window functions, set-returning functions
    /// and the output ([`SelectList`]).
    fn finish_select_list(
        &mut self,
        select: &Select,
        order_by: &[ast::OrderByExpr],
        rel: Rel,
        scope: &Scope,
        items: Vec<(Scalar, String)>,
        srfs: Vec<crate::plan::SrfCall>,
    ) -> SqlResult<BoundQuery> {
        let group = self.bind_group_by(select, &items, scope)?;

        let dependent = self.functionally_dependent(&group, scope);

        let having = match &select.having {
            Some(h) => {
                let s = self.bind_expr(h, scope)?;
                if window::contains_window(&s) {
                    return Err(window::ban_error(WindowBan::In("HAVING")));
                }
                Some(self.coerce_bool(s, "HAVING")?)
            }
            None => None,
        };

        // ORDER BY: output column references, or expressions over the input.
        let mut sort_exprs: Vec<(SortTarget, &ast::OrderByOptions)> = Vec::new();
        for ob in order_by {
            let target = self.sort_target(&ob.expr, &items, scope)?;
            sort_exprs.push((target, &ob.options));
        }

        let aggs = self.aggs.take().unwrap_or_default();
        self.aggs = Some(Vec::new());
        let windows = self.windows.take().unwrap_or_default();
        let aggregating = !aggs.is_empty() || !group.is_empty() || having.is_some();
        let distinct = matches!(select.distinct, Some(ast::Distinct::Distinct));
        // DISTINCT ON (exprs): output column references or expressions over
        // the input, as ORDER BY items are.
        let mut distinct_on: Option<Vec<SortTarget>> = None;
        if let Some(ast::Distinct::On(on)) = &select.distinct {
            let mut targets = Vec::with_capacity(on.len());
            for e in on {
                targets.push(self.sort_target(e, &items, scope)?);
            }
            distinct_on = Some(targets);
        }

        let mut list = SelectList {
            items,
            srfs,
            windows,
            sort_exprs,
            distinct_on,
        };
        let mut rel = rel;
        if aggregating {
            rel = list.plan_aggregation(rel, group, aggs, having, &dependent)?;
        }
        if !list.windows.is_empty() {
            rel = list.plan_windows(rel);
        }
        if !list.srfs.is_empty() {
            rel = list.plan_srfs(rel);
        }
        list.plan_output(rel, distinct)
    }

    /// The GROUP BY keys: output column references or expressions over the
    /// input, neither aggregates nor window functions.
    fn bind_group_by(
        &mut self,
        select: &Select,
        items: &[(Scalar, String)],
        scope: &Scope,
    ) -> SqlResult<Vec<Scalar>> {
        let mut group: Vec<Scalar> = Vec::new();
        match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(SqlError::unsupported(
                        "GROUP BY modifiers are not supported",
                    ));
                }
                for e in exprs {
                    let saved = self.aggs.take();
                    let bound = match self.select_item_ref(e, items, scope)? {
                        Some(s) => Ok(s),
                        None => self.bind_expr(e, scope),
                    };
                    self.aggs = saved;
                    let bound = bound?;
                    if contains_agg(&bound) {
                        return Err(SqlError::new(
                            codes::GROUPING_ERROR,
                            "aggregate functions are not allowed in GROUP BY",
                        ));
                    }
                    if window::contains_window(&bound) {
                        return Err(window::ban_error(WindowBan::In("GROUP BY")));
                    }
                    group.push(bound);
                }
            }
            GroupByExpr::All(_) => {
                return Err(SqlError::unsupported("GROUP BY ALL is not supported"));
            }
        }
        Ok(group)
    }

    /// An ORDER BY or DISTINCT ON item: an output column it names, or an
    /// expression over the input.
    fn sort_target(
        &mut self,
        e: &Expr,
        items: &[(Scalar, String)],
        scope: &Scope,
    ) -> SqlResult<SortTarget> {
        Ok(match self.output_ref_index(e, items, scope)? {
            Some(i) => SortTarget::Output(i),
            None => SortTarget::Expr(self.bind_expr(e, scope)?),
        })
    }

    /// PostgreSQL's functional dependency: when the GROUP BY holds every
    /// primary key column of a table of the FROM clause, that table's other
    /// columns may be selected too (`SELECT a.name, count(*) … GROUP BY
    /// a.id`, as Django writes it): the columns of such tables not in the
    /// GROUP BY, which become group keys when the query reads them (that
    /// changes no group). Tables are recognized by name, so an aliased table
    /// does not get this. TODO(issue 13): aliased tables (the scope would
    /// need to carry each column's table id).
    fn functionally_dependent(&self, group: &[Scalar], scope: &Scope) -> HashSet<usize> {
        let mut dependent = HashSet::new();
        let grouped: HashSet<usize> = group
            .iter()
            .filter_map(|g| match g {
                Scalar::Column { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        if grouped.is_empty() {
            return dependent;
        }
        let mut tables: Vec<&str> = scope.iter().filter_map(|c| c.table.as_deref()).collect();
        tables.sort_unstable();
        tables.dedup();
        for name in tables {
            let Some(desc) = self.tables.get(name) else {
                continue;
            };
            // The scope's columns under that name must be that table's
            // (an alias may name another table).
            let names: Vec<&str> = scope
                .iter()
                .filter(|c| c.table.as_deref() == Some(name))
                .map(|c| c.name.as_str())
                .collect();
            if desc.virtual_rows.is_some()
                || names.len() != desc.columns.len()
                || names.iter().zip(&desc.columns).any(|(a, b)| *a != b.name)
            {
                continue;
            }
            let position = |col_name: &str| {
                scope
                    .iter()
                    .position(|c| c.table.as_deref() == Some(name) && c.name == col_name)
            };
            let pk_grouped = desc.primary_index.columns.iter().all(|id| {
                desc.columns
                    .iter()
                    .find(|c| c.id == *id)
                    .and_then(|c| position(&c.name))
                    .is_some_and(|p| grouped.contains(&p))
            });
            if !pk_grouped {
                continue;
            }
            for (i, c) in scope.iter().enumerate() {
                if c.table.as_deref() == Some(name) && !grouped.contains(&i) {
                    dependent.insert(i);
                }
            }
        }
        dependent
    }

    /// `GROUP BY 1` / `GROUP BY alias`: the select item it names.
    fn select_item_ref(
        &mut self,
        e: &Expr,
        items: &[(Scalar, String)],
        scope: &Scope,
    ) -> SqlResult<Option<Scalar>> {
        Ok(self
            .output_ref_index(e, items, scope)?
            .map(|i| items[i].0.clone()))
    }

    /// An ORDER BY / GROUP BY item that names an output column: an ordinal, or a
    /// bare name that is an output alias (and, for ORDER BY as in PostgreSQL, takes
    /// precedence over input columns).
    fn output_ref_index(
        &mut self,
        e: &Expr,
        items: &[(Scalar, String)],
        _scope: &Scope,
    ) -> SqlResult<Option<usize>> {
        match e {
            Expr::Value(v) => {
                if let ast::Value::Number(n, _) = &v.value {
                    let pos: usize = n.parse().map_err(|_| {
                        SqlError::syntax(format!("non-integer constant in ORDER BY: {n}"))
                    })?;
                    if pos == 0 || pos > items.len() {
                        return Err(SqlError::new(
                            "42P10",
                            format!("ORDER BY position {pos} is not in select list"),
                        ));
                    }
                    return Ok(Some(pos - 1));
                }
                Ok(None)
            }
            Expr::Identifier(id) => {
                let name = normalize(id);
                let matches: Vec<usize> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, n))| *n == name)
                    .map(|(i, _)| i)
                    .collect();
                match matches.len() {
                    0 => Ok(None),
                    1 => Ok(Some(matches[0])),
                    _ => {
                        // Several items with this name: fine if they are the same expression.
                        let first = &items[matches[0]].0;
                        if matches.iter().all(|i| items[*i].0 == *first) {
                            Ok(Some(matches[0]))
                        } else {
                            Err(SqlError::new(
                                codes::AMBIGUOUS_COLUMN,
                                format!("ORDER BY \"{name}\" is ambiguous"),
                            ))
                        }
                    }
                }
            }
            _ => Ok(None),
        }
    }

    pub(super) fn bind_output_ref(&mut self, e: &Expr, scope: &Scope) -> SqlResult<Option<Scalar>> {
        let items: Vec<(Scalar, String)> = scope
            .iter()
            .enumerate()
            .map(|(i, c)| (Scalar::Column { index: i, ty: c.ty }, c.name.clone()))
            .collect();
        if let Some(i) = self.output_ref_index(e, &items, scope)? {
            return Ok(Some(items[i].0.clone()));
        }
        // Any expression over the output columns.
        let saved = self.aggs.take();
        let r = self.bind_expr(e, scope);
        self.aggs = saved;
        Ok(Some(r?))
    }
}

enum SortTarget {
    Output(usize),
    Expr(Scalar),
}

/// A bound select list on its way to the plan: its items and what reads
/// the block's input besides them (the set-returning functions' arguments,
/// the window calls, the ORDER BY and DISTINCT ON targets), each stage
/// above the input rewriting them to read its output.
struct SelectList<'o> {
    items: Vec<(Scalar, String)>,
    srfs: Vec<crate::plan::SrfCall>,
    windows: Vec<window::WindowCall>,
    sort_exprs: Vec<(SortTarget, &'o ast::OrderByOptions)>,
    distinct_on: Option<Vec<SortTarget>>,
}

impl SelectList<'_> {
    /// [`Rel::Aggregate`] over `rel` (and HAVING's filter above it), the
    /// expressions above rewritten to read its group keys and aggregates
    /// ([`rewrite_after_agg`]).
    fn plan_aggregation(
        &mut self,
        mut rel: Rel,
        mut group: Vec<Scalar>,
        aggs: Vec<AggCall>,
        mut having: Option<Scalar>,
        dependent: &HashSet<usize>,
    ) -> SqlResult<Rel> {
        // Columns the GROUP BY's primary keys determine, that the query
        // reads: group keys too.
        if !dependent.is_empty() {
            let mut used: Vec<(usize, SqlType)> = Vec::new();
            for (s, _) in &self.items {
                column_refs(s, &mut used);
            }
            if let Some(h) = &having {
                column_refs(h, &mut used);
            }
            for (t, _) in &self.sort_exprs {
                if let SortTarget::Expr(e) = t {
                    column_refs(e, &mut used);
                }
            }
            let mut added = HashSet::new();
            for (index, ty) in used {
                if dependent.contains(&index) && added.insert(index) {
                    group.push(Scalar::Column { index, ty });
                }
            }
        }
        let ngroup = group.len();
        let rewrite = |s: Scalar| rewrite_after_agg(s, &group, ngroup);
        for (s, _) in &mut self.items {
            *s = rewrite(std::mem::replace(s, Scalar::null()))?;
        }
        if let Some(h) = having.take() {
            having = Some(rewrite(h)?);
        }
        for c in &mut self.srfs {
            for a in &mut c.args {
                *a = rewrite(std::mem::replace(a, Scalar::null()))?;
            }
        }
        for w in &mut self.windows {
            w.try_map(&mut |s| rewrite(s))?;
        }
        for (t, _) in &mut self.sort_exprs {
            if let SortTarget::Expr(e) = t {
                *e = rewrite(std::mem::replace(e, Scalar::null()))?;
            }
        }
        for t in self.distinct_on.iter_mut().flatten() {
            if let SortTarget::Expr(e) = t {
                *e = rewrite(std::mem::replace(e, Scalar::null()))?;
            }
        }
        rel = Rel::Aggregate {
            input: Box::new(rel),
            group,
            aggs,
        };
        if let Some(h) = having {
            rel = Rel::Filter {
                input: Box::new(rel),
                predicate: h,
            };
        }
        Ok(rel)
    }

    /// Window functions: one window operator per partitioning and order,
    /// whose columns the projection (and the SRFs' arguments) read.
    fn plan_windows(&mut self, rel: Rel) -> Rel {
        let windows = std::mem::take(&mut self.windows);
        let (windowed, positions) = window::plan_windows(rel, windows);
        let resolve = |s: &mut Scalar| {
            *s = window::resolve_window_refs(std::mem::replace(s, Scalar::null()), &positions);
        };
        for (s, _) in &mut self.items {
            resolve(s);
        }
        for c in &mut self.srfs {
            c.args.iter_mut().for_each(resolve);
        }
        for (t, _) in &mut self.sort_exprs {
            if let SortTarget::Expr(e) = t {
                resolve(e);
            }
        }
        for t in self.distinct_on.iter_mut().flatten() {
            if let SortTarget::Expr(e) = t {
                resolve(e);
            }
        }
        windowed
    }

    /// Set-returning functions of the select list: their rows, then the
    /// projection reads them as columns.
    fn plan_srfs(&mut self, rel: Rel) -> Rel {
        let base = rel.width();
        for (s, _) in &mut self.items {
            *s = resolve_srf_refs(std::mem::replace(s, Scalar::null()), base);
        }
        Rel::ProjectSet {
            input: Box::new(rel),
            srfs: std::mem::take(&mut self.srfs),
        }
    }

    /// The top of the block: the projection of the select list (plus extra
    /// sort expressions), DISTINCT ON or DISTINCT, the sort, and the
    /// projection that drops the extra columns.
    fn plan_output(mut self, rel: Rel, distinct: bool) -> SqlResult<BoundQuery> {
        let visible = self.items.len();
        let (exprs, mut keys, on_columns) = self.output_columns(distinct)?;
        let width = exprs.len();
        let types: Vec<SqlType> = exprs.iter().map(Scalar::ty).collect();
        let mut rel = Rel::Project {
            input: Box::new(rel),
            exprs,
        };
        if !on_columns.is_empty() {
            rel = distinct_on_plan(rel, std::mem::take(&mut keys), &on_columns, &types, visible);
        }
        if distinct {
            rel = Rel::Distinct {
                input: Box::new(rel),
                key_len: visible,
            };
        }
        if !keys.is_empty() {
            rel = Rel::Sort {
                input: Box::new(rel),
                keys,
            };
        }
        let items = self.items;
        if width > visible && on_columns.is_empty() {
            let exprs = (0..visible)
                .map(|i| Scalar::Column {
                    index: i,
                    ty: items[i].0.ty(),
                })
                .collect();
            rel = Rel::Project {
                input: Box::new(rel),
                exprs,
            };
        }
        let scope = items
            .into_iter()
            .map(|(s, name)| ScopeColumn {
                table: None,
                name,
                ty: s.ty(),
                hidden: false,
            })
            .collect();
        Ok(BoundQuery { rel, scope })
    }

    /// The projected expressions (the select list, then the sort and
    /// DISTINCT ON expressions it does not hold), the sort keys over them
    /// and the DISTINCT ON columns. DISTINCT ON keeps the first row of each
    /// group in ORDER BY order, so the groups' expressions must lead the
    /// ORDER BY (in any order); they are sorted on when there is none.
    fn output_columns(
        &mut self,
        distinct: bool,
    ) -> SqlResult<(Vec<Scalar>, Vec<SortKey>, Vec<usize>)> {
        let mut exprs: Vec<Scalar> = self.items.iter().map(|(s, _)| s.clone()).collect();
        let mut keys = Vec::new();
        for (target, options) in std::mem::take(&mut self.sort_exprs) {
            let index = match target {
                SortTarget::Output(i) => i,
                SortTarget::Expr(e) => match exprs.iter().position(|x| *x == e) {
                    Some(i) => i,
                    None => {
                        if distinct {
                            return Err(SqlError::new(
                                "42P10",
                                "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                            ));
                        }
                        exprs.push(e);
                        exprs.len() - 1
                    }
                },
            };
            let ty = exprs[index].ty();
            keys.push(sort_key(Scalar::Column { index, ty }, options));
        }
        let mut on_columns: Vec<usize> = Vec::new();
        for target in self.distinct_on.take().into_iter().flatten() {
            let index = match target {
                SortTarget::Output(i) => i,
                SortTarget::Expr(e) => match exprs.iter().position(|x| *x == e) {
                    Some(i) => i,
                    None => {
                        exprs.push(e);
                        exprs.len() - 1
                    }
                },
            };
            on_columns.push(index);
        }
        if !on_columns.is_empty() {
            let mismatch = || {
                SqlError::new(
                    "42P10",
                    "SELECT DISTINCT ON expressions must match initial ORDER BY expressions",
                )
            };
            let mut skipped = false;
            let mut covered = Vec::new();
            for k in &keys {
                let Scalar::Column { index, .. } = k.expr else {
                    continue;
                };
                if on_columns.contains(&index) {
                    if skipped {
                        return Err(mismatch());
                    }
                    covered.push(index);
                } else {
                    skipped = true;
                }
            }
            for &index in &on_columns {
                if covered.contains(&index) {
                    continue;
                }
                if skipped {
                    return Err(mismatch());
                }
                covered.push(index);
                let ty = exprs[index].ty();
                keys.push(SortKey {
                    expr: Scalar::Column { index, ty },
                    descending: false,
                    nulls_first: false,
                });
            }
        }
        Ok((exprs, keys, on_columns))
    }
}

/// DISTINCT ON over the projection `rel` (of columns of `types`, the first
/// `visible` the select list's): sorted on `keys`, the group's columns
/// (`on_columns`) moved first for the DISTINCT (which keeps the first row
/// of each key), then the select list.
fn distinct_on_plan(
    rel: Rel,
    keys: Vec<SortKey>,
    on_columns: &[usize],
    types: &[SqlType],
    visible: usize,
) -> Rel {
    let rel = Rel::Sort {
        input: Box::new(rel),
        keys,
    };
    let k = on_columns.len();
    let mut exprs: Vec<Scalar> = on_columns
        .iter()
        .map(|&index| Scalar::Column {
            index,
            ty: types[index],
        })
        .collect();
    exprs.extend((0..visible).map(|index| Scalar::Column {
        index,
        ty: types[index],
    }));
    let rel = Rel::Distinct {
        input: Box::new(Rel::Project {
            input: Box::new(rel),
            exprs,
        }),
        key_len: k,
    };
    Rel::Project {
        input: Box::new(rel),
        exprs: (0..visible)
            .map(|i| Scalar::Column {
                index: k + i,
                ty: types[i],
            })
            .collect(),
    }
}

/// The input columns `s` reads (outside its subqueries).
fn column_refs(s: &Scalar, out: &mut Vec<(usize, SqlType)>) {
    if let Scalar::Column { index, ty } = s {
        out.push((*index, *ty));
    }
    s.for_each_child(&mut |c| column_refs(c, out));
}

fn contains_agg(s: &Scalar) -> bool {
    if matches!(s, Scalar::AggRef { .. }) {
        return true;
    }
    let mut any = false;
    s.for_each_child(&mut |c| any |= contains_agg(c));
    any
}

/// After aggregation, expressions see the group keys then the aggregates: group
/// expressions become columns, aggregate placeholders their output columns, and a
/// bare input column is an error.
fn rewrite_after_agg(s: Scalar, group_keys: &[Scalar], ngroup: usize) -> SqlResult<Scalar> {
    if let Some(i) = group_keys.iter().position(|g| *g == s) {
        return Ok(Scalar::Column {
            index: i,
            ty: s.ty(),
        });
    }
    match s {
        Scalar::AggRef { index, ty } => Ok(Scalar::Column {
            index: ngroup + index,
            ty,
        }),
        srf @ Scalar::SrfRef { .. } => Ok(srf),
        Scalar::Column { .. } => Err(SqlError::new(
            codes::GROUPING_ERROR,
            "column must appear in the GROUP BY clause or be used in an aggregate function",
        )),
        Scalar::Subquery(sub) if sub.correlated => Err(SqlError::unsupported(
            "correlated subqueries in an aggregating query's select list are not supported",
        )),
        other => {
            // Rewrite children (one level at a time, so group expressions match first).
            let mut err = None;
            let rebuilt = rebuild_children(other, &mut |c| match rewrite_after_agg(
                c, group_keys, ngroup,
            ) {
                Ok(c) => c,
                Err(e) => {
                    err.get_or_insert(e);
                    Scalar::null()
                }
            });
            match err {
                Some(e) => Err(e),
                None => Ok(rebuilt),
            }
        }
    }
}

/// `s` with each set-returning function placeholder replaced by its column
/// of the [`Rel::ProjectSet`] below (`base` is that node's input width).
fn resolve_srf_refs(s: Scalar, base: usize) -> Scalar {
    match s {
        Scalar::SrfRef { index, ty } => Scalar::Column {
            index: base + index,
            ty,
        },
        other => rebuild_children(other, &mut |c| resolve_srf_refs(c, base)),
    }
}

/// Output name of an unaliased select item, as PostgreSQL picks it.
pub fn column_name_of(e: &Expr) -> String {
    match e {
        Expr::Identifier(id) => normalize(id),
        Expr::CompoundIdentifier(ids) => ids
            .last()
            .map(normalize)
            .unwrap_or_else(|| "?column?".into()),
        Expr::Function(f) => table_name(&f.name),
        Expr::AtTimeZone { .. } => "timezone".into(),
        Expr::Overlay { .. } => "overlay".into(),
        // A cast keeps its operand's name when that is a real one (a
        // column, a function, CASE, ARRAY, a subquery), as PostgreSQL's
        // FigureColname does; a constant or another cast names it after the type.
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Cast { .. } | Expr::TypedString(_) | Expr::Value(_) | Expr::Interval(_) => {
                type_column_name(data_type)
            }
            inner => match column_name_of(inner) {
                n if n == "?column?" => type_column_name(data_type),
                n => n,
            },
        },
        Expr::Nested(inner) => column_name_of(inner),
        Expr::Case { .. } => "case".into(),
        Expr::Array(_) => "array".into(),
        // `t.col[1]` is named after `col`, the last field name.
        Expr::CompoundFieldAccess { root, access_chain } => access_chain
            .iter()
            .take_while(|a| matches!(a, ast::AccessExpr::Dot(Expr::Identifier(_))))
            .last()
            .and_then(|a| match a {
                ast::AccessExpr::Dot(Expr::Identifier(id)) => Some(normalize(id)),
                _ => None,
            })
            .unwrap_or_else(|| column_name_of(root)),
        Expr::Exists { .. } => "exists".into(),
        Expr::Extract { .. } => "extract".into(),
        Expr::Substring { shorthand, .. } => if *shorthand { "substr" } else { "substring" }.into(),
        Expr::Trim { trim_where, .. } => match trim_where {
            Some(ast::TrimWhereField::Leading) => "ltrim",
            Some(ast::TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }
        .into(),
        Expr::Interval(_) => "interval".into(),
        Expr::Position { .. } => "position".into(),
        Expr::Ceil { .. } => "ceil".into(),
        Expr::Floor { .. } => "floor".into(),
        Expr::Subquery(q) => match q.body.as_ref() {
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::UnnamedExpr(e)) => column_name_of(e),
                Some(SelectItem::ExprWithAlias { alias, .. }) => normalize(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        Expr::Value(v) if matches!(v.value, ast::Value::Boolean(_)) => "bool".into(),
        Expr::TypedString(ts) => type_column_name(&ts.data_type),
        _ => "?column?".into(),
    }
}

fn type_column_name(dt: &DataType) -> String {
    // PostgreSQL names an array cast after the element type (`'{1}'::int[]` is int4).
    if let DataType::Array(
        ast::ArrayElemTypeDef::SquareBracket(inner, _) | ast::ArrayElemTypeDef::Qualified(inner, _),
    ) = dt
    {
        return type_column_name(inner);
    }
    // the reg* types are oids here, but name their column after themselves
    match dt {
        DataType::Regclass => return "regclass".into(),
        DataType::Custom(n, _) if table_name(n).starts_with("reg") => return table_name(n),
        _ => {}
    }
    match sql_type_of(dt) {
        Ok(SqlType::Int2) => "int2".into(),
        Ok(SqlType::Int4) => "int4".into(),
        Ok(SqlType::Int8) => "int8".into(),
        Ok(SqlType::Float4) => "float4".into(),
        Ok(SqlType::Float8) => "float8".into(),
        Ok(SqlType::Decimal(_)) => "numeric".into(),
        Ok(SqlType::Bool) => "bool".into(),
        Ok(SqlType::Text) => "text".into(),
        Ok(SqlType::Varchar(_)) => "varchar".into(),
        Ok(SqlType::Char(_)) => "bpchar".into(),
        Ok(SqlType::Bytes) => "bytea".into(),
        Ok(SqlType::Date) => "date".into(),
        Ok(SqlType::Time) => "time".into(),
        Ok(SqlType::Timestamp) => "timestamp".into(),
        Ok(SqlType::TimestampTz) => "timestamptz".into(),
        Ok(SqlType::Interval) => "interval".into(),
        Ok(SqlType::Uuid) => "uuid".into(),
        Ok(SqlType::Jsonb) => "jsonb".into(),
        Ok(SqlType::Oid) => "oid".into(),
        Ok(SqlType::Inet) => "inet".into(),
        _ => "?column?".into(),
    }
}
