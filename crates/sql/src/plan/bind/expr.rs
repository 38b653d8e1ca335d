//! Binding expressions: an [`Expr`] over a scope to a typed [`Scalar`].
//!
//! [`Binder::bind_expr`] is the entry point (it folds the constant parts of
//! the result); `bind_expr_inner` is the recursive step, which keeps to the
//! depth limit ([`super::MAX_EXPR_DEPTH`]) and grows the stack
//! (`crate::stack::grow`). `bind_expr_node` only dispatches on the kind of
//! expression: each kind has its helper here (names and literals,
//! operators, IS tests, IN lists, BETWEEN, LIKE, casts, CASE, arrays),
//! except function calls and their SQL-syntax forms ([`super::functions`]),
//! subqueries ([`super::subquery`]) and window calls ([`super::window`]).
//! Operator typing and coercion are in [`super::types`].

use sqlparser::ast::{self as ast, BinaryOperator, DataType, Expr, UnaryOperator};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp, UnOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::rewrite::fold;
use super::types::{
    binop, custom_operator, regclass_literal, sql_type_of, with_timestamp_precision,
};
use super::{Binder, MAX_EXPR_DEPTH, Scope, normalize, table_name};
use crate::plan::Scalar;

impl Binder<'_> {
    /// Binds an expression and folds its constant parts.
    pub fn bind_expr(&mut self, e: &Expr, scope: &Scope) -> SqlResult<Scalar> {
        let s = self.bind_expr_inner(e, scope, 0)?;
        Ok(fold(s))
    }

    pub(super) fn bind_expr_inner(
        &mut self,
        e: &Expr,
        scope: &Scope,
        depth: usize,
    ) -> SqlResult<Scalar> {
        crate::stack::grow(|| self.bind_expr_node(e, scope, depth))
    }

    /// One expression: the helper for its kind (the depth counts the
    /// expressions around it).
    fn bind_expr_node(&mut self, e: &Expr, scope: &Scope, depth: usize) -> SqlResult<Scalar> {
        if depth > MAX_EXPR_DEPTH {
            return Err(SqlError::new(
                codes::STATEMENT_TOO_COMPLEX,
                "expression is too deeply nested",
            ));
        }
        let d = depth + 1;
        match e {
            Expr::Identifier(id) => self.resolve(&[normalize(id)], scope),
            Expr::CompoundIdentifier(ids) => {
                let parts: Vec<String> = ids.iter().map(normalize).collect();
                self.resolve(&parts, scope)
            }
            Expr::Value(v) => self.bind_value(&v.value),
            Expr::Nested(inner) => self.bind_expr_inner(inner, scope, d),
            Expr::Collate { expr, collation } => self.bind_collate(expr, collation, scope, d),
            Expr::BinaryOp { left, op, right }
                if matches!(
                    (unnest_parens(left), unnest_parens(right)),
                    (Expr::Tuple(_), Expr::Tuple(_))
                ) =>
            {
                self.bind_row_comparison(left, op, right, scope, d)
            }
            Expr::BinaryOp { left, op, right } => self.bind_binary_op(left, op, right, scope, d),
            Expr::UnaryOp { op, expr } => self.bind_unary_op(op, expr, scope, d),
            Expr::IsNull(inner) => self.bind_is_null(inner, false, scope, d),
            Expr::IsNotNull(inner) => self.bind_is_null(inner, true, scope, d),
            Expr::IsTrue(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsFalse(inner)
            | Expr::IsNotFalse(inner) => self.bind_is_bool(e, inner, scope, d),
            Expr::IsUnknown(inner) => self.bind_is_unknown(inner, false, scope, d),
            Expr::IsNotUnknown(inner) => self.bind_is_unknown(inner, true, scope, d),
            Expr::IsDistinctFrom(a, b) => {
                self.bind_distinct_from(BinOp::IsDistinctFrom, a, b, scope, d)
            }
            Expr::IsNotDistinctFrom(a, b) => {
                self.bind_distinct_from(BinOp::IsNotDistinctFrom, a, b, scope, d)
            }
            Expr::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                ..
            } => self.bind_in_list(expr, list, *negated, scope, d),
            Expr::In {
                expr,
                target: ast::InTarget::Subquery(q),
                negated,
                ..
            } => self.bind_in_subquery(expr, q, *negated, scope, d),
            Expr::In { .. } => Err(SqlError::unsupported("unsupported IN target")),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => self.bind_between(expr, *negated, low, high, scope, d),
            Expr::Like { .. } | Expr::ILike { .. } => self.bind_like(e, scope, d),
            // `x SIMILAR TO p [ESCAPE e]`: `x ~ similar_to_escape(p, e)`.
            Expr::SimilarTo {
                negated,
                expr,
                pattern,
                escape_char,
            } => {
                let l = self.bind_expr_inner(expr, scope, d)?;
                let l = self.coerce_soft(l, SqlType::Text)?;
                let p = self.bind_expr_inner(pattern, scope, d)?;
                let mut args = vec![self.coerce_soft(p, SqlType::Text)?];
                if let Some(escape) = escape_char {
                    let escape = self.bind_expr_inner(escape, scope, d)?;
                    args.push(self.coerce_soft(escape, SqlType::Text)?);
                }
                let regex = self.call("similar_to_escape", args)?;
                let matched = self.call("textregexeq", vec![l, regex])?;
                Ok(not_if(*negated, matched))
            }
            Expr::Cast {
                expr, data_type, ..
            } => self.bind_cast_expr(e, expr, data_type, scope, d),
            Expr::TypedString(ts) => bind_typed_string(ts),
            Expr::Interval(iv) => self.bind_interval(iv, scope, d),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => self.bind_case(
                operand.as_deref(),
                conditions,
                else_result.as_deref(),
                scope,
                d,
            ),
            Expr::Function(f) => self.bind_function(f, scope, d),
            Expr::Exists { subquery, negated } => self.bind_exists(subquery, *negated, scope),
            Expr::Subquery(q) => self.bind_scalar_subquery(q, scope),
            Expr::AnyOp { .. } | Expr::AllOp { .. } => self.bind_quantified(e, scope, d),
            Expr::Extract { field, expr, .. } => self.bind_extract(field, expr, scope, d),
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                let ts = self.bind_expr_inner(timestamp, scope, d)?;
                let zone = self.bind_expr_inner(time_zone, scope, d)?;
                self.call("timezone", vec![zone, ts])
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => self.bind_substring(
                expr,
                substring_from.as_deref(),
                substring_for.as_deref(),
                scope,
                d,
            ),
            Expr::Trim { .. } => self.bind_trim(e, scope, d),
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                let mut args = vec![
                    self.bind_expr_inner(expr, scope, d)?,
                    self.bind_expr_inner(overlay_what, scope, d)?,
                    self.bind_expr_inner(overlay_from, scope, d)?,
                ];
                if let Some(n) = overlay_for {
                    args.push(self.bind_expr_inner(n, scope, d)?);
                }
                self.call("overlay", args)
            }
            Expr::Position { expr, r#in } => self.bind_position(expr, r#in, scope, d),
            Expr::Ceil { expr, .. } => self.bind_syntax_call("ceil", expr, scope, d),
            Expr::Floor { expr, .. } => self.bind_syntax_call("floor", expr, scope, d),
            Expr::Array(a) => self.bind_array(a, scope, d),
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.bind_field_access(root, access_chain, scope, d)
            }
            Expr::Tuple(_) => Err(SqlError::unsupported("row values are not supported")),
            other => Err(SqlError::unsupported(format!(
                "unsupported expression: {other}"
            ))),
        }
    }

    /// `x COLLATE name`: strings compare byte-wise (the C collation); the
    /// default collation and C are that, others do not exist here.
    fn bind_collate(
        &mut self,
        expr: &Expr,
        collation: &ast::ObjectName,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let name = table_name(collation);
        if !matches!(name.as_str(), "default" | "C" | "POSIX" | "c" | "posix") {
            return Err(SqlError::new(
                codes::UNDEFINED_OBJECT,
                format!("collation \"{name}\" for encoding \"UTF8\" does not exist"),
            ));
        }
        self.bind_expr_inner(expr, scope, d)
    }

    /// `(a, b) op (c, d)`: bound as its expansion ([`expand_row_comparison`]).
    fn bind_row_comparison(
        &mut self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let (Expr::Tuple(ls), Expr::Tuple(rs)) = (unnest_parens(left), unnest_parens(right)) else {
            return Err(SqlError::internal("row comparison"));
        };
        let expanded = expand_row_comparison(op, ls, rs)?;
        self.bind_expr_inner(&expanded, scope, d)
    }

    /// `l op r`: regular expression matches, jsonb operators and array
    /// containment are calls of the functions implementing them; the other
    /// operators are [`Binder::binary`]'s.
    fn bind_binary_op(
        &mut self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let l = self.bind_expr_inner(left, scope, d)?;
        let r = self.bind_expr_inner(right, scope, d)?;
        // `OPERATOR(pg_catalog.~)`: the operator it names.
        let op = &match op {
            BinaryOperator::PGCustomBinaryOperator(parts) => custom_operator(parts)?,
            other => other.clone(),
        };
        let regex = match op {
            BinaryOperator::PGRegexMatch => Some(("textregexeq", false)),
            BinaryOperator::PGRegexIMatch => Some(("texticregexeq", false)),
            BinaryOperator::PGRegexNotMatch => Some(("textregexeq", true)),
            BinaryOperator::PGRegexNotIMatch => Some(("texticregexeq", true)),
            _ => None,
        };
        if let Some((name, negated)) = regex {
            let l = self.coerce_soft(l, SqlType::Text)?;
            let r = self.coerce_soft(r, SqlType::Text)?;
            let matched = self.call(name, vec![l, r])?;
            return Ok(not_if(negated, matched));
        }
        // jsonb operators are calls of the functions implementing
        // them (`@>` and `<@` on arrays are the array functions below)
        let jsonb_op = match op {
            BinaryOperator::AtArrow => Some("@>"),
            BinaryOperator::ArrowAt => Some("<@"),
            BinaryOperator::Question => Some("?"),
            BinaryOperator::QuestionPipe => Some("?|"),
            BinaryOperator::QuestionAnd => Some("?&"),
            BinaryOperator::HashArrow => Some("#>"),
            BinaryOperator::HashLongArrow => Some("#>>"),
            BinaryOperator::HashMinus => Some("#-"),
            BinaryOperator::Minus => Some("-"),
            _ => None,
        };
        if let Some(sym) = jsonb_op
            && let Some((name, lt, rt)) =
                tardigrade_sqltypes::jsonb::operator_function(sym, l.ty(), r.ty())?
        {
            let l = self.coerce_soft(l, lt)?;
            let r = self.coerce_soft(r, rt)?;
            return self.call(name, vec![l, r]);
        }
        // `jsonb || 'literal'` concatenates jsonb, as PostgreSQL
        // resolves the untyped side
        let (l, r) = match (op, l.ty(), r.ty()) {
            (BinaryOperator::StringConcat, SqlType::Jsonb, SqlType::Unknown) => {
                let r = self.coerce_soft(r, SqlType::Jsonb)?;
                (l, r)
            }
            (BinaryOperator::StringConcat, SqlType::Unknown, SqlType::Jsonb) => {
                (self.coerce_soft(l, SqlType::Jsonb)?, r)
            }
            _ => (l, r),
        };
        let containment = match op {
            BinaryOperator::AtArrow => Some("array_contains"),
            BinaryOperator::ArrowAt => Some("array_contained"),
            BinaryOperator::PGOverlap => Some("array_overlap"),
            _ => None,
        };
        if let Some(name) = containment {
            return self.array_containment(name, op, l, r);
        }
        let op = binop(op)?;
        self.binary(op, l, r)
    }

    /// `-x`, `NOT x`, `~x`, `|/ x`, `@ x` …
    fn bind_unary_op(
        &mut self,
        op: &UnaryOperator,
        expr: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let inner = self.bind_expr_inner(expr, scope, d)?;
        let op = match op {
            UnaryOperator::Minus => UnOp::Neg,
            UnaryOperator::Plus => UnOp::Plus,
            UnaryOperator::Not => UnOp::Not,
            UnaryOperator::BitwiseNot => UnOp::BitNot,
            UnaryOperator::PGSquareRoot | UnaryOperator::PGCubeRoot => {
                let f = if *op == UnaryOperator::PGSquareRoot {
                    "sqrt"
                } else {
                    "cbrt"
                };
                // float8 only, as PostgreSQL's `|/` and `||/`.
                let inner = self.coerce(inner, SqlType::Float8, f)?;
                return self.call(f, vec![inner]);
            }
            UnaryOperator::PGAbs => return self.call("abs", vec![inner]),
            other => {
                return Err(SqlError::unsupported(format!(
                    "unsupported operator {other}"
                )));
            }
        };
        // Negative numeric literals stay literals (so -2147483648 is an int4).
        if op == UnOp::Neg
            && let Expr::Value(v) = expr
            && let ast::Value::Number(n, _) = &v.value
        {
            return number_literal(&format!("-{n}"));
        }
        let inner = if op == UnOp::Not {
            self.coerce_bool(inner, "NOT")?
        } else {
            inner
        };
        let ty = ops::unary_type(op, inner.ty())?;
        Ok(Scalar::Unary {
            op,
            expr: Box::new(inner),
            ty,
        })
    }

    /// `x IS [NOT] NULL`.
    fn bind_is_null(
        &mut self,
        inner: &Expr,
        negated: bool,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        Ok(Scalar::IsNull {
            expr: Box::new(self.bind_expr_inner(inner, scope, d)?),
            negated,
        })
    }

    /// `x IS [NOT] TRUE`, `x IS [NOT] FALSE` (`e` is the whole test).
    fn bind_is_bool(
        &mut self,
        e: &Expr,
        inner: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let s = self.bind_expr_inner(inner, scope, d)?;
        let s = self.coerce_bool(s, "IS")?;
        let (value, negated) = match e {
            Expr::IsTrue(_) => (true, false),
            Expr::IsNotTrue(_) => (true, true),
            Expr::IsFalse(_) => (false, false),
            _ => (false, true),
        };
        Ok(Scalar::IsBool {
            expr: Box::new(s),
            value,
            negated,
        })
    }

    /// `x IS [NOT] UNKNOWN`: `IS [NOT] NULL` of a boolean.
    fn bind_is_unknown(
        &mut self,
        inner: &Expr,
        negated: bool,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let s = self.bind_expr_inner(inner, scope, d)?;
        let context = if negated {
            "IS NOT UNKNOWN"
        } else {
            "IS UNKNOWN"
        };
        Ok(Scalar::IsNull {
            expr: Box::new(self.coerce_bool(s, context)?),
            negated,
        })
    }

    /// `a IS [NOT] DISTINCT FROM b` (`op` says which).
    fn bind_distinct_from(
        &mut self,
        op: BinOp,
        a: &Expr,
        b: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let l = self.bind_expr_inner(a, scope, d)?;
        let r = self.bind_expr_inner(b, scope, d)?;
        self.binary(op, l, r)
    }

    /// `x [NOT] IN (a, b, …)`: all of them coerced to their common type.
    fn bind_in_list(
        &mut self,
        expr: &Expr,
        list: &[Expr],
        negated: bool,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        // `(a, b) [NOT] IN ((1, 2), (3, 4))`: `(a, b) = (1, 2) OR …` (its
        // negation for NOT IN: `<> ALL`, NULLs included, as in PostgreSQL).
        if let Expr::Tuple(row) = unnest_parens(expr) {
            let mut any: Option<Expr> = None;
            for item in list {
                let Expr::Tuple(values) = unnest_parens(item) else {
                    return Err(SqlError::undefined_function(
                        "operator does not exist: record = ".to_string()
                            + &self.bind_expr_inner(item, scope, d)?.ty().to_string(),
                    ));
                };
                let eq = expand_row_comparison(&BinaryOperator::Eq, row, values)?;
                any = Some(match any {
                    None => eq,
                    Some(acc) => Expr::BinaryOp {
                        left: Box::new(acc),
                        op: BinaryOperator::Or,
                        right: Box::new(eq),
                    },
                });
            }
            let Some(any) = any else {
                return Err(SqlError::syntax("IN needs at least one value"));
            };
            let any = Expr::Nested(Box::new(any));
            let bound = self.bind_expr_inner(&any, scope, d)?;
            return Ok(not_if(negated, bound));
        }
        let left = self.bind_expr_inner(expr, scope, d)?;
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            items.push(self.bind_expr_inner(item, scope, d)?);
        }
        let mut types = vec![left.ty()];
        types.extend(items.iter().map(|i| i.ty()));
        let ty = ops::common_type(&types)
            .map_err(|e| SqlError::datatype_mismatch(format!("IN {}", e.message)))?;
        let left = self.coerce_soft(left, ty)?;
        let items = items
            .into_iter()
            .map(|i| self.coerce_soft(i, ty))
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(Scalar::InList {
            expr: Box::new(left),
            list: items,
            negated,
        })
    }

    /// `x [NOT] BETWEEN lo AND hi`: `x >= lo AND x <= hi`.
    fn bind_between(
        &mut self,
        expr: &Expr,
        negated: bool,
        low: &Expr,
        high: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let v = self.bind_expr_inner(expr, scope, d)?;
        let lo = self.bind_expr_inner(low, scope, d)?;
        let hi = self.bind_expr_inner(high, scope, d)?;
        let ge = self.binary(BinOp::GtEq, v.clone(), lo)?;
        let le = self.binary(BinOp::LtEq, v, hi)?;
        let both = Scalar::Binary {
            op: BinOp::And,
            left: Box::new(ge),
            right: Box::new(le),
            ty: SqlType::Bool,
        };
        Ok(not_if(negated, both))
    }

    /// `x [NOT] [I]LIKE pattern`, and `x LIKE ANY (array)`.
    fn bind_like(&mut self, e: &Expr, scope: &Scope, d: usize) -> SqlResult<Scalar> {
        let (Expr::Like {
            negated,
            expr,
            pattern,
            escape_char,
            any,
            ..
        }
        | Expr::ILike {
            negated,
            expr,
            pattern,
            escape_char,
            any,
            ..
        }) = e
        else {
            return Err(SqlError::internal("LIKE"));
        };
        let ilike = matches!(e, Expr::ILike { .. });
        let op = match (ilike, negated) {
            (false, false) => BinOp::Like,
            (false, true) => BinOp::NotLike,
            (true, false) => BinOp::ILike,
            (true, true) => BinOp::NotILike,
        };
        let l = self.bind_expr_inner(expr, scope, d)?;
        let r = self.bind_expr_inner(pattern, scope, d)?;
        // `ESCAPE e`: the pattern rewritten to backslash escapes.
        let r = match escape_char {
            Some(escape) => {
                let r = self.coerce(r, SqlType::Text, "LIKE")?;
                let escape = self.bind_expr_inner(escape, scope, d)?;
                let escape = self.coerce(escape, SqlType::Text, "ESCAPE")?;
                Scalar::Func {
                    name: "like_escape".into(),
                    args: vec![r, escape],
                    ty: SqlType::Text,
                }
            }
            None => r,
        };
        if *any {
            // `x LIKE ANY (array)`
            return self.quantified_array(op, false, l, r);
        }
        self.binary(op, l, r)
    }

    /// `CAST(x AS t)` / `x::t` (`e` is the whole cast): a `'name'::regclass`
    /// literal is the relation's OID, `ARRAY[]::t[]` an empty array of the
    /// type, a cast of a parameter to regclass a lookup when the statement
    /// runs; else [`Binder::cast`] (with a timestamp's precision, and
    /// regclass from and to names).
    fn bind_cast_expr(
        &mut self,
        e: &Expr,
        expr: &Expr,
        data_type: &DataType,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        if let Some(name) = regclass_literal(e) {
            return Ok(Scalar::literal(
                Value::Int(self.regclass_oid(name)?),
                SqlType::RegClass,
            ));
        }
        let to = sql_type_of(data_type)?;
        // `ARRAY[]::int[]`: an empty constructor takes the cast's type.
        if let (Expr::Array(a), SqlType::Array(_)) = (expr, to)
            && a.elem.is_empty()
        {
            return Ok(Scalar::Literal {
                value: Value::Array(Vec::new()),
                ty: to,
            });
        }
        let inner = self.bind_expr_inner(expr, scope, d)?;
        if to == SqlType::RegClass && inner.ty() == SqlType::Unknown {
            // A name known only when the statement runs (a parameter).
            let inner = self.coerce(inner, SqlType::Text, "regclass")?;
            Ok(self.regclass_call("regclass", inner, SqlType::RegClass))
        } else {
            let cast = self.cast(inner, to)?;
            Ok(with_timestamp_precision(cast, data_type))
        }
    }

    /// `INTERVAL '1' DAY`: the text with its unit, cast to interval.
    fn bind_interval(&mut self, iv: &ast::Interval, scope: &Scope, d: usize) -> SqlResult<Scalar> {
        let inner = self.bind_expr_inner(&iv.value, scope, d)?;
        let inner = match (&inner, &iv.leading_field) {
            (
                Scalar::Literal {
                    value: Value::Text(t),
                    ..
                },
                Some(field),
            ) => Scalar::Literal {
                value: Value::Text(format!("{t} {field}")),
                ty: SqlType::Unknown,
            },
            _ => inner,
        };
        self.cast(inner, SqlType::Interval)
    }

    /// `CASE [operand] WHEN … THEN … [ELSE …] END`: the results coerced to
    /// their common type; a simple CASE's conditions compare with its
    /// operand.
    fn bind_case(
        &mut self,
        operand: Option<&Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&Expr>,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let operand = match operand {
            Some(o) => Some(self.bind_expr_inner(o, scope, d)?),
            None => None,
        };
        let mut whens = Vec::with_capacity(conditions.len());
        for cw in conditions {
            let cond = self.bind_expr_inner(&cw.condition, scope, d)?;
            let cond = match &operand {
                Some(o) => self.binary(BinOp::Eq, o.clone(), cond)?,
                None => self.coerce_bool(cond, "CASE/WHEN")?,
            };
            let result = self.bind_expr_inner(&cw.result, scope, d)?;
            whens.push((cond, result));
        }
        let otherwise = match else_result {
            Some(e) => Some(self.bind_expr_inner(e, scope, d)?),
            None => None,
        };
        let mut types: Vec<SqlType> = whens.iter().map(|(_, r)| r.ty()).collect();
        if let Some(o) = &otherwise {
            types.push(o.ty());
        }
        let ty = ops::common_type(&types)
            .map_err(|e| SqlError::datatype_mismatch(format!("CASE {}", e.message)))?;
        let whens = whens
            .into_iter()
            .map(|(c, r)| Ok((c, self.coerce_soft(r, ty)?)))
            .collect::<SqlResult<Vec<_>>>()?;
        let otherwise = match otherwise {
            Some(o) => Some(Box::new(self.coerce_soft(o, ty)?)),
            None => None,
        };
        Ok(Scalar::Case {
            operand: None,
            whens,
            otherwise,
            ty,
        })
    }

    /// `ARRAY[a, b, …]` ([`Binder::array_constructor`]).
    fn bind_array(&mut self, a: &ast::Array, scope: &Scope, d: usize) -> SqlResult<Scalar> {
        let mut items = Vec::with_capacity(a.elem.len());
        for item in &a.elem {
            items.push(self.bind_expr_inner(item, scope, d)?);
        }
        self.array_constructor(items)
    }

    /// `arr[i]` and `arr[lo:hi]` (one dimension).
    fn bind_field_access(
        &mut self,
        root: &Expr,
        access_chain: &[ast::AccessExpr],
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        // `t.col[1]` parses as `t` with the accesses `.col` and `[1]`: the
        // leading field names are part of the column's name.
        let mut parts: Vec<ast::Ident> = match root {
            Expr::Identifier(id) => vec![id.clone()],
            Expr::CompoundIdentifier(ids) => ids.clone(),
            _ => Vec::new(),
        };
        let mut rest = access_chain;
        if !parts.is_empty() {
            while let [ast::AccessExpr::Dot(Expr::Identifier(id)), tail @ ..] = rest {
                parts.push(id.clone());
                rest = tail;
            }
        }
        let arr = if rest.len() < access_chain.len() {
            self.bind_expr_inner(&Expr::CompoundIdentifier(parts), scope, d)?
        } else {
            self.bind_expr_inner(root, scope, d)?
        };
        let access_chain = rest;
        match access_chain {
            [ast::AccessExpr::Subscript(ast::Subscript::Index { index })] => {
                let index = self.bind_expr_inner(index, scope, d)?;
                self.subscript(arr, index)
            }
            [
                ast::AccessExpr::Subscript(ast::Subscript::Slice {
                    lower_bound,
                    upper_bound,
                    stride: None,
                }),
            ] => {
                // a missing bound is the array's own
                let mut bound = |b: &Option<Expr>, missing: i64| -> SqlResult<Scalar> {
                    match b {
                        Some(e) => {
                            let s = self.bind_expr_inner(e, scope, d)?;
                            self.coerce(s, SqlType::Int4, "array subscript")
                        }
                        None => Ok(Scalar::literal(Value::Int(missing), SqlType::Int8)),
                    }
                };
                let lo = bound(lower_bound, 1)?;
                let hi = bound(upper_bound, i64::MAX)?;
                if arr.ty().element().is_none() {
                    return Err(SqlError::datatype_mismatch(format!(
                        "cannot subscript type {} because it does not support subscripting",
                        arr.ty()
                    )));
                }
                self.call("array_slice", vec![arr, lo, hi])
            }
            _ => Err(SqlError::unsupported(
                "multidimensional subscripts are not supported",
            )),
        }
    }

    fn bind_value(&mut self, v: &ast::Value) -> SqlResult<Scalar> {
        Ok(match v {
            ast::Value::Number(n, _) => number_literal(n)?,
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::UnicodeStringLiteral(s)
            | ast::Value::DoubleQuotedString(s) => Scalar::Literal {
                value: Value::Text(s.clone()),
                ty: SqlType::Unknown,
            },
            ast::Value::DollarQuotedString(s) => Scalar::Literal {
                value: Value::Text(s.value.clone()),
                ty: SqlType::Unknown,
            },
            ast::Value::HexStringLiteral(h) => Scalar::Literal {
                value: Value::from_text(&format!("\\x{h}"), SqlType::Bytes)?,
                ty: SqlType::Bytes,
            },
            ast::Value::Boolean(b) => Scalar::Literal {
                value: Value::Bool(*b),
                ty: SqlType::Bool,
            },
            ast::Value::Null => Scalar::null(),
            ast::Value::Placeholder(p) => {
                let n: usize = p
                    .strip_prefix('$')
                    .and_then(|d| d.parse().ok())
                    .filter(|n| *n >= 1 && *n <= 65535)
                    .ok_or_else(|| SqlError::syntax(format!("invalid parameter {p}")))?;
                if self.params.len() < n {
                    self.params.resize(n, SqlType::Unknown);
                }
                Scalar::Param {
                    index: n - 1,
                    ty: self.params[n - 1],
                }
            }
            other => {
                return Err(SqlError::unsupported(format!(
                    "unsupported literal {other}"
                )));
            }
        })
    }

    /// `ARRAY[a, b, …]`: the elements coerced to their common type.
    fn array_constructor(&mut self, items: Vec<Scalar>) -> SqlResult<Scalar> {
        if items.is_empty() {
            return Err(
                SqlError::new("42P18", "cannot determine type of empty array").with_hint(
                    "Explicitly cast to the desired type, for example ARRAY[]::integer[].",
                ),
            );
        }
        let types: Vec<SqlType> = items.iter().map(Scalar::ty).collect();
        if types.iter().any(|t| t.element().is_some()) {
            // TODO(issue 4): multidimensional arrays.
            return Err(SqlError::unsupported(
                "multidimensional arrays are not supported",
            ));
        }
        let ty = ops::common_type_for("ARRAY", &types)?;
        let args = items
            .into_iter()
            .map(|i| self.coerce(i, ty, "ARRAY"))
            .collect::<SqlResult<Vec<_>>>()?;
        Ok(Scalar::Func {
            name: "array".into(),
            args,
            ty: SqlType::array_of(ty),
        })
    }

    /// `arr[i]`: 1-based, NULL out of range.
    fn subscript(&mut self, arr: Scalar, index: Scalar) -> SqlResult<Scalar> {
        let Some(elem) = arr.ty().element() else {
            return Err(SqlError::datatype_mismatch(format!(
                "cannot subscript type {} because it does not support subscripting",
                arr.ty()
            )));
        };
        let mut index = self.coerce(index, SqlType::Int4, "array subscript")?;
        let mut arr = arr;
        if arr.ty() == SqlType::Int2Vector {
            arr = Scalar::Cast {
                expr: Box::new(arr),
                to: SqlType::array_of(SqlType::Int2),
            };
            // An int2vector's subscripts start at 0 (PostgreSQL's
            // `pg_index.indkey[0]` is the first key column).
            index = Scalar::Binary {
                op: tardigrade_sqltypes::ops::BinOp::Add,
                left: Box::new(index),
                right: Box::new(Scalar::literal(Value::Int(1), SqlType::Int4)),
                ty: SqlType::Int4,
            };
        }
        Ok(Scalar::Func {
            name: "array_subscript".into(),
            args: vec![arr, index],
            ty: elem,
        })
    }
}

