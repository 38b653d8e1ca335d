//! Bounds on how deeply a parsed statement nests, so that nothing after the
//! parser (visitors, the binder, the planner, `Drop`) can exhaust the stack.
//!
//! sqlparser's recursion limit bounds what the parser builds by recursion
//! (parentheses, subqueries, prefix operators), but left-associative chains are
//! built by loops and can be as deep as the text is long: `1+1+…`, `a OR b OR
//! …`, `x::INT::INT…`, `SELECT … UNION ALL SELECT … UNION ALL …`. After parsing,
//! [`bound_statement`] therefore
//!
//! - rebalances chains of one set operation with one quantifier (`UNION ALL`,
//!   `INTERSECT`, `EXCEPT`, …) into balanced trees, so that 5,000 branches nest
//!   13 deep. The binder reads such a group as the left-to-right chain of its
//!   branches (see `Binder::bind_set_expr`), so the meaning is unchanged; a
//!   user's parentheses make a [`SetExpr::Query`], which is never merged;
//! - measures the nesting of expressions, queries and set operations, and
//!   refuses a statement deeper than [`MAX_DEPTH`] with 54001;
//! - takes a refused statement apart without recursion ([`dismantle`]): cut
//!   into pieces no deeper than [`CUT_DEPTH`], each dropped on its own.
//!
//! Every walk here is bounded: visitors stop descending at the cut depth (the
//! subtree below is moved out and handled later), and set operation trees are
//! walked with explicit stacks.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Query, Select, SetExpr, SetOperator, SetQuantifier, Statement, Value, Values, VisitMut,
    VisitorMut,
};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult};

/// Deepest nesting of expressions, queries and set operations a statement
/// may have (PostgreSQL's equivalent is `max_stack_depth`, 2 MB by default).
pub const MAX_DEPTH: usize = 200;

/// Depth of the pieces a refused statement is cut into before dropping.
const CUT_DEPTH: usize = 32;

/// Bound, checked on the tokens before parsing, on the depth of the
/// expressions the parser may build with its loops; see [`check_tokens`].
const MAX_TOKEN_DEPTH: usize = 4_000;

/// Bound, checked on the tokens, on the set operations in one chain (a UNION
/// ALL of 5,000 branches is legitimate, PostgreSQL answers it). sqlparser
/// builds the chain 10,000 deep, and dropping that after a syntax error takes
/// about 500 KiB of stack in a debug build.
const MAX_SET_OPERATIONS: usize = 10_000;

/// The error for a statement nested too deeply.
pub fn too_deep() -> SqlError {
    SqlError::new(
        codes::STATEMENT_TOO_COMPLEX,
        "stack depth limit exceeded: statement is too deeply nested",
    )
    .with_hint(format!(
        "nesting of expressions, subqueries and set operations is limited to {MAX_DEPTH}"
    ))
}

/// How deeply the parser will recurse for a token stream, estimated: open
/// parentheses, brackets and CASEs, plus the run of prefix operators (`NOT`,
/// unary `-`, `+`, `~`) in front of the current operand. sqlparser bounds
/// its recursion, but a few of its paths try an alternative parse and
/// swallow the "recursion limit exceeded" of the first, so too deep an input
/// can come back as a syntax error; this estimate tells the two apart.
pub fn recursion_estimate<'a>(tokens: impl IntoIterator<Item = &'a Token>) -> usize {
    let mut open: usize = 0;
    let mut prefix_run = 0;
    let mut deepest = 0;
    for token in tokens {
        match token {
            Token::Whitespace(_) => continue,
            Token::Minus | Token::Plus | Token::Tilde => prefix_run += 1,
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::NOT => {
                prefix_run += 1
            }
            Token::LParen | Token::LBracket => {
                open += 1;
                prefix_run = 0;
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                open += 1;
                prefix_run = 0;
            }
            Token::RParen | Token::RBracket => {
                open = open.saturating_sub(1);
                prefix_run = 0;
            }
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                open = open.saturating_sub(1);
                prefix_run = 0;
            }
            _ => prefix_run = 0,
        }
        deepest = deepest.max(open + prefix_run);
    }
    deepest
}

