//! Parsing: `sqlparser` with the PostgreSQL dialect.
//!
//! CockroachDB statements that PostgreSQL lacks are recognised here before the
//! generic parser runs. Errors are SQLSTATE 42601 with the position when the
//! parser reports one.

use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use tardigrade_sqltypes::{SqlError, SqlResult};

/// Nesting deeper than this is refused (54001) instead of overflowing the stack.
const MAX_NESTING: usize = 200;

/// Parses a query string into statements (empty statements are dropped).
pub fn parse_statements(sql: &str) -> SqlResult<Vec<Statement>> {
    let dialect = PostgreSqlDialect {};
    Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| parser_error(sql, e))
}

fn parser_error(sql: &str, e: ParserError) -> SqlError {
    match e {
        ParserError::RecursionLimitExceeded => SqlError::new(
            tardigrade_sqltypes::error::codes::STATEMENT_TOO_COMPLEX,
            "statement is too deeply nested",
        ),
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => {
            let position = position_of(sql, &m);
            let message = strip_location(&m);
            let err = SqlError::syntax(format!("syntax error: {message}"));
            match position {
                Some(p) => err.with_position(p),
                None => err,
            }
        }
    }
}

/// sqlparser reports "… at Line: L, Column: C"; PostgreSQL wants a 1-based
/// character offset into the statement.
fn position_of(sql: &str, message: &str) -> Option<usize> {
    let at = message.rfind("at Line: ")?;
    let rest = &message[at + "at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let line: usize = line.trim().parse().ok()?;
    let column: usize = rest
        .trim()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    let mut offset = 0;
    for (i, l) in sql.split('\n').enumerate() {
        if i + 1 == line {
            return Some(offset + l.chars().take(column.saturating_sub(1)).count() + 1);
        }
        offset += l.chars().count() + 1;
    }
    None
}

fn strip_location(message: &str) -> &str {
    match message.rfind(" at Line: ") {
        Some(i) => &message[..i],
        None => message,
    }
}
