//! Binding window functions: `f(args) OVER (PARTITION BY … ORDER BY …
//! frame)`, `OVER w` and `OVER (w …)` with the select's `WINDOW w AS (…)`.
//!
//! A window call in a select list or ORDER BY is bound to a
//! [`Scalar::WindowRef`] placeholder while its query block is bound, and
//! recorded (with its partition and order keys) in the binder's list; once
//! the block's aggregation is planned, [`plan_windows`] stacks one
//! [`Rel::Window`] per distinct partitioning and order over it and the
//! placeholders become those nodes' columns ([`resolve_window_refs`]).
//! Window functions are evaluated after WHERE, GROUP BY and HAVING (their
//! arguments may hold the block's aggregates: `sum(sum(x)) OVER ()`) and
//! before DISTINCT, ORDER BY and LIMIT, as in PostgreSQL; elsewhere they are
//! refused with PostgreSQL's errors ([`WindowBan`]).

use sqlparser::ast::{self as ast, Expr, FunctionArg, FunctionArgExpr, FunctionArguments};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, agg, ops};

use super::predicate::referenced_columns;
use super::query::sort_key;
use super::rewrite::{fold, rebuild_children};
use super::{Binder, Scope, normalize};
use crate::parse::split_window_name;
use crate::plan::{
    FrameBound, FrameExclude, FrameUnits, Rel, Scalar, SortKey, WindowFrame, WindowFunc,
};

/// SQLSTATE windowing_error.
const WINDOWING_ERROR: &str = "42P20";

/// Why window functions are not allowed where the binder is (when it has no
/// window list to add them to).
#[derive(Clone, Copy, Debug)]
pub(super) enum WindowBan {
    /// Anywhere not otherwise named (VALUES, DML, FROM).
    Here,
    /// In a clause of a SELECT: `WHERE`, `GROUP BY`, `HAVING`.
    In(&'static str),
    /// In another window function's arguments.
    Nested,
    /// In a window's PARTITION BY or ORDER BY.
    Definition,
    /// In an aggregate's arguments.
    Aggregate,
}

pub(super) fn ban_error(ban: WindowBan) -> SqlError {
    match ban {
        WindowBan::Here => SqlError::new(WINDOWING_ERROR, "window functions are not allowed here"),
        WindowBan::In(clause) => SqlError::new(
            WINDOWING_ERROR,
            format!("window functions are not allowed in {clause}"),
        ),
        WindowBan::Nested => {
            SqlError::new(WINDOWING_ERROR, "window function calls cannot be nested")
        }
        WindowBan::Definition => SqlError::new(
            WINDOWING_ERROR,
            "window functions are not allowed in window definitions",
        ),
        WindowBan::Aggregate => SqlError::new(
            codes::GROUPING_ERROR,
            "aggregate function calls cannot contain window function calls",
        ),
    }
}

/// A window function call of the query block being bound.
#[derive(Clone, Debug)]
pub(super) struct WindowCall {
    pub func: WindowFunc,
    pub partition: Vec<Scalar>,
    pub order: Vec<SortKey>,
}

impl WindowCall {
    /// Rewrites the expressions over the block's rows (not the frame
    /// offsets, which read none).
    pub(super) fn try_map(
        &mut self,
        f: &mut dyn FnMut(Scalar) -> SqlResult<Scalar>,
    ) -> SqlResult<()> {
        let take = |s: &mut Scalar| std::mem::replace(s, Scalar::null());
        for a in &mut self.func.args {
            *a = f(take(a))?;
        }
        if let Some(filter) = &mut self.func.filter {
            *filter = f(take(filter))?;
        }
        for p in &mut self.partition {
            *p = f(take(p))?;
        }
        for k in &mut self.order {
            k.expr = f(take(&mut k.expr))?;
        }
        Ok(())
    }
}

/// Functions that exist only as window functions (aggregates may be called
/// over a window too).
pub(super) fn is_window_function(name: &str) -> bool {
    matches!(
        name,
        "row_number"
            | "rank"
            | "dense_rank"
            | "percent_rank"
            | "cume_dist"
            | "ntile"
            | "lag"
            | "lead"
            | "first_value"
            | "last_value"
            | "nth_value"
    )
}

/// A window specification with the named windows it copies resolved.
struct Resolved {
    partition: Vec<Expr>,
    order: Vec<ast::OrderByExpr>,
    frame: Option<ast::WindowFrame>,
    exclude: Option<String>,
}

/// Deepest chain of named windows referring to one another.
const MAX_WINDOW_CHAIN: usize = 64;

fn windowing(message: impl Into<String>) -> SqlError {
    SqlError::new(WINDOWING_ERROR, message)
}

impl Binder<'_> {
    fn resolve_named_window(&self, name: &str, depth: usize) -> SqlResult<Resolved> {
        if depth > MAX_WINDOW_CHAIN {
            return Err(windowing(
                "window definitions refer to each other too deeply",
            ));
        }
        let def = self
            .named_windows
            .iter()
            .rev()
            .find(|d| normalize(&d.0) == name)
            .ok_or_else(|| {
                SqlError::new(
                    codes::UNDEFINED_OBJECT,
                    format!("window \"{name}\" does not exist"),
                )
            })?;
        match &def.1 {
            ast::NamedWindowExpr::NamedWindow(other) => {
                self.resolve_named_window(&normalize(other), depth + 1)
            }
            ast::NamedWindowExpr::WindowSpec(spec) => {
                let spec = spec.clone();
                self.resolve_window_spec(&spec, depth + 1)
            }
        }
    }

