//! A throwaway PostgreSQL 15 server for tests that compare with it (when
//! it is installed: `.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{free_port, text};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A throwaway PostgreSQL, stopped when dropped.
pub struct Postgres {
    data: PathBuf,
    runas: Vec<String>,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "immediate", "stop", "-D"])
            .arg(&self.data)
            .output();
    }
}

impl Postgres {
    pub fn command(&self, tool: &str) -> Command {
        command_as(&self.runas, &format!("{PG_BIN}/{tool}"))
    }
}

fn command_as(runas: &[String], program: &str) -> Command {
    match runas.split_first() {
        None => Command::new(program),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
    }
}

/// Starts PostgreSQL 15 if it is installed and can run here (as root: as the
/// `postgres` user, through `runuser`); `None` with a note otherwise.
pub fn start_postgres() -> Option<Postgres> {
    if !Path::new(PG_BIN).join("initdb").exists() {
        println!("note: PostgreSQL 15 is not installed; skipping the comparison with it");
        return None;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0");
    let runas: Vec<String> = if root {
        vec![
            "runuser".into(),
            "-u".into(),
            "postgres".into(),
            "--".into(),
        ]
    } else {
        Vec::new()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("pg");
    std::fs::create_dir(&data).expect("mkdir");
    if root {
        let _ = Command::new("chmod").arg("755").arg(dir.path()).status();
        let _ = Command::new("chown").arg("postgres").arg(&data).status();
    }
    let init = command_as(&runas, &format!("{PG_BIN}/initdb"))
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
        .arg(&data)
        .output()
        .expect("run initdb");
    if !init.status.success() {
        println!(
            "note: initdb failed; skipping the comparison with PostgreSQL: {}",
            text(&init.stderr)
        );
        return None;
    }
    let port = free_port();
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        data.display()
    );
    let pg = Postgres {
        url: format!("postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"),
        data: data.clone(),
        runas,
        _dir: dir,
    };
    let started = pg
        .command("pg_ctl")
        .args(["-w", "-o", &opts, "-l"])
        .arg(data.join("server.log"))
        .arg("-D")
        .arg(&data)
        .arg("start")
        .stdout(Stdio::null())
        .output()
        .expect("run pg_ctl");
    if !started.status.success() {
        println!(
            "note: PostgreSQL did not start; skipping the comparison: {}",
            text(&started.stderr)
        );
        return None;
    }
    Some(pg)
}
