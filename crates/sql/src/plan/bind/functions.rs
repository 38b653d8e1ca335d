//! Binding function calls: scalar functions, aggregates and set-returning
//! functions.
//!
//! Takes an [`ast::Function`] (or a SQL-syntax form such as `EXTRACT(f
//! FROM x)` or `TRIM(…)`, which is a call of a built-in function) and gives a
//! [`Scalar`]: a [`Scalar::Func`] typed by `ops::function_type`, one of the
//! special forms (`coalesce`, `nullif`, `nextval`, `now`, …), or a
//! placeholder: an aggregate becomes a [`Scalar::AggRef`] recorded in the
//! query block's list (planned by [`super::select`]), a set-returning
//! function of a select list a [`Scalar::SrfRef`], and a call with OVER goes
//! to [`super::window`]. Set-returning functions in FROM are bound by
//! [`super::from`].

use sqlparser::ast::{self as ast, Expr, FunctionArg, FunctionArgExpr, FunctionArguments};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value, agg};

use super::query::sort_key;
use super::rewrite::fold;
use super::window::{self, WindowBan};
use super::{Binder, Scope, table_name};
use crate::plan::{AggCall, Scalar, SortKey};

impl Binder<'_> {
    /// A function call: a window call (with OVER), `ARRAY(SELECT …)`, a
    /// set-returning function ([`Binder::bind_srf_call`]), an aggregate
    /// ([`Binder::bind_aggregate_call`]) or a scalar function
    /// ([`Binder::bind_scalar_call`]).
    pub(super) fn bind_function(
        &mut self,
        f: &ast::Function,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let mut name = table_name(&f.name);
        // TODO(issue 13): a `json` type; `json_agg` and `json_object_agg`
        // give jsonb, which prints the same for scalars and arrays.
        if let Some(jsonb) = match name.as_str() {
            "json_agg" => Some("jsonb_agg"),
            "json_object_agg" => Some("jsonb_object_agg"),
            _ => None,
        } {
            name = jsonb.to_string();
        }
        if f.over.is_some() {
            return self.bind_window_call(f, &name, scope, d);
        }
        if window::is_window_function(&name) {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                format!("window function {name} requires an OVER clause"),
            ));
        }
        let mut order_by: &[ast::OrderByExpr] = &[];
        if let FunctionArguments::List(list) = &f.args {
            for clause in &list.clauses {
                match clause {
                    ast::FunctionArgumentClause::OrderBy(keys) => order_by = keys,
                    other => {
                        return Err(SqlError::unsupported(format!(
                            "unsupported clause {other} in {name}()"
                        )));
                    }
                }
            }
        }
        let (args, distinct, star) = match &f.args {
            FunctionArguments::None => (Vec::new(), false, false),
            FunctionArguments::Subquery(q) if name == "array" => {
                return self.array_subquery(q, scope);
            }
            FunctionArguments::Subquery(_) => {
                return Err(SqlError::unsupported("function over a subquery"));
            }
            FunctionArguments::List(list) => {
                let distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                let mut args = Vec::new();
                let mut star = false;
                for a in &list.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e.clone()),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => star = true,
                        _ => {
                            return Err(SqlError::unsupported(format!(
                                "unsupported argument in {name}()"
                            )));
                        }
                    }
                }
                (args, distinct, star)
            }
        };
        if is_set_returning(&name) {
            return self.bind_srf_call(&name, &args, distinct || star, scope, d);
        }
        // `percentile_cont(0.5) WITHIN GROUP (ORDER BY x)`: an aggregate of
        // the direct arguments and `x`, fed in that order.
        let mut args = args;
        let ordered_set = tardigrade_sqltypes::agg::is_ordered_set(&name);
        match (ordered_set, f.within_group.as_slice()) {
            (true, [key]) => {
                args.push(key.expr.clone());
                order_by = &f.within_group;
            }
            // 42883, as PostgreSQL finds no plain aggregate of the name.
            (true, []) => {
                return Err(SqlError::undefined_function(format!(
                    "WITHIN GROUP is required for ordered-set aggregate {name}"
                )));
            }
            (true, _) => {
                return Err(SqlError::undefined_function(format!(
                    "function {name} with {} WITHIN GROUP keys does not exist",
                    f.within_group.len()
                )));
            }
            (false, []) => {}
            (false, _) => {
                return Err(SqlError::undefined_function(format!(
                    "{name} is not an ordered-set aggregate, so it cannot have WITHIN GROUP"
                )));
            }
        }
        if is_aggregate(&name) {
            let call = CallArgs {
                args,
                distinct,
                star,
                order_by,
            };
            return self.bind_aggregate_call(f, name, &call, scope, d);
        }
        if star {
            return Err(SqlError::syntax(format!("{name}(*) is not valid")));
        }
        if !order_by.is_empty() {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                format!("ORDER BY specified, but {name} is not an aggregate function"),
            ));
        }
        let mut bound = Vec::with_capacity(args.len());
        for a in &args {
            bound.push(self.bind_expr_inner(a, scope, d)?);
        }
        self.bind_scalar_call(name, bound)
    }

    /// An aggregate call: recorded in the query block's aggregates (its
    /// ORDER BY keys passed after its arguments, to the ordered variant of
    /// the aggregate), a [`Scalar::AggRef`] in its place.
    fn bind_aggregate_call(
        &mut self,
        f: &ast::Function,
        name: String,
        call: &CallArgs,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let Some(_) = &self.aggs else {
            return Err(SqlError::new(
                codes::GROUPING_ERROR,
                format!("aggregate functions are not allowed here ({name})"),
            ));
        };
        let distinct = call.distinct;
        let (bound, mut order_keys, filter) = self.bind_aggregate_inputs(f, call, scope, d)?;
        if call.star && name != "count" {
            return Err(SqlError::syntax(format!("{name}(*) is not valid")));
        }
        let bound: Vec<Scalar> = bound.into_iter().map(fold).collect();
        let bound = self.unknown_args_as_text(bound)?;
        let mut arg_types: Vec<SqlType> = bound.iter().map(|b| b.ty()).collect();
        let ty = agg::aggregate_type(&name, &arg_types)?;
        // PostgreSQL sorts a DISTINCT aggregate's input: array_agg(DISTINCT x)
        // comes out in x's order (NULL last).
        if distinct
            && order_keys.is_empty()
            && matches!(name.as_str(), "array_agg" | "string_agg" | "jsonb_agg")
            && let Some(first) = bound.first()
        {
            order_keys.push(SortKey {
                expr: first.clone(),
                descending: false,
                nulls_first: false,
            });
        }
        let (name, bound) = if order_keys.is_empty() {
            (name, bound)
        } else {
            // The DISTINCT set is over the arguments and keys together, which
            // is the arguments' when the keys are among them.
            if distinct {
                for k in &order_keys {
                    let key = fold(k.expr.clone());
                    if !bound.contains(&key) {
                        return Err(SqlError::new(
                            "42P10",
                            "in an aggregate with DISTINCT, ORDER BY expressions must appear in argument list",
                        ));
                    }
                }
            }
            let spec: Vec<(bool, bool)> = order_keys
                .iter()
                .map(|k| (k.descending, k.nulls_first))
                .collect();
            let mut bound = bound;
            for k in order_keys {
                let key = fold(k.expr);
                let key = if key.ty() == SqlType::Unknown {
                    self.coerce_soft(key, SqlType::Text)?
                } else {
                    key
                };
                arg_types.push(key.ty());
                bound.push(key);
            }
            (agg::ordered_name(&name, &spec), bound)
        };
        let aggs = self
            .aggs
            .as_mut()
            .ok_or_else(|| SqlError::internal("aggregate context lost"))?;
        aggs.push(AggCall {
            name,
            args: bound,
            arg_types,
            distinct,
            filter,
            ty,
        });
        Ok(Scalar::AggRef {
            index: aggs.len() - 1,
            ty,
        })
    }

    /// An aggregate's arguments, ORDER BY keys and FILTER, bound where
    /// neither aggregates nor window functions may appear.
    fn bind_aggregate_inputs(
        &mut self,
        f: &ast::Function,
        call: &CallArgs,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<(Vec<Scalar>, Vec<SortKey>, Option<Scalar>)> {
        let outer_aggs = self.aggs.take();
        let outer_windows = self.windows.take();
        let outer_ban = std::mem::replace(&mut self.window_ban, WindowBan::Aggregate);
        let mut bound = Vec::new();
        let mut err = None;
        for a in &call.args {
            match self.bind_expr_inner(a, scope, d) {
                Ok(s) => bound.push(s),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        // ORDER BY inside the call: the keys are passed after the arguments.
        let mut order_keys = Vec::with_capacity(call.order_by.len() + 1);
        for ob in call.order_by {
            if err.is_some() {
                break;
            }
            match self.bind_expr_inner(&ob.expr, scope, d) {
                Ok(s) => order_keys.push(sort_key(s, &ob.options)),
                Err(e) => err = Some(e),
            }
        }
        let filter = match (&f.filter, &err) {
            (Some(fe), None) => match self.bind_expr_inner(fe, scope, d) {
                Ok(s) => Some(self.coerce_bool(s, "FILTER")?),
                Err(e) => {
                    err = Some(e);
                    None
                }
            },
            _ => None,
        };
        self.aggs = outer_aggs;
        self.windows = outer_windows;
        self.window_ban = outer_ban;
        if let Some(e) = err {
            return Err(e);
        }
        Ok((bound, order_keys, filter))
    }

    /// A scalar function of bound arguments: the forms with their own
    /// [`Scalar`] (`coalesce`, `greatest`/`least`, `nullif`, `nextval`,
    /// `unique_rowid`), the clock and session functions, else
    /// [`Binder::call`].
    fn bind_scalar_call(&mut self, name: String, mut bound: Vec<Scalar>) -> SqlResult<Scalar> {
        match name.as_str() {
            "coalesce" | "greatest" | "least" => {
                if bound.is_empty() {
                    return Err(SqlError::syntax(format!("{name} needs arguments")));
                }
                let types: Vec<SqlType> = bound.iter().map(|b| b.ty()).collect();
                let ty = ops::common_type(&types).map_err(|e| {
                    SqlError::datatype_mismatch(format!("{} {}", name.to_uppercase(), e.message))
                })?;
                let args = bound
                    .into_iter()
                    .map(|b| self.coerce_soft(b, ty))
                    .collect::<SqlResult<Vec<_>>>()?;
                Ok(match name.as_str() {
                    "coalesce" => Scalar::Coalesce { args, ty },
                    n => Scalar::Extreme {
                        args,
                        greatest: n == "greatest",
                        ty,
                    },
                })
            }
            "nullif" => {
                if bound.len() != 2 {
                    return Err(SqlError::undefined_function(
                        "function nullif needs 2 arguments",
                    ));
                }
                let r = bound.pop().ok_or_else(|| SqlError::internal("nullif"))?;
                let l = bound.pop().ok_or_else(|| SqlError::internal("nullif"))?;
                let ty = ops::common_type(&[l.ty(), r.ty()])?;
                let l = self.coerce_soft(l, ty)?;
                let r = self.coerce_soft(r, ty)?;
                Ok(Scalar::NullIf {
                    left: Box::new(l),
                    right: Box::new(r),
                    ty,
                })
            }
            "nextval" => match bound.as_slice() {
                [
                    Scalar::Literal {
                        value: Value::Text(s),
                        ..
                    },
                ] => {
                    let id = self.next_subquery;
                    self.next_subquery += 1;
                    Ok(Scalar::NextVal {
                        sequence: crate::catalog::relation_name(s),
                        id,
                    })
                }
                _ => Err(SqlError::unsupported(
                    "nextval takes a sequence name literal",
                )),
            },
            "unique_rowid" => Ok(Scalar::UniqueRowId),
            "now"
            | "current_timestamp"
            | "transaction_timestamp"
            | "statement_timestamp"
            | "clock_timestamp" => Ok(Scalar::Func {
                name: "now".into(),
                args: vec![],
                ty: SqlType::TimestampTz,
            }),
            // CockroachDB's: a time followers can serve reads at, for AS
            // OF SYSTEM TIME (`crate::asof`); the transaction's timestamp.
            "follower_read_timestamp"
            | "experimental_follower_read_timestamp"
            | "cluster_logical_timestamp" => {
                if !bound.is_empty() {
                    let types: Vec<String> = bound.iter().map(|b| b.ty().to_string()).collect();
                    return Err(SqlError::undefined_function(format!(
                        "unknown signature: {name}({})",
                        types.join(", ")
                    )));
                }
                let (name, ty) = if name == "cluster_logical_timestamp" {
                    (name, SqlType::Decimal(None))
                } else {
                    ("follower_read_timestamp".to_string(), SqlType::TimestampTz)
                };
                Ok(Scalar::Func {
                    name,
                    args: vec![],
                    ty,
                })
            }
            "current_date" => Ok(Scalar::Func {
                name: "current_date".into(),
                args: vec![],
                ty: SqlType::Date,
            }),
            "localtimestamp" => Ok(Scalar::Func {
                name: "localtimestamp".into(),
                args: vec![],
                ty: SqlType::Timestamp,
            }),
            "localtime" => Ok(Scalar::Func {
                name: "localtime".into(),
                args: vec![],
                ty: SqlType::Time,
            }),
            "version" | "current_database" | "current_user" | "session_user" | "current_schema"
            | "user" => Ok(Scalar::Func {
                name,
                args: vec![],
                ty: SqlType::Text,
            }),
            _ => self.call(&name, bound),
        }
    }

    /// A set-returning function in a select list: recorded for the query
    /// block's [`Rel::ProjectSet`], a placeholder in its place.
    pub(super) fn bind_srf_call(
        &mut self,
        name: &str,
        args: &[Expr],
        odd_args: bool,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        if self.srfs.is_none() {
            return Err(SqlError::unsupported(format!(
                "set-returning function {name}() is supported only in FROM and at the top of a select list"
            )));
        }
        if odd_args {
            return Err(SqlError::syntax(format!("invalid arguments to {name}()")));
        }
        // No set-returning function inside another one's arguments.
        let saved = self.srfs.take();
        let bound: SqlResult<Vec<Scalar>> = args
            .iter()
            .map(|a| self.bind_expr_inner(a, scope, d).map(fold))
            .collect();
        self.srfs = saved;
        let bound = bound?;
        let types: Vec<SqlType> = bound.iter().map(|b| b.ty()).collect();
        let undefined = || {
            let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            SqlError::undefined_function(format!(
                "function {name}({}) does not exist",
                list.join(", ")
            ))
        };
        let (args, ty) = match (name, types.as_slice()) {
            ("generate_series", [a, b] | [a, b, _])
                if (a.is_integer() || b.is_integer())
                    && !types.iter().any(|t| matches!(t, SqlType::Decimal(_))) =>
            {
                let mut coerced = Vec::with_capacity(bound.len());
                for b in bound {
                    coerced.push(self.coerce(b, SqlType::Int8, "generate_series")?);
                }
                (coerced, SqlType::Int8)
            }
            ("generate_series", [SqlType::Unknown, SqlType::Unknown]) => {
                let mut coerced = Vec::with_capacity(bound.len());
                for b in bound {
                    coerced.push(self.coerce(b, SqlType::Int8, "generate_series")?);
                }
                (coerced, SqlType::Int8)
            }
            // Timestamps stepped by an interval: timestamp when the bounds
            // are, timestamptz otherwise (dates and untyped literals read
            // as timestamptz, PostgreSQL's preferred datetime type).
            ("generate_series", [a, b, SqlType::Interval | SqlType::Unknown])
                if [*a, *b].iter().all(|t| {
                    matches!(
                        t,
                        SqlType::Timestamp
                            | SqlType::TimestampTz
                            | SqlType::Date
                            | SqlType::Unknown
                    )
                }) && (types[2] == SqlType::Interval || *a != SqlType::Unknown) =>
            {
                let ty = if [*a, *b].contains(&SqlType::Timestamp)
                    && ![*a, *b].contains(&SqlType::TimestampTz)
                {
                    SqlType::Timestamp
                } else {
                    SqlType::TimestampTz
                };
                let mut it = bound.into_iter();
                let (Some(start), Some(stop), Some(step)) = (it.next(), it.next(), it.next())
                else {
                    return Err(undefined());
                };
                let args = vec![
                    self.coerce(start, ty, "generate_series")?,
                    self.coerce(stop, ty, "generate_series")?,
                    self.coerce(step, SqlType::Interval, "generate_series")?,
                ];
                (args, ty)
            }
            ("generate_series", [_, _] | [_, _, _])
                if types.iter().any(|t| matches!(t, SqlType::Decimal(_)))
                    && types
                        .iter()
                        .all(|t| t.is_numeric() || *t == SqlType::Unknown) =>
            {
                let mut coerced = Vec::with_capacity(bound.len());
                for b in bound {
                    coerced.push(self.coerce(b, SqlType::Decimal(None), "generate_series")?);
                }
                (coerced, SqlType::Decimal(None))
            }
            ("generate_series", _) => return Err(undefined()),
            ("unnest", [t]) => match t.element() {
                Some(elem) => (bound, elem),
                None => return Err(undefined()),
            },
            ("unnest", _) => {
                return Err(SqlError::unsupported(
                    "unnest of several arrays is not supported",
                ));
            }
            ("generate_subscripts", [t, _]) if t.element().is_some() => {
                let mut it = bound.into_iter();
                let (Some(arr), Some(dim)) = (it.next(), it.next()) else {
                    return Err(undefined());
                };
                let dim = self.coerce(dim, SqlType::Int8, "generate_subscripts")?;
                // An int2vector's subscripts start at 0.
                let lower = i64::from(arr.ty() != SqlType::Int2Vector);
                let lower = Scalar::literal(Value::Int(lower), SqlType::Int8);
                (vec![arr, dim, lower], SqlType::Int8)
            }
            (
                "jsonb_array_elements"
                | "jsonb_array_elements_text"
                | "jsonb_object_keys"
                | "jsonb_each_values"
                | "jsonb_each_text_values",
                [_],
            ) => {
                let arg = bound.into_iter().next().ok_or_else(undefined)?;
                let arg = self.coerce(arg, SqlType::Jsonb, name)?;
                let ty = if matches!(name, "jsonb_array_elements" | "jsonb_each_values") {
                    SqlType::Jsonb
                } else {
                    SqlType::Text
                };
                (vec![arg], ty)
            }
            // The rows of the array the `_to_array` function gives (as
            // `unnest` of it).
            ("regexp_split_to_table" | "string_to_table", _) => {
                let array_fn = if name == "string_to_table" {
                    "string_to_array"
                } else {
                    "regexp_split_to_array"
                };
                let array = self.call(array_fn, bound).map_err(|_| undefined())?;
                (vec![array], SqlType::Text)
            }
            _ => return Err(undefined()),
        };
        let srfs = self
            .srfs
            .as_mut()
            .ok_or_else(|| SqlError::internal("set-returning function context lost"))?;
        srfs.push(crate::plan::SrfCall {
            name: name.to_string(),
            args,
            ty,
        });
        Ok(Scalar::SrfRef {
            index: srfs.len() - 1,
            ty,
        })
    }

    /// `EXTRACT(field FROM x)`: `extract('field', x)`.
    pub(super) fn bind_extract(
        &mut self,
        field: &ast::DateTimeField,
        expr: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let inner = self.bind_expr_inner(expr, scope, d)?;
        let field = Scalar::Literal {
            value: Value::Text(field.to_string().to_lowercase()),
            ty: SqlType::Text,
        };
        self.call("extract", vec![field, inner])
    }

    /// `SUBSTRING(x FROM a FOR b)`: `substr(x, a, b)`.
    pub(super) fn bind_substring(
        &mut self,
        expr: &Expr,
        substring_from: Option<&Expr>,
        substring_for: Option<&Expr>,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let mut args = vec![self.bind_expr_inner(expr, scope, d)?];
        match substring_from {
            Some(f) => {
                let from = self.bind_expr_inner(f, scope, d)?;
                // `substring(s FROM 'pattern')`: a string FROM is a regular
                // expression (PostgreSQL's `substring(text, text)`).
                let string = from.ty().is_string()
                    || matches!(
                        &from,
                        Scalar::Literal {
                            value: Value::Text(_),
                            ty: SqlType::Unknown
                        }
                    );
                if string && substring_for.is_none() {
                    args.push(from);
                    return self.call("substring", args);
                }
                args.push(from)
            }
            None => args.push(Scalar::Literal {
                value: Value::Int(1),
                ty: SqlType::Int4,
            }),
        }
        if let Some(f) = substring_for {
            args.push(self.bind_expr_inner(f, scope, d)?);
        }
        self.call("substr", args)
    }

    /// `TRIM([LEADING | TRAILING | BOTH] [chars FROM] x)` (`e` is the whole
    /// form): `ltrim`, `rtrim` or `btrim`.
    pub(super) fn bind_trim(&mut self, e: &Expr, scope: &Scope, d: usize) -> SqlResult<Scalar> {
        let Expr::Trim {
            expr,
            trim_where,
            trim_what,
            trim_characters,
        } = e
        else {
            return Err(SqlError::internal("TRIM"));
        };
        let name = match trim_where {
            Some(ast::TrimWhereField::Leading) => "ltrim",
            Some(ast::TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        };
        let mut args = vec![self.bind_expr_inner(expr, scope, d)?];
        if let Some(w) = trim_what {
            args.push(self.bind_expr_inner(w, scope, d)?);
        } else if let Some(chars) = trim_characters
            && let Some(c) = chars.first()
        {
            args.push(self.bind_expr_inner(c, scope, d)?);
        }
        self.call(name, args)
    }

    /// `POSITION(needle IN hay)`: `strpos(hay, needle)`.
    pub(super) fn bind_position(
        &mut self,
        expr: &Expr,
        r#in: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let needle = self.bind_expr_inner(expr, scope, d)?;
        let hay = self.bind_expr_inner(r#in, scope, d)?;
        self.call("strpos", vec![hay, needle])
    }

    /// `CEIL(x)`, `FLOOR(x)`: the function `name` of `x`.
    pub(super) fn bind_syntax_call(
        &mut self,
        name: &str,
        expr: &Expr,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let a = self.bind_expr_inner(expr, scope, d)?;
        self.call(name, vec![a])
    }

    /// A call of a built-in scalar function; untyped literals become text.
    pub(super) fn call(&mut self, name: &str, mut args: Vec<Scalar>) -> SqlResult<Scalar> {
        // `timezone(zone, ts)` / `ts AT TIME ZONE zone`: an untyped literal
        // or a date is a timestamptz (PostgreSQL's preferred reading; the
        // session time zone is UTC).
        if name == "timezone"
            && let [_, ts] = args.as_mut_slice()
            && matches!(ts.ty(), SqlType::Unknown | SqlType::Date)
        {
            let t = std::mem::replace(ts, Scalar::literal(Value::Null, SqlType::Unknown));
            *ts = self.coerce(t, SqlType::TimestampTz, "AT TIME ZONE")?;
        }
        let args: Vec<Scalar> = args
            .into_iter()
            .map(super::types::int2vector_as_array)
            .collect();
        if matches!(
            name,
            "pg_get_indexdef" | "pg_get_constraintdef" | "pg_get_viewdef"
        ) && !args.is_empty()
        {
            return self.catalog_definition(name, args);
        }
        // `to_regclass('name')`: the relation's OID, NULL when there is none.
        // TODO(issue 13): a name known only when the statement runs.
        if name == "to_regclass"
            && let [Scalar::Literal { value, .. }] = args.as_slice()
        {
            let oid = match value {
                // PostgreSQL 15 reads digits as a name here.
                Value::Text(n) if !matches!(super::types::regclass_digits(n), Ok(Some(_))) => {
                    self.regclass_oid(n).ok().map_or(Value::Null, Value::Int)
                }
                _ => Value::Null,
            };
            return Ok(Scalar::literal(oid, SqlType::RegClass));
        }
        let args = args
            .into_iter()
            .map(|a| {
                if a.ty() == SqlType::Unknown
                    && !matches!(
                        a,
                        Scalar::Literal {
                            value: Value::Null,
                            ..
                        }
                    )
                {
                    self.coerce_soft(a, SqlType::Text)
                } else {
                    Ok(a)
                }
            })
            .collect::<SqlResult<Vec<_>>>()?;
        let types: Vec<SqlType> = args.iter().map(|a| a.ty()).collect();
        let ty = ops::function_type(name, &types)?;
        Ok(Scalar::Func {
            name: name.to_string(),
            args,
            ty,
        })
    }

    /// `pg_get_indexdef(oid [, column, pretty])`, `pg_get_constraintdef(oid
    /// [, pretty])`, `pg_get_viewdef(oid [, pretty])`: the definition of the
    /// object with that OID, from the statement's catalog snapshot
    /// ([`crate::vtable::definitions`]), as a `CASE` over the OIDs (NULL for
    /// an unknown one, as in PostgreSQL). `pg_get_indexdef`'s column k > 0
    /// gives that key column's name or expression.
    fn catalog_definition(&mut self, name: &str, mut args: Vec<Scalar>) -> SqlResult<Scalar> {
        let column = if name == "pg_get_indexdef" && args.len() >= 2 {
            let c = args.swap_remove(1);
            self.coerce_soft(c, SqlType::Int8)?
        } else {
            Scalar::literal(Value::Int(0), SqlType::Int8)
        };
        let oid = self.coerce_soft(args.swap_remove(0), SqlType::Int8)?;
        let equals = |left: &Scalar, value: &Value| Scalar::Binary {
            op: BinOp::Eq,
            left: Box::new(left.clone()),
            right: Box::new(Scalar::Literal {
                value: value.clone(),
                ty: SqlType::Int8,
            }),
            ty: SqlType::Bool,
        };
        let whens = match self.tables.get(crate::vtable::DEFINITIONS) {
            Some(defs) => defs
                .virtual_rows
                .iter()
                .flat_map(|rows| rows.iter())
                .filter_map(|r| match (r.first(), r.get(1), r.get(2)) {
                    (Some(o), Some(k), Some(d)) => Some((
                        Scalar::Binary {
                            op: BinOp::And,
                            left: Box::new(equals(&oid, o)),
                            right: Box::new(equals(&column, k)),
                            ty: SqlType::Bool,
                        },
                        Scalar::Literal {
                            value: d.clone(),
                            ty: SqlType::Text,
                        },
                    )),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        if whens.is_empty() {
            return Ok(Scalar::Literal {
                value: Value::Null,
                ty: SqlType::Text,
            });
        }
        Ok(Scalar::Case {
            operand: None,
            whens,
            otherwise: None,
            ty: SqlType::Text,
        })
    }
}

/// A call's arguments as written: `f(DISTINCT a, b ORDER BY k)`, `count(*)`.
struct CallArgs<'f> {
    args: Vec<Expr>,
    distinct: bool,
    star: bool,
    order_by: &'f [ast::OrderByExpr],
}

/// Aggregate function names.
pub fn is_aggregate(name: &str) -> bool {
    tardigrade_sqltypes::agg::is_aggregate(name)
}

/// The set-returning functions a select list may call.
pub(super) fn is_set_returning(name: &str) -> bool {
    matches!(
        name,
        "generate_series"
            | "unnest"
            | "generate_subscripts"
            | "jsonb_array_elements"
            | "jsonb_array_elements_text"
            | "jsonb_object_keys"
            | "regexp_split_to_table"
            | "string_to_table"
    )
}
