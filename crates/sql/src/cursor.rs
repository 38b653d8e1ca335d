//! SQL cursors: `DECLARE name CURSOR [WITH HOLD] FOR query`, `FETCH`, `MOVE`
//! and `CLOSE` (psycopg's named cursors, Django's `.iterator()`,
//! SQLAlchemy's `yield_per`).
//!
//! Takes the statements and the declared query's result; gives each FETCH
//! its rows and command tag, moving the cursor as PostgreSQL does (before the
//! first row, on a row, or after the last; FETCH NEXT/PRIOR/FIRST/LAST,
//! ABSOLUTE n, RELATIVE n, FORWARD/BACKWARD [n | ALL]). The session
//! ([`crate::session`]) runs the query when the cursor is declared, inside
//! the block's transaction, and owns the cursors: those WITHOUT HOLD end with
//! the block, WITH HOLD ones outlive its commit.
//!
//! TODO(issue 13): the rows are materialized when the cursor is declared
//! (fine for the batches drivers page through, costly for a cursor over a
//! huge table): a cursor that pulls from a suspended plan as FETCH asks.

use sqlparser::ast::{FetchDirection, Statement};
use tardigrade_sqltypes::error::codes;
use tardigrade_sqltypes::{SqlError, SqlResult, Value};

use crate::node::{Column, QueryOutput};
use crate::parse::{Ours, Stmt};

/// An open cursor.
pub struct Cursor {
    pub columns: Vec<Column>,
    rows: Vec<Vec<Value>>,
    /// 0: before the first row; k in 1..=len: on row k; len + 1: after the
    /// last.
    position: usize,
    /// WITH HOLD: survives the commit of the block that declared it.
    pub hold: bool,
    /// Declared in the block still open (a rollback of that block drops
    /// even a WITH HOLD cursor).
    pub in_open_block: bool,
}

/// How far a FETCH or MOVE goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Motion {
    Forward(usize),
    Backward(usize),
    Absolute(i64),
    Relative(i64),
}

impl Cursor {
    pub fn new(columns: Vec<Column>, rows: Vec<Vec<Value>>, hold: bool, in_block: bool) -> Cursor {
        Cursor {
            columns,
            rows,
            position: 0,
            hold,
            in_open_block: in_block,
        }
    }

    /// Moves the cursor; the rows passed over, in the order fetched.
    pub fn fetch(&mut self, motion: Motion) -> Vec<Vec<Value>> {
        let len = self.rows.len();
        let mut out = Vec::new();
        match motion {
            Motion::Forward(n) => {
                while out.len() < n && self.position < len {
                    self.position += 1;
                    out.push(self.rows[self.position - 1].clone());
                }
                if out.len() < n {
                    self.position = len + 1;
                }
            }
            Motion::Backward(n) => {
                while out.len() < n && self.position > 1 {
                    self.position -= 1;
                    out.push(self.rows[self.position - 1].clone());
                }
                if out.len() < n {
                    self.position = 0;
                }
            }
            Motion::Absolute(k) => {
                let target = if k >= 0 { k } else { len as i64 + 1 + k };
                out.extend(self.go_to(target));
            }
            Motion::Relative(k) => {
                let target = self.position as i64 + k;
                out.extend(self.go_to(target));
            }
        }
        out
    }

    /// Positions on row `target` (clamped to before-first / after-last) and
    /// gives it when there is one.
    fn go_to(&mut self, target: i64) -> Option<Vec<Value>> {
        let len = self.rows.len() as i64;
        if target <= 0 {
            self.position = 0;
            None
        } else if target > len {
            self.position = self.rows.len() + 1;
            None
        } else {
            self.position = target as usize;
            Some(self.rows[self.position - 1].clone())
        }
    }
}

/// What a cursor statement asks.
pub enum CursorOp<'a> {
    Declare {
        name: String,
        query: &'a sqlparser::ast::Query,
        hold: bool,
    },
    Fetch {
        name: String,
        motion: Motion,
        /// MOVE: position only, no rows.
        only_move: bool,
    },
    Close(Option<String>),
}

/// The cursor operation `statement` is, if it is one.
pub fn op_of(statement: &Stmt) -> SqlResult<Option<CursorOp<'_>>> {
    let statement = match statement {
        Stmt::Sql(s) => s.as_ref(),
        Stmt::Ours(Ours::Move(fetch)) => {
            return Ok(match op_of_sql(fetch)? {
                Some(CursorOp::Fetch { name, motion, .. }) => Some(CursorOp::Fetch {
                    name,
                    motion,
                    only_move: true,
                }),
                other => other,
            });
        }
        Stmt::Ours(_) => return Ok(None),
    };
    op_of_sql(statement)
}

