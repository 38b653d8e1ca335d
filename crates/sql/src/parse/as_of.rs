//! `AS OF SYSTEM TIME <expr>`, CockroachDB's time travel, which the parser
//! does not take: the token pass cuts every clause out of a statement before
//! the statement is parsed, parses its expression on its own, and hands the
//! expressions over with the statement ([`super::Ours::AsOf`]). What they
//! mean (and the checks that need their values) is [`crate::asof`]'s.
//!
//! Where a clause may stand, as in CockroachDB's grammar:
//!
//! - after the FROM list of a query (`SELECT … FROM t AS OF SYSTEM TIME
//!   '-10s' WHERE …`), also under EXPLAIN. The clause of the statement's
//!   own SELECT — at parenthesis depth 0, not in a branch of a UNION,
//!   INTERSECT or EXCEPT — is the statement's; those of nested queries
//!   (subqueries, CTEs, set operation branches) are allowed only beside it
//!   and must name the same time ([`AsOf::nested`]). Without the statement's
//!   own clause a nested one is error 42601 "AS OF SYSTEM TIME must be
//!   provided on a top-level statement", as is a clause in any other
//!   statement (INSERT … SELECT, DECLARE, CREATE VIEW …). A query without a
//!   FROM list has no place for one (`SELECT 1 AS OF SYSTEM TIME …` is a
//!   syntax error in CockroachDB too);
//! - among the modes of `BEGIN [TRANSACTION]`, `START TRANSACTION` and
//!   `SET TRANSACTION` (with or without commas between the modes).
//!
//! The expression ends where the parser's expression ends (before WHERE,
//! ORDER BY, a closing parenthesis, a comma, the next transaction mode).
//!
//! TODO(issue 14): `AS OF SYSTEM TIME` on CREATE STATISTICS and on
//! `SHOW … ` statements, which CockroachDB also takes.

use sqlparser::ast::Expr;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};
use tardigrade_sqltypes::{SqlError, SqlResult};

use super::{MAX_NESTING, is_space, is_word, parser_error, span_position};

/// A statement's `AS OF SYSTEM TIME` clauses.
#[derive(Clone, Debug)]
pub struct AsOf {
    /// The clause of the statement itself: the time it (or the transaction
    /// it begins) reads at.
    pub expr: Expr,
    /// The clauses of queries nested in it: each must name the same time.
    pub nested: Vec<Expr>,
}

/// Error 42601 of a clause that is not on the statement itself.
pub fn not_top_level() -> SqlError {
    SqlError::syntax("AS OF SYSTEM TIME must be provided on a top-level statement")
}

/// What the statement is, for where its own clause may stand.
#[derive(PartialEq)]
enum Kind {
    /// SELECT, WITH … SELECT, EXPLAIN of one.
    Query,
    /// BEGIN, START TRANSACTION, SET TRANSACTION.
    Transaction,
    Other,
}

/// One clause: the positions (in the statement's tokens) of its `AS` and
/// `OF`, and one past the last token of its expression.
struct Clause {
    at: usize,
    of: usize,
    end: usize,
    expr: Expr,
}

