//! SQL sessions with client-side failover, and how errors map to outcomes.
//!
//! A [`Session`] holds at most one connection, to one of the cluster's SQL
//! addresses; when the connection breaks or cannot be made it moves on to the
//! next address. Every statement runs under a timeout, so that a frozen node
//! costs a client at most that long.
//!
//! An error is one of (see [`DbError::kind`]):
//! - *retry* (40001): the transaction did not commit and may be retried;
//! - *ambiguous*: 40003, a lost connection or a timeout while a commit may have
//!   been in flight — the outcome is unknown;
//! - *definite*: any other error the server returned before a commit.

use std::fmt;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow};

/// How long a connection attempt to one node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An error from a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbError {
    /// The server answered with an error.
    Sql { code: String, message: String },
    /// No node accepted a connection: nothing was sent.
    NoConnection(String),
    /// The connection broke during the statement.
    Connection(String),
    /// The statement did not finish in time (the connection is dropped).
    Timeout,
}

/// What an error says about a transaction's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Definitely not committed; may be retried (40001).
    Retry,
    /// Unknown whether it committed (40003, or the connection was lost or
    /// timed out while a commit could have been under way).
    Ambiguous,
    /// The server refused the statement; nothing was committed by it.
    Definite,
}

impl DbError {
    pub fn code(&self) -> Option<&str> {
        match self {
            DbError::Sql { code, .. } => Some(code),
            _ => None,
        }
    }

    /// What the error means for a statement that could have committed (an
    /// autocommit write or a COMMIT). Server errors other than 40001 and
    /// classes 22, 23 and 42 (bad data, constraints, bad SQL) are taken as
    /// ambiguous: an internal error during commit says nothing of its fate.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DbError::NoConnection(_) => ErrorKind::Definite,
            DbError::Sql { code, .. } if code == "40001" => ErrorKind::Retry,
            DbError::Sql { code, .. }
                if code.starts_with("22") || code.starts_with("23") || code.starts_with("42") =>
            {
                ErrorKind::Definite
            }
            _ => ErrorKind::Ambiguous,
        }
    }

    /// Whether the connection is no longer usable.
    pub fn breaks_connection(&self) -> bool {
        !matches!(self, DbError::Sql { .. })
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sql { code, message } => write!(f, "{message} (SQLSTATE {code})"),
            DbError::NoConnection(e) => write!(f, "no connection: {e}"),
            DbError::Connection(e) => write!(f, "connection: {e}"),
            DbError::Timeout => f.write_str("timed out"),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => DbError::Sql {
                code: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => DbError::Connection(e.to_string()),
        }
    }
}

/// The rows of one statement, each as its text columns (`None`: NULL).
pub type Rows = Vec<Vec<Option<String>>>;

/// A connection to one node, failing over to the others.
pub struct Session {
    addrs: Vec<String>,
    /// The address to try next when connecting.
    next: usize,
    conn: Option<(Client, JoinHandle<()>)>,
    statement_timeout: Duration,
}

impl Session {
    /// A session over `addrs` (HOST:PORT of SQL listeners), starting with
    /// the one at `first` (so that clients spread over the nodes).
    pub fn new(addrs: Vec<String>, first: usize, statement_timeout: Duration) -> Self {
        let next = if addrs.is_empty() {
            0
        } else {
            first % addrs.len()
        };
        Session {
            addrs,
            next,
            conn: None,
            statement_timeout,
        }
    }

    /// Drops the connection; the next statement connects again (to the next
    /// node).
    pub fn disconnect(&mut self) {
        if let Some((_, task)) = self.conn.take() {
            task.abort();
        }
    }

