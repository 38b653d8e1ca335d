//! Typing: operators, coercion and casts, and SQL type names.
//!
//! Takes bound operands and gives typed [`Scalar`]s, PostgreSQL's way: an
//! untyped literal or parameter takes the type of the other operand
//! ([`Binder::coerce_soft`]; parameters' inferred types are recorded),
//! assignments convert implicitly between numeric and string types
//! ([`Binder::coerce`]), explicit casts are checked ([`Binder::cast`]).
//! [`Binder::binary`] types a binary operator (array operands go to the
//! array functions); the parser's operators map to [`BinOp`]s here
//! ([`binop`], `OPERATOR(pg_catalog.…)`), and type names to [`SqlType`]s
//! ([`sql_type_of`], also used by DDL). `regclass` literals resolve to OIDs.

use sqlparser::ast::{self as ast, BinaryOperator, DataType, Expr};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{SqlError, SqlResult, SqlType, Value};

use super::{Binder, table_name};
use crate::plan::Scalar;

impl Binder<'_> {
    /// A binary operation, with untyped literals and parameters taking the other
    /// side's type.
    pub fn binary(&mut self, op: BinOp, l: Scalar, r: Scalar) -> SqlResult<Scalar> {
        if op == BinOp::Concat && (l.ty().element().is_some() || r.ty().element().is_some()) {
            return self.array_concat(l, r);
        }
        let (l, r) = if matches!(op, BinOp::And | BinOp::Or) {
            (
                self.coerce_bool(l, op_name(op))?,
                self.coerce_bool(r, op_name(op))?,
            )
        } else if matches!(
            op,
            BinOp::Like | BinOp::NotLike | BinOp::ILike | BinOp::NotILike | BinOp::Concat
        ) {
            let l = if l.ty() == SqlType::Unknown {
                self.coerce_soft(l, SqlType::Text)?
            } else {
                l
            };
            let r = if r.ty() == SqlType::Unknown {
                self.coerce_soft(r, SqlType::Text)?
            } else {
                r
            };
            (l, r)
        } else if matches!(op, BinOp::JsonGet | BinOp::JsonGetText) {
            // `->` with an untyped literal takes it as a key (text), as PostgreSQL
            // resolves jsonb -> unknown.
            let r = if r.ty() == SqlType::Unknown {
                self.coerce_soft(r, SqlType::Text)?
            } else {
                r
            };
            (l, r)
        } else {
            match (l.ty(), r.ty()) {
                (SqlType::Unknown, SqlType::Unknown) => (
                    self.coerce_soft(l, SqlType::Text)?,
                    self.coerce_soft(r, SqlType::Text)?,
                ),
                (SqlType::Unknown, t) => (self.coerce_operand(l, t, op)?, r),
                (t, SqlType::Unknown) => {
                    let r = self.coerce_operand(r, t, op)?;
                    (l, r)
                }
                _ => (l, r),
            }
        };
        let ty = ops::binary_type(op, l.ty(), r.ty())?;
        Ok(Scalar::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            ty,
        })
    }

    /// The type an untyped operand takes next to an operand of type `other`.
    fn coerce_operand(&mut self, s: Scalar, other: SqlType, op: BinOp) -> SqlResult<Scalar> {
        // date/timestamp + 'literal' means an interval; otherwise the same type.
        // (`-` keeps the other side's type: PostgreSQL reads `ts - '…'` as
        // timestamp - timestamp.)
        let target = match (op, other) {
            (
                BinOp::Add,
                SqlType::Date | SqlType::Time | SqlType::Timestamp | SqlType::TimestampTz,
            ) if matches!(s, Scalar::Literal { .. }) => SqlType::Interval,
            _ => other,
        };
        self.coerce_soft(s, target)
    }

    /// Aggregate arguments whose type is still unknown (string literals)
    /// taken as text, as PostgreSQL resolves them.
    pub(crate) fn unknown_args_as_text(&mut self, args: Vec<Scalar>) -> SqlResult<Vec<Scalar>> {
        args.into_iter()
            .map(|b| {
                if b.ty() == SqlType::Unknown {
                    self.coerce_soft(b, SqlType::Text)
                } else {
                    Ok(b)
                }
            })
            .collect()
    }

    /// Gives an untyped literal or parameter a type; leaves typed expressions alone.
    pub fn coerce_soft(&mut self, s: Scalar, ty: SqlType) -> SqlResult<Scalar> {
        if ty == SqlType::Unknown || s.ty() != SqlType::Unknown {
            return Ok(s);
        }
        match s {
            Scalar::Literal {
                value: Value::Null, ..
            } => Ok(Scalar::Literal {
                value: Value::Null,
                ty,
            }),
            Scalar::Literal {
                value: Value::Text(t),
                ..
            } if ty == SqlType::RegClass => Ok(Scalar::Literal {
                value: Value::Int(self.regclass_oid(&t)?),
                ty,
            }),
            Scalar::Literal {
                value: Value::Text(t),
                ..
            } => Ok(Scalar::Literal {
                value: Value::from_text(&t, ty)?,
                ty,
            }),
            Scalar::Param { index, .. } => {
                if let Some(p) = self.params.get_mut(index) {
                    *p = ty;
                }
                Ok(Scalar::Param { index, ty })
            }
            other => Ok(Scalar::Cast {
                expr: Box::new(other),
                to: ty,
            }),
        }
    }

    /// Coerces to `ty` as an assignment would (implicit casts between numeric
    /// types and from untyped literals); other mismatches are 42804.
    pub fn coerce(&mut self, s: Scalar, ty: SqlType, context: &str) -> SqlResult<Scalar> {
        let from = s.ty();
        if from == SqlType::Unknown {
            return self.coerce_soft(s, ty);
        }
        if from == ty {
            return Ok(s);
        }
        if !assignable(from, ty) {
            return Err(SqlError::datatype_mismatch(format!(
                "{context}: expected {ty}, found {from}"
            )));
        }
        // A string going into VARCHAR(n)/CHAR(n) (or an array of them) is not
        // cut here as an explicit cast would cut it: the assignment checks its
        // length (22001) when it stores it.
        let unbounded = |t: SqlType| match t {
            SqlType::Varchar(Some(_)) | SqlType::Char(_) => SqlType::Text,
            t => t,
        };
        let (fe, te) = (from.element().unwrap_or(from), ty.element().unwrap_or(ty));
        if fe.is_string() && unbounded(te) != te {
            let target = match ty.element() {
                Some(e) => SqlType::array_of(unbounded(e)),
                None => unbounded(ty),
            };
            return if from == target {
                Ok(s)
            } else {
                self.cast(s, target)
            };
        }
        self.cast(s, ty)
    }

    pub fn coerce_bool(&mut self, s: Scalar, context: &str) -> SqlResult<Scalar> {
        match s.ty() {
            SqlType::Bool => Ok(s),
            SqlType::Unknown => self.coerce_soft(s, SqlType::Bool),
            other => Err(SqlError::datatype_mismatch(format!(
                "argument of {context} must be type boolean, not type {other}"
            ))),
        }
    }

    /// An explicit cast.
    pub fn cast(&mut self, s: Scalar, to: SqlType) -> SqlResult<Scalar> {
        let from = s.ty();
        // An explicit cast of a string literal to VARCHAR(n) / CHAR(n)
        // truncates it (an assignment would fail with 22001).
        if from == SqlType::Unknown
            && matches!(to, SqlType::Varchar(Some(_)) | SqlType::Char(_))
            && matches!(
                s,
                Scalar::Literal {
                    value: Value::Text(_),
                    ..
                }
            )
        {
            let text = self.coerce_soft(s, SqlType::Text)?;
            return self.cast(text, to);
        }
        if from == SqlType::Unknown {
            return self.coerce_soft(s, to);
        }
        if from == to {
            return Ok(s);
        }
        // regclass from and to a name, looked up among the statement's
        // relations.
        if to == SqlType::RegClass && from.is_string() {
            return Ok(self.regclass_call("regclass", s, SqlType::RegClass));
        }
        if from == SqlType::RegClass && to.is_string() {
            let name = self.regclass_call("regclassout", s, SqlType::Text);
            return self.cast(name, to);
        }
        if !ops::can_cast(from, to) {
            // between arrays PostgreSQL names the element types that do not cast
            let (f, t) = match (from.element(), to.element()) {
                (Some(f), Some(t)) => (f, t),
                _ => (from, to),
            };
            return Err(SqlError::new(
                codes::CANNOT_COERCE,
                format!("cannot cast type {f} to {t}"),
            ));
        }
        Ok(Scalar::Cast {
            expr: Box::new(s),
            to,
        })
    }

    /// `l op ANY (array)` / `l op ALL (array)`.
    pub(super) fn quantified_array(
        &mut self,
        op: BinOp,
        all: bool,
        l: Scalar,
        r: Scalar,
    ) -> SqlResult<Scalar> {
        let r = if r.ty() == SqlType::Unknown {
            let elem = match l.ty() {
                SqlType::Unknown => SqlType::Text,
                t => t,
            };
            self.coerce_soft(r, SqlType::array_of(elem))?
        } else {
            int2vector_as_array(r)
        };
        let Some(elem) = r.ty().element() else {
            return Err(SqlError::new(
                codes::WRONG_OBJECT_TYPE,
                "op ANY/ALL (array) requires array on right side",
            ));
        };
        let l = self.coerce_soft(l, elem)?;
        if ops::binary_type(op, l.ty(), elem)? != SqlType::Bool {
            return Err(SqlError::datatype_mismatch(
                "op ANY/ALL (array) requires operator to yield boolean",
            ));
        }
        Ok(Scalar::Func {
            name: tardigrade_sqltypes::array::quantified_name(op, all),
            args: vec![l, r],
            ty: SqlType::Bool,
        })
    }

    /// `a @> b`, `a <@ b`, `a && b` between arrays (an untyped side takes the
    /// other's type).
    pub(super) fn array_containment(
        &mut self,
        name: &str,
        op: &BinaryOperator,
        l: Scalar,
        r: Scalar,
    ) -> SqlResult<Scalar> {
        let (l, r) = match (l.ty(), r.ty()) {
            (SqlType::Unknown, t @ SqlType::Array(_)) => (self.coerce_soft(l, t)?, r),
            (t @ SqlType::Array(_), SqlType::Unknown) => {
                let r = self.coerce_soft(r, t)?;
                (l, r)
            }
            _ => (l, r),
        };
        let types = [l.ty(), r.ty()];
        match ops::function_type(name, &types) {
            Ok(ty) => Ok(Scalar::Func {
                name: name.into(),
                args: vec![l, r],
                ty,
            }),
            Err(_) => Err(SqlError::undefined_function(format!(
                "operator does not exist: {} {op} {}",
                types[0], types[1]
            ))),
        }
    }

    /// `||` with an array operand: array_cat, array_append or array_prepend.
    fn array_concat(&mut self, l: Scalar, r: Scalar) -> SqlResult<Scalar> {
        let (lt, rt) = (l.ty(), r.ty());
        let (name, l, r) = match (lt.element(), rt.element()) {
            (Some(_), Some(_)) => ("array_cat", l, r),
            (Some(_), None) if rt == SqlType::Unknown => {
                let r = self.coerce_soft(r, lt)?;
                ("array_cat", l, r)
            }
            (None, Some(_)) if lt == SqlType::Unknown => {
                let l = self.coerce_soft(l, rt)?;
                ("array_cat", l, r)
            }
            (Some(e), None) => {
                let r = self.coerce(r, e, "array_append")?;
                ("array_append", l, r)
            }
            (None, Some(e)) => {
                let l = self.coerce(l, e, "array_prepend")?;
                ("array_prepend", l, r)
            }
            (None, None) => return Err(SqlError::internal("array_concat without an array")),
        };
        let ty = ops::function_type(name, &[l.ty(), r.ty()])?;
        Ok(Scalar::Func {
            name: name.into(),
            args: vec![l, r],
            ty,
        })
    }

    /// The OID of the relation a `'name'::regclass` literal names: digits
    /// are that OID (unchecked, as in PostgreSQL), else a relation of the
    /// statement's database (table, view, sequence or index, optionally
    /// `public.`-qualified) or a system catalog (its PostgreSQL OID).
    pub(super) fn regclass_oid(&self, name: &str) -> SqlResult<i64> {
        if let Some(oid) = regclass_digits(name)? {
            return Ok(oid);
        }
        let parts = crate::vtable::split_relation_name(name)
            .ok_or_else(|| undefined_relation(&[name.to_string()]))?;
        let undefined = || undefined_relation(&parts);
        let (schema, table) = match parts.as_slice() {
            [t] => (None, t.as_str()),
            [s, t] => (Some(s.as_str()), t.as_str()),
            _ => return Err(undefined()),
        };
        if matches!(schema, None | Some("public")) {
            let (oids, names) = self.relation_names();
            let user = oids
                .len()
                .saturating_sub(tardigrade_sqltypes::catalog_fns::CATALOG_TABLE_OIDS.len());
            if let Some(i) = names.iter().take(user).position(|n| n == table)
                && let Some(oid) = oids.get(i)
            {
                return Ok(*oid);
            }
        }
        if let Some(oid) = crate::vtable::catalog_table_oid(&parts) {
            return Ok(oid);
        }
        if matches!(schema, None | Some("public"))
            && let Some(t) = self.tables.get(table)
            && t.virtual_rows.is_none()
        {
            return Ok(i64::from(t.id));
        }
        Err(undefined())
    }

    /// The statement's relations ([`crate::vtable::relation_names`]): their
    /// OIDs and names, the database's first, then the system catalogs'
    /// (only those when the statement was not seen to need the database's:
    /// `collect_tables` loads them for a cast to regclass or `to_regclass`).
    pub(super) fn relation_names(&self) -> (Vec<i64>, Vec<String>) {
        let mut oids = Vec::new();
        let mut names = Vec::new();
        let rows = self
            .tables
            .get(crate::vtable::RELATION_NAMES)
            .and_then(|t| t.virtual_rows.clone());
        if let Some(rows) = rows {
            for row in rows.iter() {
                if let [Value::Int(oid), Value::Text(name)] = row.as_slice() {
                    oids.push(*oid);
                    names.push(name.clone());
                }
            }
        }
        if oids.is_empty() {
            for (name, oid) in tardigrade_sqltypes::catalog_fns::CATALOG_TABLE_OIDS {
                oids.push(*oid);
                names.push((*name).to_string());
            }
        }
        (oids, names)
    }

    /// `f(arg, oids, names)`: a regclass function (`regclass`,
    /// `regclassout`, `regclass_pair` in `plan::eval`) with the statement's
    /// relations as two array literals.
    pub(super) fn regclass_call(&self, f: &str, arg: Scalar, ty: SqlType) -> Scalar {
        let (oids, names) = self.relation_names();
        Scalar::Func {
            name: f.into(),
            args: vec![
                arg,
                Scalar::literal(
                    Value::Array(oids.into_iter().map(Value::Int).collect()),
                    SqlType::array_of(SqlType::Oid),
                ),
                Scalar::literal(
                    Value::Array(names.into_iter().map(Value::Text).collect()),
                    SqlType::array_of(SqlType::Text),
                ),
            ],
            ty,
        }
    }

    /// A query's result as sent to the client: its regclass columns carry
    /// the relation's name for text output (`regclass_pair`).
    pub fn regclass_output(&self, bound: super::BoundQuery) -> super::BoundQuery {
        if !bound.scope.iter().any(|c| c.ty == SqlType::RegClass) {
            return bound;
        }
        let exprs = bound
            .scope
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let col = Scalar::Column { index, ty: c.ty };
                if c.ty == SqlType::RegClass {
                    self.regclass_call("regclass_pair", col, SqlType::RegClass)
                } else {
                    col
                }
            })
            .collect();
        super::BoundQuery {
            rel: crate::plan::Rel::project(bound.rel, exprs),
            scope: bound.scope,
        }
    }
}

