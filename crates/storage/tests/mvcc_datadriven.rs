//! Data-driven golden tests for MVCC: `testdata/mvcc/*.txt`.
//!
//! Each file runs against a fresh in-memory engine. A block is one or more
//! command lines, a line `----`, then the expected output up to a blank line.
//! Lines starting with `#` between blocks are comments. Run with `REWRITE=1`
//! to regenerate the expected outputs in place.
//!
//! Commands (timestamps are `secs`, `secs,logical` or `secs.frac`; `t=NAME`
//! names a transaction created by `txn_begin`):
//!
//! ```text
//! txn_begin t= ts= [prio=] [k=anchor]     txn_step t= [n=1]      txn_seq t= seq=
//! txn_restart t= [ts=]                      txn_push t= ts=        txn_ignore t= seqs=LO-HI
//! put k= v= [ts=] [t=]      del k= [ts=] [t=]      cput k= v= [exp=] [ts=] [t=]
//! inc k= [n=1] [ts=] [t=]   del_range k= end= [ts=] [t=] [max=]
//! get k= [ts=] [t=] [unc=] [inconsistent] [tombstones]
//! scan k= end= [ts=] [t=] [unc=] [inconsistent] [tombstones] [reverse] [max=] [target_bytes=]
//! resolve k= t= status=committed|aborted|pending [pushed_ts=]
//! resolve_range k= end= t= status= [max=] [pushed_ts=]
//! gc k= threshold=          intents k= end= [max=]          stats          dump
//! ```
//!
//! A transactional write that comes back at a higher timestamp forwards the
//! transaction's write timestamp, as the coordinator would. Every successful
//! write is committed on its own and the incremental stats are checked against
//! `compute_stats` after it; `stats` prints them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tardigrade_hlc::Timestamp;
use tardigrade_storage::mvcc::key::decode_mvcc_key;
use tardigrade_storage::mvcc::value::{IntentRecord, decode_version};
use tardigrade_storage::mvcc::{
    self, GetResult, Intent, MvccError, MvccStats, ReadOptions, ScanLimits, TxnStatus, Value,
    compute_stats, fmt_key,
};
use tardigrade_storage::{Engine, Reader, Space, StoreSpec, TxnId, TxnMeta};

const KEY_MAX: &[u8] = b"\xff\xff\xff\xff";

struct Args {
    cmd: String,
    kv: BTreeMap<String, String>,
}

fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => in_quotes = !in_quotes,
            '\\' if in_quotes => match chars.next() {
                Some('x') => {
                    let hex: String = chars.by_ref().take(2).collect();
                    let b = u8::from_str_radix(&hex, 16)
                        .map_err(|e| format!("bad escape \\x{hex}: {e}"))?;
                    cur.push(char::from(b));
                }
                Some(c) => cur.push(c),
                None => return Err("dangling backslash".into()),
            },
            c if c.is_whitespace() && !in_quotes => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quote".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Chars below 256 map to bytes, so `\xNN` escapes give arbitrary bytes.
fn bytes_of(s: &str) -> Vec<u8> {
    s.chars().map(|c| c as u32 as u8).collect()
}

impl Args {
    fn parse(line: &str) -> Result<Args, String> {
        let toks = tokenize(line)?;
        let (cmd, rest) = toks.split_first().ok_or("empty command")?;
        let mut kv = BTreeMap::new();
        for t in rest {
            let (k, v) = t.split_once('=').unwrap_or((t.as_str(), ""));
            kv.insert(k.to_string(), v.to_string());
        }
        Ok(Args {
            cmd: cmd.clone(),
            kv,
        })
    }

    fn has(&self, k: &str) -> bool {
        self.kv.contains_key(k)
    }

    fn str(&self, k: &str) -> Result<&str, String> {
        self.kv
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("{}: missing argument {k}=", self.cmd))
    }

    fn bytes(&self, k: &str) -> Result<Vec<u8>, String> {
        Ok(bytes_of(self.str(k)?))
    }

    fn opt_bytes(&self, k: &str) -> Option<Vec<u8>> {
        self.kv.get(k).map(|s| bytes_of(s))
    }

    fn int<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.kv.get(k) {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|e| format!("{}: bad {k}={s}: {e}", self.cmd)),
        }
    }

    fn ts(&self, k: &str) -> Result<Option<Timestamp>, String> {
        self.kv.get(k).map(|s| parse_ts(s)).transpose()
    }
}