fn op_of_sql(statement: &Statement) -> SqlResult<Option<CursorOp<'_>>> {
    Ok(Some(match statement {
        Statement::Declare { stmts, .. } => {
            let [d] = stmts.as_slice() else {
                return Err(SqlError::syntax("DECLARE declares one cursor"));
            };
            let Some(query) = d.for_query.as_deref() else {
                return Err(SqlError::unsupported("DECLARE without a cursor query"));
            };
            let [name] = d.names.as_slice() else {
                return Err(SqlError::syntax("DECLARE declares one cursor"));
            };
            if d.binary == Some(true) {
                return Err(SqlError::unsupported("BINARY cursors"));
            }
            CursorOp::Declare {
                name: crate::parse::normalize(name),
                query,
                hold: d.hold == Some(true),
            }
        }
        Statement::Fetch {
            name,
            direction,
            into: None,
            ..
        } => CursorOp::Fetch {
            name: crate::parse::normalize(name),
            motion: motion_of(direction)?,
            only_move: false,
        },
        Statement::Fetch { into: Some(_), .. } => {
            return Err(SqlError::unsupported("FETCH … INTO"));
        }
        Statement::Close { cursor } => CursorOp::Close(match cursor {
            sqlparser::ast::CloseCursor::All => None,
            sqlparser::ast::CloseCursor::Specific { name } => Some(crate::parse::normalize(name)),
        }),
        _ => return Ok(None),
    }))
}

fn count(v: &sqlparser::ast::ValueWithSpan) -> SqlResult<i64> {
    match &v.value {
        sqlparser::ast::Value::Number(n, _) => n
            .parse()
            .map_err(|_| SqlError::syntax(format!("invalid cursor row count: {n}"))),
        other => Err(SqlError::syntax(format!(
            "invalid cursor row count: {other}"
        ))),
    }
}

/// A signed count forward (negative: backward).
fn signed(n: i64) -> Motion {
    if n >= 0 {
        Motion::Forward(n as usize)
    } else {
        Motion::Backward(n.unsigned_abs() as usize)
    }
}

fn motion_of(direction: &FetchDirection) -> SqlResult<Motion> {
    Ok(match direction {
        FetchDirection::Count { limit } => signed(count(limit)?),
        FetchDirection::Next => Motion::Forward(1),
        FetchDirection::Prior => Motion::Backward(1),
        FetchDirection::First => Motion::Absolute(1),
        FetchDirection::Last => Motion::Absolute(-1),
        FetchDirection::Absolute { limit } => Motion::Absolute(count(limit)?),
        FetchDirection::Relative { limit } => Motion::Relative(count(limit)?),
        FetchDirection::All | FetchDirection::ForwardAll => Motion::Forward(usize::MAX),
        FetchDirection::Forward { limit } => match limit {
            Some(l) => signed(count(l)?),
            None => Motion::Forward(1),
        },
        FetchDirection::Backward { limit } => match limit {
            Some(l) => signed(-count(l)?),
            None => Motion::Backward(1),
        },
        FetchDirection::BackwardAll => Motion::Backward(usize::MAX),
    })
}

pub fn no_such_cursor(name: &str) -> SqlError {
    SqlError::new(
        codes::INVALID_CURSOR_NAME,
        format!("cursor \"{name}\" does not exist"),
    )
}

pub fn duplicate_cursor(name: &str) -> SqlError {
    SqlError::new("42P03", format!("cursor \"{name}\" already exists"))
}

/// A FETCH's (or MOVE's) output.
pub fn fetch_output(cursor: &Cursor, rows: Vec<Vec<Value>>, only_move: bool) -> QueryOutput {
    if only_move {
        return QueryOutput::command(format!("MOVE {}", rows.len()));
    }
    QueryOutput {
        tag: format!("FETCH {}", rows.len()),
        columns: Some(cursor.columns.clone()),
        rows,
        streamed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(n: i64) -> Cursor {
        Cursor::new(
            Vec::new(),
            (1..=n).map(|i| vec![Value::Int(i)]).collect(),
            false,
            true,
        )
    }

    fn ints(rows: Vec<Vec<Value>>) -> Vec<i64> {
        rows.into_iter()
            .map(|r| match r[0] {
                Value::Int(i) => i,
                _ => panic!("not an int"),
            })
            .collect()
    }

    #[test]
    fn moves_as_postgresql_cursors_do() {
        let mut c = cursor(5);
        assert_eq!(ints(c.fetch(Motion::Forward(2))), [1, 2]);
        assert_eq!(ints(c.fetch(Motion::Forward(1))), [3]);
        assert_eq!(ints(c.fetch(Motion::Backward(1))), [2]);
        assert_eq!(ints(c.fetch(Motion::Relative(0))), [2]);
        assert_eq!(ints(c.fetch(Motion::Forward(10))), [3, 4, 5]);
        // After the last row: PRIOR gives the last one.
        assert_eq!(ints(c.fetch(Motion::Forward(1))), Vec::<i64>::new());
        assert_eq!(ints(c.fetch(Motion::Backward(1))), [5]);
        assert_eq!(ints(c.fetch(Motion::Absolute(-2))), [4]);
        assert_eq!(ints(c.fetch(Motion::Absolute(1))), [1]);
        assert_eq!(
            ints(c.fetch(Motion::Backward(usize::MAX))),
            Vec::<i64>::new()
        );
        assert_eq!(ints(c.fetch(Motion::Forward(1))), [1]);
        assert_eq!(ints(c.fetch(Motion::Absolute(9))), Vec::<i64>::new());
        assert_eq!(ints(c.fetch(Motion::Backward(2))), [5, 4]);
    }
}