/// One open `(`, `[` or `CASE` while scanning tokens.
#[derive(Default)]
struct Level {
    /// Upper bound on the depth of the expression being read since the last
    /// separator at this level.
    run: usize,
    /// The deepest bound of earlier siblings (separated by commas, clause
    /// keywords, WHEN/THEN/ELSE).
    deepest: usize,
    /// Set operations in this level's chain.
    set_operations: usize,
    /// The longest chain of set operations inside the groups closed here.
    nested_set_operations: usize,
    case: bool,
}

/// Refuses (54001) a token stream from which the parser could build a tree
/// deeper than a few thousand levels, before it does: sqlparser builds
/// left-associative chains (`1+1+…`, `a OR b OR …`, `x::T::T…`, `… UNION ALL
/// …`) in loops, without its recursion limit, and when a later token is a
/// syntax error it drops the partial tree recursively.
///
/// The bound is conservative: every token adds one to the depth of the
/// expression it belongs to; siblings (separated by commas, clause keywords
/// and the parts of a CASE) do not add up; a parenthesised group, a bracket
/// or a CASE adds the depth of its deepest part to the expression around it.
pub fn check_tokens<'a>(tokens: impl IntoIterator<Item = &'a Token>) -> SqlResult<()> {
    let mut levels = vec![Level::default()];
    for token in tokens {
        let Some(level) = levels.last_mut() else {
            return Err(too_deep());
        };
        match token {
            Token::Whitespace(_) => continue,
            Token::LParen | Token::LBracket => levels.push(Level::default()),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                level.run += 1;
                levels.push(Level {
                    case: true,
                    ..Level::default()
                });
            }
            Token::RParen | Token::RBracket => close(&mut levels, false),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                close(&mut levels, true)
            }
            Token::Comma => separate(level),
            Token::SemiColon => *level = Level::default(),
            Token::Word(w) if w.quote_style.is_none() && is_clause(w.keyword) => separate(level),
            Token::Word(w)
                if w.quote_style.is_none()
                    && matches!(
                        w.keyword,
                        Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT
                    ) =>
            {
                separate(level);
                level.set_operations += 1;
            }
            _ => level.run += 1,
        }
        let Some(level) = levels.last() else {
            return Err(too_deep());
        };
        if level.run.max(level.deepest) > MAX_TOKEN_DEPTH {
            return Err(too_deep().with_hint(format!(
                "an expression may chain at most about {} operators",
                MAX_TOKEN_DEPTH / 2
            )));
        }
        if level.set_operations + level.nested_set_operations > MAX_SET_OPERATIONS {
            return Err(too_deep().with_hint(format!(
                "a chain of UNION, INTERSECT or EXCEPT may have at most {MAX_SET_OPERATIONS} operations"
            )));
        }
    }
    Ok(())
}

fn separate(level: &mut Level) {
    level.deepest = level.deepest.max(level.run);
    level.run = 0;
}

/// Ends the innermost level (when it is a CASE for `END`, a parenthesis or
/// bracket otherwise; an unbalanced closer is left to the parser): its
/// deepest part nests in the expression around it, its set operations under
/// those around it.
fn close(levels: &mut Vec<Level>, end: bool) {
    if levels.len() < 2 || levels.last().is_some_and(|l| l.case != end) {
        if let Some(level) = levels.last_mut() {
            level.run += 1;
        }
        return;
    }
    let Some(inner) = levels.pop() else {
        return;
    };
    if let Some(outer) = levels.last_mut() {
        outer.run = outer.run.max(inner.run.max(inner.deepest) + 1) + 1;
        outer.nested_set_operations = outer
            .nested_set_operations
            .max(inner.set_operations + inner.nested_set_operations);
    }
}

/// Keywords that start a clause: what follows is a sibling of what precedes.
fn is_clause(keyword: Keyword) -> bool {
    matches!(
        keyword,
        Keyword::SELECT
            | Keyword::FROM
            | Keyword::WHERE
            | Keyword::GROUP
            | Keyword::HAVING
            | Keyword::ORDER
            | Keyword::LIMIT
            | Keyword::OFFSET
            | Keyword::FETCH
            | Keyword::ON
            | Keyword::USING
            | Keyword::JOIN
            | Keyword::SET
            | Keyword::VALUES
            | Keyword::RETURNING
            | Keyword::WINDOW
            | Keyword::WHEN
            | Keyword::THEN
            | Keyword::ELSE
    )
}

