//! Plan golden tests over a test catalog (`tardigrade_sql::opttest`): no KV
//! store, injected statistics. Each file under `testdata/opt` is a list of
//! blocks separated by blank lines:
//!
//! ```text
//! # comment lines
//! <command> [options]
//! <input>
//! ----
//! <expected output>
//! ```
//!
//! Commands:
//! - `exec-ddl`: `CREATE TABLE` statements; output empty (or the error).
//! - `inject-stats table=<name>`: the table's statistics, one line each:
//!   `rows=N`, then `<column> distinct=N [nulls=N] [histogram=<upper>:<eq>:<range>:<distinct range> …]`.
//! - `plan`: the plan of a query or DML statement, as `EXPLAIN` prints it;
//!   `opt`: the logical plan, as `EXPLAIN (OPT)` prints it. Options:
//!   `verbose` (columns and orderings), `nocosts` (no estimates),
//!   `disable=<rule>[,<rule>…]` (plan with those rules off; names are
//!   `tardigrade_sql::plan::rules::Rule::name`).
//! - `memo`: the memo of each join tree of a query, as `EXPLAIN (OPT, MEMO)`
//!   prints it after the plan: groups of equivalent joins, each expression
//!   with its cost, the best marked `*`.
//!
//! Run with `REWRITE=1` to regenerate the expected output after a deliberate
//! change and review the diff; `OPT=<file stem>` limits either to one file.

use std::path::Path;

use tardigrade_sql::opttest::{PlanOptions, TestCatalog};
use tardigrade_sql::plan::rules::{Rule, Rules};

fn run_command(cat: &mut TestCatalog, command: &str, input: &str) -> Result<String, String> {
    let mut words = command.split_whitespace();
    let name = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let error = |e: tardigrade_sqltypes::SqlError| format!("ERROR {}: {}", e.code, e.message);
    match name {
        "exec-ddl" => Ok(cat.exec_ddl(input).err().map(error).unwrap_or_default()),
        "inject-stats" => {
            let table = args
                .iter()
                .find_map(|a| a.strip_prefix("table="))
                .ok_or("inject-stats needs table=<name>")?;
            Ok(cat
                .inject_stats(table, input)
                .err()
                .map(error)
                .unwrap_or_default())
        }
        "plan" | "opt" => {
            let mut options = PlanOptions {
                logical: name == "opt",
                ..PlanOptions::default()
            };
            let mut rules = Rules::all();
            for a in &args {
                match *a {
                    "verbose" => options.render.verbose = true,
                    "nocosts" => options.render.no_estimates = true,
                    _ => {
                        let list = a
                            .strip_prefix("disable=")
                            .ok_or_else(|| format!("unknown option {a}"))?;
                        for r in list.split(',') {
                            let rule =
                                Rule::from_name(r).ok_or_else(|| format!("unknown rule {r}"))?;
                            rules = rules.without(rule);
                        }
                    }
                }
            }
            options.rules = rules;
            Ok(match cat.explain(input, options) {
                Ok(lines) => lines.join("\n"),
                Err(e) => error(e),
            })
        }
        "memo" => Ok(match cat.memo(input, Rules::all()) {
            Ok(lines) => lines.join("\n"),
            Err(e) => error(e),
        }),
        other => Err(format!("unknown command {other}")),
    }
}

fn run_file(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read test file");
    let rewrite = std::env::var("REWRITE").is_ok();
    let mut cat = TestCatalog::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (head, expected) = match block.split_once("\n----") {
            Some((h, e)) => (h, e.strip_prefix('\n').unwrap_or(e).trim_end()),
            None => (block, ""),
        };
        let comments: Vec<&str> = head.lines().take_while(|l| l.starts_with('#')).collect();
        let rest: Vec<&str> = head.lines().skip(comments.len()).collect();
        let Some((command, input)) = rest.split_first() else {
            // Comments alone (the file's header).
            rewritten.push_str(block.trim_end());
            rewritten.push_str("\n\n");
            continue;
        };
        let input = input.join("\n");
        let actual = run_command(&mut cat, command, &input)
            .unwrap_or_else(|e| panic!("{}: {e} in:\n{block}", path.display()));
        if actual != expected {
            failures.push(format!(
                "{command}\n{input}\n--- expected:\n{expected}\n--- actual:\n{actual}\n"
            ));
        }
        for c in &comments {
            rewritten.push_str(c);
            rewritten.push('\n');
        }
        rewritten.push_str(&format!("{command}\n{input}\n----\n"));
        if !actual.is_empty() {
            rewritten.push_str(&actual);
            rewritten.push('\n');
        }
        rewritten.push('\n');
    }
    if rewrite {
        std::fs::write(path, rewritten.trim_end().to_string() + "\n").expect("rewrite test file");
        return;
    }
    assert!(
        failures.is_empty(),
        "{}: {} block(s) differ:\n{}",
        path.display(),
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn plans() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/opt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata/opt")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no plan files");
    if let Ok(only) = std::env::var("OPT") {
        files.retain(|f| f.file_stem().is_some_and(|s| s == only.as_str()));
    }
    for f in files {
        run_file(&f);
    }
}

/// Every rule shows in some file: planning that file's queries with the
/// rule off changes at least one plan. (A rule no file exercises could be
/// broken or deleted without any plan test noticing.)
#[test]
fn every_rule_changes_some_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/opt");
    let mut untested = Vec::new();
    for rule in Rule::ALL {
        let file = dir.join(format!("{}.txt", rule.name()));
        let Ok(text) = std::fs::read_to_string(&file) else {
            untested.push(format!("{}: no file {}", rule.name(), file.display()));
            continue;
        };
        let mut all_on = TestCatalog::new();
        let mut one_off = TestCatalog::new();
        let mut changed = false;
        for block in text.split("\n\n") {
            let head = block.split("\n----").next().unwrap_or_default();
            let lines: Vec<&str> = head.lines().filter(|l| !l.starts_with('#')).collect();
            let Some((command, input)) = lines.split_first() else {
                continue;
            };
            let input = input.join("\n");
            let name = command.split_whitespace().next().unwrap_or_default();
            if name == "plan" || name == "opt" {
                // The block as written on one side, without this rule on the
                // other (other options kept).
                let plain: Vec<&str> = command
                    .split_whitespace()
                    .filter(|w| !w.starts_with("disable="))
                    .collect();
                let plain = plain.join(" ");
                let a = run_command(&mut all_on, &plain, &input).expect("plan");
                let b = run_command(
                    &mut one_off,
                    &format!("{plain} disable={}", rule.name()),
                    &input,
                )
                .expect("plan");
                changed |= a != b;
            } else {
                run_command(&mut all_on, command, &input).expect("command");
                run_command(&mut one_off, command, &input).expect("command");
            }
        }
        if !changed {
            untested.push(format!(
                "{}: no plan in {} changes without it",
                rule.name(),
                file.display()
            ));
        }
    }
    assert!(untested.is_empty(), "{}", untested.join("\n"));
}
