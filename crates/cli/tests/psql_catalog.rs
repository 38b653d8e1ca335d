//! psql's `\d` family against `tardigrade demo`, compared with PostgreSQL 15
//! on the same schema: the system catalogs (`pg_catalog`,
//! `information_schema`) answer psql's own catalog queries with what
//! PostgreSQL answers. Skipped with a note when psql or PostgreSQL is not
//! installed (`.ci/run` installs both).
//!
//! Known differences, normalized before comparing: the owner (`root` here,
//! `postgres` there). Avoided: a unique index made by `CREATE UNIQUE INDEX`
//! shows as a UNIQUE constraint here (descriptors do not tell the two
//! apart; TODO(issue 13)). Not compared: `\l` (the databases differ), and the
//! foreign-key sections of `\d` (TODO(issue 13): psql's trigger query needs
//! a correlated table function in FROM).

mod common;

use std::process::{Command, Stdio};

use common::postgres::start_postgres;
use common::{have_psql, start_demo, text};

/// The same statements in both databases; types whose names both agree on;
/// comments, which `\dt+`, `\d+` and `\dv+` show.
const SCHEMA: &str = "
CREATE TABLE authors (id BIGINT PRIMARY KEY, name VARCHAR(40) NOT NULL UNIQUE, born DATE, score NUMERIC(6,2) DEFAULT 0);
CREATE TABLE books (id BIGINT PRIMARY KEY, author BIGINT NOT NULL, title TEXT, published TIMESTAMPTZ, price DOUBLE PRECISION);
CREATE INDEX books_author_idx ON books (author, published DESC);
CREATE VIEW cheap_books AS SELECT id, title FROM books WHERE price < 10;
CREATE SEQUENCE ticket_seq;
COMMENT ON TABLE books IS 'Books for sale';
COMMENT ON COLUMN books.title IS 'The title on the cover';
COMMENT ON VIEW cheap_books IS 'Under ten';
COMMENT ON INDEX books_author_idx IS 'By author';
";

/// psql commands whose output must match PostgreSQL's.
const COMPARED: &[&str] = &[
    r"\d",
    r"\dt",
    r"\di",
    r"\dv",
    r"\ds",
    r"\dn",
    r"\du",
    r"\d authors",
    r"\d books",
    r"\d cheap_books",
    r"\dt+ books*",
    r"\d+ books",
    r"\dv+",
    r"\df",
];

fn psql(url: &str, command: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        // Unaligned: column widths depend on the owner's name.
        .args([
            "-X",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            command,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Output with the owner names made alike and `\dt+`'s size column (storage
/// sizes differ by engine) blanked.
fn normalize(s: &str) -> String {
    s.replace("postgres", "root")
        .lines()
        .map(|l| {
            if l.contains("|permanent") {
                let cells: Vec<&str> = l.split('|').collect();
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i == 6 { "<size>" } else { c })
                    .collect::<Vec<_>>()
                    .join("|")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn psql_describe_commands_print_what_postgres_prints() {
    if !have_psql() {
        return;
    }
    let (_demo, urls) = start_demo(&[]);
    let url = urls[0].clone();
    for statement in SCHEMA.trim().lines() {
        let (ok, _, err) = psql(&url, statement);
        assert!(ok, "{statement}: {err}");
    }
    // Without PostgreSQL: every command still runs without an error.
    let pg = start_postgres();
    if let Some(pg) = &pg {
        for statement in SCHEMA.trim().lines() {
            let (ok, _, err) = psql(&pg.url, statement);
            assert!(ok, "PostgreSQL: {statement}: {err}");
        }
    }
    let mut differences = Vec::new();
    for command in COMPARED {
        let (ok, ours, err) = psql(&url, command);
        assert!(ok, "{command}: {err}");
        assert!(err.is_empty(), "{command} printed errors: {err}");
        if let Some(pg) = &pg {
            let (ok, theirs, err) = psql(&pg.url, command);
            assert!(ok, "PostgreSQL {command}: {err}");
            if normalize(&ours) != normalize(&theirs) {
                differences.push(format!(
                    "{command}\n--- Tardigrade:\n{ours}\n--- PostgreSQL:\n{theirs}"
                ));
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    // `\l` lists the databases (PostgreSQL has others).
    let (ok, out, err) = psql(&url, r"\l");
    assert!(ok, "{err}");
    assert!(out.contains("defaultdb") && out.contains("UTF8"), "{out}");
}