/// The OID a regclass input of digits is (`'123'::regclass`), unchecked;
/// `None` for a name.
pub(crate) fn regclass_digits(name: &str) -> SqlResult<Option<i64>> {
    let t = name.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return tardigrade_sqltypes::value::parse_int(t, SqlType::Oid).map(Some);
    }
    Ok(None)
}

/// The error for a regclass name that names no relation: PostgreSQL's
/// 42P01 with the name as read (unquoted parts folded to lower case), or
/// 3F000 for a schema other than `public`, `pg_catalog` and
/// `information_schema`.
pub(crate) fn undefined_relation(parts: &[String]) -> SqlError {
    if let [schema, _] = parts
        && !matches!(
            schema.as_str(),
            "public" | "pg_catalog" | "information_schema"
        )
    {
        return SqlError::new(
            codes::INVALID_SCHEMA_NAME,
            format!("schema \"{schema}\" does not exist"),
        );
    }
    SqlError::new(
        codes::UNDEFINED_TABLE,
        format!("relation \"{}\" does not exist", parts.join(".")),
    )
}

/// Whether `dt` is `regclass` (`pg_catalog.regclass`).
pub(super) fn is_regclass_type(dt: &DataType) -> bool {
    match dt {
        DataType::Regclass => true,
        DataType::Custom(n, _) => table_name(n) == "regclass",
        _ => false,
    }
}

