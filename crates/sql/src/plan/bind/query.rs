//! Binding a query: the WITH clause, the body, and what orders and cuts it.
//!
//! Takes a [`Query`] (or a VALUES list) with the binder's scopes and gives a
//! [`BoundQuery`]: the plan and its output columns. The CTEs of a WITH clause
//! are bound first into a frame that the FROM items of the body see
//! ([`super::from`]): plain ones as placeholders that are inlined or read
//! from a [`Rel::With`] once the query is bound ([`super::cte`]),
//! `WITH RECURSIVE` ones as a [`Rel::RecursiveUnion`] over a
//! [`Rel::WorkTable`], data-modifying ones as
//! [`crate::plan::dml::BoundDml`]s the executor runs first. The body is a
//! SELECT block ([`super::select`]), VALUES, or a chain of set operations
//! planned as a balanced tree; ORDER BY over a set operation, LIMIT /
//! OFFSET and FETCH FIRST (WITH TIES, as a window over the sort) go above it.

use std::ops::ControlFlow;

use sqlparser::ast::{
    self as ast, Expr, OrderByKind, Query, SetExpr, SetOperator, SetQuantifier, Statement,
};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::rewrite::fold;
use super::{Binder, BoundQuery, Scope, ScopeColumn, normalize, table_name};
use crate::plan::{Rel, Scalar, SetOpKind, SortKey};

