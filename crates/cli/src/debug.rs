//! `tardigrade debug kv …`: raw KV access through the KV API.

use clap::{Args, Subcommand};

use crate::{CliResult, DEFAULT_ADDR, connect};

#[derive(Args, Debug)]
pub struct KvArgs {
    /// The node to connect to.
    #[arg(long, global = true, default_value = DEFAULT_ADDR)]
    pub host: String,
    #[command(subcommand)]
    pub op: KvOp,
}

#[derive(Subcommand, Debug)]
pub enum KvOp {
    /// Write VALUE at KEY.
    Put { key: String, value: String },
    /// Print the value at KEY.
    Get { key: String },
    /// Print the rows of [START, END) as `key -> value`.
    Scan {
        start: String,
        end: String,
        /// At most this many rows (0: all).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
        limit: i64,
    },
    /// Delete KEY.
    Del { key: String },
}

pub async fn run(args: KvArgs) -> CliResult {
    let db = connect(&args.host).await?;
    match args.op {
        KvOp::Put { key, value } => {
            non_empty(&key)?;
            db.put(key.as_bytes(), value.as_bytes()).await?;
        }
        KvOp::Get { key } => {
            non_empty(&key)?;
            match db.get(key.as_bytes()).await? {
                Some(v) => println!("{}", escape(&v)),
                None => println!("(not found)"),
            }
        }
        KvOp::Scan { start, end, limit } => {
            if end.as_bytes() <= start.as_bytes() {
                return Err(crate::CliError(format!(
                    "scan: END ({end:?}) must be greater than START ({start:?})"
                )));
            }
            let rows = db.scan(start.as_bytes(), end.as_bytes(), limit).await?;
            for kv in &rows {
                println!("{} -> {}", escape(&kv.key), escape(&kv.value.bytes));
            }
            eprintln!("{} row(s)", rows.len());
        }
        KvOp::Del { key } => {
            non_empty(&key)?;
            db.del(key.as_bytes()).await?;
        }
    }
    Ok(())
}

fn non_empty(key: &str) -> CliResult {
    if key.is_empty() {
        return Err(crate::CliError("the key must not be empty".into()));
    }
    Ok(())
}

/// Bytes for a terminal: printable UTF-8 as is, a backslash doubled, control
/// characters and invalid UTF-8 as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_what_a_terminal_should_not_see() {
        assert_eq!(escape(b"plain key/1"), "plain key/1");
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"\x00\x01\n\x7f"), "\\x00\\x01\\x0a\\x7f");
        assert_eq!(escape(&[0xff, b'a', 0xc3]), "\\xffa\\xc3");
        assert_eq!(escape("héllo ✓".as_bytes()), "héllo ✓");
        assert_eq!(
            escape(&[0, 0, 0, 0, 0, 0, 0x03, 0xe8]),
            "\\x00\\x00\\x00\\x00\\x00\\x00\\x03\\xe8"
        );
        assert_eq!(escape(b""), "");
    }
}
