//! `tardigrade sql`: a SQL client over the PostgreSQL wire protocol
//! (`tokio-postgres`, simple query protocol), also used by `tardigrade demo` for
//! its interactive shell.
//!
//! `-e 'SQL'` (repeatable) runs statements and exits (1 on the first error);
//! otherwise statements are read from stdin, terminated by `;` (with a prompt
//! when stdin is a terminal; `\q` quits). Results print like psql's aligned
//! format: header, a `---+---` separator, rows, `(N rows)`. Errors go to stderr
//! as `ERROR: message` and `SQLSTATE: code`.
//!
//! The simple protocol reports only a row count for statements that return no
//! rows, so those print `OK` (or `OK, N rows affected`) rather than psql's
//! command tag.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::pin::Pin;
use std::str::FromStr;

use clap::Args;
use tokio::io::AsyncBufReadExt;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::{CliError, CliResult};

/// Where `tardigrade sql` connects unless told otherwise.
pub const DEFAULT_SQL_ADDR: &str = "127.0.0.1:26257";

#[derive(Args, Debug)]
pub struct SqlArgs {
    /// A connection URL: postgresql://user@host:port/database?sslmode=disable
    #[arg(long)]
    pub url: Option<String>,
    /// HOST:PORT of a node's SQL listener (when no --url).
    #[arg(long)]
    pub host: Option<String>,
    /// Statements to run (repeatable); without it, read statements from stdin.
    #[arg(short = 'e', long = "execute")]
    pub execute: Vec<String>,
    /// The database (overrides the URL's).
    #[arg(short = 'd', long)]
    pub database: Option<String>,
    /// The user (overrides the URL's; default root).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Accepted for CockroachDB compatibility (TLS does not exist yet).
    #[arg(long)]
    pub insecure: bool,
}

/// Builds the connection configuration from the arguments.
pub fn config_of(args: &SqlArgs) -> CliResult<Config> {
    let mut config = match &args.url {
        Some(url) => Config::from_str(url).map_err(|e| CliError(format!("--url: {e}")))?,
        None => {
            let host = args.host.as_deref().unwrap_or(DEFAULT_SQL_ADDR);
            let (h, p) = host
                .rsplit_once(':')
                .ok_or_else(|| CliError(format!("--host {host:?} is not HOST:PORT")))?;
            let port: u16 = p
                .parse()
                .map_err(|_| CliError(format!("--host {host:?}: bad port")))?;
            let mut c = Config::new();
            c.host(h.trim_start_matches('[').trim_end_matches(']'))
                .port(port)
                .dbname("defaultdb");
            c
        }
    };
    if let Some(user) = &args.user {
        config.user(user);
    } else if config.get_user().is_none() {
        config.user("root");
    }
    if let Some(db) = &args.database {
        config.dbname(db);
    } else if config.get_dbname().is_none() {
        config.dbname("defaultdb");
    }
    config.connect_timeout(std::time::Duration::from_secs(10));
    Ok(config)
}

pub async fn connect(config: &Config) -> CliResult<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| CliError(format!("cannot connect: {}", describe_error(&e))))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection lost: {e}");
        }
    });
    Ok(client)
}

pub async fn run(args: SqlArgs) -> CliResult {
    let config = config_of(&args)?;
    let client = connect(&config).await?;
    if !args.execute.is_empty() {
        for sql in &args.execute {
            if !execute(&client, sql).await {
                return Err(CliError("statement failed".into()));
            }
        }
        return Ok(());
    }
    let prompt = format!(
        "{}@{}/{}> ",
        config.get_user().unwrap_or("root"),
        args.host.as_deref().unwrap_or("tardigrade"),
        config.get_dbname().unwrap_or("defaultdb")
    );
    if shell(&client, &prompt, &mut NoCommands).await {
        Ok(())
    } else {
        Err(CliError("some statements failed".into()))
    }
}

/// Backslash commands the caller of [`shell`] adds (the demo's `\demo …`).
pub trait ShellCommands {
    /// What `\?` says about them (one or more lines, without the last newline).
    fn help(&self) -> &'static str;
    /// Runs `line` (trimmed, typed between statements) if it is one of these
    /// commands, printing what it has to say; `None` if it is not.
    fn run<'a>(&'a mut self, line: &'a str) -> Option<Pin<Box<dyn Future<Output = ()> + 'a>>>;
}

/// No commands beyond `\q` and `\?`.
pub struct NoCommands;

impl ShellCommands for NoCommands {
    fn help(&self) -> &'static str {
        ""
    }

    fn run<'a>(&'a mut self, _: &'a str) -> Option<Pin<Box<dyn Future<Output = ()> + 'a>>> {
        None
    }
}