impl Binder<'_> {
    pub fn bind_query(&mut self, query: &Query) -> SqlResult<BoundQuery> {
        self.query_depth += 1;
        let bound = crate::stack::grow(|| self.bind_query_node(query));
        self.query_depth -= 1;
        bound
    }

    /// `WITH … INSERT / UPDATE / DELETE`: the statement bound with its CTEs
    /// in scope; `None` when `query` is a plain query.
    pub fn bind_query_dml(
        &mut self,
        query: &Query,
    ) -> SqlResult<Option<crate::plan::dml::BoundDml>> {
        let (SetExpr::Insert(statement) | SetExpr::Update(statement) | SetExpr::Delete(statement)) =
            query.body.as_ref()
        else {
            return Ok(None);
        };
        self.query_depth += 1;
        let mut dml = Ok(());
        if let Some(with) = &query.with {
            self.push_cte_frame();
            dml = self.bind_ctes(with);
        }
        let dml = dml.and_then(|()| crate::plan::dml::bind_dml(self, statement));
        if query.with.is_some() {
            self.drop_cte_frame();
        }
        self.query_depth -= 1;
        dml.map(Some)
    }

    /// The data-modifying CTEs bound so far (see `modifying`): the executor
    /// runs each once, in order, before the statement, and keeps its
    /// RETURNING rows as the work table of the id.
    pub fn take_modifying_ctes(&mut self) -> Vec<(usize, crate::plan::dml::BoundDml)> {
        std::mem::take(&mut self.modifying)
    }

    fn bind_query_node(&mut self, query: &Query) -> SqlResult<BoundQuery> {
        let Some(with) = &query.with else {
            return self.bind_query_body(query);
        };
        self.push_cte_frame();
        let result = self
            .bind_ctes(with)
            .and_then(|()| self.bind_query_body(query));
        match result {
            Ok(bound) => Ok(BoundQuery {
                rel: self.finish_cte_frame(bound.rel),
                scope: bound.scope,
            }),
            Err(e) => {
                self.drop_cte_frame();
                Err(e)
            }
        }
    }

    /// Binds the CTEs of `with` into the innermost CTE frame.
    fn bind_ctes(&mut self, with: &ast::With) -> SqlResult<()> {
        for cte in &with.cte_tables {
            let name = normalize(&cte.alias.name);
            if let SetExpr::Merge(_) = cte.query.body.as_ref() {
                return Err(SqlError::unsupported("MERGE in WITH is not supported"));
            }
            if let SetExpr::Insert(statement)
            | SetExpr::Update(statement)
            | SetExpr::Delete(statement) = cte.query.body.as_ref()
            {
                self.bind_modifying_cte(cte, &name, statement)?;
                continue;
            }
            if with.recursive
                && let Some(bound) = self.bind_recursive_cte(cte, &name)?
            {
                self.define_inlined_cte(name, bound.rel, bound.scope);
                continue;
            }
            let bound = self.bind_query(&cte.query)?;
            let mut scope = bound.scope;
            for (i, c) in cte.alias.columns.iter().enumerate() {
                if let Some(col) = scope.get_mut(i) {
                    col.name = normalize(&c.name);
                }
            }
            for col in &mut scope {
                col.table = Some(name.clone());
            }
            let materialized = cte.materialized.as_ref().map(|m| match m {
                ast::CteAsMaterialized::Materialized => true,
                ast::CteAsMaterialized::NotMaterialized => false,
            });
            self.define_cte(name, bound.rel, scope, materialized);
        }
        Ok(())
    }

    /// A data-modifying CTE (`x AS (INSERT … RETURNING …)`): bound here,
    /// run once by the executor before the statement (even when nothing
    /// reads it); its references read its RETURNING rows as a
    /// [`Rel::WorkTable`].
    // TODO(issue 13): the statement reads the tables after the CTEs wrote
    // them (in its transaction), where PostgreSQL's statement sees the
    // snapshot from before them: `WITH d AS (DELETE FROM t RETURNING *)
    // SELECT count(*) FROM t` counts the rows left here. A CTE without
    // RETURNING is not in scope (42P01 where PostgreSQL reports 42P10 when
    // it is read).
    fn bind_modifying_cte(
        &mut self,
        cte: &ast::Cte,
        name: &str,
        statement: &Statement,
    ) -> SqlResult<()> {
        if self.query_depth > 1 {
            return Err(SqlError::unsupported(
                "WITH clause containing a data-modifying statement must be at the top level",
            ));
        }
        let dml = crate::plan::dml::bind_dml(self, statement)?;
        let id = self.next_subquery;
        self.next_subquery += 1;
        let returning = dml.returning_scope();
        self.modifying.push((id, dml));
        let Some(returning) = returning else {
            return Ok(());
        };
        let mut scope: Scope = returning.into_iter().filter(|c| !c.hidden).collect();
        for (i, c) in cte.alias.columns.iter().enumerate() {
            if let Some(col) = scope.get_mut(i) {
                col.name = normalize(&c.name);
            }
        }
        for col in &mut scope {
            col.table = Some(name.to_string());
        }
        let types = scope.iter().map(|c| c.ty).collect();
        self.define_inlined_cte(name.to_string(), Rel::WorkTable { id, types }, scope);
        Ok(())
    }

    /// A CTE of `WITH RECURSIVE` whose query is `base UNION [ALL] step`
    /// with `step` reading the CTE itself: `None` when it is not of that
    /// shape (then it binds as a plain CTE). Its columns take the base's
    /// types (untyped ones as text), as in PostgreSQL.
    fn bind_recursive_cte(&mut self, cte: &ast::Cte, name: &str) -> SqlResult<Option<BoundQuery>> {
        let SetExpr::SetOperation {
            op: SetOperator::Union,
            set_quantifier,
            left,
            right,
        } = cte.query.body.as_ref()
        else {
            return Ok(None);
        };
        let mentions = |e: &SetExpr| {
            let mut found = false;
            let _ = sqlparser::ast::visit_relations(e, |n| {
                found |= table_name(n) == name;
                ControlFlow::<()>::Continue(())
            });
            found
        };
        if mentions(left) {
            return Err(SqlError::new(
                codes::INVALID_RECURSION,
                format!(
                    "recursive reference to query \"{name}\" must not appear within its non-recursive term"
                ),
            ));
        }
        if !mentions(right) {
            return Ok(None);
        }
        if cte.query.order_by.is_some() || cte.query.limit_clause.is_some() {
            return Err(SqlError::unsupported(
                "ORDER BY or LIMIT in a recursive query is not supported",
            ));
        }
        let base = self.bind_set_expr(left)?;
        let types: Vec<SqlType> = base
            .scope
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| {
                if c.ty == SqlType::Unknown {
                    SqlType::Text
                } else {
                    c.ty
                }
            })
            .collect();
        let mut scope: Scope = base
            .scope
            .iter()
            .filter(|c| !c.hidden)
            .zip(&types)
            .map(|(c, ty)| ScopeColumn {
                table: Some(name.to_string()),
                name: c.name.clone(),
                ty: *ty,
                hidden: false,
            })
            .collect();
        for (i, c) in cte.alias.columns.iter().enumerate() {
            if let Some(col) = scope.get_mut(i) {
                col.name = normalize(&c.name);
            }
        }
        let id = self.next_subquery;
        self.next_subquery += 1;
        self.define_inlined_cte(
            name.to_string(),
            Rel::WorkTable {
                id,
                types: types.clone(),
            },
            scope.clone(),
        );
        let step = self.bind_set_expr(right)?;
        let step_width = step.scope.iter().filter(|c| !c.hidden).count();
        if step_width != types.len() {
            return Err(SqlError::syntax(
                "each UNION query must have the same number of columns",
            ));
        }
        let rel = Rel::RecursiveUnion {
            id,
            all: matches!(set_quantifier, SetQuantifier::All),
            base: Box::new(project_visible_as(base.rel, &base.scope, &types)),
            step: Box::new(project_visible_as(step.rel, &step.scope, &types)),
        };
        Ok(Some(BoundQuery { rel, scope }))
    }

    fn bind_query_body(&mut self, query: &Query) -> SqlResult<BoundQuery> {
        let order_by: &[ast::OrderByExpr] = match &query.order_by {
            Some(ob) => match &ob.kind {
                OrderByKind::Expressions(e) => e,
                OrderByKind::All(_) => {
                    return Err(SqlError::unsupported("ORDER BY ALL is not supported"));
                }
            },
            None => &[],
        };
        let (limit, offset) = match &query.limit_clause {
            None => (None, None),
            Some(ast::LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if !limit_by.is_empty() {
                    return Err(SqlError::unsupported("LIMIT BY is not supported"));
                }
                (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
                (Some(limit.clone()), Some(offset.clone()))
            }
        };
        let with_ties = query.fetch.as_ref().is_some_and(|f| f.with_ties);
        if with_ties && order_by.is_empty() {
            return Err(SqlError::syntax(
                "WITH TIES cannot be specified without ORDER BY clause",
            ));
        }
        let limit = match &query.fetch {
            // Not PostgreSQL syntax.
            Some(fetch) if fetch.percent => {
                return Err(SqlError::syntax("syntax error at or near \"PERCENT\""));
            }
            // `FETCH FIRST ROW ONLY`: one row.
            Some(fetch) => Some(
                fetch
                    .quantity
                    .clone()
                    .unwrap_or_else(|| Expr::value(ast::Value::Number("1".into(), false))),
            ),
            None => limit,
        };
        let mut bound = match query.body.as_ref() {
            SetExpr::Select(select) => self.bind_select(select, order_by)?,
            body => {
                let mut bound = self.bind_set_expr(body)?;
                if !order_by.is_empty() {
                    let mut keys = Vec::new();
                    for ob in order_by {
                        let expr =
                            self.bind_output_ref(&ob.expr, &bound.scope)?
                                .ok_or_else(|| {
                                    SqlError::unsupported(
                                        "ORDER BY on a set operation must name an output column",
                                    )
                                })?;
                        keys.push(sort_key(expr, &ob.options));
                    }
                    bound.rel = Rel::Sort {
                        input: Box::new(bound.rel),
                        keys,
                    };
                }
                bound
            }
        };
        if limit.is_some() || offset.is_some() {
            let scope = Scope::new();
            let limit = match limit {
                Some(Expr::Value(v)) if matches!(v.value, ast::Value::Null) => None,
                Some(e) => Some(self.bind_int_expr(&e, &scope)?),
                None => None,
            };
            let offset = match offset {
                Some(e) => Some(self.bind_int_expr(&e, &scope)?),
                None => None,
            };
            if with_ties {
                let Some(limit) = limit else {
                    return Err(SqlError::new(
                        "2201W",
                        "row count cannot be null in FETCH FIRST ... WITH TIES clause",
                    ));
                };
                bound.rel = self.fetch_with_ties(bound.rel, limit, offset)?;
                return Ok(bound);
            }
            bound.rel = Rel::Limit {
                input: Box::new(bound.rel),
                limit,
                offset,
            };
        }
        Ok(bound)
    }

    /// `OFFSET m FETCH FIRST n ROWS WITH TIES` over a sorted query (`Sort`,
    /// under the projection that drops extra sort columns): the rows past
    /// the first `m` whose rank in the ORDER BY is at most `m + n` (the
    /// first `n` and the peers of the last of them), as a window over the
    /// sort's input. A `Limit` with no limit above checks that neither
    /// count is negative (2201W / 2201X), as PostgreSQL does.
    fn fetch_with_ties(
        &mut self,
        rel: Rel,
        limit: Scalar,
        offset: Option<Scalar>,
    ) -> SqlResult<Rel> {
        if matches!(&limit, Scalar::Literal { value, .. } if value.is_null()) {
            return Err(SqlError::new(
                "2201W",
                "row count cannot be null in FETCH FIRST ... WITH TIES clause",
            ));
        }
        let (trim, sorted) = match rel {
            Rel::Project { input, exprs } if matches!(*input, Rel::Sort { .. }) => {
                (Some(exprs), *input)
            }
            sorted @ Rel::Sort { .. } => (None, sorted),
            _ => {
                // TODO(issue 13): WITH TIES over DISTINCT ON.
                return Err(SqlError::unsupported(
                    "FETCH FIRST … WITH TIES is not supported in this query",
                ));
            }
        };
        let Rel::Sort { input, keys } = sorted else {
            return Err(SqlError::internal("WITH TIES: no sort"));
        };
        let width = input.width();
        let types = crate::plan::join_order::output_types(&input);
        let ranking = |name: &str| crate::plan::WindowFunc {
            name: name.to_string(),
            args: Vec::new(),
            arg_types: Vec::new(),
            is_agg: false,
            filter: None,
            frame: crate::plan::WindowFrame::default_frame(),
            ty: SqlType::Int8,
        };
        let windowed = Rel::Window {
            input,
            partition: Vec::new(),
            order: keys.clone(),
            funcs: vec![ranking("rank"), ranking("row_number")],
        };
        let rank = Scalar::Column {
            index: width,
            ty: SqlType::Int8,
        };
        let row_number = Scalar::Column {
            index: width + 1,
            ty: SqlType::Int8,
        };
        let last = match &offset {
            Some(o) => self.binary(BinOp::Add, limit.clone(), o.clone())?,
            None => limit.clone(),
        };
        let mut predicate = self.binary(BinOp::LtEq, rank, last)?;
        if let Some(o) = &offset {
            let past = self.binary(BinOp::Gt, row_number, o.clone())?;
            predicate = self.binary(BinOp::And, predicate, past)?;
        }
        let filtered = Rel::Sort {
            input: Box::new(Rel::Filter {
                input: Box::new(windowed),
                predicate,
            }),
            keys,
        };
        let exprs = trim.unwrap_or_else(|| {
            types
                .iter()
                .enumerate()
                .map(|(index, ty)| Scalar::Column { index, ty: *ty })
                .collect()
        });
        let negative_only = |n: Scalar| -> SqlResult<Scalar> {
            let zero = Scalar::literal(Value::Int(0), SqlType::Int8);
            Ok(fold(Scalar::Case {
                operand: None,
                whens: vec![(
                    Scalar::Binary {
                        op: BinOp::Lt,
                        left: Box::new(n.clone()),
                        right: Box::new(zero),
                        ty: SqlType::Bool,
                    },
                    n,
                )],
                otherwise: None,
                ty: SqlType::Int8,
            }))
        };
        Ok(Rel::Limit {
            input: Box::new(Rel::Project {
                input: Box::new(filtered),
                exprs,
            }),
            limit: Some(negative_only(limit)?),
            offset: offset.map(negative_only).transpose()?,
        })
    }

    fn bind_int_expr(&mut self, e: &Expr, scope: &Scope) -> SqlResult<Scalar> {
        let s = self.bind_expr(e, scope)?;
        Ok(fold(self.coerce(s, SqlType::Int8, "LIMIT")?))
    }

    fn bind_set_expr(&mut self, body: &SetExpr) -> SqlResult<BoundQuery> {
        match body {
            SetExpr::Select(select) => self.bind_select(select, &[]),
            SetExpr::Query(q) => self.bind_query(q),
            SetExpr::Values(values) => self.bind_values(values, None),
            SetExpr::SetOperation {
                op, set_quantifier, ..
            } => self.bind_set_chain(body, *op, *set_quantifier),
            _ => Err(SqlError::unsupported(format!("unsupported query: {body}"))),
        }
    }

    /// A chain of one set operation with one quantifier: the group of
    /// `body`'s operations of that kind that are directly nested (however the
    /// parser or the rebalancing in `parse::nesting` shaped it), read as the
    /// left-to-right chain of its branches, as the parser wrote it:
    /// `b1 op b2 op … op bn`. Column types are resolved pairwise from the left,
    /// as PostgreSQL does. The plan is a balanced tree of binary operations
    /// (`UNION` and `INTERSECT` are associative; `b1 EXCEPT b2 EXCEPT …` is
    /// `b1 EXCEPT (b2 UNION ALL …)`), so thousands of branches nest only a
    /// few levels deep.
    fn bind_set_chain(
        &mut self,
        body: &SetExpr,
        op: SetOperator,
        quantifier: SetQuantifier,
    ) -> SqlResult<BoundQuery> {
        let kind = match op {
            SetOperator::Union => SetOpKind::Union,
            SetOperator::Intersect => SetOpKind::Intersect,
            SetOperator::Except | SetOperator::Minus => SetOpKind::Except,
        };
        let name = match kind {
            SetOpKind::Union => "UNION",
            SetOpKind::Intersect => "INTERSECT",
            SetOpKind::Except => "EXCEPT",
        };
        // The branches in order, without recursion.
        let mut branches: Vec<&SetExpr> = Vec::new();
        let mut stack = vec![body];
        while let Some(node) = stack.pop() {
            match node {
                SetExpr::SetOperation {
                    left,
                    op: o,
                    set_quantifier: q,
                    right,
                } if *o == op && *q == quantifier => {
                    stack.push(right);
                    stack.push(left);
                }
                branch => branches.push(branch),
            }
        }
        let mut bound = Vec::with_capacity(branches.len());
        let mut types: Vec<SqlType> = Vec::new();
        for (i, branch) in branches.into_iter().enumerate() {
            let b = self.bind_set_expr(branch)?;
            let visible: Vec<SqlType> =
                b.scope.iter().filter(|c| !c.hidden).map(|c| c.ty).collect();
            if i == 0 {
                types = visible;
            } else {
                if visible.len() != types.len() {
                    return Err(SqlError::syntax(format!(
                        "each {name} query must have the same number of columns"
                    )));
                }
                for (l, r) in types.iter_mut().zip(&visible) {
                    let ty = ops::common_type(&[*l, *r]).map_err(|_| {
                        SqlError::datatype_mismatch(format!(
                            "{name} types {l} and {r} cannot be matched"
                        ))
                    })?;
                    *l = if ty == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        ty
                    };
                }
            }
            bound.push(b);
        }
        let scope: Scope = match bound.first() {
            Some(first) => first
                .scope
                .iter()
                .filter(|c| !c.hidden)
                .zip(&types)
                .map(|(c, ty)| ScopeColumn {
                    table: None,
                    name: c.name.clone(),
                    ty: *ty,
                    hidden: false,
                })
                .collect(),
            None => return Err(SqlError::internal("empty set operation")),
        };
        let mut rels: Vec<Rel> = bound
            .into_iter()
            .map(|b| project_visible_as(b.rel, &b.scope, &types))
            .collect();
        let all = matches!(quantifier, SetQuantifier::All);
        let rel = if kind == SetOpKind::Except {
            let first = rels.remove(0);
            let rest = balanced_set_op(SetOpKind::Union, true, rels);
            Rel::SetOp {
                op: kind,
                all,
                left: Box::new(first),
                right: Box::new(rest),
            }
        } else {
            balanced_set_op(kind, all, rels)
        };
        Ok(BoundQuery { rel, scope })
    }

    /// VALUES rows; `target` gives the column types when they feed an INSERT.
    pub fn bind_values(
        &mut self,
        values: &ast::Values,
        target: Option<&[SqlType]>,
    ) -> SqlResult<BoundQuery> {
        let scope = Scope::new();
        let width = values.rows.first().map(|r| r.content.len()).unwrap_or(0);
        let mut rows = Vec::with_capacity(values.rows.len());
        for row in &values.rows {
            if row.content.len() != width {
                return Err(SqlError::syntax("VALUES lists must all be the same length"));
            }
            let mut out = Vec::with_capacity(width);
            for (i, e) in row.content.iter().enumerate() {
                // DEFAULT is allowed only where VALUES feeds an INSERT column.
                if target.is_some_and(|t| i < t.len())
                    && matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
                {
                    out.push(Scalar::Func {
                        name: "default".into(),
                        args: vec![],
                        ty: SqlType::Unknown,
                    });
                    continue;
                }
                out.push(self.bind_expr(e, &scope)?);
            }
            rows.push(out);
        }
        let mut types = Vec::with_capacity(width);
        for col in 0..width {
            let ty = match target.and_then(|t| t.get(col)) {
                Some(t) => *t,
                None => {
                    let col_types: Vec<SqlType> =
                        rows.iter().map(|r: &Vec<Scalar>| r[col].ty()).collect();
                    let t = ops::common_type(&col_types).map_err(|e| {
                        SqlError::datatype_mismatch(format!("VALUES {}", e.message))
                    })?;
                    if t == SqlType::Unknown {
                        SqlType::Text
                    } else {
                        t
                    }
                }
            };
            types.push(ty);
        }
        if target.is_none() {
            for row in &mut rows {
                for (col, ty) in types.iter().enumerate() {
                    let s = std::mem::replace(&mut row[col], Scalar::null());
                    row[col] = self.coerce(s, *ty, "VALUES")?;
                }
            }
        }
        let scope = types
            .iter()
            .enumerate()
            .map(|(i, ty)| ScopeColumn {
                table: None,
                name: format!("column{}", i + 1),
                ty: *ty,
                hidden: false,
            })
            .collect();
        Ok(BoundQuery {
            rel: Rel::Values { rows, types },
            scope,
        })
    }
}