/// Rebalances the set operation chains of `statement` and checks its depth;
/// a statement that is too deep is taken apart (without recursion) and
/// refused.
pub fn bound_statement(mut statement: Statement) -> SqlResult<Statement> {
    let mut walk = Walk::new(MAX_DEPTH, true);
    let _ = statement.visit(&mut walk);
    if !walk.too_deep {
        return Ok(statement);
    }
    // What is left of the statement is shallow now and drops as usual.
    dismantle(walk.exprs, walk.bodies);
    Err(too_deep())
}

/// Walks a statement counting depth; what lies deeper than `limit` is moved
/// out into `exprs` and `bodies` (replaced by a NULL / an empty VALUES).
struct Walk {
    depth: usize,
    limit: usize,
    /// Rebalance set operation chains (off when only taking a tree apart).
    rebalance: bool,
    /// Some part was deeper than `limit`.
    too_deep: bool,
    /// The depth each enclosing SELECT's joins add.
    joins: Vec<usize>,
    exprs: Vec<Expr>,
    bodies: Vec<SetExpr>,
}

impl Walk {
    fn new(limit: usize, rebalance: bool) -> Walk {
        Walk {
            depth: 0,
            limit,
            rebalance,
            too_deep: false,
            joins: Vec::new(),
            exprs: Vec::new(),
            bodies: Vec::new(),
        }
    }
}

impl VisitorMut for Walk {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > self.limit {
            self.too_deep = true;
            self.exprs.push(std::mem::replace(expr, null()));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _expr: &mut Expr) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        self.too_deep |= self.depth > self.limit;
        if self.rebalance && self.depth <= self.limit {
            let body = std::mem::replace(query.body.as_mut(), empty_body());
            *query.body = rebalance(body);
        }
        // The visitor walks set operations without calling us back: those
        // deeper than the budget left are taken out here.
        let budget = self.limit.saturating_sub(self.depth);
        if set_operation_depth(&query.body) > budget {
            self.too_deep = true;
            self.bodies
                .push(std::mem::replace(query.body.as_mut(), empty_body()));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    /// Joined tables nest: the plan is a left-deep tree of joins.
    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        let joined: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
        let extra = joined.saturating_sub(1);
        self.joins.push(extra);
        self.depth += extra;
        self.too_deep |= self.depth > self.limit;
        ControlFlow::Continue(())
    }

    fn post_visit_select(&mut self, _select: &mut Select) -> ControlFlow<()> {
        self.depth -= self.joins.pop().unwrap_or(0);
        ControlFlow::Continue(())
    }
}

fn null() -> Expr {
    Expr::value(Value::Null)
}

fn empty_body() -> SetExpr {
    SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: Vec::new(),
    })
}

/// How many set operations nest in `body` (not counting those inside
/// parenthesised queries, which the visitor counts as queries).
fn set_operation_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(body, 0)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if let SetExpr::SetOperation { left, right, .. } = node {
            stack.push((left, depth + 1));
            stack.push((right, depth + 1));
        }
    }
    deepest
}

/// Rebalances the chains of one operator and quantifier along the left spine
/// of `body` (where the parser puts them), and in the right operands.
fn rebalance(body: SetExpr) -> SetExpr {
    // The spine from the top down: each operation and its right operand.
    let mut spine = Vec::new();
    let mut bottom = body;
    while let SetExpr::SetOperation {
        left,
        op,
        set_quantifier,
        right,
    } = bottom
    {
        spine.push((op, set_quantifier, *right));
        bottom = *left;
    }
    // From the bottom up, each run of one operation becomes a balanced tree.
    let mut acc = bottom;
    while let Some((op, quantifier, right)) = spine.pop() {
        let mut branches = vec![acc, rebalance_operand(right)];
        while let Some((next_op, next_quantifier, _)) = spine.last()
            && *next_op == op
            && *next_quantifier == quantifier
        {
            if let Some((_, _, right)) = spine.pop() {
                branches.push(rebalance_operand(right));
            }
        }
        acc = balanced(op, quantifier, branches);
    }
    acc
}