/// Whether a value of type `from` converts implicitly to `to` in an assignment
/// (arrays when their elements do).
fn assignable(from: SqlType, to: SqlType) -> bool {
    if let (Some(f), Some(t)) = (from.element(), to.element()) {
        return f == t || f == SqlType::Unknown || assignable(f, t);
    }
    (from.is_numeric() && to.is_numeric())
        || (from.is_string() && to.is_string())
        || matches!(
            (from, to),
            (SqlType::Date, SqlType::Timestamp | SqlType::TimestampTz)
                | (SqlType::Timestamp, SqlType::TimestampTz)
                | (SqlType::TimestampTz, SqlType::Timestamp)
        )
        || to.is_string()
}

fn op_name(op: BinOp) -> &'static str {
    match op {
        BinOp::And => "AND",
        BinOp::Or => "OR",
        _ => "operator",
    }
}

pub(super) fn binop(op: &BinaryOperator) -> SqlResult<BinOp> {
    Ok(match op {
        BinaryOperator::Plus => BinOp::Add,
        BinaryOperator::Minus => BinOp::Sub,
        BinaryOperator::Multiply => BinOp::Mul,
        BinaryOperator::Divide => BinOp::Div,
        BinaryOperator::Modulo => BinOp::Mod,
        BinaryOperator::PGExp => BinOp::Pow,
        BinaryOperator::StringConcat => BinOp::Concat,
        BinaryOperator::Gt => BinOp::Gt,
        BinaryOperator::Lt => BinOp::Lt,
        BinaryOperator::GtEq => BinOp::GtEq,
        BinaryOperator::LtEq => BinOp::LtEq,
        BinaryOperator::Eq => BinOp::Eq,
        BinaryOperator::NotEq => BinOp::NotEq,
        BinaryOperator::And => BinOp::And,
        BinaryOperator::Or => BinOp::Or,
        BinaryOperator::BitwiseOr => BinOp::BitOr,
        BinaryOperator::BitwiseAnd => BinOp::BitAnd,
        BinaryOperator::BitwiseXor | BinaryOperator::PGBitwiseXor => BinOp::BitXor,
        BinaryOperator::PGBitwiseShiftLeft => BinOp::ShiftLeft,
        BinaryOperator::PGBitwiseShiftRight => BinOp::ShiftRight,
        BinaryOperator::PGLikeMatch => BinOp::Like,
        BinaryOperator::PGNotLikeMatch => BinOp::NotLike,
        BinaryOperator::PGILikeMatch => BinOp::ILike,
        BinaryOperator::PGNotILikeMatch => BinOp::NotILike,
        BinaryOperator::Arrow => BinOp::JsonGet,
        BinaryOperator::LongArrow => BinOp::JsonGetText,
        other => {
            return Err(SqlError::undefined_function(format!(
                "operator does not exist: {other}"
            )));
        }
    })
}

