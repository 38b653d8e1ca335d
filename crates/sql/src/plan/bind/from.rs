//! Binding a FROM clause: the relations a query block reads and their scope.
//!
//! Takes the [`ast::TableWithJoins`] list of a SELECT (or an UPDATE's FROM)
//! and gives a plan with the [`Scope`] of its columns, which the rest of the
//! block binds against. A table name is a CTE of an enclosing WITH
//! ([`super::query`]), a view (its query bound in place), a virtual system
//! table (its rows as VALUES) or a table scan; a derived table is a query;
//! functions in FROM are `generate_series`, `unnest` and the select list's
//! set-returning functions ([`super::functions`]), optionally WITH
//! ORDINALITY. Comma lists and JOINs become [`Rel::Join`]s (ON, USING and
//! NATURAL conditions, the merged USING columns projected as PostgreSQL has
//! them); a LATERAL item, or a function, that reads the items before it
//! becomes a [`Rel::Lateral`].

use sqlparser::ast::{
    self as ast, Expr, FunctionArg, FunctionArgExpr, JoinConstraint, JoinOperator, ObjectName,
    Statement, TableFactor,
};
use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::functions::is_set_returning;
use super::predicate::equi_pairs;
use super::{Binder, Scope, ScopeColumn, find_column, normalize, object_name_parts, table_name};
use crate::catalog::TableDesc;
use crate::plan::{JoinKind, Rel, Scalar, Scan};