fn parse_ts(s: &str) -> Result<Timestamp, String> {
    let (wall, logical) = s.split_once(',').unwrap_or((s, "0"));
    let (secs, frac) = wall.split_once('.').unwrap_or((wall, ""));
    let secs: i64 = secs
        .parse()
        .map_err(|e| format!("bad timestamp {s}: {e}"))?;
    let mut nanos = 0i64;
    if !frac.is_empty() {
        let padded = format!("{frac:0<9}");
        nanos = padded[..9]
            .parse()
            .map_err(|e| format!("bad timestamp {s}: {e}"))?;
    }
    let logical = logical
        .parse()
        .map_err(|e| format!("bad timestamp {s}: {e}"))?;
    Ok(Timestamp::new(secs * 1_000_000_000 + nanos, logical))
}

struct TestTxn {
    meta: TxnMeta,
    ignored: Vec<(i32, i32)>,
}

struct Harness {
    engine: Engine,
    stats: MvccStats,
    txns: BTreeMap<String, TestTxn>,
    names: BTreeMap<TxnId, String>,
}

fn fmt_value(v: Option<&[u8]>) -> String {
    match v {
        Some(v) => fmt_key(v),
        None => "<tombstone>".into(),
    }
}

fn fmt_stats(s: &MvccStats) -> String {
    format!(
        "key_count={} key_bytes={} val_count={} val_bytes={} live_count={} live_bytes={} intent_count={} intent_bytes={}",
        s.key_count,
        s.key_bytes,
        s.val_count,
        s.val_bytes,
        s.live_count,
        s.live_bytes,
        s.intent_count,
        s.intent_bytes
    )
}

fn fmt_span(span: &Option<(Vec<u8>, Vec<u8>)>) -> String {
    match span {
        Some((s, e)) => format!("[{}, {})", fmt_key(s), fmt_key(e)),
        None => "none".into(),
    }
}

impl Harness {
    fn new() -> Harness {
        Harness {
            engine: Engine::open(&StoreSpec::Memory).expect("open engine"),
            stats: MvccStats::default(),
            txns: BTreeMap::new(),
            names: BTreeMap::new(),
        }
    }