    async fn connect(&mut self) -> Result<(), DbError> {
        let mut last = DbError::Connection("no SQL addresses".into());
        for _ in 0..self.addrs.len() {
            let addr = &self.addrs[self.next];
            self.next = (self.next + 1) % self.addrs.len();
            let Some((host, port)) = addr.rsplit_once(':') else {
                last = DbError::Connection(format!("bad address {addr}"));
                continue;
            };
            let mut config = tokio_postgres::Config::new();
            config
                .host(host)
                .port(port.parse().unwrap_or(0))
                .user("root")
                .dbname("defaultdb")
                .connect_timeout(CONNECT_TIMEOUT);
            match tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls)).await {
                Ok(Ok((client, connection))) => {
                    let task = tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    self.conn = Some((client, task));
                    return Ok(());
                }
                Ok(Err(e)) => last = DbError::from(e),
                Err(_) => last = DbError::Connection(format!("connect to {addr} timed out")),
            }
        }
        Err(last)
    }

    /// Runs `sql` (one or more statements, simple protocol) under the
    /// statement timeout; a broken or timed-out connection is dropped.
    async fn run(&mut self, sql: &str) -> Result<Vec<SimpleQueryMessage>, DbError> {
        if self.conn.is_none() {
            self.connect()
                .await
                .map_err(|e| DbError::NoConnection(e.to_string()))?;
        }
        let Some((client, _)) = &self.conn else {
            return Err(DbError::Connection("not connected".into()));
        };
        let result =
            match tokio::time::timeout(self.statement_timeout, client.simple_query(sql)).await {
                Ok(Ok(messages)) => Ok(messages),
                Ok(Err(e)) => Err(DbError::from(e)),
                Err(_) => Err(DbError::Timeout),
            };
        if let Err(e) = &result
            && e.breaks_connection()
        {
            self.disconnect();
        }
        result
    }

    /// Runs `sql` and returns the rows of every statement, concatenated.
    pub async fn query(&mut self, sql: &str) -> Result<Rows, DbError> {
        Ok(rows(self.run(sql).await?))
    }

    /// Runs `sql` and returns the number of rows its last statement affected.
    pub async fn execute(&mut self, sql: &str) -> Result<u64, DbError> {
        let messages = self.run(sql).await?;
        Ok(messages
            .iter()
            .rev()
            .find_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0))
    }

    /// Rolls back after a failed statement of an explicit transaction;
    /// a connection that cannot even do that is dropped.
    pub async fn rollback(&mut self) {
        if self.conn.is_some() && self.query("ROLLBACK").await.is_err() {
            self.disconnect();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn rows(messages: Vec<SimpleQueryMessage>) -> Rows {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(columns(&row)),
            _ => None,
        })
        .collect()
}

fn columns(row: &SimpleQueryRow) -> Vec<Option<String>> {
    (0..row.len())
        .map(|i| row.get(i).map(str::to_string))
        .collect()
}

/// Parses column `i` of a row as an integer.
pub fn int(row: &[Option<String>], i: usize) -> Result<i64, DbError> {
    row.get(i)
        .and_then(|c| c.as_deref())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DbError::Sql {
            code: "XX000".into(),
            message: format!("column {i} of {row:?} is not an integer"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(code: &str) -> DbError {
        DbError::Sql {
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn errors_classify_by_what_they_say_about_a_commit() {
        assert_eq!(sql("40001").kind(), ErrorKind::Retry);
        assert_eq!(sql("40003").kind(), ErrorKind::Ambiguous);
        assert_eq!(sql("XX000").kind(), ErrorKind::Ambiguous);
        assert_eq!(sql("23505").kind(), ErrorKind::Definite);
        assert_eq!(sql("42601").kind(), ErrorKind::Definite);
        assert_eq!(DbError::Timeout.kind(), ErrorKind::Ambiguous);
        assert_eq!(
            DbError::Connection("reset".into()).kind(),
            ErrorKind::Ambiguous
        );
        assert_eq!(
            DbError::NoConnection("refused".into()).kind(),
            ErrorKind::Definite
        );
        assert!(DbError::Timeout.breaks_connection());
        assert!(!sql("40001").breaks_connection());
    }

    #[test]
    fn integer_columns_parse_and_bad_ones_are_errors() {
        let row = vec![Some("12".to_string()), None, Some("x".to_string())];
        assert_eq!(int(&row, 0), Ok(12));
        assert!(int(&row, 1).is_err());
        assert!(int(&row, 2).is_err());
        assert!(int(&row, 3).is_err());
    }
}