impl Binder<'_> {
    /// The bound expressions of the columns `table`'s indexes made for
    /// themselves, for [`Scan::index_exprs`]; `None` when it has none. They
    /// are bound apart from the statement (they read only the table's
    /// columns) and simplified as the statement's filters are, so that
    /// index selection can compare them with the filters structurally.
    pub(crate) fn index_expressions(
        &mut self,
        table: &TableDesc,
    ) -> SqlResult<Option<std::sync::Arc<[(usize, Scalar)]>>> {
        if table.columns.iter().all(|c| c.index_expression().is_none()) {
            return Ok(None);
        }
        let tables = super::TableMap::new();
        let mut binder = Binder::new(&tables, &[]);
        let scope = crate::plan::dml::table_scope(table, &table.name);
        let mut out = Vec::new();
        for (pos, c) in table.columns.iter().enumerate() {
            let Some(text) = c.index_expression() else {
                continue;
            };
            let expr = crate::plan::dml::parse_stored_expr(text)?;
            let bound = binder.bind_expr(&expr, &scope)?;
            out.push((pos, crate::plan::norm::simplify_scalar(bound)));
        }
        Ok(Some(out.into()))
    }

    pub(crate) fn bind_from(&mut self, from: &[ast::TableWithJoins]) -> SqlResult<(Rel, Scope)> {
        if from.is_empty() {
            return Ok((
                Rel::Values {
                    rows: vec![vec![]],
                    types: vec![],
                },
                Scope::new(),
            ));
        }
        let mut acc: Option<(Rel, Scope)> = None;
        for twj in from {
            // A LATERAL item (or a function) after a comma reads the items
            // before it: it joins them directly, and the item's own JOINs
            // apply to that join.
            let lateral_first = acc.is_some() && is_lateral(&twj.relation);
            let (mut rel, mut scope) = match acc.take() {
                Some((lrel, lscope)) if lateral_first => {
                    let (rrel, rscope, correlated) =
                        self.bind_lateral_factor(&twj.relation, &lscope)?;
                    let mut combined = lscope;
                    combined.extend(rscope);
                    (
                        lateral_join(JoinKind::Inner, lrel, rrel, None, correlated),
                        combined,
                    )
                }
                other => {
                    acc = other;
                    self.bind_table_factor(&twj.relation)?
                }
            };
            for join in &twj.joins {
                (rel, scope) = self.bind_join(rel, scope, join)?;
            }
            if lateral_first {
                acc = Some((rel, scope));
                continue;
            }
            acc = Some(match acc {
                None => (rel, scope),
                Some((lrel, mut lscope)) => {
                    lscope.extend(scope);
                    (
                        Rel::Join {
                            kind: JoinKind::Inner,
                            left: Box::new(lrel),
                            right: Box::new(rel),
                            on: None,
                            equi: vec![],
                        },
                        lscope,
                    )
                }
            });
        }
        acc.ok_or_else(|| SqlError::internal("empty FROM"))
    }

    /// One JOIN of a FROM item onto what is left of it (`rel`, with its
    /// `scope`): its condition (ON, USING, NATURAL or none) and the
    /// joined plan and scope.
    fn bind_join(&mut self, rel: Rel, scope: Scope, join: &ast::Join) -> SqlResult<(Rel, Scope)> {
        let (rrel, rscope, correlated) = if is_lateral(&join.relation) {
            self.bind_lateral_factor(&join.relation, &scope)?
        } else {
            let (r, s) = self.bind_table_factor(&join.relation)?;
            (r, s, false)
        };
        let (kind, constraint) = match &join.join_operator {
            JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, Some(c)),
            JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, Some(c)),
            JoinOperator::Right(c) | JoinOperator::RightOuter(c) => (JoinKind::Right, Some(c)),
            JoinOperator::FullOuter(c) => (JoinKind::Full, Some(c)),
            JoinOperator::CrossJoin(_) => (JoinKind::Inner, None),
            other => {
                return Err(SqlError::unsupported(
                    format!("unsupported join: {other:?}")
                        .chars()
                        .take(80)
                        .collect::<String>(),
                ));
            }
        };
        let left_width = scope.len();
        let mut combined: Scope = scope.clone();
        combined.extend(rscope.iter().cloned());
        // The column pairs USING/NATURAL merges.
        let mut merged: Vec<(usize, usize)> = Vec::new();
        let on = match constraint {
            None | Some(JoinConstraint::None) => None,
            Some(JoinConstraint::On(e)) => {
                let s = self.bind_expr(e, &combined)?;
                Some(self.coerce_bool(s, "JOIN/ON")?)
            }
            Some(JoinConstraint::Using(cols)) => {
                let names: Vec<String> = cols.iter().map(table_name).collect();
                Some(self.using_condition(
                    &names,
                    &scope,
                    &rscope,
                    &mut combined,
                    (left_width, &mut merged),
                )?)
            }
            Some(JoinConstraint::Natural) => {
                let names: Vec<String> = scope
                    .iter()
                    .filter(|c| !c.hidden && rscope.iter().any(|r| !r.hidden && r.name == c.name))
                    .map(|c| c.name.clone())
                    .collect();
                if names.is_empty() {
                    None
                } else {
                    Some(self.using_condition(
                        &names,
                        &scope,
                        &rscope,
                        &mut combined,
                        (left_width, &mut merged),
                    )?)
                }
            }
            Some(other) => {
                return Err(SqlError::unsupported(format!(
                    "unsupported join constraint {other:?}"
                )));
            }
        };
        if correlated && !matches!(kind, JoinKind::Inner | JoinKind::Left) {
            return Err(
                SqlError::new("42P10", "invalid reference to FROM-clause entry").with_detail(
                    "The combining JOIN type must be INNER or LEFT for a LATERAL reference.",
                ),
            );
        }
        let join = lateral_join(kind, rel, rrel, on, correlated);
        self.merge_using_columns(kind, join, combined, left_width, &merged)
    }

    /// A FROM item that may read the items before it (`LATERAL (…)`, or a
    /// function, which is implicitly lateral), bound with their columns
    /// (`left`) as the innermost enclosing scope; whether it reads them.
    fn bind_lateral_factor(
        &mut self,
        factor: &TableFactor,
        left: &Scope,
    ) -> SqlResult<(Rel, Scope, bool)> {
        self.outer.push(left.clone());
        self.correlated.push(false);
        let bound = self.bind_table_factor(factor);
        let correlated = self.correlated.pop().unwrap_or(false);
        self.outer.pop();
        let (rel, scope) = bound?;
        Ok((rel, scope, correlated))
    }

    /// The condition of USING (`names`) / NATURAL; the column pairs it
    /// merges go to `merged` (right ones from 0).
    fn using_condition(
        &mut self,
        names: &[String],
        left: &Scope,
        right: &Scope,
        combined: &mut Scope,
        (left_width, merged): (usize, &mut Vec<(usize, usize)>),
    ) -> SqlResult<Scalar> {
        let mut cond: Option<Scalar> = None;
        for name in names {
            let li = find_column(left, None, name)?.ok_or_else(|| {
                SqlError::undefined_column(name).with_detail("in the left table of USING")
            })?;
            let ri = find_column(right, None, name)?.ok_or_else(|| {
                SqlError::undefined_column(name).with_detail("in the right table of USING")
            })?;
            merged.push((li, ri));
            let l = Scalar::Column {
                index: li,
                ty: left[li].ty,
            };
            let r = Scalar::Column {
                index: left_width + ri,
                ty: right[ri].ty,
            };
            let eq = self.binary(BinOp::Eq, l, r)?;
            // Merged (see `merge_using_columns`): only `t.k` reaches it.
            combined[left_width + ri].hidden = true;
            cond = Some(match cond {
                None => eq,
                Some(c) => Scalar::Binary {
                    op: BinOp::And,
                    left: Box::new(c),
                    right: Box::new(eq),
                    ty: SqlType::Bool,
                },
            });
        }
        cond.ok_or_else(|| SqlError::syntax("USING needs columns"))
    }

    /// The columns a USING/NATURAL join merged (`merged`: pairs of left and
    /// right columns, right ones from 0), as PostgreSQL has them: each is
    /// the left column in an inner or left join, the right one in a right
    /// join, their COALESCE in a full join; `*` lists them first, and the
    /// joined tables' own columns stay reachable as `t.k` (hidden, still
    /// qualified: see [`find_column`]). An inner or left join whose USING
    /// columns lead the left table, of the same types on both sides, keeps
    /// its columns as they are (no projection between joins to reorder).
    fn merge_using_columns(
        &mut self,
        kind: JoinKind,
        join: Rel,
        mut scope: Scope,
        left_width: usize,
        merged: &[(usize, usize)],
    ) -> SqlResult<(Rel, Scope)> {
        let in_place = matches!(kind, JoinKind::Inner | JoinKind::Left)
            && merged
                .iter()
                .enumerate()
                .all(|(n, (li, ri))| *li == n && scope[*li].ty == scope[left_width + *ri].ty);
        if merged.is_empty() || in_place {
            return Ok((join, scope));
        }
        let mut exprs = Vec::with_capacity(merged.len() + scope.len());
        let mut front = Vec::with_capacity(merged.len());
        for &(li, ri) in merged {
            let ri = left_width + ri;
            let ty = ops::common_type(&[scope[li].ty, scope[ri].ty])?;
            let l = Scalar::Column {
                index: li,
                ty: scope[li].ty,
            };
            let r = Scalar::Column {
                index: ri,
                ty: scope[ri].ty,
            };
            let l = self.coerce(l, ty, "JOIN/USING")?;
            let r = self.coerce(r, ty, "JOIN/USING")?;
            exprs.push(match kind {
                JoinKind::Right => r,
                JoinKind::Full => Scalar::Coalesce {
                    args: vec![l, r],
                    ty,
                },
                _ => l,
            });
            let mut column = scope[li].clone();
            column.table = None;
            column.ty = ty;
            column.hidden = false;
            front.push(column);
            scope[li].hidden = true;
        }
        exprs.extend(
            scope
                .iter()
                .enumerate()
                .map(|(i, c)| Scalar::Column { index: i, ty: c.ty }),
        );
        front.extend(scope);
        Ok((
            Rel::Project {
                input: Box::new(join),
                exprs,
            },
            front,
        ))
    }

    fn bind_table_factor(&mut self, factor: &TableFactor) -> SqlResult<(Rel, Scope)> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_ordinality,
                ..
            } => {
                if let Some(args) = args {
                    if *with_ordinality {
                        return self.bind_function_with_ordinality(
                            name,
                            &args.args,
                            alias.as_ref(),
                        );
                    }
                    return self.bind_table_function(name, &args.args, alias.as_ref());
                }
                let tname = table_name(name);
                let parts = object_name_parts(name);
                // CTEs shadow tables.
                if parts.len() == 1
                    && let Some((rel, scope)) = self.cte_reference(&tname)
                {
                    return Ok(apply_alias(rel, scope, alias.as_ref(), &tname));
                }
                let desc = self.table(name)?;
                if let Some(rows) = &desc.virtual_rows {
                    return Ok(virtual_table(&desc, rows, &tname, alias.as_ref()));
                }
                if let Some(view) = &desc.view_query {
                    let statements = crate::parse::parse_statements(view)?;
                    let Some(Statement::Query(q)) = statements.into_iter().next() else {
                        return Err(SqlError::internal(format!("view \"{tname}\" has no query")));
                    };
                    // A view's query sees neither the enclosing queries'
                    // columns nor their CTEs.
                    let saved_outer = std::mem::take(&mut self.outer);
                    let saved_ctes = std::mem::take(&mut self.ctes);
                    let bound = self.bind_query(&q);
                    self.outer = saved_outer;
                    self.ctes = saved_ctes;
                    let bound = bound?;
                    let mut scope: Scope = bound.scope;
                    for (c, d) in scope.iter_mut().zip(&desc.columns) {
                        c.name = d.name.clone();
                    }
                    return Ok(apply_alias(bound.rel, scope, alias.as_ref(), &tname));
                }
                let scope = desc
                    .columns
                    .iter()
                    .map(|c| ScopeColumn {
                        table: Some(tname.clone()),
                        name: c.name.clone(),
                        ty: c.ty,
                        hidden: c.hidden,
                    })
                    .collect();
                let stats = self.stats.get(&desc.id).cloned();
                let index_exprs = self.index_expressions(&desc)?;
                let rel = Rel::Scan(Scan {
                    index: desc.primary_index.id,
                    table: desc,
                    constraint: None,
                    reverse: false,
                    limit: None,
                    covering: true,
                    stats,
                    reads: None,
                    project: None,
                    index_exprs,
                });
                Ok(apply_alias(rel, scope, alias.as_ref(), &tname))
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                ..
            } => {
                // A LATERAL subquery reaches here with the items before it
                // as its innermost enclosing scope (see `bind_from`).
                let _ = lateral;
                let saved_aggs = self.aggs.take();
                let bound = self.bind_query(subquery);
                self.aggs = saved_aggs;
                let bound = bound?;
                let name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or_default();
                Ok(apply_alias(bound.rel, bound.scope, alias.as_ref(), &name))
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                let (rel, scope) =
                    self.bind_from(std::slice::from_ref(table_with_joins.as_ref()))?;
                let name = alias
                    .as_ref()
                    .map(|a| normalize(&a.name))
                    .unwrap_or_default();
                if alias.is_some() {
                    Ok(apply_alias(rel, scope, alias.as_ref(), &name))
                } else {
                    Ok((rel, scope))
                }
            }
            TableFactor::Function {
                name, args, alias, ..
            } => {
                let args: Vec<FunctionArg> = args.clone();
                self.bind_table_function(name, &args, alias.as_ref())
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset: false,
                with_ordinality,
                ..
            } => self.bind_unnest(array_exprs, *with_ordinality, alias.as_ref()),
            other => Err(SqlError::unsupported(format!(
                "unsupported FROM item: {other}"
            ))),
        }
    }

    /// A function in FROM `WITH ORDINALITY`: its rows numbered from 1 in
    /// the order it returns them, in one more column (`ordinality`, or the
    /// alias's next column name). The function's own columns are named as
    /// without it.
    fn bind_function_with_ordinality(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let fname = table_name(name);
        if fname == "unnest" {
            return self.bind_unnest(&unnest_args(args)?, true, alias);
        }
        let bare = alias.map(|a| ast::TableAlias {
            columns: Vec::new(),
            ..a.clone()
        });
        let (rel, mut scope) = self.bind_table_function(name, args, bare.as_ref())?;
        let mut column = scope
            .first()
            .cloned()
            .ok_or_else(|| SqlError::internal("a function without columns"))?;
        column.name = "ordinality".into();
        column.ty = SqlType::Int8;
        column.hidden = false;
        scope.push(column);
        // No partition and no order: the window keeps its input's order
        // (its sort is stable).
        let rel = Rel::Window {
            input: Box::new(rel),
            partition: Vec::new(),
            order: Vec::new(),
            funcs: vec![crate::plan::WindowFunc {
                name: "row_number".into(),
                args: Vec::new(),
                arg_types: Vec::new(),
                is_agg: false,
                filter: None,
                frame: crate::plan::WindowFrame::default_frame(),
                ty: SqlType::Int8,
            }],
        };
        Ok(apply_alias(rel, scope, alias, &fname))
    }

    fn bind_table_function(
        &mut self,
        name: &ObjectName,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let fname = table_name(name);
        if fname == "unnest" {
            return self.bind_unnest(&unnest_args(args)?, false, alias);
        }
        if fname != "generate_series" && is_set_returning(&fname) {
            return self.bind_from_srf(&fname, args, alias);
        }
        if fname == "jsonb_each" || fname == "jsonb_each_text" {
            return self.bind_jsonb_each(&fname, args, alias);
        }
        if fname != "generate_series" {
            return Err(SqlError::undefined_function(format!(
                "function {fname} does not exist"
            )));
        }
        let scope = Scope::new();
        let mut bound = Vec::new();
        for a in args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    bound.push(self.bind_expr(e, &scope)?)
                }
                _ => {
                    return Err(SqlError::syntax(
                        "generate_series takes positional arguments",
                    ));
                }
            }
        }
        if bound.len() < 2 || bound.len() > 3 {
            return Err(SqlError::undefined_function(
                "function generate_series needs 2 or 3 arguments",
            ));
        }
        // The integer form streams its rows ([`Rel::Series`]); numeric and
        // timestamp series are the select list's function, over one row.
        if bound
            .iter()
            .any(|b| !b.ty().is_integer() && b.ty() != SqlType::Unknown)
        {
            return self.bind_from_srf(&fname, args, alias);
        }
        let mut coerced = Vec::new();
        for b in bound {
            coerced.push(self.coerce(b, SqlType::Int8, "generate_series")?);
        }
        let mut it = coerced.into_iter();
        let (Some(start), Some(stop)) = (it.next(), it.next()) else {
            return Err(SqlError::internal("generate_series arguments"));
        };
        let rel = Rel::Series {
            start,
            stop,
            step: it.next(),
        };
        // A function's single column is named after the function, or after the
        // alias when no column names are given (PostgreSQL).
        let column = alias
            .filter(|a| a.columns.is_empty())
            .map(|a| normalize(&a.name))
            .unwrap_or_else(|| fname.clone());
        let scope = vec![ScopeColumn {
            table: Some(fname.clone()),
            name: column,
            ty: SqlType::Int8,
            hidden: false,
        }];
        Ok(apply_alias(rel, scope, alias, &fname))
    }

    /// A set-returning function of a select list (`jsonb_array_elements`,
    /// `generate_subscripts`, …) in FROM: its rows, as a
    /// [`Rel::ProjectSet`] over one empty row. Its column is named as
    /// PostgreSQL names it: `value` for the `jsonb_array_elements`
    /// functions (their OUT parameter), else the alias or the function.
    fn bind_from_srf(
        &mut self,
        fname: &str,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let exprs = positional_args(fname, args)?;
        let (mut rel, types) = self.srfs_over_one_row(fname, &[fname], &exprs)?;
        let ty = types[0];
        let named = alias
            .map(|a| normalize(&a.name))
            .unwrap_or_else(|| fname.to_string());
        let mut scope = vec![ScopeColumn {
            table: Some(fname.to_string()),
            name: named.clone(),
            ty,
            hidden: false,
        }];
        if fname.starts_with("jsonb_array_elements") {
            // The column is `value`; the item's name reads it too (as a
            // whole-row reference to a one-column function does).
            scope[0].name = "value".into();
            scope.push(ScopeColumn {
                table: Some(fname.to_string()),
                name: named,
                ty,
                hidden: true,
            });
            let value = Scalar::Column { index: 0, ty };
            rel = Rel::Project {
                input: Box::new(rel),
                exprs: vec![value.clone(), value],
            };
        }
        Ok(apply_alias(rel, scope, alias, fname))
    }

    /// The set-returning functions `calls`, each over `args`, zipped in a
    /// [`Rel::ProjectSet`] over one empty row (the FROM form of
    /// `fname`), and the types of their columns.
    fn srfs_over_one_row(
        &mut self,
        fname: &str,
        calls: &[&str],
        args: &[Expr],
    ) -> SqlResult<(Rel, Vec<SqlType>)> {
        let saved = self.srfs.replace(Vec::new());
        let bound: SqlResult<Vec<Scalar>> = calls
            .iter()
            .map(|c| self.bind_srf_call(c, args, false, &Scope::new(), 0))
            .collect();
        let srfs = std::mem::replace(&mut self.srfs, saved).unwrap_or_default();
        let types = bound?.iter().map(Scalar::ty).collect();
        if srfs.iter().any(|c| c.args.iter().any(Scalar::needs_async)) {
            // TODO(issue 4): set-returning function arguments are evaluated
            // without computing their subqueries first.
            return Err(SqlError::unsupported(format!(
                "{fname} of an expression with a subquery is not supported in FROM"
            )));
        }
        let rel = Rel::ProjectSet {
            input: Box::new(Rel::Values {
                rows: vec![vec![]],
                types: vec![],
            }),
            srfs,
        };
        Ok((rel, types))
    }

    /// `jsonb_each(j)` / `jsonb_each_text(j)` in FROM: the rows `(key,
    /// value)` of a jsonb object, as two set-returning functions zipped in a
    /// [`Rel::ProjectSet`] (its keys, and its values in the same order).
    fn bind_jsonb_each(
        &mut self,
        fname: &str,
        args: &[FunctionArg],
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let exprs = positional_args(fname, args)?;
        if exprs.len() != 1 {
            return Err(SqlError::undefined_function(format!(
                "function {fname} takes one jsonb argument"
            )));
        }
        let values = if fname == "jsonb_each" {
            "jsonb_each_values"
        } else {
            "jsonb_each_text_values"
        };
        let (rel, types) = self.srfs_over_one_row(fname, &["jsonb_object_keys", values], &exprs)?;
        let column = |name: &str, ty| ScopeColumn {
            table: Some(fname.to_string()),
            name: name.to_string(),
            ty,
            hidden: false,
        };
        let scope = vec![column("key", types[0]), column("value", types[1])];
        Ok(apply_alias(rel, scope, alias, fname))
    }

    /// `unnest(array, …)` in FROM, as `arr[i]` for `i` in
    /// `generate_series(1, greatest(cardinality(arr), …))` (shorter arrays
    /// give NULLs, as in PostgreSQL; the arrays are evaluated once, before
    /// the rows; like generate_series they cannot read columns of other FROM
    /// items).
    fn bind_unnest(
        &mut self,
        args: &[Expr],
        ordinality: bool,
        alias: Option<&ast::TableAlias>,
    ) -> SqlResult<(Rel, Scope)> {
        let fname = "unnest".to_string();
        if args.is_empty() {
            return Err(SqlError::undefined_function(
                "function unnest() does not exist",
            ));
        }
        let mut arrays = Vec::with_capacity(args.len());
        for e in args {
            let arr = self.bind_expr(e, &Scope::new())?;
            // An int2vector unnests as the int2[] it is.
            let arr = if arr.ty() == SqlType::Int2Vector {
                Scalar::Cast {
                    expr: Box::new(arr),
                    to: SqlType::array_of(SqlType::Int2),
                }
            } else {
                arr
            };
            let Some(elem) = arr.ty().element() else {
                return Err(SqlError::undefined_function(format!(
                    "function unnest({}) does not exist",
                    arr.ty()
                )));
            };
            if arr.needs_async() {
                // TODO(issue 4): generate_series and unnest arguments are evaluated
                // without computing their subqueries first.
                return Err(SqlError::unsupported(
                    "unnest of an expression with a subquery is not supported",
                ));
            }
            arrays.push((arr, elem));
        }
        let mut lens = Vec::with_capacity(arrays.len());
        for (arr, _) in &arrays {
            let len = self.call("cardinality", vec![arr.clone()])?;
            lens.push(self.cast(len, SqlType::Int8)?);
        }
        let stop = if lens.len() == 1 {
            lens.remove(0)
        } else {
            Scalar::Extreme {
                args: lens,
                greatest: true,
                ty: SqlType::Int8,
            }
        };
        let series = Rel::Series {
            start: Scalar::literal(Value::Int(1), SqlType::Int8),
            stop,
            step: None,
        };
        let position = Scalar::Column {
            index: 0,
            ty: SqlType::Int8,
        };
        let single = arrays.len() == 1;
        let mut exprs = Vec::with_capacity(arrays.len() + 1);
        let mut scope = Vec::with_capacity(arrays.len() + 1);
        for (arr, elem) in arrays {
            exprs.push(Scalar::Func {
                name: "array_subscript".into(),
                args: vec![arr, position.clone()],
                ty: elem,
            });
            // A single array's column is named after the alias when no
            // column names are given (PostgreSQL).
            let column = alias
                .filter(|a| a.columns.is_empty() && single)
                .map(|a| normalize(&a.name))
                .unwrap_or_else(|| fname.clone());
            scope.push(ScopeColumn {
                table: Some(fname.clone()),
                name: column,
                ty: elem,
                hidden: false,
            });
        }
        if ordinality {
            exprs.push(position);
            scope.push(ScopeColumn {
                table: Some(fname.clone()),
                name: "ordinality".into(),
                ty: SqlType::Int8,
                hidden: false,
            });
        }
        let rel = Rel::Project {
            input: Box::new(series),
            exprs,
        };
        Ok(apply_alias(rel, scope, alias, &fname))
    }
}

