//! Transactions in the simulation: a bank. Clients move money between
//! accounts spread over both ranges in serializable transactions (through
//! the real transaction coordinator, `kv::Txn`) and read every balance in
//! one transaction; every read must add up to the total, however the
//! faults fall. The stores reach each other's ranges (pushes, intent
//! resolution) and the clients reach the stores through a [`Router`], the
//! simulation's stand-in for the DistSender.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc};
use tardigrade_kv::Db;
use tardigrade_kvpb::{BatchRequest, BatchResult, ErrorDetail, KvError, SendFuture, Sender};
use tardigrade_testkit::BankChecker;
use tokio::time::Instant;

use crate::cluster::{Cluster, SimClock};
use crate::workload::SPLIT_KEY;

/// Money in each account at the start.
pub const OPENING_BALANCE: i64 = 100;

/// The key of account `i`: even accounts below the split, odd ones above.
pub fn account_key(i: u64) -> Vec<u8> {
    let side = if i.is_multiple_of(2) { 'a' } else { 'z' };
    format!("reg/{side}bank{i:02}").into_bytes()
}

/// Sends each batch to a store holding its range, following
/// `NotLeaseholder` hints and trying the others, as the DistSender does
/// (the simulation's ranges are fixed: the key says which one).
pub struct Router {
    cluster: Weak<Mutex<Cluster>>,
    nodes: u64,
    rng: Mutex<StdRng>,
    /// The last node that served each range.
    leaseholders: Mutex<[u64; 2]>,
    /// Print every batch and its outcome to stderr.
    pub trace: bool,
    origin: Instant,
}

impl Router {
    pub fn new(cluster: Weak<Mutex<Cluster>>, nodes: u64, seed: u64) -> Router {
        Router {
            cluster,
            nodes,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            leaseholders: Mutex::new([1, 1]),
            trace: false,
            origin: Instant::now(),
        }
    }

    fn range_of(ba: &BatchRequest) -> Result<usize, KvError> {
        let mut range = None;
        for r in &ba.requests {
            let span = r.span(&ba.header);
            let key = keys::addr(&span.key).unwrap_or(span.key);
            let this = usize::from(key.as_slice() >= SPLIT_KEY);
            if span.end_key.as_slice() > SPLIT_KEY && this == 0 {
                return Err(KvError::invalid("a request spans both simulated ranges"));
            }
            if range.is_some_and(|r| r != this) {
                return Err(KvError::invalid("a batch spans both simulated ranges"));
            }
            range = Some(this);
        }
        range.ok_or_else(|| KvError::invalid("empty batch"))
    }

