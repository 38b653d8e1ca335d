//! Property test: random histories of MVCC writes, transactions, resolutions
//! and GC against a simple in-memory model.
//!
//! After every step the incremental stats must equal `compute_stats`, and
//! reads (get, forward and reverse scans, consistent, inconsistent and
//! transactional) at random timestamps at or above the GC threshold must
//! match the model: per key, the committed versions (never garbage-collected,
//! since GC must not change what those reads see) and at most one intent.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tardigrade_hlc::Timestamp;
use tardigrade_storage::mvcc::{
    self, MvccError, MvccStats, ReadOptions, ScanLimits, TxnStatus, Value,
};
use tardigrade_storage::{Engine, StoreSpec, TxnId, TxnMeta};

const KEYS: [&[u8]; 4] = [b"a", b"b", b"b\x00", b"c"];
const SPAN: (&[u8], &[u8]) = (b"", b"\xff");
const TXNS: usize = 2;

fn ts(w: i64) -> Timestamp {
    Timestamp::new(w, 0)
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: usize,
        ts: i64,
        value: Option<u8>,
    },
    DelRange {
        from: usize,
        to: usize,
        ts: i64,
    },
    TxnPut {
        txn: usize,
        key: usize,
        value: Option<u8>,
    },
    Restart {
        txn: usize,
    },
    Push {
        txn: usize,
        by: i64,
    },
    Rollback {
        txn: usize,
    },
    ResolvePending {
        txn: usize,
        key: usize,
    },
    Finish {
        txn: usize,
        commit: bool,
        next_ts: i64,
    },
    Gc {
        key: usize,
        threshold: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let txn = 0..TXNS;
    let value = proptest::option::weighted(0.8, 0u8..4);
    prop_oneof![
        4 => (key.clone(), 1i64..40, value.clone()).prop_map(|(key, ts, value)| Op::Put { key, ts, value }),
        1 => (key.clone(), key.clone(), 1i64..40).prop_map(|(a, b, ts)| Op::DelRange { from: a.min(b), to: a.max(b) + 1, ts }),
        4 => (txn.clone(), key.clone(), value).prop_map(|(txn, key, value)| Op::TxnPut { txn, key, value }),
        1 => txn.clone().prop_map(|txn| Op::Restart { txn }),
        1 => (txn.clone(), 1i64..5).prop_map(|(txn, by)| Op::Push { txn, by }),
        1 => txn.clone().prop_map(|txn| Op::Rollback { txn }),
        1 => (txn.clone(), key.clone()).prop_map(|(txn, key)| Op::ResolvePending { txn, key }),
        2 => (txn, any::<bool>(), 1i64..40).prop_map(|(txn, commit, next_ts)| Op::Finish { txn, commit, next_ts }),
        1 => (key, 1i64..40).prop_map(|(key, threshold)| Op::Gc { key, threshold }),
    ]
}

#[derive(Clone, Debug)]
struct MIntent {
    txn: TxnMeta,
    value: Option<Vec<u8>>,
    history: Vec<(i32, Option<Vec<u8>>)>,
}

impl MIntent {
    fn value_at_seq(&self, seq: i32) -> Option<Option<Vec<u8>>> {
        if self.txn.sequence <= seq {
            return Some(self.value.clone());
        }
        self.history
            .iter()
            .rev()
            .find(|(s, _)| *s <= seq)
            .map(|(_, v)| v.clone())
    }
}

#[derive(Default)]
struct Model {
    /// Committed versions per key, ascending by timestamp.
    versions: BTreeMap<Vec<u8>, Vec<(Timestamp, Option<Vec<u8>>)>>,
    intents: BTreeMap<Vec<u8>, MIntent>,
}

impl Model {
    fn newest(&self, key: &[u8]) -> Option<Timestamp> {
        self.versions
            .get(key)
            .and_then(|v| v.last())
            .map(|(t, _)| *t)
    }