/// `unnest`'s arguments, which are all positional.
fn unnest_args(args: &[FunctionArg]) -> SqlResult<Vec<Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
            _ => Err(SqlError::syntax("unnest takes positional arguments")),
        })
        .collect()
}

/// Whether a FROM item may read the items before it: `LATERAL (…)` and
/// functions (implicitly lateral, as in PostgreSQL).
fn is_lateral(factor: &TableFactor) -> bool {
    match factor {
        TableFactor::Derived { lateral, .. } => *lateral,
        TableFactor::Table { args, .. } => args.is_some(),
        TableFactor::Function { .. } | TableFactor::UNNEST { .. } => true,
        _ => false,
    }
}

/// The join of a FROM item with the items before it: a [`Rel::Lateral`]
/// when the right side reads the left row (`correlated`), else a plain join.
/// TODO(issue 13): decorrelate lateral subqueries whose correlation is a
/// filter (as `semi_join` does for EXISTS) instead of running them per row.
fn lateral_join(
    kind: JoinKind,
    left: Rel,
    right: Rel,
    on: Option<Scalar>,
    correlated: bool,
) -> Rel {
    if correlated {
        return Rel::Lateral {
            kind,
            left: Box::new(left),
            right: Box::new(right),
            on,
        };
    }
    let left_width = left.width();
    let equi = on
        .as_ref()
        .map(|o| equi_pairs(o, left_width))
        .unwrap_or_default();
    Rel::Join {
        kind,
        left: Box::new(left),
        right: Box::new(right),
        on,
        equi,
    }
}

