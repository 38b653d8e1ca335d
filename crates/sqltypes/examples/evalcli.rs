//! Evaluates typed expressions read from stdin, one per line, for comparing against
//! PostgreSQL: `bin<TAB>op<TAB>ltype<TAB>lval<TAB>rtype<TAB>rval`,
//! `cast<TAB>from<TAB>val<TAB>to`, `fn<TAB>name<TAB>type<TAB>val…`. Prints the
//! PostgreSQL text output, `NULL`, or `ERROR <sqlstate>`.

use std::io::BufRead;

use tardigrade_sqltypes::ops::{self, BinOp};
use tardigrade_sqltypes::{SqlError, SqlType, Value};

fn ty(name: &str) -> SqlType {
    match name {
        "int2" => SqlType::Int2,
        "int4" => SqlType::Int4,
        "int8" => SqlType::Int8,
        "float4" => SqlType::Float4,
        "float8" => SqlType::Float8,
        "numeric" => SqlType::Decimal(None),
        "bool" => SqlType::Bool,
        "date" => SqlType::Date,
        "timestamp" => SqlType::Timestamp,
        "timestamptz" => SqlType::TimestampTz,
        "interval" => SqlType::Interval,
        "jsonb" => SqlType::Jsonb,
        "unknown" => SqlType::Unknown,
        _ => SqlType::Text,
    }
}

fn op(name: &str) -> BinOp {
    match name {
        "+" => BinOp::Add,
        "-" => BinOp::Sub,
        "*" => BinOp::Mul,
        "/" => BinOp::Div,
        "%" => BinOp::Mod,
        "^" => BinOp::Pow,
        "=" => BinOp::Eq,
        "<" => BinOp::Lt,
        "||" => BinOp::Concat,
        _ => BinOp::GtEq,
    }
}

fn run(parts: &[&str]) -> Result<(Value, SqlType), SqlError> {
    let lit = |v: &str, t: SqlType| Value::from_text(v, t);
    match parts {
        ["bin", o, lt, lv, rt, rv] => {
            let (lt, rt) = (ty(lt), ty(rt));
            let rty = ops::binary_type(op(o), lt, rt)?;
            let v = ops::eval_binary(op(o), &lit(lv, lt)?, &lit(rv, rt)?, lt, rt)?;
            Ok((v, rty))
        }
        ["cast", from, v, to] => {
            let (from, to) = (ty(from), ty(to));
            Ok((ops::cast(&lit(v, from)?, from, to)?, to))
        }
        ["fn", name, rest @ ..] => {
            let mut tys = Vec::new();
            let mut vals = Vec::new();
            for pair in rest.chunks(2) {
                let t = ty(pair[0]);
                tys.push(t);
                vals.push(lit(pair.get(1).copied().unwrap_or(""), t)?);
            }
            let rt = ops::function_type(name, &tys)?;
            Ok((ops::call_function(name, &vals, &tys)?, rt))
        }
        _ => Err(SqlError::internal("bad line")),
    }
}

fn main() {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let parts: Vec<&str> = line.split('\t').collect();
        match run(&parts) {
            Ok((Value::Null, _)) => println!("NULL"),
            Ok((v, t)) => println!("{}", v.to_text(t)),
            Err(e) => println!("ERROR {}", e.code),
        }
    }
}