/// Reads statements from stdin until EOF or `\q`; returns false if any
/// failed. Lines of `commands` typed between statements run as commands.
pub async fn shell(client: &Client, prompt: &str, commands: &mut dyn ShellCommands) -> bool {
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("# Enter SQL statements terminated by a semicolon; \\q to quit.");
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut buffer = String::new();
    let mut ok = true;
    loop {
        if interactive {
            print!(
                "{}",
                if buffer.is_empty() {
                    prompt
                } else {
                    "              -> "
                }
            );
            let _ = std::io::stdout().flush();
        }
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => break,
        };
        let trimmed = line.trim();
        if buffer.is_empty() && (trimmed == "\\q" || trimmed == "quit" || trimmed == "exit") {
            break;
        }
        if buffer.is_empty() && trimmed == "\\?" {
            println!("SQL statements end with ';'. \\q quits.");
            let more = commands.help();
            if !more.is_empty() {
                println!("{more}");
            }
            continue;
        }
        if buffer.is_empty()
            && let Some(command) = commands.run(trimmed)
        {
            command.await;
            let _ = std::io::stdout().flush();
            continue;
        }
        if buffer.is_empty() && trimmed.is_empty() {
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if statement_complete(&buffer) {
            let sql = std::mem::take(&mut buffer);
            ok &= execute(client, &sql).await;
        }
    }
    if !buffer.trim().is_empty() {
        ok &= execute(client, &buffer).await;
    }
    ok
}

/// Whether the text ends with a `;` outside quotes and comments.
fn statement_complete(sql: &str) -> bool {
    let mut in_single = false;
    let mut in_double = false;
    let mut last_significant = ' ';
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if in_single {
            if c == '\'' {
                in_single = false;
            }
            continue;
        }
        if in_double {
            if c == '"' {
                in_double = false;
            }
            continue;
        }
        match c {
            '\'' => in_single = true,
            '"' => in_double = true,
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            last_significant = c;
        }
    }
    !in_single && !in_double && last_significant == ';'
}

/// Runs a query string and prints its results; false on error.
pub async fn execute(client: &Client, sql: &str) -> bool {
    match client.simple_query(sql).await {
        Ok(messages) => {
            print!("{}", format_results(&messages));
            let _ = std::io::stdout().flush();
            true
        }
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("{}", describe_error(&e));
            false
        }
    }
}

/// `ERROR: message` and `SQLSTATE: code` (plus detail, hint, position).
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{}: {}\nSQLSTATE: {}",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(d) = db.detail() {
                s.push_str(&format!("\nDETAIL: {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("\nHINT: {h}"));
            }
            if let Some(tokio_postgres::error::ErrorPosition::Original(p)) = db.position() {
                s.push_str(&format!("\nPOSITION: {p}"));
            }
            s
        }
        None => format!("ERROR: {e}"),
    }
}

/// psql's aligned format for every statement's result.
pub fn format_results(messages: &[SimpleQueryMessage]) -> String {
    let mut out = String::new();
    let mut header: Option<Vec<String>> = None;
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(columns) => {
                header = Some(columns.iter().map(|c| c.name().to_string()).collect());
                rows.clear();
            }
            SimpleQueryMessage::Row(row) => {
                if header.is_none() {
                    header = Some(row.columns().iter().map(|c| c.name().to_string()).collect());
                }
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(String::from))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(n) => {
                match header.take() {
                    Some(h) => out.push_str(&format_table(&h, &rows)),
                    None if *n == 0 => out.push_str("OK\n"),
                    None => out.push_str(&format!(
                        "OK, {n} row{} affected\n",
                        if *n == 1 { "" } else { "s" }
                    )),
                }
                rows.clear();
            }
            _ => {}
        }
    }
    out
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.parse::<f64>().is_ok()
}

fn width(s: &str) -> usize {
    s.chars().count()
}

/// One result table, as psql prints it.
pub fn format_table(header: &[String], rows: &[Vec<Option<String>>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(v.as_deref().map(width).unwrap_or(0));
            }
        }
    }
    let mut out = String::new();
    let cells: Vec<String> = header
        .iter()
        .zip(&widths)
        .map(|(h, w)| {
            let pad = w - width(h);
            format!(
                " {}{}{} ",
                " ".repeat(pad / 2),
                h,
                " ".repeat(pad - pad / 2)
            )
        })
        .collect();
    out.push_str(cells.join("|").trim_end());
    out.push('\n');
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&sep.join("+"));
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let v = row.get(i).cloned().flatten().unwrap_or_default();
                let pad = " ".repeat(w - width(&v).min(*w));
                if is_numeric(&v) {
                    format!(" {pad}{v} ")
                } else {
                    format!(" {v}{pad} ")
                }
            })
            .collect();
        out.push_str(cells.join("|").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "({} row{})\n\n",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_print_like_psql() {
        let t = format_table(
            &["a".into(), "name".into()],
            &[
                vec![Some("1".into()), Some("x".into())],
                vec![Some("10".into()), None],
            ],
        );
        // psql centers headers (extra space on the right) and right-aligns numbers.
        assert_eq!(t, " a  | name\n----+------\n  1 | x\n 10 |\n(2 rows)\n\n");
    }

    #[test]
    fn statements_end_at_a_semicolon_outside_quotes() {
        assert!(statement_complete("select 1;"));
        assert!(statement_complete("select 1; -- done\n"));
        assert!(!statement_complete("select ';"));
        assert!(!statement_complete("select 1"));
        assert!(statement_complete("select 'a;b';"));
    }
}
