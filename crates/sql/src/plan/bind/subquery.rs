//! Binding subqueries inside expressions.
//!
//! Takes a [`Query`] in an expression (scalar, `EXISTS`, `IN`, `op ANY/ALL`,
//! `ARRAY(SELECT …)`, a row-valued `IN`, an UPDATE's `SET (a, b) = (SELECT
//! …)`) and gives a [`Scalar::Subquery`] of the matching
//! [`SubqueryKind`]. The query is bound with the current scope pushed as
//! the innermost enclosing one, so its references to it become
//! [`Scalar::Outer`] and mark it correlated; the executor (or a
//! normalization rule that decorrelates it) runs it.

use std::sync::Arc;

use sqlparser::ast::{Expr, Query};
use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, agg};

use super::expr::{not_if, unnest_parens};
use super::types::binop;
use super::{Binder, Scope, ScopeColumn};
use crate::plan::{AggCall, Rel, Scalar, Subquery, SubqueryKind};

impl Binder<'_> {
    fn bind_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<(Subquery, Scope)> {
        self.outer.push(scope.clone());
        self.correlated.push(false);
        let saved_aggs = self.aggs.take();
        let bound = self.bind_query(q);
        self.aggs = saved_aggs;
        let correlated = self.correlated.pop().unwrap_or(false);
        self.outer.pop();
        let bound = bound?;
        let id = self.next_subquery;
        self.next_subquery += 1;
        // Only the visible columns come out of a subquery.
        let visible: Vec<usize> = bound
            .scope
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, _)| i)
            .collect();
        let rel = if visible.len() == bound.scope.len() {
            bound.rel
        } else {
            Rel::Project {
                input: Box::new(bound.rel),
                exprs: visible
                    .iter()
                    .map(|i| Scalar::Column {
                        index: *i,
                        ty: bound.scope[*i].ty,
                    })
                    .collect(),
            }
        };
        let scope: Scope = visible.iter().map(|i| bound.scope[*i].clone()).collect();
        Ok((
            Subquery {
                id,
                plan: Arc::new(rel),
                kind: SubqueryKind::Scalar,
                correlated,
                ty: SqlType::Unknown,
            },
            scope,
        ))
    }

    /// `(a, b) IN (SELECT x, y …)`, with PostgreSQL's NULLs: true when a
    /// row equals, else NULL when a row's comparison is NULL, else false.
    /// Bound as the scalar subquery
    /// `(SELECT CASE WHEN bool_or(c) THEN true WHEN bool_or(c IS NULL)
    /// THEN NULL ELSE false END FROM (…) AS s(x, y))` with `c` the row
    /// comparison `a = s.x AND b = s.y`.
    /// TODO(issue 13): it runs once per outer row; decorrelate it into a
    /// semi join when the columns are NOT NULL.
    fn row_in_subquery(
        &mut self,
        items: &[Expr],
        q: &Query,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let (_, sub_scope) = self.bind_subquery(q, scope)?;
        match sub_scope.len().cmp(&items.len()) {
            std::cmp::Ordering::Greater => {
                return Err(SqlError::syntax("subquery has too many columns"));
            }
            std::cmp::Ordering::Less => {
                return Err(SqlError::syntax("subquery has too few columns"));
            }
            std::cmp::Ordering::Equal => {}
        }
        let alias = "\"tardigrade:row_in\"";
        let column = |i: usize| format!("\"tardigrade:{i}\"");
        let columns: Vec<String> = (0..items.len()).map(column).collect();
        let cmp: Vec<String> = items
            .iter()
            .enumerate()
            .map(|(i, e)| format!("({e}) = {alias}.{}", column(i)))
            .collect();
        let c = format!("({})", cmp.join(" AND "));
        let text = format!(
            "(SELECT CASE WHEN bool_or({c}) THEN true WHEN bool_or({c} IS NULL) THEN NULL ELSE false END FROM ({q}) AS {alias}({}))",
            columns.join(", ")
        );
        let e = crate::plan::dml::parse_stored_expr(&text)?;
        self.bind_expr_inner(&e, scope, d)
    }

    /// The columns of a sub-SELECT that gives one row (`SET (a, b) =
    /// (SELECT x, y …)`), each a scalar subquery: NULLs when it gives no
    /// row, 21000 when more than one.
    /// TODO(issue 13): the sub-SELECT runs once per column, not once.
    pub(crate) fn bind_row_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<Vec<Scalar>> {
        let (sub, sub_scope) = self.bind_subquery(q, scope)?;
        let mut out = Vec::with_capacity(sub_scope.len());
        for (i, c) in sub_scope.iter().enumerate() {
            let id = self.next_subquery;
            self.next_subquery += 1;
            out.push(Scalar::Subquery(Box::new(Subquery {
                id,
                plan: Arc::new(Rel::Project {
                    input: Box::new((*sub.plan).clone()),
                    exprs: vec![Scalar::Column { index: i, ty: c.ty }],
                }),
                kind: SubqueryKind::Scalar,
                correlated: sub.correlated,
                ty: c.ty,
            })));
        }
        Ok(out)
    }

    /// `[NOT] EXISTS (SELECT …)`.
    pub(super) fn bind_exists(
        &mut self,
        subquery: &Query,
        negated: bool,
        scope: &Scope,
    ) -> SqlResult<Scalar> {
        let mut sub = self.bind_subquery(subquery, scope)?.0;
        sub.kind = SubqueryKind::Exists;
        sub.ty = SqlType::Bool;
        let s = Scalar::Subquery(Box::new(sub));
        Ok(not_if(negated, s))
    }

    /// `(SELECT x …)` as a value: its one column.
    pub(super) fn bind_scalar_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<Scalar> {
        let (mut sub, sub_scope) = self.bind_subquery(q, scope)?;
        let visible: Vec<&ScopeColumn> = sub_scope.iter().filter(|c| !c.hidden).collect();
        if visible.len() != 1 {
            return Err(SqlError::syntax("subquery must return only one column"));
        }
        sub.kind = SubqueryKind::Scalar;
        sub.ty = visible[0].ty;
        Ok(Scalar::Subquery(Box::new(sub)))
    }

    /// `x [NOT] IN (SELECT …)`, and a row's `(a, b) [NOT] IN (SELECT …)`
    /// ([`Binder::row_in_subquery`]).
    pub(super) fn bind_in_subquery(
        &mut self,
        expr: &Expr,
        q: &Query,
        negated: bool,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        if let Expr::Tuple(items) = unnest_parens(expr) {
            let s = self.row_in_subquery(items, q, scope, d)?;
            return Ok(not_if(negated, s));
        }
        let left = self.bind_expr_inner(expr, scope, d)?;
        let mut sub = self.bind_subquery(q, scope)?;
        let col_ty = first_visible_type(&sub.1)?;
        let left = self.coerce_soft(left, col_ty)?;
        ops::binary_type(BinOp::Eq, left.ty(), col_ty)?;
        sub.0.kind = SubqueryKind::In {
            expr: Box::new(left),
            cmp: BinOp::Eq,
        };
        sub.0.ty = SqlType::Bool;
        let s = Scalar::Subquery(Box::new(sub.0));
        Ok(not_if(negated, s))
    }

    /// `l op ANY (SELECT …)` / `l op ALL (SELECT …)` (`e` is the whole
    /// comparison); over an array, [`Binder::quantified_array`].
    pub(super) fn bind_quantified(
        &mut self,
        e: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let (Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        }
        | Expr::AllOp {
            left,
            compare_op,
            right,
        }) = e
        else {
            return Err(SqlError::internal("ANY/ALL"));
        };
        let all = matches!(e, Expr::AllOp { .. });
        let Expr::Subquery(q) = right.as_ref() else {
            let l = self.bind_expr_inner(left, scope, d)?;
            let r = self.bind_expr_inner(right, scope, d)?;
            return self.quantified_array(binop(compare_op)?, all, l, r);
        };
        let l = self.bind_expr_inner(left, scope, d)?;
        let (mut sub, sub_scope) = self.bind_subquery(q, scope)?;
        let col_ty = first_visible_type(&sub_scope)?;
        let l = self.coerce_soft(l, col_ty)?;
        let op = binop(compare_op)?;
        ops::binary_type(op, l.ty(), col_ty)?;
        sub.kind = SubqueryKind::Quantified {
            expr: Box::new(l),
            op,
            all,
        };
        sub.ty = SqlType::Bool;
        Ok(Scalar::Subquery(Box::new(sub)))
    }

    /// `ARRAY(SELECT …)`: the subquery's rows, in its order, as
    /// `COALESCE((SELECT array_agg(x) FROM (…)), '{}')`.
    pub(super) fn array_subquery(&mut self, q: &Query, scope: &Scope) -> SqlResult<Scalar> {
        let (mut sub, sub_scope) = self.bind_subquery(q, scope)?;
        let [column] = sub_scope.as_slice() else {
            return Err(SqlError::syntax("subquery must return only one column"));
        };
        let elem = match column.ty {
            SqlType::Unknown => SqlType::Text,
            t => t,
        };
        let ty = agg::aggregate_type("array_agg", &[elem])?;
        let input = Arc::unwrap_or_clone(sub.plan);
        sub.plan = Arc::new(Rel::Aggregate {
            input: Box::new(input),
            group: Vec::new(),
            aggs: vec![AggCall {
                name: "array_agg".into(),
                args: vec![Scalar::Column {
                    index: 0,
                    ty: column.ty,
                }],
                arg_types: vec![elem],
                distinct: false,
                filter: None,
                ty,
            }],
        });
        sub.kind = SubqueryKind::Scalar;
        sub.ty = ty;
        Ok(Scalar::Coalesce {
            args: vec![
                Scalar::Subquery(Box::new(sub)),
                Scalar::literal(Value::Array(Vec::new()), ty),
            ],
            ty,
        })
    }
}

fn first_visible_type(scope: &Scope) -> SqlResult<SqlType> {
    let visible: Vec<&ScopeColumn> = scope.iter().filter(|c| !c.hidden).collect();
    if visible.len() != 1 {
        return Err(SqlError::syntax("subquery has too many columns"));
    }
    Ok(visible[0].ty)
}