    async fn route(&self, ba: BatchRequest) -> BatchResult {
        let range = Router::range_of(&ba)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut node = self.leaseholders.lock()[range];
        loop {
            let store = self.cluster.upgrade().and_then(|c| c.lock().store(node));
            let err = match store {
                None => KvError::new(ErrorDetail::Unavailable(format!("n{node} is down"))),
                Some(store) => {
                    let r = store.execute(ba.clone()).await;
                    if self.trace {
                        let t = self.origin.elapsed().as_secs_f64();
                        let txn = ba.header.txn.as_ref().map(|t| {
                            format!(
                                "{:02x}{:02x} {:?}",
                                t.meta.id.0[0], t.meta.id.0[1], t.status
                            )
                        });
                        let reqs: Vec<String> = ba
                            .requests
                            .iter()
                            .map(|q| {
                                format!(
                                    "{} {}",
                                    q.method(),
                                    tardigrade_encoding::pretty_key(&q.span(&ba.header).key)
                                )
                            })
                            .collect();
                        let out = match &r {
                            Ok(resp) => format!("ok {:?}", resp.txn.as_ref().map(|t| t.status)),
                            Err(e) => format!("ERR {e}"),
                        };
                        eprintln!("{t:.3}s route n{node} txn {txn:?} {reqs:?} -> {out}");
                    }
                    match r {
                        Ok(resp) => {
                            self.leaseholders.lock()[range] = node;
                            return Ok(resp);
                        }
                        Err(e) => e,
                    }
                }
            };
            let next = match &err.detail {
                ErrorDetail::NotLeaseholder {
                    leaseholder_node, ..
                } if *leaseholder_node != 0
                    && *leaseholder_node != node
                    && *leaseholder_node <= self.nodes =>
                {
                    *leaseholder_node
                }
                // Refused before it was evaluated: another node may serve.
                ErrorDetail::NotLeaseholder { .. }
                | ErrorDetail::RangeNotFound { .. }
                | ErrorDetail::RangeKeyMismatch { .. } => node % self.nodes + 1,
                ErrorDetail::Unavailable(m) if m.ends_with("is down") => node % self.nodes + 1,
                _ => return Err(err),
            };
            if Instant::now() >= deadline {
                return Err(KvError::new(ErrorDetail::Unavailable(format!(
                    "no leaseholder for range {} within 5 s: {err}",
                    range + 1
                ))));
            }
            node = next;
            let pause = self.rng.lock().random_range(2..15);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

impl Sender for Router {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(self.route(ba))
    }
}

/// What the bank clients share.
pub struct Bank {
    pub db: Db,
    pub accounts: u64,
    pub end: Instant,
    /// What went wrong: reads that did not add up.
    pub violations: Mutex<Vec<String>>,
    /// Transfers committed, and reads that checked out.
    pub counts: Mutex<(u64, u64)>,
    pub origin: Instant,
    /// Deliberately broken (to show the check catches it): each transfer
    /// commits its debit and its credit in two transactions.
    pub split_transfers: bool,
    /// Print every transfer's and read's outcome to stderr.
    pub trace: bool,
}

impl Bank {
    pub fn new(
        router: Arc<Router>,
        origin: Instant,
        accounts: u64,
        end: Instant,
        seed: u64,
    ) -> Bank {
        // The clients' gateway clock: simulated time, no offset.
        let clock = Arc::new(Hlc::new(
            Arc::new(SimClock::new(origin)),
            DEFAULT_MAX_OFFSET,
        ));
        Bank {
            db: Db::new(router, clock).with_seeded_txn_ids(seed),
            accounts,
            end,
            violations: Mutex::new(Vec::new()),
            counts: Mutex::new((0, 0)),
            origin,
            split_transfers: false,
            trace: false,
        }
    }

    fn checker(&self) -> BankChecker {
        BankChecker::new(OPENING_BALANCE * self.accounts as i64).with_accounts(0..self.accounts)
    }

    /// Opens the accounts (before any fault).
    pub async fn open_accounts(&self) -> Result<(), String> {
        for i in 0..self.accounts {
            let value = OPENING_BALANCE.to_be_bytes();
            let mut tries = 0;
            while let Err(e) = self.db.put(&account_key(i), &value).await {
                tries += 1;
                if tries > 20 {
                    return Err(format!("cannot open account {i}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Every balance, read in one transaction.
    pub async fn read_all(&self) -> Result<BTreeMap<u64, i64>, KvError> {
        let mut txn = self.db.txn("bank-read");
        let mut balances = BTreeMap::new();
        for i in 0..self.accounts {
            match txn.get(&account_key(i)).await {
                Ok(v) => {
                    balances.insert(i, decode(v.as_deref()));
                }
                Err(e) => {
                    let _ = txn.rollback().await;
                    return Err(e);
                }
            }
        }
        txn.commit().await?;
        Ok(balances)
    }

    async fn transfer(&self, from: u64, to: u64, amount: i64) -> Result<bool, KvError> {
        if self.split_transfers {
            if !self.add(from, -amount).await? {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            return self.add(to, amount).await;
        }
        let mut txn = self.db.txn("bank-transfer");
        let result = async {
            let a = decode(txn.get(&account_key(from)).await?.as_deref());
            let b = decode(txn.get(&account_key(to)).await?.as_deref());
            if a < amount {
                return Ok(false);
            }
            txn.put(&account_key(from), &(a - amount).to_be_bytes())
                .await?;
            txn.put(&account_key(to), &(b + amount).to_be_bytes())
                .await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(moved) => {
                txn.commit().await?;
                Ok(moved)
            }
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    /// Adds `amount` to one account in a transaction of its own (only for
    /// [`Bank::split_transfers`]); false if that would make it negative.
    async fn add(&self, account: u64, amount: i64) -> Result<bool, KvError> {
        let mut txn = self.db.txn("bank-half-transfer");
        let balance = match txn.get(&account_key(account)).await {
            Ok(v) => decode(v.as_deref()),
            Err(e) => {
                let _ = txn.rollback().await;
                return Err(e);
            }
        };
        if balance + amount < 0 {
            txn.rollback().await?;
            return Ok(false);
        }
        if let Err(e) = txn
            .put(&account_key(account), &(balance + amount).to_be_bytes())
            .await
        {
            let _ = txn.rollback().await;
            return Err(e);
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Checks one read of every balance.
    pub fn check(&self, balances: &BTreeMap<u64, i64>, what: &str) {
        if let Some(e) = self.checker().check_read(balances) {
            let t = self.origin.elapsed().as_secs_f64();
            self.violations
                .lock()
                .push(format!("{what} at {t:.3}s: {e:?}: {balances:?}"));
        } else {
            self.counts.lock().1 += 1;
        }
    }

    /// One client: transfers and reads until the end.
    pub async fn client(self: Arc<Bank>, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        while Instant::now() < self.end {
            if rng.random_bool(0.5) {
                let from = rng.random_range(0..self.accounts);
                let to = (from + rng.random_range(1..self.accounts)) % self.accounts;
                let amount = rng.random_range(1..=5);
                let r = self.transfer(from, to, amount).await;
                if self.trace {
                    let t = self.origin.elapsed().as_secs_f64();
                    eprintln!("{t:.3}s bank: transfer {from} -> {to} of {amount}: {r:?}");
                }
                if let Ok(true) = r {
                    self.counts.lock().0 += 1;
                }
            } else {
                let r = self.read_all().await;
                if self.trace {
                    let t = self.origin.elapsed().as_secs_f64();
                    eprintln!("{t:.3}s bank: read {r:?}");
                }
                if let Ok(balances) = r {
                    self.check(&balances, "a read");
                }
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..20))).await;
        }
    }
}

fn decode(v: Option<&[u8]>) -> i64 {
    v.and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(i64::MIN, i64::from_be_bytes)
}