/// `type 'text'` (`DATE '2024-01-01'`): a literal of the type.
fn bind_typed_string(ts: &ast::TypedString) -> SqlResult<Scalar> {
    let to = sql_type_of(&ts.data_type)?;
    let text = match &ts.value.value {
        ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => s.clone(),
        other => other.to_string(),
    };
    let literal = Scalar::Literal {
        value: Value::from_text(&text, to)?,
        ty: to,
    };
    Ok(with_timestamp_precision(literal, &ts.data_type))
}

/// `NOT s` when `negated`, else `s`.
pub(super) fn not_if(negated: bool, s: Scalar) -> Scalar {
    if negated {
        Scalar::Unary {
            op: UnOp::Not,
            expr: Box::new(s),
            ty: SqlType::Bool,
        }
    } else {
        s
    }
}

/// An integer literal is int4 when it fits, else int8, else numeric; a literal
/// with a point or exponent is numeric (PostgreSQL's rules).
fn number_literal(n: &str) -> SqlResult<Scalar> {
    if !n.contains(['.', 'e', 'E'])
        && let Ok(v) = n.parse::<i64>()
    {
        {
            let ty = if i32::try_from(v).is_ok() {
                SqlType::Int4
            } else {
                SqlType::Int8
            };
            return Ok(Scalar::Literal {
                value: Value::Int(v),
                ty,
            });
        }
    }
    let ty = SqlType::Decimal(None);
    Ok(Scalar::Literal {
        value: Value::from_text(n, ty)?,
        ty,
    })
}