    fn resolve_window_spec(&self, spec: &ast::WindowSpec, depth: usize) -> SqlResult<Resolved> {
        let (base_name, exclude) = match &spec.window_name {
            Some(id) => split_window_name(id),
            None => (None, None),
        };
        let own = Resolved {
            partition: spec.partition_by.clone(),
            order: spec.order_by.clone(),
            frame: spec.window_frame.clone(),
            exclude,
        };
        let Some(base_name) = base_name else {
            return Ok(own);
        };
        let base = self.resolve_named_window(&base_name, depth + 1)?;
        if !own.partition.is_empty() {
            return Err(windowing(format!(
                "cannot override PARTITION BY clause of window \"{base_name}\""
            )));
        }
        if !own.order.is_empty() && !base.order.is_empty() {
            return Err(windowing(format!(
                "cannot override ORDER BY clause of window \"{base_name}\""
            )));
        }
        if base.frame.is_some() {
            return Err(windowing(format!(
                "cannot copy window \"{base_name}\" because it has a frame clause"
            ))
            .with_hint("Omit the parentheses in this OVER clause."));
        }
        Ok(Resolved {
            partition: base.partition,
            order: if own.order.is_empty() {
                base.order
            } else {
                own.order
            },
            frame: own.frame,
            exclude: own.exclude,
        })
    }

