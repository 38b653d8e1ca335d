//! The transport seam: every node-to-node connection is dialed through a
//! [`Transport`], so tests can drop, delay and partition traffic by wrapping
//! the real one in a [`FaultInjector`]. Cuts are by node id pairs (tests in
//! one process) or by peer address (real processes, whose ids are assigned
//! at init: see [`crate::partition_file`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tardigrade_kvpb::{BatchRequest, ErrorDetail, KvError, Request, SendFuture, Sender};

use crate::client::RpcSender;

/// A node's id in the cluster.
pub type NodeId = u64;

/// Opens connections to other nodes.
pub trait Transport: Send + Sync {
    /// A sender from node `from` to node `to`, which listens at `to_addr`.
    /// Connecting may be lazy: an unreachable node shows up as
    /// `Unavailable` from `send`.
    fn dial(&self, from: NodeId, to: NodeId, to_addr: &str) -> Result<Arc<dyn Sender>, KvError>;
}

/// The real transport: gRPC, one shared connection per address.
/// Must be used inside a Tokio runtime.
#[derive(Default)]
pub struct GrpcTransport {
    conns: Mutex<HashMap<String, Arc<RpcSender>>>,
}

impl GrpcTransport {
    pub fn new() -> GrpcTransport {
        GrpcTransport::default()
    }
}

impl Transport for GrpcTransport {
    fn dial(&self, _from: NodeId, _to: NodeId, to_addr: &str) -> Result<Arc<dyn Sender>, KvError> {
        let mut conns = self.conns.lock();
        if let Some(s) = conns.get(to_addr) {
            return Ok(s.clone());
        }
        let s = Arc::new(RpcSender::connect_lazy(to_addr)?);
        conns.insert(to_addr.to_string(), s.clone());
        Ok(s)
    }
}

struct Faults {
    /// Directed pairs (from, to) whose traffic is cut.
    cut: HashSet<(NodeId, NodeId)>,
    /// Peer addresses (normalised by [`normalize_addr`]) this process's
    /// traffic to is cut, whatever their node id.
    cut_addrs: HashSet<String>,
    /// Directed pairs whose requests are delivered but whose replies are
    /// lost (the destination "dies" after serving).
    lost_replies: HashSet<(NodeId, NodeId)>,
    drop_rate: f64,
    delay: Duration,
    rng: StdRng,
}

/// Shared handle on the faults a test injects. Cheap to clone; every clone and
/// every transport it wraps sees the same faults, checked on each send (so
/// they apply to connections dialed before the fault, and healing restores
/// them).
#[derive(Clone)]
pub struct FaultInjector {
    faults: Arc<Mutex<Faults>>,
}