pub(super) fn sort_key(expr: Scalar, options: &ast::OrderByOptions) -> SortKey {
    let descending = matches!(options.sort, Some(ast::OrderBySort::Desc));
    // PostgreSQL: NULLs sort as larger than everything by default.
    let nulls_first = options.nulls_first.unwrap_or(descending);
    SortKey {
        expr,
        descending,
        nulls_first,
    }
}

/// `inputs` (at least one, in order) combined pairwise by an associative set
/// operation: a tree of depth log2(n).
fn balanced_set_op(op: SetOpKind, all: bool, inputs: Vec<Rel>) -> Rel {
    crate::parse::nesting::combine_balanced(inputs, |left, right| Rel::SetOp {
        op,
        all,
        left: Box::new(left),
        right: Box::new(right),
    })
    .unwrap_or(Rel::Values {
        rows: Vec::new(),
        types: Vec::new(),
    })
}

/// Projects the visible columns of a set-operation side, cast to the common types.
fn project_visible_as(rel: Rel, scope: &Scope, types: &[SqlType]) -> Rel {
    let visible: Vec<usize> = scope
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.hidden)
        .map(|(i, _)| i)
        .collect();
    let needs =
        visible.len() != scope.len() || visible.iter().zip(types).any(|(i, t)| scope[*i].ty != *t);
    if !needs {
        return rel;
    }
    let exprs = visible
        .iter()
        .zip(types)
        .map(|(i, t)| {
            let col = Scalar::Column {
                index: *i,
                ty: scope[*i].ty,
            };
            if scope[*i].ty == *t {
                col
            } else {
                Scalar::Cast {
                    expr: Box::new(col),
                    to: *t,
                }
            }
        })
        .collect();
    Rel::Project {
        input: Box::new(rel),
        exprs,
    }
}