fn apply_alias(
    rel: Rel,
    mut scope: Scope,
    alias: Option<&ast::TableAlias>,
    default_name: &str,
) -> (Rel, Scope) {
    let name = alias
        .map(|a| normalize(&a.name))
        .unwrap_or_else(|| default_name.to_string());
    for c in &mut scope {
        c.table = Some(name.clone());
    }
    if let Some(a) = alias {
        let mut visible = scope.iter_mut().filter(|c| !c.hidden);
        for col in &a.columns {
            if let Some(c) = visible.next() {
                c.name = normalize(&col.name);
            }
        }
    }
    (rel, scope)
}

/// A virtual system table's rows as a `VALUES` list under the table's name.
fn virtual_table(
    desc: &TableDesc,
    rows: &[Vec<Value>],
    tname: &str,
    alias: Option<&sqlparser::ast::TableAlias>,
) -> (Rel, Scope) {
    let types: Vec<SqlType> = desc.columns.iter().map(|c| c.ty).collect();
    let rows = rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&types)
                .map(|(v, ty)| Scalar::Literal {
                    value: v.clone(),
                    ty: *ty,
                })
                .collect()
        })
        .collect();
    let scope = desc
        .columns
        .iter()
        .map(|c| ScopeColumn {
            table: Some(tname.to_string()),
            name: c.name.clone(),
            ty: c.ty,
            hidden: false,
        })
        .collect();
    apply_alias(Rel::Values { rows, types }, scope, alias, tname)
}

/// A FROM function's arguments, which must be positional.
fn positional_args(fname: &str, args: &[FunctionArg]) -> SqlResult<Vec<Expr>> {
    args.iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e.clone()),
            _ => Err(SqlError::syntax(format!(
                "{fname} takes positional arguments"
            ))),
        })
        .collect()
}