    /// `f(args) OVER …`: the call recorded in the block's window list, a
    /// placeholder in its place.
    pub(super) fn bind_window_call(
        &mut self,
        f: &ast::Function,
        name: &str,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let Some(over) = &f.over else {
            return Err(SqlError::internal("window call without OVER"));
        };
        if self.windows.is_none() {
            return Err(ban_error(self.window_ban));
        }
        let is_agg = agg::is_aggregate(name);
        if !is_agg && !is_window_function(name) {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                format!(
                    "OVER specified, but {name} is not a window function nor an aggregate function"
                ),
            ));
        }
        let mut args: Vec<Expr> = Vec::new();
        let mut star = false;
        let mut distinct = false;
        let mut ordered = false;
        match &f.args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(_) => {
                return Err(SqlError::unsupported("function over a subquery"));
            }
            FunctionArguments::List(list) => {
                distinct = matches!(
                    list.duplicate_treatment,
                    Some(ast::DuplicateTreatment::Distinct)
                );
                for clause in &list.clauses {
                    match clause {
                        ast::FunctionArgumentClause::OrderBy(_) => ordered = true,
                        other => {
                            return Err(SqlError::unsupported(format!(
                                "unsupported clause {other} in {name}()"
                            )));
                        }
                    }
                }
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
            }
        }
        if distinct {
            return Err(SqlError::unsupported(
                "DISTINCT is not implemented for window functions",
            ));
        }
        if ordered {
            return Err(SqlError::unsupported(if is_agg {
                "aggregate ORDER BY is not implemented for window functions"
            } else {
                "ORDER BY is not implemented for non-aggregate window functions"
            }));
        }
        if !is_agg && f.filter.is_some() {
            return Err(SqlError::unsupported(
                "FILTER is not implemented for non-aggregate window functions",
            ));
        }
        if star && name != "count" {
            return Err(SqlError::syntax(format!("{name}(*) is not valid")));
        }
        let spec = match over {
            ast::WindowType::NamedWindow(id) => self.resolve_named_window(&normalize(id), 0)?,
            ast::WindowType::WindowSpec(s) => self.resolve_window_spec(s, 0)?,
        };

        // Arguments and window definition: no window function inside, no
        // set-returning function; the block's aggregates are allowed.
        // TODO(issue 13): PostgreSQL takes set-returning functions here (a
        // ProjectSet below the window).
        let saved_windows = self.windows.take();
        let saved_ban = self.window_ban;
        let saved_srfs = self.srfs.take();
        let bound = self.bind_window_parts(f, &args, &spec, scope, d);
        self.windows = saved_windows;
        self.window_ban = saved_ban;
        self.srfs = saved_srfs;
        let (args, filter, partition, order) = bound?;

        let (args, arg_types, ty) = if is_agg {
            let args = self.unknown_args_as_text(args)?;
            let arg_types: Vec<SqlType> = args.iter().map(Scalar::ty).collect();
            let ty = agg::aggregate_type(name, &arg_types)?;
            (args, arg_types, ty)
        } else {
            let (args, ty) = self.type_window_args(name, args)?;
            let arg_types = args.iter().map(Scalar::ty).collect();
            (args, arg_types, ty)
        };
        let frame = match &spec.frame {
            None => WindowFrame::default_frame(),
            Some(fr) => self.bind_frame(fr, spec.exclude.as_deref(), &order, scope, d)?,
        };
        let windows = self
            .windows
            .as_mut()
            .ok_or_else(|| SqlError::internal("window context lost"))?;
        windows.push(WindowCall {
            func: WindowFunc {
                name: name.to_string(),
                args,
                arg_types,
                is_agg,
                filter,
                frame,
                ty,
            },
            partition,
            order,
        });
        Ok(Scalar::WindowRef {
            index: windows.len() - 1,
            ty,
        })
    }

    #[allow(clippy::type_complexity)]
    fn bind_window_parts(
        &mut self,
        f: &ast::Function,
        args: &[Expr],
        spec: &Resolved,
        scope: &Scope,
        d: usize,
    ) -> SqlResult<(Vec<Scalar>, Option<Scalar>, Vec<Scalar>, Vec<SortKey>)> {
        self.window_ban = WindowBan::Nested;
        let mut bound = Vec::with_capacity(args.len());
        for a in args {
            bound.push(fold(self.bind_expr_inner(a, scope, d)?));
        }
        let filter = match &f.filter {
            Some(fe) => {
                let s = self.bind_expr_inner(fe, scope, d)?;
                Some(self.coerce_bool(s, "FILTER")?)
            }
            None => None,
        };
        self.window_ban = WindowBan::Definition;
        let mut partition = Vec::with_capacity(spec.partition.len());
        for p in &spec.partition {
            let s = fold(self.bind_expr_inner(p, scope, d)?);
            let s = if s.ty() == SqlType::Unknown {
                self.coerce_soft(s, SqlType::Text)?
            } else {
                s
            };
            partition.push(s);
        }
        let mut order = Vec::with_capacity(spec.order.len());
        for ob in &spec.order {
            let s = fold(self.bind_expr_inner(&ob.expr, scope, d)?);
            let s = if s.ty() == SqlType::Unknown {
                self.coerce_soft(s, SqlType::Text)?
            } else {
                s
            };
            order.push(sort_key(s, &ob.options));
        }
        Ok((bound, filter, partition, order))
    }

    /// The arguments of a (non-aggregate) window function, coerced, and its
    /// result type.
    fn type_window_args(
        &mut self,
        name: &str,
        args: Vec<Scalar>,
    ) -> SqlResult<(Vec<Scalar>, SqlType)> {
        let types: Vec<SqlType> = args.iter().map(Scalar::ty).collect();
        let undefined = || {
            let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
            SqlError::undefined_function(format!(
                "function {name}({}) does not exist",
                list.join(", ")
            ))
            .with_hint(
                "No function matches the given name and argument types. You might need to add explicit type casts.",
            )
        };
        let mut it = args.into_iter();
        let n = types.len();
        match name {
            "row_number" | "rank" | "dense_rank" if n == 0 => Ok((Vec::new(), SqlType::Int8)),
            "percent_rank" | "cume_dist" if n == 0 => Ok((Vec::new(), SqlType::Float8)),
            "ntile" if n == 1 => {
                let a = it.next().ok_or_else(undefined)?;
                if !(a.ty().is_integer() || a.ty() == SqlType::Unknown) {
                    return Err(undefined());
                }
                let a = self.coerce(a, SqlType::Int8, "ntile")?;
                Ok((vec![a], SqlType::Int4))
            }
            "first_value" | "last_value" if n == 1 => {
                let v = self.value_arg(it.next().ok_or_else(undefined)?)?;
                let ty = v.ty();
                Ok((vec![v], ty))
            }
            "nth_value" if n == 2 => {
                let v = self.value_arg(it.next().ok_or_else(undefined)?)?;
                let k = it.next().ok_or_else(undefined)?;
                if !(k.ty().is_integer() || k.ty() == SqlType::Unknown) {
                    return Err(undefined());
                }
                let k = self.coerce(k, SqlType::Int8, "nth_value")?;
                let ty = v.ty();
                Ok((vec![v, k], ty))
            }
            "lag" | "lead" if (1..=3).contains(&n) => {
                let v = it.next().ok_or_else(undefined)?;
                let offset = match it.next() {
                    Some(o) if o.ty().is_integer() || o.ty() == SqlType::Unknown => {
                        self.coerce(o, SqlType::Int8, name)?
                    }
                    Some(_) => return Err(undefined()),
                    None => Scalar::literal(tardigrade_sqltypes::Value::Int(1), SqlType::Int8),
                };
                match it.next() {
                    None => {
                        let v = self.value_arg(v)?;
                        let ty = v.ty();
                        Ok((vec![v, offset], ty))
                    }
                    Some(default) => {
                        let ty =
                            ops::common_type(&[v.ty(), default.ty()]).map_err(|_| undefined())?;
                        let v = self.coerce(v, ty, name)?;
                        let default = self.coerce(default, ty, name)?;
                        Ok((vec![v, offset, default], ty))
                    }
                }
            }
            _ => Err(undefined()),
        }
    }

    fn value_arg(&mut self, v: Scalar) -> SqlResult<Scalar> {
        if v.ty() == SqlType::Unknown {
            self.coerce_soft(v, SqlType::Text)
        } else {
            Ok(v)
        }
    }

    fn bind_frame(
        &mut self,
        fr: &ast::WindowFrame,
        exclude: Option<&str>,
        order: &[SortKey],
        scope: &Scope,
        d: usize,
    ) -> SqlResult<WindowFrame> {
        use ast::WindowFrameBound as B;
        let units = match fr.units {
            ast::WindowFrameUnits::Rows => FrameUnits::Rows,
            ast::WindowFrameUnits::Range => FrameUnits::Range,
            ast::WindowFrameUnits::Groups => FrameUnits::Groups,
        };
        let single = fr.end_bound.is_none();
        let end = fr.end_bound.clone().unwrap_or(B::CurrentRow);
        let start = &fr.start_bound;
        if matches!(start, B::Following(None)) {
            return Err(windowing("frame start cannot be UNBOUNDED FOLLOWING"));
        }
        if single && matches!(start, B::Following(Some(_))) {
            return Err(windowing(
                "frame starting from following row cannot end with current row",
            ));
        }
        if matches!(end, B::Preceding(None)) {
            return Err(windowing("frame end cannot be UNBOUNDED PRECEDING"));
        }
        if matches!(start, B::CurrentRow) && matches!(end, B::Preceding(Some(_))) {
            return Err(windowing(
                "frame starting from current row cannot have preceding rows",
            ));
        }
        if matches!(start, B::Following(Some(_)))
            && matches!(end, B::Preceding(Some(_)) | B::CurrentRow)
        {
            return Err(windowing(
                "frame starting from following row cannot have preceding rows",
            ));
        }
        if units == FrameUnits::Groups && order.is_empty() {
            return Err(windowing("GROUPS mode requires an ORDER BY clause"));
        }
        let bound = |b: &B, this: &mut Self| -> SqlResult<FrameBound> {
            Ok(match b {
                B::CurrentRow => FrameBound::CurrentRow,
                B::Preceding(None) => FrameBound::UnboundedPreceding,
                B::Following(None) => FrameBound::UnboundedFollowing,
                B::Preceding(Some(e)) => {
                    FrameBound::Preceding(this.bind_frame_offset(e, units, order, scope, d)?)
                }
                B::Following(Some(e)) => {
                    FrameBound::Following(this.bind_frame_offset(e, units, order, scope, d)?)
                }
            })
        };
        let start = bound(start, self)?;
        let end = bound(&end, self)?;
        let exclude = match exclude {
            None => FrameExclude::NoOthers,
            Some("current row") => FrameExclude::CurrentRow,
            Some("group") => FrameExclude::Group,
            Some("ties") => FrameExclude::Ties,
            Some(other) => {
                return Err(SqlError::internal(format!("frame exclusion {other}")));
            }
        };
        Ok(WindowFrame {
            units,
            start,
            end,
            exclude,
        })
    }

    /// A frame offset: a constant (or parameter) expression, bigint for
    /// ROWS and GROUPS, for RANGE of a type that can be added to the single
    /// ORDER BY column (PostgreSQL's `in_range` support).
    fn bind_frame_offset(
        &mut self,
        e: &Expr,
        units: FrameUnits,
        order: &[SortKey],
        scope: &Scope,
        d: usize,
    ) -> SqlResult<Scalar> {
        let what = match units {
            FrameUnits::Rows => "ROWS",
            FrameUnits::Range => "RANGE",
            FrameUnits::Groups => "GROUPS",
        };
        if units == FrameUnits::Range && order.len() != 1 {
            return Err(windowing(
                "RANGE with offset PRECEDING/FOLLOWING requires exactly one ORDER BY column",
            ));
        }
        let saved_aggs = self.aggs.take();
        let s = self.bind_expr_inner(e, scope, d);
        self.aggs = saved_aggs;
        let s = fold(s?);
        let mut cols = Vec::new();
        referenced_columns(&s, &mut cols);
        if !cols.is_empty() || has_outer(&s) {
            return Err(SqlError::new(
                "42P10",
                format!("argument of {what} must not contain variables"),
            ));
        }
        let ot = s.ty();
        if units != FrameUnits::Range {
            if !(ot.is_integer() || ot == SqlType::Unknown) {
                return Err(SqlError::datatype_mismatch(format!(
                    "argument of {what} must be type bigint, not type {ot}"
                )));
            }
            return self.coerce(s, SqlType::Int8, what);
        }
        let ct = order[0].expr.ty();
        let unsupported = || {
            SqlError::unsupported(format!(
                "RANGE with offset PRECEDING/FOLLOWING is not supported for column type {ct} and offset type {ot}"
            ))
            .with_hint("Cast the offset value to an appropriate type.")
        };
        match ct {
            t if t.is_integer() => {
                if ot == SqlType::Unknown || ot.is_integer() {
                    self.coerce(s, SqlType::Int8, what)
                } else {
                    Err(unsupported())
                }
            }
            SqlType::Decimal(_) => {
                if ot == SqlType::Unknown || ot.is_integer() || matches!(ot, SqlType::Decimal(_)) {
                    self.coerce(s, SqlType::Decimal(None), what)
                } else {
                    Err(unsupported())
                }
            }
            SqlType::Float4 | SqlType::Float8 => {
                if ot == SqlType::Unknown
                    || ot.is_integer()
                    || matches!(ot, SqlType::Decimal(_) | SqlType::Float4 | SqlType::Float8)
                {
                    self.coerce(s, SqlType::Float8, what)
                } else {
                    Err(unsupported())
                }
            }
            SqlType::Date
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::TimestampTz
            | SqlType::Interval => {
                if ot == SqlType::Unknown || ot == SqlType::Interval {
                    self.coerce(s, SqlType::Interval, what)
                } else {
                    Err(unsupported())
                }
            }
            _ => Err(SqlError::unsupported(format!(
                "RANGE with offset PRECEDING/FOLLOWING is not supported for column type {ct}"
            ))),
        }
    }
}