/// The operator `OPERATOR(schema.op)` names (only `pg_catalog`'s).
pub(super) fn custom_operator(parts: &[String]) -> SqlResult<BinaryOperator> {
    let (schema, symbol) = match parts {
        [symbol] => (None, symbol.as_str()),
        [schema, symbol] => (Some(schema.as_str()), symbol.as_str()),
        _ => {
            return Err(SqlError::syntax(format!(
                "bad operator name {}",
                parts.join(".")
            )));
        }
    };
    if schema.is_some_and(|s| s != "pg_catalog") {
        return Err(SqlError::new(
            codes::UNDEFINED_FUNCTION,
            format!("operator does not exist: {}", parts.join(".")),
        ));
    }
    Ok(match symbol {
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "~~" => BinaryOperator::PGLikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        "<=" => BinaryOperator::LtEq,
        ">" => BinaryOperator::Gt,
        ">=" => BinaryOperator::GtEq,
        "+" => BinaryOperator::Plus,
        "-" => BinaryOperator::Minus,
        "*" => BinaryOperator::Multiply,
        "/" => BinaryOperator::Divide,
        "||" => BinaryOperator::StringConcat,
        other => {
            return Err(SqlError::new(
                codes::UNDEFINED_FUNCTION,
                format!("operator does not exist: pg_catalog.{other}"),
            ));
        }
    })
}