    fn txn_name(&self, id: &TxnId) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("{id:?}"))
    }

    fn fmt_txn(&self, t: &TxnMeta) -> String {
        format!(
            "{} epoch={} ts={} seq={}",
            self.txn_name(&t.id),
            t.epoch,
            t.write_timestamp,
            t.sequence
        )
    }

    fn fmt_intent(&self, i: &Intent) -> String {
        format!("{} held by {}", fmt_key(&i.key), self.fmt_txn(&i.txn))
    }

    fn fmt_error(&self, e: &MvccError) -> String {
        let mut s = format!("error: {e}");
        match e {
            MvccError::WriteIntent { intents } => {
                for i in intents {
                    write!(s, "\n  {}", self.fmt_intent(i)).unwrap();
                }
            }
            MvccError::ConditionFailed { actual } => {
                write!(
                    s,
                    " (actual: {})",
                    actual.as_deref().map_or("<none>".into(), fmt_key)
                )
                .unwrap();
            }
            _ => {}
        }
        s
    }

    fn txn(&self, a: &Args) -> Result<Option<TxnMeta>, String> {
        match a.kv.get("t") {
            None => Ok(None),
            Some(name) => Ok(Some(
                self.txns
                    .get(name)
                    .ok_or_else(|| format!("unknown txn {name}"))?
                    .meta
                    .clone(),
            )),
        }
    }

    fn txn_mut(&mut self, a: &Args) -> Result<&mut TestTxn, String> {
        let name = a.str("t")?.to_string();
        self.txns
            .get_mut(&name)
            .ok_or_else(|| format!("unknown txn {name}"))
    }

    /// The read or (non-transactional) write timestamp: `ts=`, else the txn's.
    fn ts(&self, a: &Args, txn: Option<&TxnMeta>) -> Result<Timestamp, String> {
        match (a.ts("ts")?, txn) {
            (Some(ts), _) => Ok(ts),
            (None, Some(t)) => Ok(t.write_timestamp),
            (None, None) => Err(format!("{}: missing ts=", a.cmd)),
        }
    }

    fn check_stats(&self) -> Result<MvccStats, String> {
        let computed = compute_stats(&self.engine, b"", KEY_MAX).map_err(|e| e.to_string())?;
        if computed != self.stats {
            return Err(format!(
                "STATS MISMATCH\n  incremental: {}\n  computed:    {}",
                fmt_stats(&self.stats),
                fmt_stats(&computed)
            ));
        }
        Ok(computed)
    }

    /// Runs a write in its own batch; commits and adds its stats on success.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut tardigrade_storage::Batch, &mut MvccStats) -> mvcc::Result<T>,
    ) -> Result<mvcc::Result<T>, String> {
        let mut b = self.engine.batch();
        let mut delta = MvccStats::default();
        let res = f(&mut b, &mut delta);
        if res.is_ok() {
            self.engine
                .commit(b.writes(), false)
                .map_err(|e| e.to_string())?;
            self.stats.add(&delta);
        }
        self.check_stats()?;
        Ok(res)
    }

    /// Forwards the named txn's write timestamp to one a write came back with.
    fn forward_txn(&mut self, a: &Args, ts: Timestamp) {
        if let Some(name) = a.kv.get("t")
            && let Some(t) = self.txns.get_mut(name)
        {
            t.meta.write_timestamp.forward(ts);
        }
    }

    fn read_opts<'a>(
        &self,
        a: &Args,
        txn: Option<&'a TxnMeta>,
        ignored_seqs: &'a [(i32, i32)],
    ) -> Result<ReadOptions<'a>, String> {
        Ok(ReadOptions {
            txn,
            uncertainty_limit: a.ts("unc")?.unwrap_or(Timestamp::ZERO),
            inconsistent: a.has("inconsistent"),
            tombstones: a.has("tombstones"),
            ignored_seqs,
        })
    }

    /// The named transaction's sequence numbers rolled back by savepoints
    /// (`txn_ignore`); none without `t=`.
    fn ignored(&self, a: &Args) -> Vec<(i32, i32)> {
        a.kv.get("t")
            .and_then(|name| self.txns.get(name))
            .map(|t| t.ignored.clone())
            .unwrap_or_default()
    }

    fn run(&mut self, line: &str) -> Result<String, String> {
        let a = Args::parse(line)?;
        let mut out = String::new();
        match a.cmd.as_str() {
            "txn_begin" => {
                let name = a.str("t")?.to_string();
                let ts = a.ts("ts")?.ok_or("txn_begin: missing ts=")?;
                let mut id = [0u8; 16];
                for (d, s) in id.iter_mut().zip(name.bytes()) {
                    *d = s;
                }
                let meta = TxnMeta {
                    id: TxnId(id),
                    key: a.opt_bytes("k").unwrap_or_else(|| b"anchor".to_vec()),
                    epoch: 0,
                    write_timestamp: ts,
                    min_timestamp: ts,
                    priority: a.int("prio", 0)?,
                    sequence: 0,
                };
                self.names.insert(meta.id, name.clone());
                self.txns.insert(
                    name,
                    TestTxn {
                        meta,
                        ignored: Vec::new(),
                    },
                );
            }
            "txn_step" => {
                let n: i32 = a.int("n", 1)?;
                self.txn_mut(&a)?.meta.sequence += n;
            }
            "txn_seq" => {
                let seq: i32 = a.int("seq", 0)?;
                self.txn_mut(&a)?.meta.sequence = seq;
            }
            "txn_restart" => {
                let ts = a.ts("ts")?;
                let t = self.txn_mut(&a)?;
                t.meta.epoch += 1;
                t.meta.sequence = 0;
                t.ignored.clear();
                if let Some(ts) = ts {
                    t.meta.write_timestamp.forward(ts);
                }
            }
            "txn_push" => {
                let ts = a.ts("ts")?.ok_or("txn_push: missing ts=")?;
                self.txn_mut(&a)?.meta.write_timestamp.forward(ts);
            }
            "txn_ignore" => {
                let seqs = a.str("seqs")?.to_string();
                let (lo, hi) = seqs.split_once('-').unwrap_or((&seqs, &seqs));
                let lo = lo.parse().map_err(|e| format!("bad seqs: {e}"))?;
                let hi = hi.parse().map_err(|e| format!("bad seqs: {e}"))?;
                self.txn_mut(&a)?.ignored.push((lo, hi));
            }
            "put" | "del" => {
                let key = a.bytes("k")?;
                let value = if a.cmd == "put" {
                    Some(a.bytes("v")?)
                } else {
                    None
                };
                let txn = self.txn(&a)?;
                let ts = self.ts(&a, txn.as_ref())?;
                match self
                    .write(|b, s| mvcc::mvcc_put(b, s, &key, ts, value.as_deref(), txn.as_ref()))?
                {
                    Ok(w) => {
                        self.forward_txn(&a, w);
                        write!(out, "ok ts={w}").unwrap();
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "cput" => {
                let key = a.bytes("k")?;
                let value = a.bytes("v")?;
                let exp = a.opt_bytes("exp");
                let txn = self.txn(&a)?;
                let ignored = self.ignored(&a);
                let ts = self.ts(&a, txn.as_ref())?;
                match self.write(|b, s| {
                    mvcc::mvcc_conditional_put(
                        b,
                        s,
                        &key,
                        ts,
                        &value,
                        exp.as_deref(),
                        txn.as_ref(),
                        &ignored,
                    )
                })? {
                    Ok(w) => {
                        self.forward_txn(&a, w);
                        write!(out, "ok ts={w}").unwrap();
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "inc" => {
                let key = a.bytes("k")?;
                let n: i64 = a.int("n", 1)?;
                let txn = self.txn(&a)?;
                let ignored = self.ignored(&a);
                let ts = self.ts(&a, txn.as_ref())?;
                match self
                    .write(|b, s| mvcc::mvcc_increment(b, s, &key, ts, n, txn.as_ref(), &ignored))?
                {
                    Ok((v, w)) => {
                        self.forward_txn(&a, w);
                        write!(out, "ok value={v} ts={w}").unwrap();
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "del_range" => {
                let start = a.bytes("k")?;
                let end = a.bytes("end")?;
                let max: u64 = a.int("max", 0)?;
                let txn = self.txn(&a)?;
                let ignored = self.ignored(&a);
                let ts = self.ts(&a, txn.as_ref())?;
                match self.write(|b, s| {
                    mvcc::mvcc_delete_range(b, s, &start, &end, max, ts, txn.as_ref(), &ignored)
                })? {
                    Ok((keys, resume, w)) => {
                        self.forward_txn(&a, w);
                        let keys: Vec<String> = keys.iter().map(|k| fmt_key(k)).collect();
                        write!(
                            out,
                            "ok ts={w} deleted=[{}] resume={}",
                            keys.join(", "),
                            fmt_span(&resume)
                        )
                        .unwrap();
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "get" => {
                let key = a.bytes("k")?;
                let txn = self.txn(&a)?;
                let ts = self.ts(&a, txn.as_ref())?;
                let ignored = self.ignored(&a);
                let opts = self.read_opts(&a, txn.as_ref(), &ignored)?;
                match mvcc::mvcc_get(&self.engine.batch(), &key, ts, &opts) {
                    Ok(GetResult { value, intent }) => {
                        match value {
                            Some(v) => {
                                write!(out, "get: {} -> {}", fmt_key(&key), fmt_read(&v)).unwrap()
                            }
                            None => write!(out, "get: {} -> <no value>", fmt_key(&key)).unwrap(),
                        }
                        if let Some(i) = intent {
                            write!(out, "\nget: intent {}", self.fmt_intent(&i)).unwrap();
                        }
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "scan" => {
                let start = a.bytes("k")?;
                let end = a.bytes("end")?;
                let txn = self.txn(&a)?;
                let ts = self.ts(&a, txn.as_ref())?;
                let ignored = self.ignored(&a);
                let opts = self.read_opts(&a, txn.as_ref(), &ignored)?;
                let limits = ScanLimits {
                    max_keys: a.int("max", 0)?,
                    target_bytes: a.int("target_bytes", 0)?,
                };
                let reverse = a.has("reverse");
                match mvcc::mvcc_scan(
                    &self.engine.batch(),
                    &start,
                    &end,
                    ts,
                    &opts,
                    limits,
                    reverse,
                ) {
                    Ok(res) => {
                        let mut lines = Vec::new();
                        for (k, v) in &res.kvs {
                            lines.push(format!("scan: {} -> {}", fmt_key(k), fmt_read(v)));
                        }
                        if res.kvs.is_empty() {
                            lines.push("scan: <no results>".into());
                        }
                        if res.resume_span.is_some() {
                            lines.push(format!("scan: resume span {}", fmt_span(&res.resume_span)));
                        }
                        for i in &res.intents {
                            lines.push(format!("scan: intent {}", self.fmt_intent(i)));
                        }
                        out = lines.join("\n");
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "resolve" | "resolve_range" => {
                let t = self.txns.get(a.str("t")?).ok_or("unknown txn")?;
                let mut meta = t.meta.clone();
                if let Some(ts) = a.ts("pushed_ts")? {
                    meta.write_timestamp = ts;
                }
                let ignored = t.ignored.clone();
                let status = match a.str("status")? {
                    "committed" => TxnStatus::Committed,
                    "aborted" => TxnStatus::Aborted,
                    "pending" => TxnStatus::Pending,
                    s => return Err(format!("bad status {s}")),
                };
                let key = a.bytes("k")?;
                if a.cmd == "resolve" {
                    match self.write(|b, s| {
                        mvcc::mvcc_resolve_intent(b, s, &key, &meta, status, &ignored)
                    })? {
                        Ok(found) => write!(out, "ok found={found}").unwrap(),
                        Err(e) => out = self.fmt_error(&e),
                    }
                } else {
                    let end = a.bytes("end")?;
                    let max: u64 = a.int("max", 0)?;
                    match self.write(|b, s| {
                        mvcc::mvcc_resolve_intent_range(
                            b, s, &key, &end, &meta, status, &ignored, max,
                        )
                    })? {
                        Ok((n, resume)) => {
                            write!(out, "ok resolved={n} resume={}", fmt_span(&resume)).unwrap()
                        }
                        Err(e) => out = self.fmt_error(&e),
                    }
                }
            }
            "gc" => {
                let key = a.bytes("k")?;
                let threshold = a.ts("threshold")?.ok_or("gc: missing threshold=")?;
                match self.write(|b, s| mvcc::mvcc_gc(b, s, &key, threshold))? {
                    Ok(n) => write!(out, "ok removed={n}").unwrap(),
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "intents" => {
                let start = a.bytes("k")?;
                let end = a.bytes("end")?;
                let max: u64 = a.int("max", 0)?;
                match mvcc::scan_intents(&self.engine, &start, &end, max) {
                    Ok(intents) if intents.is_empty() => out = "intents: <none>".into(),
                    Ok(intents) => {
                        let lines: Vec<String> = intents
                            .iter()
                            .map(|i| format!("intents: {}", self.fmt_intent(i)))
                            .collect();
                        out = lines.join("\n");
                    }
                    Err(e) => out = self.fmt_error(&e),
                }
            }
            "stats" => {
                let s = self.check_stats()?;
                out = format!("stats: {}", fmt_stats(&s));
            }
            "dump" => out = self.dump()?,
            c => return Err(format!("unknown command {c}")),
        }
        if a.cmd.starts_with("txn_") {
            let t = &self.txn_mut(&a)?.meta.clone();
            out = format!("txn: {}", self.fmt_txn(t));
            let ignored = &self.txn_mut(&a)?.ignored;
            if !ignored.is_empty() {
                write!(out, " ignored={ignored:?}").unwrap();
            }
        }
        Ok(out)
    }

    fn dump(&self) -> Result<String, String> {
        let mut lines = Vec::new();
        for entry in self.engine.scan(Space::Mvcc, b"", KEY_MAX, false) {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            let (key, ts) = decode_mvcc_key(&k).map_err(|e| e.to_string())?;
            let v = decode_version(&v).map_err(|e| e.to_string())?;
            lines.push(format!("data: {}@{ts} -> {}", fmt_key(&key), fmt_value(v)));
        }
        for entry in self.engine.scan(Space::Lock, b"", KEY_MAX, false) {
            let (k, v) = entry.map_err(|e| e.to_string())?;
            let rec = IntentRecord::decode(&v).map_err(|e| e.to_string())?;
            let history: Vec<String> = rec
                .history
                .iter()
                .map(|(seq, v)| format!("{seq}:{}", fmt_value(v.as_deref())))
                .collect();
            lines.push(format!(
                "intent: {} -> {} value={} history=[{}]",
                fmt_key(&k),
                self.fmt_txn(&rec.txn),
                fmt_value(rec.value.as_deref()),
                history.join(" ")
            ));
        }
        if lines.is_empty() {
            lines.push("<empty>".into());
        }
        Ok(lines.join("\n"))
    }
}

fn fmt_read(v: &Value) -> String {
    format!("{} @{}", fmt_value(v.bytes.as_deref()), v.timestamp)
}

enum Item {
    Verbatim(String),
    Block {
        line: usize,
        commands: Vec<String>,
        expected: Vec<String>,
    },
}

fn parse_file(text: &str) -> Result<Vec<Item>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim().is_empty() || l.starts_with('#') {
            items.push(Item::Verbatim(l.to_string()));
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut commands = Vec::new();
        while i < lines.len() && lines[i] != "----" {
            if lines[i].trim().is_empty() {
                return Err(format!("line {}: blank line before ----", i + 1));
            }
            commands.push(lines[i].to_string());
            i += 1;
        }
        if i == lines.len() {
            return Err(format!("line {start}: command without ----"));
        }
        i += 1;
        let mut expected = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push(lines[i].to_string());
            i += 1;
        }
        items.push(Item::Block {
            line: start,
            commands,
            expected,
        });
    }
    Ok(items)
}

/// Runs one file; returns the rewritten text and the mismatches found.
fn run_file(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).expect("read test file");
    let items = parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Harness::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    for item in items {
        match item {
            Item::Verbatim(l) => {
                rewritten.push_str(&l);
                rewritten.push('\n');
            }
            Item::Block {
                line,
                commands,
                expected,
            } => {
                let mut actual = Vec::new();
                for c in &commands {
                    match h.run(c) {
                        Ok(out) => actual.extend(out.lines().map(str::to_string)),
                        Err(e) => panic!("{}:{line}: {c}: {e}", path.display()),
                    }
                }
                if actual != expected {
                    let mut msg = format!("{}:{line}:\n", path.display());
                    for c in &commands {
                        writeln!(msg, "  {c}").unwrap();
                    }
                    msg.push_str("  ----\n");
                    for l in &expected {
                        if !actual.contains(l) {
                            writeln!(msg, "- {l}").unwrap();
                        }
                    }
                    for l in &actual {
                        if !expected.contains(l) {
                            writeln!(msg, "+ {l}").unwrap();
                        }
                    }
                    msg.push_str("  expected:\n");
                    for l in &expected {
                        writeln!(msg, "    {l}").unwrap();
                    }
                    msg.push_str("  actual:\n");
                    for l in &actual {
                        writeln!(msg, "    {l}").unwrap();
                    }
                    failures.push(msg);
                }
                for c in &commands {
                    rewritten.push_str(c);
                    rewritten.push('\n');
                }
                rewritten.push_str("----\n");
                for l in &actual {
                    rewritten.push_str(l);
                    rewritten.push('\n');
                }
            }
        }
    }
    (rewritten, failures)
}

fn test_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mvcc");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/mvcc")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    files
}

#[test]
fn mvcc_datadriven() {
    let rewrite = std::env::var_os("REWRITE").is_some_and(|v| !v.is_empty() && v != "0");
    let mut failures = Vec::new();
    for path in test_files() {
        let (rewritten, f) = run_file(&path);
        if rewrite {
            std::fs::write(&path, rewritten).expect("rewrite test file");
        } else {
            failures.extend(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} block(s) differ from the expected output (REWRITE=1 regenerates):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_runner_detects_mismatches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.txt");
    std::fs::write(&path, "put k=a ts=1 v=x\n----\nok ts=2.000000000,0\n").expect("write");
    let (rewritten, failures) = run_file(&path);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(rewritten, "put k=a ts=1 v=x\n----\nok ts=1.000000000,0\n");
}