impl FaultInjector {
    /// No faults; `seed` drives the random drops so a failing run replays.
    pub fn new(seed: u64) -> FaultInjector {
        FaultInjector {
            faults: Arc::new(Mutex::new(Faults {
                cut: HashSet::new(),
                cut_addrs: HashSet::new(),
                lost_replies: HashSet::new(),
                drop_rate: 0.0,
                delay: Duration::ZERO,
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    /// Cuts traffic between `a` and `b` in both directions.
    pub fn partition(&self, a: NodeId, b: NodeId) {
        let mut f = self.faults.lock();
        f.cut.insert((a, b));
        f.cut.insert((b, a));
    }

    /// Cuts traffic from `from` to `to` only (an asymmetric partition).
    pub fn partition_one_way(&self, from: NodeId, to: NodeId) {
        self.faults.lock().cut.insert((from, to));
    }

    /// Cuts `node` off from every node in `others`.
    pub fn isolate(&self, node: NodeId, others: impl IntoIterator<Item = NodeId>) {
        for other in others {
            self.partition(node, other);
        }
    }

    /// Replaces the set of peer addresses traffic to is cut (from every
    /// node using this injector). Addresses are compared after
    /// [`normalize_addr`].
    pub fn set_unreachable_addrs(&self, addrs: impl IntoIterator<Item = String>) {
        self.faults.lock().cut_addrs = addrs.into_iter().map(|a| normalize_addr(&a)).collect();
    }

    /// The peer addresses traffic to is cut, sorted.
    pub fn unreachable_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self.faults.lock().cut_addrs.iter().cloned().collect();
        addrs.sort();
        addrs
    }

    /// Removes all partitions, drops and delays.
    pub fn heal(&self) {
        let mut f = self.faults.lock();
        f.cut.clear();
        f.cut_addrs.clear();
        f.lost_replies.clear();
        f.drop_rate = 0.0;
        f.delay = Duration::ZERO;
    }

    /// Drops each send with probability `rate` (clamped to `[0, 1]`).
    pub fn set_drop_rate(&self, rate: f64) {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self.faults.lock().drop_rate = rate;
    }

    /// Delays every send by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.faults.lock().delay = delay;
    }

    /// Delivers what `from` sends to `to` but loses the replies, as when
    /// `to` dies after serving: a batch with writes then fails with
    /// `AmbiguousResult` (it was applied), a read-only one with
    /// `Unavailable` — what [`RpcSender`] reports for a broken connection.
    pub fn lose_replies(&self, from: NodeId, to: NodeId) {
        self.faults.lock().lost_replies.insert((from, to));
    }

    pub fn is_partitioned(&self, from: NodeId, to: NodeId) -> bool {
        self.faults.lock().cut.contains(&(from, to))
    }

    /// Whether traffic from `from` to `to` at `to_addr` is cut, by id pair
    /// or by address. For the node-to-node RPCs that do not carry batches
    /// (heartbeats, joins, consistency checks), which honour partitions
    /// but not drops or delays. `to` may be 0 when the peer's id is not
    /// known yet.
    pub fn is_cut(&self, from: NodeId, to: NodeId, to_addr: &str) -> bool {
        let to_addr = normalize_addr(to_addr);
        self.faults.lock().is_cut(from, to, Some(&to_addr))
    }

    /// `inner` (a sender from `from` to `to` at `to_addr`), with these
    /// faults applied to each send.
    pub fn wrap_sender(
        &self,
        inner: Arc<dyn Sender>,
        from: NodeId,
        to: NodeId,
        to_addr: &str,
    ) -> Arc<dyn Sender> {
        Arc::new(FaultySender {
            inner,
            from,
            to,
            to_addr: normalize_addr(to_addr),
            faults: self.clone(),
        })
    }

    /// A handle that does not keep the faults alive (for watcher threads
    /// that should end with the injector).
    pub(crate) fn downgrade(&self) -> WeakFaultInjector {
        WeakFaultInjector(Arc::downgrade(&self.faults))
    }

    /// `inner`, with these faults applied to everything dialed through it.
    pub fn wrap(&self, inner: Arc<dyn Transport>) -> FaultyTransport {
        FaultyTransport {
            inner,
            faults: self.clone(),
        }
    }

    /// Whether one message (or batch) from `from` to `to` may go now: the
    /// delay to apply to it, or the `Unavailable` error that drops it. For
    /// senders outside this crate (the Raft transport).
    pub fn admit(&self, from: NodeId, to: NodeId) -> Result<Duration, KvError> {
        self.check(from, to, None)
    }

    /// [`FaultInjector::admit`] for a message to `to` at `to_addr`, so
    /// that cuts by address apply too.
    pub fn admit_to(&self, from: NodeId, to: NodeId, to_addr: &str) -> Result<Duration, KvError> {
        self.check(from, to, Some(&normalize_addr(to_addr)))
    }

    /// The delay to apply to one send, or the reason to fail it.
    fn check(&self, from: NodeId, to: NodeId, to_addr: Option<&str>) -> Result<Duration, KvError> {
        let mut f = self.faults.lock();
        if f.is_cut(from, to, to_addr) {
            return Err(partitioned(from, to));
        }
        if f.drop_rate > 0.0 {
            let rate = f.drop_rate;
            if f.rng.random_bool(rate) {
                return Err(KvError::new(ErrorDetail::Unavailable(format!(
                    "injected drop: n{from} -> n{to}"
                ))));
            }
        }
        Ok(f.delay)
    }
}

/// See [`FaultInjector::downgrade`].
pub(crate) struct WeakFaultInjector(std::sync::Weak<Mutex<Faults>>);

impl WeakFaultInjector {
    pub(crate) fn upgrade(&self) -> Option<FaultInjector> {
        self.0.upgrade().map(|faults| FaultInjector { faults })
    }
}

impl Faults {
    /// `to_addr` must be normalised already.
    fn is_cut(&self, from: NodeId, to: NodeId, to_addr: Option<&str>) -> bool {
        self.cut.contains(&(from, to)) || to_addr.is_some_and(|a| self.cut_addrs.contains(a))
    }
}

fn partitioned(from: NodeId, to: NodeId) -> KvError {
    KvError::new(ErrorDetail::Unavailable(format!(
        "injected partition: n{from} -> n{to}"
    )))
}

/// The form addresses are compared in: a socket address as Rust prints it
/// (so `[0:0::1]:26257` and `[::1]:26257` do not differ), any other
/// `host:port` lowercased; surrounding whitespace ignored.
pub fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim();
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => a.to_string(),
        Err(_) => addr.to_ascii_lowercase(),
    }
}

/// A [`Transport`] with a [`FaultInjector`]'s faults applied.
pub struct FaultyTransport {
    inner: Arc<dyn Transport>,
    faults: FaultInjector,
}

impl Transport for FaultyTransport {
    fn dial(&self, from: NodeId, to: NodeId, to_addr: &str) -> Result<Arc<dyn Sender>, KvError> {
        let inner = self.inner.dial(from, to, to_addr)?;
        Ok(self.faults.wrap_sender(inner, from, to, to_addr))
    }
}

struct FaultySender {
    inner: Arc<dyn Sender>,
    from: NodeId,
    to: NodeId,
    /// Normalised.
    to_addr: String,
    faults: FaultInjector,
}

impl FaultySender {
    fn is_cut(&self) -> bool {
        self.faults
            .faults
            .lock()
            .is_cut(self.from, self.to, Some(&self.to_addr))
    }
}

impl Sender for FaultySender {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let delay = self.faults.check(self.from, self.to, Some(&self.to_addr))?;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                // A partition that began while the message was in flight cuts it too.
                if self.is_cut() {
                    return Err(partitioned(self.from, self.to));
                }
            }
            let writes = ba
                .requests
                .iter()
                .any(|r| r.is_write() || matches!(r, Request::EndTxn { .. }));
            let result = self.inner.send(ba).await;
            let lost = self
                .faults
                .faults
                .lock()
                .lost_replies
                .contains(&(self.from, self.to));
            if !lost {
                return result;
            }
            let msg = format!("injected lost reply: n{} -> n{}", self.from, self.to);
            Err(KvError::new(if writes {
                ErrorDetail::AmbiguousResult(msg)
            } else {
                ErrorDetail::Unavailable(msg)
            }))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use tardigrade_kvpb::{BatchResponse, Response};