/// The name in a `'name'::regclass` (or `CAST('name' AS regclass)`).
pub(super) fn regclass_literal(e: &Expr) -> Option<&str> {
    let Expr::Cast {
        expr, data_type, ..
    } = e
    else {
        return None;
    };
    match (is_regclass_type(data_type), expr.as_ref()) {
        (true, Expr::Value(v)) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// `s` (of the type of `dt`) rounded to the precision `dt` gives a
/// timestamp (`timestamp(0)`, `timestamptz(3)`), as PostgreSQL's typmod
/// coercion does; other types and no precision leave it as it is.
/// TODO(issue 13): the precision of a column declared `timestamp(p)` (and
/// the TIME type): the column descriptor has nowhere to keep it yet, so
/// stored values keep their microseconds.
pub(super) fn with_timestamp_precision(s: Scalar, dt: &DataType) -> Scalar {
    let precision = match dt {
        DataType::Timestamp(Some(p), _) => i64::try_from(*p).ok(),
        DataType::Custom(name, mods)
            if matches!(table_name(name).as_str(), "timestamp" | "timestamptz") =>
        {
            mods.first()
                .and_then(|m| m.to_string().trim().parse::<i64>().ok())
        }
        _ => None,
    };
    let ty = s.ty();
    let name = match ty {
        SqlType::Timestamp => "timestamp",
        SqlType::TimestampTz => "timestamptz",
        _ => return s,
    };
    match precision {
        Some(p) if p < 6 => Scalar::Func {
            name: name.into(),
            args: vec![s, Scalar::literal(Value::Int(p), SqlType::Int4)],
            ty,
        },
        _ => s,
    }
}

/// Maps a SQL type name to a [`SqlType`].
pub fn sql_type_of(dt: &DataType) -> SqlResult<SqlType> {
    use ast::{CharacterLength, ExactNumberInfo, TimezoneInfo};
    let len = |l: &Option<CharacterLength>| -> Option<u32> {
        match l {
            Some(CharacterLength::IntegerLength { length, .. }) => u32::try_from(*length).ok(),
            _ => None,
        }
    };
    Ok(match dt {
        DataType::Bool | DataType::Boolean => SqlType::Bool,
        DataType::SmallInt(_) | DataType::Int2(_) => SqlType::Int2,
        DataType::Int4(_) => SqlType::Int4,
        // As in DDL (and CockroachDB): INT and INTEGER are 8 bytes, so a value
        // of an INTEGER column always fits a cast to INTEGER.
        DataType::Int(_) | DataType::Integer(_) => SqlType::Int8,
        DataType::BigInt(_) | DataType::Int8(_) | DataType::Int64 => SqlType::Int8,
        DataType::Real | DataType::Float4 => SqlType::Float4,
        DataType::DoublePrecision | DataType::Float8 | DataType::Double(_) | DataType::Float64 => {
            SqlType::Float8
        }
        DataType::Float(info) => match info {
            ExactNumberInfo::Precision(p) if *p <= 24 => SqlType::Float4,
            _ => SqlType::Float8,
        },
        DataType::Numeric(info) | DataType::Decimal(info) | DataType::Dec(info) => match info {
            ExactNumberInfo::None => SqlType::Decimal(None),
            ExactNumberInfo::Precision(p) => {
                SqlType::Decimal(Some((u16::try_from(*p).unwrap_or(1000), 0)))
            }
            ExactNumberInfo::PrecisionAndScale(p, s) => SqlType::Decimal(Some((
                u16::try_from(*p).unwrap_or(1000),
                u16::try_from(*s).unwrap_or(0),
            ))),
        },
        DataType::Text | DataType::String(_) => SqlType::Text,
        DataType::Varchar(l)
        | DataType::CharacterVarying(l)
        | DataType::CharVarying(l)
        | DataType::Nvarchar(l) => SqlType::Varchar(len(l)),
        DataType::Char(l) | DataType::Character(l) => SqlType::Char(len(l).unwrap_or(1)),
        DataType::Bytea | DataType::Bytes(_) | DataType::Blob(_) => SqlType::Bytes,
        DataType::Date => SqlType::Date,
        // TODO(issue 13): TIME(p) rounding to p digits, and TIME WITH TIME
        // ZONE.
        DataType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => SqlType::Time,
        DataType::Timestamp(_, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => SqlType::TimestampTz,
            _ => SqlType::Timestamp,
        },
        DataType::Interval { .. } => SqlType::Interval,
        DataType::Uuid => SqlType::Uuid,
        DataType::JSON | DataType::JSONB => SqlType::Jsonb,
        DataType::Array(
            ast::ArrayElemTypeDef::SquareBracket(inner, _)
            | ast::ArrayElemTypeDef::Qualified(inner, _)
            | ast::ArrayElemTypeDef::AngleBracket(inner)
            | ast::ArrayElemTypeDef::Parenthesis(inner),
        ) => SqlType::array_of(sql_type_of(inner)?),
        DataType::Regclass => SqlType::RegClass,
        DataType::Custom(name, _) => match table_name(name).as_str() {
            "int8" | "int64" | "bigserial" | "serial8" => SqlType::Int8,
            "int4" | "serial" | "serial4" => SqlType::Int4,
            "int2" | "smallserial" | "serial2" => SqlType::Int2,
            "float4" => SqlType::Float4,
            "float8" => SqlType::Float8,
            "string" => SqlType::Text,
            "bytes" => SqlType::Bytes,
            "timestamptz" => SqlType::TimestampTz,
            "bool" => SqlType::Bool,
            "jsonb" | "json" => SqlType::Jsonb,
            "uuid" => SqlType::Uuid,
            "bpchar" => SqlType::Char(1),
            // Schema-qualified standard names (`pg_catalog.text`) and the
            // catalog types: `name` and `"char"` are text here; the reg*
            // types other than regclass and regtype are OIDs.
            "text" | "name" | "char" | "varchar" => SqlType::Text,
            "regclass" => SqlType::RegClass,
            "regtype" => SqlType::RegType,
            "oid" | "regproc" | "regprocedure" | "regnamespace" | "regrole" => SqlType::Oid,
            "xid" | "cid" => SqlType::Int8,
            "int2vector" => SqlType::array_of(SqlType::Int2),
            "oidvector" => SqlType::array_of(SqlType::Oid),
            "numeric" => SqlType::Decimal(None),
            "date" => SqlType::Date,
            "time" => SqlType::Time,
            "inet" => SqlType::Inet,
            "timestamp" => SqlType::Timestamp,
            "interval" => SqlType::Interval,
            other => {
                return Err(SqlError::new(
                    codes::UNDEFINED_OBJECT,
                    format!("type \"{other}\" does not exist"),
                ));
            }
        },
        other => {
            return Err(SqlError::unsupported(format!(
                "type {other} is not supported"
            )));
        }
    })
}

/// An `int2vector` (`pg_index.indkey`) read as the `int2[]` it holds, for
/// the array operators and functions (`attnum = ANY (indkey)`).
pub(super) fn int2vector_as_array(s: Scalar) -> Scalar {
    if s.ty() == SqlType::Int2Vector {
        Scalar::Cast {
            expr: Box::new(s),
            to: SqlType::array_of(SqlType::Int2),
        }
    } else {
        s
    }
}