    fn newest_value(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.versions
            .get(key)
            .and_then(|v| v.last())
            .and_then(|(_, v)| v.clone())
    }

    fn add_version(&mut self, key: &[u8], at: Timestamp, value: Option<Vec<u8>>) {
        let vs = self.versions.entry(key.to_vec()).or_default();
        vs.retain(|(t, _)| *t != at);
        vs.push((at, value));
        vs.sort_by_key(|(t, _)| *t);
    }

    fn committed_at(&self, key: &[u8], at: Timestamp) -> Option<(Timestamp, Option<Vec<u8>>)> {
        self.versions
            .get(key)?
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .cloned()
    }

    /// Expected read of `key`: Ok(value) or Err(conflicting intent).
    fn read(&self, key: &[u8], at: Timestamp, txn: Option<&TxnMeta>) -> Result<Option<Value>, ()> {
        if let Some(i) = self.intents.get(key) {
            match txn {
                Some(t) if t.id == i.txn.id => {
                    if i.txn.epoch == t.epoch
                        && let Some(v) = i.value_at_seq(t.sequence)
                    {
                        return Ok(v.map(|b| Value {
                            bytes: Some(b),
                            timestamp: i.txn.write_timestamp,
                        }));
                    }
                }
                _ if i.txn.write_timestamp <= at => return Err(()),
                _ => {}
            }
        }
        Ok(self.committed_at(key, at).and_then(|(t, v)| {
            v.map(|b| Value {
                bytes: Some(b),
                timestamp: t,
            })
        }))
    }
}

struct Slot {
    meta: TxnMeta,
    ignored: Vec<(i32, i32)>,
}

struct World {
    engine: Engine,
    stats: MvccStats,
    model: Model,
    txns: Vec<Slot>,
    next_id: u8,
    /// The highest GC threshold used: writes go above it, reads at or above it.
    floor: Timestamp,
}

fn is_ignored(ignored: &[(i32, i32)], seq: i32) -> bool {
    ignored.iter().any(|&(lo, hi)| lo <= seq && seq <= hi)
}

impl World {
    fn new() -> World {
        let mut w = World {
            engine: Engine::open(&StoreSpec::Memory).expect("open"),
            stats: MvccStats::default(),
            model: Model::default(),
            txns: Vec::new(),
            next_id: 1,
            floor: Timestamp::ZERO,
        };
        for _ in 0..TXNS {
            let meta = w.new_txn(ts(5));
            w.txns.push(Slot {
                meta,
                ignored: Vec::new(),
            });
        }
        w
    }