    use super::*;

    /// Answers every request with `Put`, and counts what it served.
    pub(crate) struct Echo {
        pub(crate) served: Mutex<usize>,
    }

    impl Sender for Echo {
        fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
            Box::pin(async move {
                *self.served.lock() += 1;
                Ok(BatchResponse {
                    responses: ba.requests.iter().map(|_| Response::Put).collect(),
                    ..Default::default()
                })
            })
        }
    }

    struct Local {
        echo: Arc<Echo>,
    }

    impl Transport for Local {
        fn dial(&self, _: NodeId, _: NodeId, _: &str) -> Result<Arc<dyn Sender>, KvError> {
            Ok(self.echo.clone())
        }
    }

    fn setup() -> (FaultInjector, FaultyTransport, Arc<Echo>) {
        let echo = Arc::new(Echo {
            served: Mutex::new(0),
        });
        let faults = FaultInjector::new(7);
        let t = faults.wrap(Arc::new(Local { echo: echo.clone() }));
        (faults, t, echo)
    }

    /// A one-request batch (a `Get`).
    pub(crate) fn ba() -> BatchRequest {
        BatchRequest {
            header: Default::default(),
            requests: vec![Request::Get { key: b"k".to_vec() }],
        }
    }

    fn is_unavailable(r: &Result<BatchResponse, KvError>) -> bool {
        matches!(r, Err(e) if matches!(e.detail, ErrorDetail::Unavailable(_)))
    }

    #[tokio::test]
    async fn partition_cuts_both_ways_and_heal_restores() {
        let (faults, t, echo) = setup();
        let s12 = t.dial(1, 2, "n2").expect("dial");
        let s21 = t.dial(2, 1, "n1").expect("dial");
        let s13 = t.dial(1, 3, "n3").expect("dial");
        assert!(s12.send(ba()).await.is_ok());

        faults.partition(1, 2);
        assert!(is_unavailable(&s12.send(ba()).await));
        assert!(is_unavailable(&s21.send(ba()).await));
        assert!(s13.send(ba()).await.is_ok(), "other pairs unaffected");
        // Connections dialed during the partition are cut too.
        let late = t.dial(1, 2, "n2").expect("dial");
        assert!(is_unavailable(&late.send(ba()).await));

        faults.heal();
        assert!(s12.send(ba()).await.is_ok());
        assert!(s21.send(ba()).await.is_ok());
        assert!(late.send(ba()).await.is_ok());
        assert_eq!(*echo.served.lock(), 5, "cut messages never reach the node");
    }

    #[tokio::test]
    async fn one_way_partition_and_isolation() {
        let (faults, t, _) = setup();
        let s12 = t.dial(1, 2, "n2").expect("dial");
        let s21 = t.dial(2, 1, "n1").expect("dial");
        faults.partition_one_way(1, 2);
        assert!(is_unavailable(&s12.send(ba()).await));
        assert!(s21.send(ba()).await.is_ok());
        faults.heal();

        faults.isolate(3, [1, 2]);
        for (a, b) in [(3, 1), (1, 3), (3, 2), (2, 3)] {
            let s = t.dial(a, b, "x").expect("dial");
            assert!(is_unavailable(&s.send(ba()).await), "{a}->{b}");
        }
        assert!(s12.send(ba()).await.is_ok());
    }

    #[tokio::test]
    async fn cuts_by_address_apply_whatever_the_node_ids() {
        let (faults, t, echo) = setup();
        let to_b = t.dial(1, 2, "127.0.0.1:2002").expect("dial");
        let to_c = t.dial(1, 3, "127.0.0.1:2003").expect("dial");
        faults.set_unreachable_addrs([" 127.0.0.1:2002\n".to_string(), "[0:0::1]:9".to_string()]);
        assert_eq!(faults.unreachable_addrs(), ["127.0.0.1:2002", "[::1]:9"]);
        assert!(faults.is_cut(1, 4, "[::1]:9"));
        assert!(is_unavailable(&to_b.send(ba()).await));
        assert!(to_c.send(ba()).await.is_ok(), "other addresses unaffected");
        // A node id not known yet (0) is cut by its address too.
        assert!(faults.is_cut(1, 0, "127.0.0.1:2002"));
        assert!(faults.admit_to(7, 9, " 127.0.0.1:2002 ").is_err());
        assert!(faults.admit_to(7, 9, "127.0.0.1:2003").is_ok());
        assert!(faults.admit(1, 2).is_ok(), "no address, no address cut");

        faults.set_unreachable_addrs(Vec::new());
        assert!(to_b.send(ba()).await.is_ok());
        faults.set_unreachable_addrs(["127.0.0.1:2003".to_string()]);
        faults.heal();
        assert!(to_c.send(ba()).await.is_ok(), "heal clears address cuts");
        assert_eq!(*echo.served.lock(), 3, "cut sends never reach the peer");
    }

    #[tokio::test]
    async fn drop_rate_drops_roughly_that_share_and_is_seeded() {
        let run = || async {
            let (faults, t, _) = setup();
            let s = t.dial(1, 2, "n2").expect("dial");
            faults.set_drop_rate(0.3);
            let mut outcomes = Vec::new();
            for _ in 0..1000 {
                outcomes.push(is_unavailable(&s.send(ba()).await));
            }
            outcomes
        };
        let a = run().await;
        let dropped = a.iter().filter(|d| **d).count();
        assert!((200..400).contains(&dropped), "dropped {dropped} of 1000");
        assert_eq!(a, run().await, "same seed, same drops");

        let (faults, t, _) = setup();
        let s = t.dial(1, 2, "n2").expect("dial");
        faults.set_drop_rate(1.0);
        assert!(is_unavailable(&s.send(ba()).await));
        faults.set_drop_rate(f64::NAN);
        assert!(s.send(ba()).await.is_ok());
    }

    #[tokio::test]
    async fn delay_delays() {
        let (faults, t, _) = setup();
        let s = t.dial(1, 2, "n2").expect("dial");
        faults.set_delay(Duration::from_millis(50));
        let start = Instant::now();
        assert!(s.send(ba()).await.is_ok());
        assert!(start.elapsed() >= Duration::from_millis(50));
        faults.heal();
        let start = Instant::now();
        assert!(s.send(ba()).await.is_ok());
        assert!(start.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn partition_during_delay_cuts_in_flight_message() {
        let (faults, t, echo) = setup();
        let s = t.dial(1, 2, "n2").expect("dial");
        faults.set_delay(Duration::from_millis(100));
        let f2 = faults.clone();
        let cut = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            f2.partition(1, 2);
        });
        assert!(is_unavailable(&s.send(ba()).await));
        cut.await.expect("join");
        assert_eq!(*echo.served.lock(), 0);
    }

    #[tokio::test]
    async fn lost_replies_are_served_then_ambiguous_for_writes() {
        let (faults, t, echo) = setup();
        let s = t.dial(1, 2, "n2").expect("dial");
        faults.lose_replies(1, 2);
        let put = BatchRequest {
            header: Default::default(),
            requests: vec![Request::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            }],
        };
        let e = s.send(put).await.expect_err("reply lost");
        assert!(matches!(e.detail, ErrorDetail::AmbiguousResult(_)), "{e}");
        assert!(is_unavailable(&s.send(ba()).await), "reads: unavailable");
        assert_eq!(*echo.served.lock(), 2, "both were served");
        let s21 = t.dial(2, 1, "n1").expect("dial");
        assert!(s21.send(ba()).await.is_ok(), "one way only");
        faults.heal();
        assert!(s.send(ba()).await.is_ok());
    }
}