fn has_outer(s: &Scalar) -> bool {
    if matches!(s, Scalar::Outer { .. }) {
        return true;
    }
    let mut any = false;
    s.for_each_child(&mut |c| any |= has_outer(c));
    any
}

fn same_order(a: &[SortKey], b: &[SortKey]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.expr == y.expr && x.descending == y.descending && x.nulls_first == y.nulls_first
        })
}

/// Stacks one [`Rel::Window`] per distinct (partition, order) of `calls`
/// over `rel`; gives each call's output column (identical calls share one).
pub(super) fn plan_windows(mut rel: Rel, calls: Vec<WindowCall>) -> (Rel, Vec<usize>) {
    type Group = (Vec<Scalar>, Vec<SortKey>, Vec<(usize, WindowFunc)>);
    let mut positions = vec![0; calls.len()];
    let mut groups: Vec<Group> = Vec::new();
    for (i, c) in calls.into_iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| g.0 == c.partition && same_order(&g.1, &c.order))
        {
            Some(g) => g.2.push((i, c.func)),
            None => groups.push((c.partition, c.order, vec![(i, c.func)])),
        }
    }
    for (partition, order, calls) in groups {
        let base = rel.width();
        let mut funcs: Vec<WindowFunc> = Vec::new();
        for (i, f) in calls {
            positions[i] = match funcs.iter().position(|g| *g == f) {
                Some(j) => base + j,
                None => {
                    funcs.push(f);
                    base + funcs.len() - 1
                }
            };
        }
        rel = Rel::Window {
            input: Box::new(rel),
            partition,
            order,
            funcs,
        };
    }
    (rel, positions)
}

/// `s` with each window placeholder replaced by its column of the
/// [`Rel::Window`]s below.
pub(super) fn resolve_window_refs(s: Scalar, positions: &[usize]) -> Scalar {
    match s {
        Scalar::WindowRef { index, ty } => Scalar::Column {
            index: positions.get(index).copied().unwrap_or(index),
            ty,
        },
        other => rebuild_children(other, &mut |c| resolve_window_refs(c, positions)),
    }
}

pub(super) fn contains_window(s: &Scalar) -> bool {
    if matches!(s, Scalar::WindowRef { .. }) {
        return true;
    }
    let mut any = false;
    s.for_each_child(&mut |c| any |= contains_window(c));
    any
}