/// A right operand is a leaf or a chain of an operation that binds tighter
/// (INTERSECT under UNION); the parser nests these at most two levels deep.
fn rebalance_operand(operand: SetExpr) -> SetExpr {
    match operand {
        op @ SetExpr::SetOperation { .. } => rebalance(op),
        leaf => leaf,
    }
}

/// `branches` (in order) combined pairwise, level by level.
fn balanced(op: SetOperator, quantifier: SetQuantifier, branches: Vec<SetExpr>) -> SetExpr {
    combine_balanced(branches, |left, right| SetExpr::SetOperation {
        left: Box::new(left),
        op,
        set_quantifier: quantifier,
        right: Box::new(right),
    })
    .unwrap_or_else(empty_body)
}

/// `items` (in order) combined pairwise, level by level, into a tree of
/// depth log2(n) (`None` when there are none): for associative operations.
pub(crate) fn combine_balanced<T>(
    mut items: Vec<T>,
    mut combine: impl FnMut(T, T) -> T,
) -> Option<T> {
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(2));
        let mut it = items.into_iter();
        while let Some(left) = it.next() {
            next.push(match it.next() {
                Some(right) => combine(left, right),
                None => left,
            });
        }
        items = next;
    }
    items.pop()
}

/// Drops expression and query trees of any depth without recursing deeper
/// than [`CUT_DEPTH`]: each piece is cut at that depth before it is dropped,
/// and what was cut off is handled in turn.
fn dismantle(mut exprs: Vec<Expr>, mut bodies: Vec<SetExpr>) {
    loop {
        let mut walk = Walk::new(CUT_DEPTH, false);
        if let Some(body) = bodies.pop() {
            match body {
                SetExpr::SetOperation { left, right, .. } => {
                    bodies.push(*left);
                    bodies.push(*right);
                    continue;
                }
                mut leaf => {
                    let _ = leaf.visit(&mut walk);
                }
            }
        } else if let Some(mut expr) = exprs.pop() {
            let _ = expr.visit(&mut walk);
        } else {
            return;
        }
        exprs.append(&mut walk.exprs);
        bodies.append(&mut walk.bodies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_statements;

    fn body_of(statement: &Statement) -> &SetExpr {
        match statement {
            Statement::Query(q) => &q.body,
            other => panic!("not a query: {other}"),
        }
    }

    fn leaves(body: &SetExpr) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![body];
        while let Some(node) = stack.pop() {
            match node {
                SetExpr::SetOperation { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
                leaf => out.push(leaf.to_string()),
            }
        }
        out
    }

    #[test]
    fn chains_are_balanced_and_keep_their_order() {
        let sql = (1..=1000)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let statements = parse_statements(&sql).expect("parses");
        let body = body_of(&statements[0]);
        assert_eq!(set_operation_depth(body), 10);
        let expected: Vec<String> = (1..=1000).map(|i| format!("SELECT {i}")).collect();
        assert_eq!(leaves(body), expected);
    }

    #[test]
    fn different_operations_are_not_merged() {
        let statements =
            parse_statements("SELECT 1 UNION SELECT 2 UNION ALL SELECT 3 EXCEPT SELECT 4")
                .expect("parses");
        assert_eq!(set_operation_depth(body_of(&statements[0])), 3);
        let statements =
            parse_statements("SELECT 1 UNION SELECT 2 INTERSECT SELECT 3 INTERSECT SELECT 4")
                .expect("parses");
        let body = body_of(&statements[0]);
        assert_eq!(set_operation_depth(body), 3);
        assert_eq!(
            body.to_string(),
            "SELECT 1 UNION SELECT 2 INTERSECT SELECT 3 INTERSECT SELECT 4"
        );
    }

    fn tokens_ok(sql: &str) -> bool {
        let tokens =
            sqlparser::tokenizer::Tokenizer::new(&sqlparser::dialect::PostgreSqlDialect {}, sql)
                .tokenize()
                .expect("tokenizes");
        check_tokens(&tokens).is_ok()
    }

    #[test]
    fn the_token_bound_counts_chains_not_lists() {
        let plus = |n: usize| vec!["1"; n].join(" + ");
        assert!(tokens_ok(&format!("SELECT {}", plus(1_000))));
        assert!(!tokens_ok(&format!("SELECT {}", plus(3_000))));
        // Siblings do not add up: list elements, clauses, CASE branches.
        let list = vec![plus(500); 100].join(", ");
        assert!(tokens_ok(&format!(
            "SELECT {list} FROM t WHERE a IN ({list})"
        )));
        let case: String = (0..3_000)
            .map(|i| format!(" WHEN a = {i} THEN {i}"))
            .collect();
        assert!(tokens_ok(&format!("SELECT CASE{case} END")));
        // A group adds its depth to the chain that wraps it, not to its
        // siblings'.
        let group = format!("({})", plus(1_000));
        assert!(tokens_ok(&format!("SELECT {}", vec![group; 3].join(" + "))));
        assert!(!tokens_ok(&format!(
            "SELECT ({}) + {}",
            plus(1_500),
            plus(1_500)
        )));
        let nested_case = format!("CASE WHEN true THEN {} END", plus(1_500));
        assert!(!tokens_ok(&format!(
            "SELECT {nested_case} + {}",
            plus(1_500)
        )));
        // Set operations have a bound of their own, inside groups too.
        let union = vec!["SELECT 1"; 9_000].join(" UNION ALL ");
        assert!(tokens_ok(&union));
        assert!(tokens_ok(&format!("SELECT count(*) FROM ({union}) AS q")));
        let union = vec!["SELECT 1"; 11_000].join(" UNION ALL ");
        assert!(!tokens_ok(&format!("SELECT count(*) FROM ({union}) AS q")));
    }

    #[test]
    fn a_syntax_error_after_the_longest_chains_allowed_does_not_overflow() {
        // sqlparser drops what it built so far recursively: the token bound
        // must keep that within a 2 MiB stack.
        let plus = format!("SELECT {} )", vec!["1"; 1_990].join("+"));
        assert!(tokens_ok(&plus));
        let e = parse_statements(&plus).expect_err("syntax error");
        assert_eq!(e.code, "42601");
        let union = format!("{} )", vec!["SELECT 1"; 9_990].join(" UNION ALL "));
        assert!(tokens_ok(&union));
        let e = parse_statements(&union).expect_err("syntax error");
        assert_eq!(e.code, "42601");
    }

    #[test]
    fn deep_prefix_operators_and_case_are_too_deep_not_syntax_errors() {
        for depth in [150, 400, 3_000] {
            let not = format!("SELECT {}true", "NOT ".repeat(depth));
            let case = format!(
                "SELECT {}1{}",
                "CASE WHEN true THEN ".repeat(depth),
                " END".repeat(depth)
            );
            let minus = format!("SELECT {}1", "- ".repeat(depth));
            for sql in [not, case, minus] {
                match parse_statements(&sql) {
                    Ok(_) => assert!(depth < MAX_DEPTH, "{depth} deep parsed"),
                    Err(e) => assert_eq!(
                        e.code,
                        codes::STATEMENT_TOO_COMPLEX,
                        "{depth} deep: {}: {}",
                        e.message,
                        &sql[..40]
                    ),
                }
            }
        }
    }

    #[test]
    fn deep_chains_are_refused_and_dropped_without_overflow() {
        // Within the token bound, so parsed, then cut apart.
        let deep = format!("SELECT {}", vec!["1"; 1_500].join("+"));
        let e = parse_statements(&deep).expect_err("too deep");
        assert_eq!(e.code, codes::STATEMENT_TOO_COMPLEX);
        let alternating = vec!["SELECT 1"; 2_000].join(" UNION SELECT 1 EXCEPT ");
        let e = parse_statements(&alternating).expect_err("too deep");
        assert_eq!(e.code, codes::STATEMENT_TOO_COMPLEX);
    }
}