    fn new_txn(&mut self, at: Timestamp) -> TxnMeta {
        let mut id = [0u8; 16];
        id[0] = self.next_id;
        self.next_id += 1;
        TxnMeta {
            id: TxnId(id),
            key: b"anchor".to_vec(),
            epoch: 0,
            write_timestamp: at,
            min_timestamp: at,
            priority: 0,
            sequence: 0,
        }
    }

    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut tardigrade_storage::Batch, &mut MvccStats) -> mvcc::Result<T>,
    ) -> mvcc::Result<T> {
        let mut b = self.engine.batch();
        let mut delta = MvccStats::default();
        let res = f(&mut b, &mut delta);
        if res.is_ok() {
            self.engine.commit(b.writes(), false).expect("commit");
            self.stats.add(&delta);
        } else {
            assert_eq!(delta, MvccStats::default(), "a failed write changed stats");
        }
        res
    }

    fn above_floor(&self, t: Timestamp) -> Timestamp {
        if t <= self.floor {
            self.floor.next()
        } else {
            t
        }
    }

    fn resolve_model(
        &mut self,
        key: &[u8],
        txn: &TxnMeta,
        ignored: &[(i32, i32)],
        status: TxnStatus,
    ) {
        let Some(mut i) = self.model.intents.remove(key) else {
            return;
        };
        if i.txn.id != txn.id {
            self.model.intents.insert(key.to_vec(), i);
            return;
        }
        let same_epoch = i.txn.epoch == txn.epoch;
        let mut keep = true;
        if same_epoch {
            i.history.retain(|(s, _)| !is_ignored(ignored, *s));
            if is_ignored(ignored, i.txn.sequence) {
                match i.history.pop() {
                    Some((s, v)) => {
                        i.txn.sequence = s;
                        i.value = v;
                    }
                    None => keep = false,
                }
            }
        }
        match status {
            TxnStatus::Committed if keep && same_epoch => {
                self.model.add_version(key, txn.write_timestamp, i.value);
            }
            TxnStatus::Pending if keep => {
                i.txn.write_timestamp.forward(txn.write_timestamp);
                self.model.intents.insert(key.to_vec(), i);
            }
            _ => {}
        }
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Put { key, ts: t, value } => {
                let k = KEYS[key];
                let at = self.above_floor(ts(t));
                let v = value.map(|b| vec![b; b as usize]);
                let res = self.write(|b, s| mvcc::mvcc_put(b, s, k, at, v.as_deref(), None));
                if self.model.intents.contains_key(k) {
                    assert!(matches!(res, Err(MvccError::WriteIntent { .. })), "{res:?}");
                    return;
                }
                let mut want = at;
                if let Some(n) = self.model.newest(k)
                    && n >= want
                {
                    want = n.next();
                }
                assert_eq!(res.expect("put"), want);
                self.model.add_version(k, want, v);
            }
            Op::DelRange { from, to, ts: t } => {
                let (start, end) = (
                    KEYS[from],
                    if to < KEYS.len() {
                        KEYS[to]
                    } else {
                        b"\xff" as &[u8]
                    },
                );
                let at = self.above_floor(ts(t));
                let res =
                    self.write(|b, s| mvcc::mvcc_delete_range(b, s, start, end, 0, at, None, &[]));
                let keys: Vec<&[u8]> = KEYS[from..to].to_vec();
                let conflicts: Vec<&[u8]> = keys
                    .iter()
                    .copied()
                    .filter(|k| self.model.intents.contains_key(*k))
                    .collect();
                if !conflicts.is_empty() {
                    match res {
                        Err(MvccError::WriteIntent { intents }) => {
                            let got: Vec<&[u8]> =
                                intents.iter().map(|i| i.key.as_slice()).collect();
                            assert_eq!(got, conflicts);
                        }
                        other => panic!("expected WriteIntent, got {other:?}"),
                    }
                    return;
                }
                let (deleted, resume, w) = res.expect("delete range");
                assert_eq!(resume, None);
                let live: Vec<&[u8]> = keys
                    .iter()
                    .copied()
                    .filter(|k| self.model.newest_value(k).is_some())
                    .collect();
                assert_eq!(deleted, live.iter().map(|k| k.to_vec()).collect::<Vec<_>>());
                let mut want = at;
                for k in &keys {
                    if let Some(n) = self.model.newest(k)
                        && n >= want
                    {
                        want = n.next();
                    }
                }
                assert_eq!(w, want);
                for k in live {
                    self.model.add_version(k, w, None);
                }
            }
            Op::TxnPut { txn, key, value } => {
                let k = KEYS[key];
                let floor = self.floor;
                let slot = &mut self.txns[txn];
                slot.meta.sequence += 1;
                if slot.meta.write_timestamp <= floor {
                    slot.meta.write_timestamp = floor.next();
                }
                let meta = slot.meta.clone();
                let v = value.map(|b| vec![b; b as usize]);
                let res = self.write(|b, s| {
                    mvcc::mvcc_put(b, s, k, Timestamp::ZERO, v.as_deref(), Some(&meta))
                });
                let existing = self.model.intents.get(k).cloned();
                if let Some(i) = &existing
                    && i.txn.id != meta.id
                {
                    assert!(matches!(res, Err(MvccError::WriteIntent { .. })), "{res:?}");
                    return;
                }
                let mut want = meta.write_timestamp;
                let mut history = Vec::new();
                if let Some(i) = existing {
                    want.forward(i.txn.write_timestamp);
                    if i.txn.epoch == meta.epoch {
                        history = i.history.clone();
                        history.push((i.txn.sequence, i.value.clone()));
                    }
                }
                if let Some(n) = self.model.newest(k)
                    && n >= want
                {
                    want = n.next();
                }
                assert_eq!(res.expect("txn put"), want);
                self.txns[txn].meta.write_timestamp.forward(want);
                self.model.intents.insert(
                    k.to_vec(),
                    MIntent {
                        txn: TxnMeta {
                            write_timestamp: want,
                            ..meta
                        },
                        value: v,
                        history,
                    },
                );
            }
            Op::Restart { txn } => {
                let slot = &mut self.txns[txn];
                slot.meta.epoch += 1;
                slot.meta.sequence = 0;
                slot.ignored.clear();
            }
            Op::Push { txn, by } => {
                let slot = &mut self.txns[txn];
                slot.meta.write_timestamp = Timestamp::new(slot.meta.write_timestamp.wall + by, 0);
            }
            Op::Rollback { txn } => {
                let slot = &mut self.txns[txn];
                let seq = slot.meta.sequence;
                slot.ignored.push((seq, seq));
                slot.meta.sequence += 1;
            }
            Op::ResolvePending { txn, key } => {
                let k = KEYS[key];
                let (meta, ignored) = (self.txns[txn].meta.clone(), self.txns[txn].ignored.clone());
                let found = self
                    .write(|b, s| {
                        mvcc::mvcc_resolve_intent(b, s, k, &meta, TxnStatus::Pending, &ignored)
                    })
                    .expect("resolve");
                assert_eq!(
                    found,
                    self.model
                        .intents
                        .get(k)
                        .is_some_and(|i| i.txn.id == meta.id)
                );
                self.resolve_model(k, &meta, &ignored, TxnStatus::Pending);
            }
            Op::Finish {
                txn,
                commit,
                next_ts,
            } => {
                let (meta, ignored) = (self.txns[txn].meta.clone(), self.txns[txn].ignored.clone());
                let status = if commit {
                    TxnStatus::Committed
                } else {
                    TxnStatus::Aborted
                };
                let mine = self
                    .model
                    .intents
                    .values()
                    .filter(|i| i.txn.id == meta.id)
                    .count() as u64;
                let (n, resume) = self
                    .write(|b, s| {
                        mvcc::mvcc_resolve_intent_range(
                            b, s, SPAN.0, SPAN.1, &meta, status, &ignored, 0,
                        )
                    })
                    .expect("resolve range");
                assert_eq!((n, resume), (mine, None));
                for k in KEYS {
                    self.resolve_model(k, &meta, &ignored, status);
                }
                let at = ts(next_ts);
                let meta = self.new_txn(at);
                self.txns[txn] = Slot {
                    meta,
                    ignored: Vec::new(),
                };
            }
            Op::Gc { key, threshold } => {
                let t = ts(threshold);
                self.write(|b, s| mvcc::mvcc_gc(b, s, KEYS[key], t))
                    .expect("gc");
                self.floor.forward(t);
            }
        }
    }

    fn check(&self, read_offsets: &[i64]) {
        let computed = mvcc::compute_stats(&self.engine, SPAN.0, SPAN.1).expect("compute stats");
        assert_eq!(
            self.stats, computed,
            "incremental stats differ from compute_stats"
        );
        for &off in read_offsets {
            let at = Timestamp::new(self.floor.wall + off, 0).max(self.floor);
            self.check_reads(at, None);
        }
        for slot in &self.txns {
            let at = slot.meta.write_timestamp.max(self.floor);
            self.check_reads(at, Some(&slot.meta));
        }
    }

    fn check_reads(&self, at: Timestamp, txn: Option<&TxnMeta>) {
        let snap = self.engine.snapshot();
        let opts = ReadOptions {
            txn,
            ..ReadOptions::default()
        };
        let mut want_kvs = Vec::new();
        let mut want_conflicts = Vec::new();
        for k in KEYS {
            let want = self.model.read(k, at, txn);
            let got = mvcc::mvcc_get(&snap, k, at, &opts);
            match (&want, got) {
                (Ok(v), Ok(g)) => assert_eq!(&g.value, v, "get {k:?} at {at} txn {txn:?}"),
                (Err(()), Err(MvccError::WriteIntent { intents })) => {
                    assert_eq!(intents.len(), 1);
                    assert_eq!(intents[0].key, k);
                }
                (w, g) => panic!("get {k:?} at {at}: want {w:?}, got {g:?}"),
            }
            match want {
                Ok(Some(v)) => want_kvs.push((k.to_vec(), v)),
                Ok(None) => {}
                Err(()) => want_conflicts.push(k.to_vec()),
            }
            // Inconsistent: the committed value, and the intent reported.
            if txn.is_none() {
                let inc = ReadOptions {
                    inconsistent: true,
                    ..ReadOptions::default()
                };
                let g = mvcc::mvcc_get(&snap, k, at, &inc).expect("inconsistent get");
                let committed = self.model.committed_at(k, at).and_then(|(t, v)| {
                    v.map(|b| Value {
                        bytes: Some(b),
                        timestamp: t,
                    })
                });
                assert_eq!(g.value, committed, "inconsistent get {k:?} at {at}");
                assert_eq!(g.intent.is_some(), self.model.read(k, at, None).is_err());
            }
        }
        for reverse in [false, true] {
            let got = mvcc::mvcc_scan(
                &snap,
                SPAN.0,
                SPAN.1,
                at,
                &opts,
                ScanLimits::default(),
                reverse,
            );
            let mut want_kvs = want_kvs.clone();
            let mut want_conflicts = want_conflicts.clone();
            if reverse {
                want_kvs.reverse();
                want_conflicts.reverse();
            }
            if want_conflicts.is_empty() {
                let got = got.expect("scan");
                assert_eq!(got.kvs, want_kvs, "scan at {at} reverse={reverse}");
                assert_eq!(got.resume_span, None);
            } else {
                match got {
                    Err(MvccError::WriteIntent { intents }) => {
                        let keys: Vec<Vec<u8>> = intents.into_iter().map(|i| i.key).collect();
                        assert_eq!(keys, want_conflicts);
                    }
                    other => panic!("scan at {at}: expected WriteIntent, got {other:?}"),
                }
            }
            // Paginated scans with max_keys=1 return the same rows.
            if want_conflicts.is_empty() {
                let mut rows = Vec::new();
                let (mut s, mut e) = (SPAN.0.to_vec(), SPAN.1.to_vec());
                loop {
                    let limits = ScanLimits {
                        max_keys: 1,
                        target_bytes: 0,
                    };
                    let r = mvcc::mvcc_scan(&snap, &s, &e, at, &opts, limits, reverse)
                        .expect("paged scan");
                    assert!(r.kvs.len() <= 1);
                    rows.extend(r.kvs);
                    match r.resume_span {
                        Some((ns, ne)) => {
                            assert!(
                                (ns.as_slice(), ne.as_slice()) != (s.as_slice(), e.as_slice()),
                                "no progress"
                            );
                            (s, e) = (ns, ne);
                        }
                        None => break,
                    }
                }
                assert_eq!(rows, want_kvs, "paged scan at {at} reverse={reverse}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn mvcc_matches_model(ops in proptest::collection::vec(op(), 1..40), reads in proptest::collection::vec(0i64..45, 2)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            w.check(&reads);
        }
    }
}