pub(super) fn unnest_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Nested(inner) => unnest_parens(inner),
        other => other,
    }
}

/// A comparison of two row constructors as one over their fields, with
/// PostgreSQL's meaning: `=` all fields equal, `<>` any differs, and the
/// orderings lexicographic (`(a, b) < (c, d)` is `a < c OR (a = c AND b <
/// d)`), which gives NULL where PostgreSQL's pairwise rule does.
fn expand_row_comparison(op: &BinaryOperator, ls: &[Expr], rs: &[Expr]) -> SqlResult<Expr> {
    if ls.len() != rs.len() {
        return Err(SqlError::syntax(
            "unequal number of entries in row expressions",
        ));
    }
    if ls.is_empty() {
        return Err(SqlError::unsupported("comparison of empty rows"));
    }
    let bin = |l: &Expr, op: BinaryOperator, r: &Expr| Expr::BinaryOp {
        left: Box::new(l.clone()),
        op,
        right: Box::new(r.clone()),
    };
    // `=`: every field equal; `<>`: any field different.
    let conjunction = match op {
        BinaryOperator::Eq => Some(BinaryOperator::And),
        BinaryOperator::NotEq => Some(BinaryOperator::Or),
        _ => None,
    };
    if let Some(conj) = conjunction {
        let mut pairs = ls.iter().zip(rs).map(|(l, r)| bin(l, op.clone(), r));
        let first = pairs
            .next()
            .ok_or_else(|| SqlError::internal("row comparison"))?;
        let all = pairs.fold(first, |a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: conj.clone(),
            right: Box::new(b),
        });
        return Ok(Expr::Nested(Box::new(all)));
    }
    let strict = match op {
        BinaryOperator::Lt | BinaryOperator::LtEq => BinaryOperator::Lt,
        BinaryOperator::Gt | BinaryOperator::GtEq => BinaryOperator::Gt,
        other => {
            return Err(SqlError::unsupported(format!(
                "operator {other} on row values"
            )));
        }
    };
    // From the last field outwards: last `op` (inclusive or not), then
    // `l_i strict r_i OR (l_i = r_i AND rest)`.
    let n = ls.len();
    let mut acc = bin(&ls[n - 1], op.clone(), &rs[n - 1]);
    for i in (0..n - 1).rev() {
        let tie = Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new(bin(&ls[i], BinaryOperator::Eq, &rs[i])),
            op: BinaryOperator::And,
            right: Box::new(acc),
        }));
        acc = Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new(bin(&ls[i], strict.clone(), &rs[i])),
            op: BinaryOperator::Or,
            right: Box::new(tie),
        }));
    }
    Ok(acc)
}
