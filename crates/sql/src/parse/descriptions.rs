//! `obj_description`, `col_description` and `shobj_description`, rewritten
//! at parse time into the scalar subqueries over `pg_description` and
//! `pg_shdescription` that PostgreSQL defines them as (they are SQL
//! functions there too), so the binder sees only a catalog query:
//!
//! | call | becomes |
//! |---|---|
//! | `obj_description(o, 'pg_class')` | `(SELECT description FROM pg_catalog.pg_description WHERE objoid = o AND classoid = 1259 AND objsubid = 0)` |
//! | `obj_description(o)` | the same without `classoid`, the least description when several objects share the OID |
//! | `col_description(t, n)` | `… WHERE objoid = t AND classoid = 1259 AND objsubid = n` |
//! | `shobj_description(o, 'pg_database')` | `… FROM pg_catalog.pg_shdescription WHERE objoid = o AND classoid = 1262` |
//!
//! The catalog name maps to its OID (an unknown one finds nothing, NULL,
//! as in PostgreSQL, where it is `relname = $2`); one known only at run time
//! goes through a `CASE` over the catalogs. The subquery's column is named
//! after the function, which is then the output column's name.

use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use tardigrade_sqltypes::catalog_fns::{CATALOG_TABLE_OIDS, PG_CLASS_OID};

/// The quoted identifier standing for argument `n` in a template.
fn marker(n: usize) -> String {
    format!("tardigrade:description_arg:{n}")
}

/// Rewrites `e` when it is a call of one of the description functions with
/// positional arguments; leaves anything else as it is.
pub fn rewrite(e: &mut Expr) {
    let Some((name, args)) = description_call(e) else {
        return;
    };
    let classoid = |arg: &Expr| match arg {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(catalog) => CATALOG_TABLE_OIDS
                .iter()
                .find(|(n, _)| n == catalog)
                .map_or("NULL".to_string(), |(_, oid)| oid.to_string()),
            _ => "NULL".to_string(),
        },
        _ => {
            let whens: Vec<String> = CATALOG_TABLE_OIDS
                .iter()
                .map(|(n, oid)| format!("WHEN '{n}' THEN {oid}"))
                .collect();
            format!(
                "CASE CAST(\"{}\" AS TEXT) {} END",
                marker(1),
                whens.join(" ")
            )
        }
    };
    let (a0, a1) = (marker(0), marker(1));
    let template = match (name.as_str(), args.as_slice()) {
        ("obj_description", [_]) => format!(
            "(SELECT min(description) AS obj_description FROM pg_catalog.pg_description \
             WHERE objoid = \"{a0}\" AND objsubid = 0)"
        ),
        ("obj_description", [_, catalog]) => format!(
            "(SELECT description AS obj_description FROM pg_catalog.pg_description \
             WHERE objoid = \"{a0}\" AND classoid = {} AND objsubid = 0)",
            classoid(catalog)
        ),
        ("col_description", [_, _]) => format!(
            "(SELECT description AS col_description FROM pg_catalog.pg_description \
             WHERE objoid = \"{a0}\" AND classoid = {PG_CLASS_OID} AND objsubid = \"{a1}\")"
        ),
        ("shobj_description", [_, catalog]) => format!(
            "(SELECT description AS shobj_description FROM pg_catalog.pg_shdescription \
             WHERE objoid = \"{a0}\" AND classoid = {})",
            classoid(catalog)
        ),
        _ => return,
    };
    let Ok(mut subquery) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&template)
        .and_then(|mut p| p.parse_expr())
    else {
        return;
    };
    let _ = sqlparser::ast::visit_expressions_mut(&mut subquery, |x| {
        if let Expr::Identifier(i) = x
            && let Some(n) = i
                .value
                .strip_prefix("tardigrade:description_arg:")
                .and_then(|n| n.parse::<usize>().ok())
            && let Some(arg) = args.get(n)
        {
            *x = Expr::Nested(Box::new(arg.clone()));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    *e = subquery;
}

/// `(name, arguments)` of a plain call of `[pg_catalog.]obj_description`,
/// `col_description` or `shobj_description`.
fn description_call(e: &Expr) -> Option<(String, Vec<Expr>)> {
    let Expr::Function(f) = e else {
        return None;
    };
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(super::normalize(i)),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let name = match parts.as_slice() {
        [n] => n,
        [s, n] if s == "pg_catalog" => n,
        _ => return None,
    };
    if !matches!(
        name.as_str(),
        "obj_description" | "col_description" | "shobj_description"
    ) || f.over.is_some()
        || f.filter.is_some()
        || !f.within_group.is_empty()
        || !matches!(f.parameters, FunctionArguments::None)
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((name.clone(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut e = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .expect("parse");
        let _ = sqlparser::ast::visit_expressions_mut(&mut e, |x| {
            rewrite(x);
            std::ops::ControlFlow::<()>::Continue(())
        });
        e.to_string()
    }

    #[test]
    fn calls_become_catalog_subqueries() {
        assert_eq!(
            rewritten("pg_catalog.obj_description(c.oid, 'pg_class')"),
            "(SELECT description AS obj_description FROM pg_catalog.pg_description \
             WHERE objoid = (c.oid) AND classoid = 1259 AND objsubid = 0)"
        );
        assert_eq!(
            rewritten("col_description('t'::regclass, 2)"),
            "(SELECT description AS col_description FROM pg_catalog.pg_description \
             WHERE objoid = ('t'::REGCLASS) AND classoid = 1259 AND objsubid = (2))"
        );
        assert!(rewritten("obj_description(1, 'nope')").contains("classoid = NULL"));
        assert!(rewritten("shobj_description(d.oid, x)").contains("CASE CAST((x) AS TEXT)"));
        // Not ours: other arities, other schemas, other functions.
        assert_eq!(
            rewritten("obj_description(1, 2, 3)"),
            "obj_description(1, 2, 3)"
        );
        assert_eq!(
            rewritten("s.col_description(1, 2)"),
            "s.col_description(1, 2)"
        );
        assert_eq!(rewritten("lower('A')"), "lower('A')");
    }
}