/// Takes the `AS OF SYSTEM TIME` clauses out of one statement's tokens:
/// the tokens left, and the clauses when there were any.
pub(super) fn extract(
    sql: &str,
    stmt: &[TokenWithSpan],
) -> SqlResult<(Vec<TokenWithSpan>, Option<AsOf>)> {
    let sig: Vec<usize> = (0..stmt.len())
        .filter(|&i| !is_space(&stmt[i].token) && stmt[i].token != Token::SemiColon)
        .collect();
    let word = |k: usize, kw: &str| sig.get(k).is_some_and(|&i| is_word(&stmt[i].token, kw));
    let starts: Vec<usize> = (0..sig.len())
        .filter(|&k| {
            word(k, "as") && word(k + 1, "of") && word(k + 2, "system") && word(k + 3, "time")
        })
        .collect();
    if starts.is_empty() {
        return Ok((stmt.to_vec(), None));
    }
    let kind = if word(0, "select") || word(0, "with") || word(0, "explain") {
        Kind::Query
    } else if word(0, "begin") || word(0, "start") || (word(0, "set") && word(1, "transaction")) {
        Kind::Transaction
    } else {
        Kind::Other
    };
    // Parenthesis depth before each token.
    let mut depth = vec![0i32; stmt.len()];
    let mut d = 0;
    for (i, t) in stmt.iter().enumerate() {
        if t.token == Token::RParen {
            d -= 1;
        }
        depth[i] = d;
        if t.token == Token::LParen {
            d += 1;
        }
    }
    let at_top = |i: usize| depth[i] == 0;
    let set_operation = sig.iter().any(|&i| {
        at_top(i)
            && ["union", "intersect", "except"]
                .iter()
                .any(|w| is_word(&stmt[i].token, w))
    });
    // The statement's tokens without its terminating semicolon.
    let body_end = match stmt.last() {
        Some(t) if t.token == Token::SemiColon => stmt.len() - 1,
        _ => stmt.len(),
    };
    let mut clauses: Vec<Clause> = Vec::new();
    for &k in &starts {
        let (at, of, time) = (sig[k], sig[k + 1], sig[k + 3]);
        // Inside the expression of an earlier clause: that expression's
        // parse already failed or swallowed it.
        if clauses.last().is_some_and(|c| at < c.end) {
            continue;
        }
        let tail = stmt[time + 1..body_end].to_vec();
        let mut parser = Parser::new(&PostgreSqlDialect {})
            .with_recursion_limit(MAX_NESTING)
            .with_tokens_with_locations(tail);
        let expr = parser.parse_expr().map_err(|e| parser_error(sql, e))?;
        let end = time + 1 + parser.index();
        clauses.push(Clause { at, of, end, expr });
    }
    // The statement's own clause.
    let own = clauses.iter().position(|c| match kind {
        Kind::Query => at_top(c.at) && !set_operation,
        Kind::Transaction => at_top(c.at),
        Kind::Other => false,
    });
    let Some(own) = own else {
        return Err(not_top_level());
    };
    if kind == Kind::Query {
        check_after_from(sql, stmt, &sig, &depth, clauses[own].at, clauses[own].of)?;
    }
    if kind == Kind::Transaction && clauses.len() > 1 {
        return Err(SqlError::syntax(
            "AS OF SYSTEM TIME specified multiple times",
        ));
    }
    // The tokens without the clauses (and, among transaction modes, the
    // comma that separated a clause from the next or previous mode).
    let mut drop = vec![false; stmt.len()];
    for c in &clauses {
        drop[c.at..c.end].iter_mut().for_each(|d| *d = true);
        if kind == Kind::Transaction {
            let next = (c.end..stmt.len()).find(|&i| !is_space(&stmt[i].token));
            let prev = (0..c.at).rev().find(|&i| !is_space(&stmt[i].token));
            match (next, prev) {
                (Some(n), _) if stmt[n].token == Token::Comma => drop[n] = true,
                (_, Some(p)) if stmt[p].token == Token::Comma => drop[p] = true,
                _ => {}
            }
        }
    }
    let out = stmt
        .iter()
        .zip(&drop)
        .filter(|(_, d)| !**d)
        .map(|(t, _)| t.clone())
        .collect();
    let mut exprs: Vec<Expr> = clauses.into_iter().map(|c| c.expr).collect();
    let expr = exprs.remove(own);
    Ok((
        out,
        Some(AsOf {
            expr,
            nested: exprs,
        }),
    ))
}

/// The statement's own clause of a query must follow its FROM list: a FROM
/// at depth 0 before it, and no WHERE, GROUP BY, … in between.
fn check_after_from(
    sql: &str,
    stmt: &[TokenWithSpan],
    sig: &[usize],
    depth: &[i32],
    at: usize,
    of: usize,
) -> SqlResult<()> {
    let top_words: Vec<usize> = sig
        .iter()
        .copied()
        .filter(|&i| i < at && depth[i] == 0)
        .collect();
    let from = top_words
        .iter()
        .rposition(|&i| is_word(&stmt[i].token, "from"));
    let after_from = from.is_some_and(|f| {
        !top_words[f + 1..].iter().any(|&i| {
            [
                "where", "group", "having", "window", "order", "limit", "offset", "fetch", "for",
            ]
            .iter()
            .any(|w| is_word(&stmt[i].token, w))
        })
    });
    if after_from {
        return Ok(());
    }
    let err = SqlError::syntax(format!(
        "syntax error at or near \"{}\"",
        stmt[of].token.to_string().to_lowercase()
    ));
    Err(match span_position(sql, &stmt[of]) {
        Some(p) => err.with_position(p),
        None => err,
    })
}
