//! `DistSender`: sends a batch to the ranges it touches.
//!
//! It cuts the batch into contiguous chunks that each address one range (a
//! scan that crosses range boundaries becomes one piece per range), looks
//! each range up in the [`RangeCache`] or, on a miss, in the meta records
//! (two levels: meta2 records address data ranges, meta1 records address
//! meta2 ranges, and meta1 lives in the first range), and sends each chunk to
//! the range's leaseholder, in order. It retries on `NotLeaseholder`
//! (following the hint), `RangeKeyMismatch` (evicting the stale descriptor),
//! `RangeNotFound` and unreachable replicas (trying the others), with
//! backoff, until a deadline.
//!
//! Chunks go out in order and one at a time so that a transaction's
//! sequence numbers (assigned by the server in request order) and its
//! updated timestamp carry from chunk to chunk.
//! TODO(issue 3): send independent chunks in parallel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use tardigrade_encoding::keys;
use tardigrade_kvpb::{
    BatchRequest, BatchResponse, BatchResult, ErrorDetail, Header, KvError, NodeId,
    RangeDescriptor, ReadConsistency, Request, Response, SendFuture, Sender, Span,
};

use crate::range_cache::{CachedRange, RangeCache};

/// Connections to nodes by id.
pub trait NodeDialer: Send + Sync {
    fn dial(&self, node: NodeId) -> Result<Arc<dyn Sender>, KvError>;
}

/// What the node's peer heartbeats say about other nodes: a node that
/// stopped answering them (dead, frozen, cut off) is not waited for.
pub trait NodeHealth: Send + Sync {
    fn is_unreachable(&self, node: NodeId) -> bool;
}

/// How often a send in flight checks whether its node became unreachable.
const HEALTH_POLL: Duration = Duration::from_millis(100);
/// A send is abandoned only after this long in flight (and its node
/// unreachable).
const ABANDON_AFTER: Duration = Duration::from_secs(1);

/// Where the first range (which holds meta1) is; CockroachDB gossips it.
pub trait FirstRange: Send + Sync {
    fn first_range(&self) -> Option<RangeDescriptor>;
}

pub struct DistSender {
    dialer: Arc<dyn NodeDialer>,
    first_range: Arc<dyn FirstRange>,
    cache: RangeCache,
    /// How long one batch may keep retrying before it fails as unavailable.
    deadline: Duration,
    /// Nodes whose last request failed as unavailable, and when.
    unreachable: Mutex<HashMap<NodeId, Instant>>,
    health: Option<Arc<dyn NodeHealth>>,
}

impl DistSender {
    pub fn new(dialer: Arc<dyn NodeDialer>, first_range: Arc<dyn FirstRange>) -> DistSender {
        DistSender {
            dialer,
            first_range,
            cache: RangeCache::default(),
            deadline: Duration::from_secs(30),
            unreachable: Mutex::default(),
            health: None,
        }
    }

    /// Consults the node's heartbeats: unreachable nodes are tried last,
    /// and a send to a node that becomes unreachable is abandoned (a
    /// frozen process accepts connections and never answers).
    pub fn with_health(mut self, health: Arc<dyn NodeHealth>) -> DistSender {
        self.health = Some(health);
        self
    }

    /// Sends `ba` (for the range `desc`, first sent at `batch_started`) to
    /// `node`, giving up when the heartbeats say the node stopped
    /// answering: the batch may have arrived, so a write is then ambiguous
    /// and a read merely unavailable.
    ///
    /// Also gives up, with `Err` (stop trying this range), once the batch
    /// has tried for [`NO_QUORUM_GRACE`] and most of the range's voters are
    /// unreachable: a replica on this side of a partition (the gateway's
    /// own, often) waits for a lease or a proposal that cannot commit
    /// until its proposal timeout, round after round, which kept a client
    /// of a node cut off from the others waiting ~34 s for an error.
    async fn send_watched(
        &self,
        sender: &dyn Sender,
        node: NodeId,
        ba: BatchRequest,
        desc: &RangeDescriptor,
        batch_started: Instant,
    ) -> Result<BatchResult, KvError> {
        let Some(health) = &self.health else {
            return Ok(sender.send(ba).await);
        };
        let writes = ba.requests.iter().any(Request::writes_or_commits);
        // Abandoned only once it has been in flight for a while: a node
        // still marked unreachable from before may have come back (its
        // next heartbeat clears the mark), and its answer is worth more
        // than an ambiguous result.
        let started = Instant::now();
        let gone = async {
            loop {
                tokio::time::sleep(HEALTH_POLL).await;
                if started.elapsed() >= ABANDON_AFTER && health.is_unreachable(node) {
                    return None;
                }
                if batch_started.elapsed() >= NO_QUORUM_GRACE
                    && let Some(down) = self.voters_unreachable(desc)
                {
                    return Some(down);
                }
            }
        };
        let abandoned = |msg: String| {
            if writes {
                KvError::new(ErrorDetail::AmbiguousResult(format!(
                    "{msg}; the write may or may not have been applied"
                )))
            } else {
                unavailable(&msg)
            }
        };
        tokio::select! {
            r = sender.send(ba) => Ok(r),
            down = gone => match down {
                None => Ok(Err(abandoned(format!(
                    "node n{node} stopped answering heartbeats while the batch was in flight"
                )))),
                Some(down) => Err(if writes {
                    abandoned(range_unavailable(desc, &down).to_string())
                } else {
                    range_unavailable(desc, &down)
                }),
            },
        }
    }

    pub fn with_deadline(mut self, deadline: Duration) -> DistSender {
        self.deadline = deadline;
        self
    }

    pub fn range_cache(&self) -> &RangeCache {
        &self.cache
    }

    /// The range holding `key` (a global key), from the cache or the meta records.
    pub async fn lookup(&self, key: &[u8]) -> Result<CachedRange, KvError> {
        if let Some(r) = self.cache.lookup(key) {
            return Ok(r);
        }
        let meta_key = keys::range_meta_key(key);
        let desc = if meta_key.is_empty() {
            self.first_range
                .first_range()
                .ok_or_else(|| unavailable("the first range is not known yet"))?
        } else {
            // The first meta record after the key's own: its range ends after `key`.
            let start = keys::key_next(&meta_key);
            let end = if meta_key.starts_with(keys::META1_PREFIX) {
                keys::META2_PREFIX.to_vec()
            } else {
                keys::META_MAX.to_vec()
            };
            let ba = BatchRequest {
                header: Header {
                    max_span_request_keys: 1,
                    read_consistency: ReadConsistency::Inconsistent,
                    ..Header::default()
                },
                requests: vec![Request::Scan {
                    span: Span::new(start, end),
                }],
            };
            let resp = Box::pin(self.send_batch(ba)).await?;
            let row = match resp.responses.into_iter().next() {
                Some(Response::Scan { rows, .. }) => rows.into_iter().next(),
                _ => None,
            };
            let row = row.ok_or_else(|| unavailable("no meta record for the key"))?;
            RangeDescriptor::decode(&row.value.bytes)
                .map_err(|e| KvError::internal(format!("meta record: {e}")))?
        };
        if !desc.contains_key(key) {
            return Err(unavailable("meta records do not cover the key yet"));
        }
        self.cache.insert(desc.clone());
        Ok(CachedRange {
            desc,
            leaseholder: 0,
        })
    }

    async fn send_batch(&self, ba: BatchRequest) -> BatchResult {
        let started = Instant::now();
        let header = ba.header.clone();
        let limited = header.max_span_request_keys > 0;
        let mut txn = header.txn.clone();
        let mut keys_left = header.max_span_request_keys;
        let mut out: Vec<Option<Response>> = vec![None; ba.requests.len()];
        // Requests that stopped early (a limit): later pieces only resume.
        let mut stopped = vec![false; ba.requests.len()];
        let mut now = tardigrade_hlc::Timestamp::ZERO;
        // Requests (or pieces of them) not yet sent, next on top.
        let mut pending: Vec<(usize, Request)> = ba.requests.into_iter().enumerate().collect();
        pending.reverse();
        while let Some((idx, req)) = pending.pop() {
            if stopped[idx] || (limited && keys_left <= 0 && is_ranged(&req)) {
                merge(&mut out[idx], resume_only(&req));
                continue;
            }
            let span = req.span(&header);
            let range = self
                .lookup_with_retry(&addr_of(&span.key)?, started)
                .await?;
            if !span_fits(&span, &range.desc) {
                // Cut at the range's end. Reverse scans visit the later
                // piece first so that rows stay in descending order.
                let (head, tail) = split_span(&span, &range.desc.end_key);
                let (first, second) = match req {
                    Request::ReverseScan { .. } => (head, tail),
                    _ => (tail, head),
                };
                pending.push((idx, with_span(&req, first)));
                pending.push((idx, with_span(&req, second)));
                continue;
            }
            // The contiguous run of requests that fit in this range.
            let mut chunk = vec![(idx, req)];
            while let Some((i, next)) = pending.last() {
                let s = next.span(&header);
                let fits = !stopped[*i]
                    && addr_of(&s.key)
                        .map(|k| range.desc.contains_key(&k) && span_fits(&s, &range.desc))
                        .unwrap_or(false);
                if !fits {
                    break;
                }
                let Some(item) = pending.pop() else { break };
                chunk.push(item);
            }
            let sub = BatchRequest {
                header: Header {
                    txn: txn.clone(),
                    max_span_request_keys: if limited { keys_left } else { 0 },
                    ..header.clone()
                },
                requests: chunk.iter().map(|(_, r)| r.clone()).collect(),
            };
            let (resp, served_by) = match self.send_to_range(range, sub, started).await {
                Ok(r) => r,
                Err(RouteError::Mismatch) => {
                    // Stale descriptor: put the chunk back and route it afresh.
                    for item in chunk.into_iter().rev() {
                        pending.push(item);
                    }
                    continue;
                }
                Err(RouteError::Kv(e)) => {
                    let mut e = *e;
                    if let Some(i) = e.index {
                        e.index = chunk.get(i).map(|(orig, _)| *orig);
                    }
                    return Err(e);
                }
            };
            now.forward(resp.now);
            if let Some(t) = resp.txn {
                txn = Some(t);
            }
            // The serving node's clock reading, as an observed timestamp for
            // the transaction's later requests (servers record their own on
            // a first visit; this covers those that do not, and is ignored
            // when an earlier reading of that node is known).
            if let Some(t) = txn.as_mut() {
                t.update_observed_timestamp(served_by, resp.now);
            }
            for ((i, _), r) in chunk.iter().zip(resp.responses) {
                match &r {
                    Response::Scan { rows, resume_span }
                    | Response::ReverseScan { rows, resume_span } => {
                        keys_left -= rows.len() as i64;
                        stopped[*i] |= resume_span.is_some();
                    }
                    Response::DeleteRange { keys, resume_span } => {
                        keys_left -= keys.len() as i64;
                        stopped[*i] |= resume_span.is_some();
                    }
                    _ => {}
                }
                merge(&mut out[*i], r);
            }
        }
        let responses = out
            .into_iter()
            .map(|r| r.ok_or_else(|| KvError::internal("request got no response")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BatchResponse {
            now,
            txn,
            responses,
        })
    }

    async fn lookup_with_retry(
        &self,
        key: &[u8],
        started: Instant,
    ) -> Result<CachedRange, KvError> {
        let mut backoff = Duration::from_millis(10);
        loop {
            match self.lookup(key).await {
                Ok(r) => return Ok(r),
                // The range holding the meta record has no quorum (its
                // lookup said so after its grace): no retry brings it back.
                Err(e)
                    if retryable_routing(&e)
                        && started.elapsed() < self.deadline
                        && !self.meta_range_without_quorum(key) =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends to the range's leaseholder, trying other replicas as needed;
    /// returns the response and the node that served it.
    ///
    /// Nodes that failed to answer recently are tried last, and a hint
    /// naming one of them is not followed first: after a leaseholder dies,
    /// the survivors keep naming it until its lease expires, and a new
    /// holder can only come from them. After a round in which no replica
    /// served, the descriptor is looked up afresh (a cached one may list
    /// only dead replicas, e.g. the one a node learned when it joined).
    async fn send_to_range(
        &self,
        mut range: CachedRange,
        mut ba: BatchRequest,
        started: Instant,
    ) -> Result<(BatchResponse, NodeId), RouteError> {
        ba.header.range_id = range.desc.range_id;
        let mut round = 0;
        let mut order = self.replica_order(&range, round);
        let mut backoff = Duration::from_millis(10);
        // What is reported if no replica is tried at all: the descriptor
        // lists none, or the deadline passed before this range's turn (in
        // earlier chunks or lookups).
        let mut last_err = if order.is_empty() {
            unavailable(&format!("r{} has no replicas", range.desc.range_id))
        } else {
            unavailable(&format!(
                "r{}: gave up after {:?} before trying a replica (the deadline passed in lookups or earlier chunks)",
                range.desc.range_id, self.deadline
            ))
        };
        let mut i = 0;
        // Sends in the current round: hints may point back and forth.
        let mut tries = 0;
        // Whether a reachable replica answered in the current round.
        let mut answered = false;
        // A replica that may have applied the batch stopped answering (a
        // transactional write, replayed elsewhere: see `replay_safe`). If no
        // replica serves it afterwards, the outcome is ambiguous.
        let mut ambiguous: Option<KvError> = None;
        let replay_safe = replay_safe(&ba);
        while started.elapsed() < self.deadline {
            if order.is_empty() {
                break;
            }
            if i >= order.len() || tries >= 2 * order.len() {
                // A majority of the voters have stopped answering their
                // heartbeats for a while: no replica can serve this until
                // they are back, so say so now instead of at the deadline.
                // Only on a descriptor looked up again in this batch (a
                // cached one may list replicas that have since moved).
                if round > 0
                    && started.elapsed() >= NO_QUORUM_GRACE
                    && let Some(down) = self.voters_unreachable(&range.desc)
                {
                    return Err(RouteError::Kv(Box::new(
                        ambiguous.unwrap_or_else(|| range_unavailable(&range.desc, &down)),
                    )));
                }
                // A full round without success: back off (briefly while
                // live replicas answer, as they do during an election and
                // a lease changeover), then refresh the descriptor.
                tokio::time::sleep(backoff).await;
                let cap = if answered {
                    SHORT_BACKOFF_CAP
                } else {
                    LONG_BACKOFF_CAP
                };
                backoff = (backoff * 2).min(cap);
                i = 0;
                tries = 0;
                round += 1;
                answered = false;
                self.cache.evict(&range.desc.start_key);
                match self.lookup(&range.desc.start_key).await {
                    Ok(fresh) if fresh.desc.range_id == range.desc.range_id => {
                        range = fresh;
                        order = self.replica_order(&range, round);
                    }
                    // Split or merged meanwhile: route the chunk afresh.
                    Ok(_) => return Err(RouteError::Mismatch),
                    Err(_) => order = self.replica_order(&range, round),
                }
                continue;
            }
            let node = order[i];
            i += 1;
            tries += 1;
            let sender = match self.dialer.dial(node) {
                Ok(s) => s,
                Err(e) => {
                    self.mark_unreachable(node);
                    last_err = e;
                    continue;
                }
            };
            let sent = self
                .send_watched(sender.as_ref(), node, ba.clone(), &range.desc, started)
                .await;
            let sent = match sent {
                Ok(sent) => sent,
                Err(no_quorum) => {
                    return Err(RouteError::Kv(Box::new(ambiguous.unwrap_or(no_quorum))));
                }
            };
            match sent {
                Ok(resp) => {
                    self.unreachable.lock().remove(&node);
                    self.cache
                        .set_leaseholder(range.desc.range_id, &range.desc.end_key, node);
                    return Ok((resp, node));
                }
                Err(e) => match &e.detail {
                    ErrorDetail::NotLeaseholder {
                        leaseholder_node, ..
                    } => {
                        answered = true;
                        self.unreachable.lock().remove(&node);
                        let hint = *leaseholder_node;
                        if hint != 0 && hint != node && !self.recently_unreachable(hint) {
                            // Follow the hint next (it may be a replica
                            // this round already tried: the lease moved;
                            // or one our descriptor does not list: it was
                            // added since, and the meta record, rewritten
                            // after the change, may not list it yet).
                            if let Some(pos) = order.iter().position(|n| *n == hint) {
                                if pos < i {
                                    i -= 1;
                                }
                                order.remove(pos);
                            }
                            order.insert(i, hint);
                        }
                        last_err = e;
                    }
                    // The node no longer (or not yet) holds the range: try
                    // the others before looking it up again. A descriptor
                    // looked up afresh may still list this node (its meta
                    // record is rewritten after the change), so evicting
                    // here could send every attempt back to it.
                    ErrorDetail::RangeNotFound { .. } => {
                        answered = true;
                        self.unreachable.lock().remove(&node);
                        last_err = unavailable(&format!("r{}: {e}", range.desc.range_id));
                    }
                    ErrorDetail::RangeKeyMismatch { .. } => {
                        self.cache.evict(&range.desc.start_key);
                        return Err(RouteError::Mismatch);
                    }
                    ErrorDetail::Unavailable(_) => {
                        self.mark_unreachable(node);
                        last_err = e;
                    }
                    // The node failed after the batch was sent (or its
                    // proposal's fate is unknown): the write may have been
                    // applied.
                    ErrorDetail::AmbiguousResult(_) => {
                        self.mark_unreachable(node);
                        if !replay_safe {
                            return Err(RouteError::Kv(Box::new(e)));
                        }
                        ambiguous = Some(e.clone());
                        last_err = e;
                    }
                    _ => return Err(RouteError::Kv(Box::new(e))),
                },
            }
        }
        self.cache.evict(&range.desc.start_key);
        let err = ambiguous.unwrap_or_else(|| match &last_err.detail {
            ErrorDetail::Unavailable(m) => unavailable(&format!(
                "range r{} [{}, {}): no replica served it within {:?} (last error: {m})",
                range.desc.range_id,
                tardigrade_encoding::pretty_key(&range.desc.start_key),
                tardigrade_encoding::pretty_key(&range.desc.end_key),
                self.deadline
            )),
            _ => last_err,
        });
        Err(RouteError::Kv(Box::new(err)))
    }

    /// The replicas' nodes in the order to try them: the cached leaseholder
    /// first, nodes that failed recently last.
    /// Round `round` (from 0) leaves those nodes out unless it is a
    /// multiple of [`UNREACHABLE_RETRY_ROUNDS`] or nobody else is left: a
    /// dead node may cost a connect timeout per try.
    fn replica_order(&self, range: &CachedRange, round: u32) -> Vec<NodeId> {
        let mut order: Vec<NodeId> = range.desc.replicas.iter().map(|r| r.node_id).collect();
        order.dedup();
        if let Some(pos) = order.iter().position(|n| *n == range.leaseholder) {
            let lh = order.remove(pos);
            order.insert(0, lh);
        }
        // Stable: otherwise the order above is kept.
        order.sort_by_key(|n| self.recently_unreachable(*n));
        if !round.is_multiple_of(UNREACHABLE_RETRY_ROUNDS) {
            let reachable: Vec<NodeId> = order
                .iter()
                .copied()
                .filter(|n| !self.recently_unreachable(*n))
                .collect();
            if !reachable.is_empty() {
                return reachable;
            }
        }
        order
    }

    /// Whether the range holding the meta record that addresses `key` is
    /// known (cached, or the first range) and has most of its voters
    /// unreachable.
    fn meta_range_without_quorum(&self, key: &[u8]) -> bool {
        let meta_key = keys::range_meta_key(key);
        if meta_key.is_empty() {
            return false;
        }
        let meta_range = self
            .cache
            .lookup(&keys::key_next(&meta_key))
            .map(|r| r.desc)
            .or_else(|| self.first_range.first_range());
        meta_range.is_some_and(|d| self.voters_unreachable(&d).is_some())
    }

    /// The unreachable voters of `desc`, if they are at least half of them
    /// (no quorum without them).
    fn voters_unreachable(&self, desc: &RangeDescriptor) -> Option<Vec<NodeId>> {
        let health = self.health.as_ref()?;
        // A joint configuration needs a quorum of each half: leave it to
        // the deadline rather than count it wrong.
        if desc.replicas.iter().any(|r| {
            matches!(
                r.kind,
                tardigrade_kvpb::ReplicaType::VoterIncoming
                    | tardigrade_kvpb::ReplicaType::VoterOutgoing
            )
        }) {
            return None;
        }
        let voters: Vec<NodeId> = desc
            .replicas
            .iter()
            .filter(|r| r.kind == tardigrade_kvpb::ReplicaType::Voter)
            .map(|r| r.node_id)
            .collect();
        let down: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|n| health.is_unreachable(*n))
            .collect();
        (!voters.is_empty() && down.len() * 2 >= voters.len()).then_some(down)
    }

    fn mark_unreachable(&self, node: NodeId) {
        self.unreachable.lock().insert(node, Instant::now());
    }

    fn recently_unreachable(&self, node: NodeId) -> bool {
        if self.health.as_ref().is_some_and(|h| h.is_unreachable(node)) {
            return true;
        }
        let mut m = self.unreachable.lock();
        match m.get(&node) {
            Some(at) if at.elapsed() < UNREACHABLE_MEMORY => true,
            Some(_) => {
                m.remove(&node);
                false
            }
            None => false,
        }
    }
}

/// How long a batch keeps trying a range whose voters are mostly
/// unreachable before it fails (an election after a node restart takes a
/// moment; a range without quorum does not come back by retrying).
const NO_QUORUM_GRACE: Duration = Duration::from_secs(4);

/// The error for a range that cannot serve because `down` (a majority of
/// its voters) do not answer.
fn range_unavailable(desc: &RangeDescriptor, down: &[NodeId]) -> KvError {
    let voters = desc
        .replicas
        .iter()
        .filter(|r| r.kind == tardigrade_kvpb::ReplicaType::Voter)
        .count();
    let names: Vec<String> = down.iter().map(|n| format!("n{n}")).collect();
    unavailable(&format!(
        "range r{} [{}, {}) has no quorum: {} of its {} voters ({}) do not answer; it serves again once a majority is back",
        desc.range_id,
        tardigrade_encoding::pretty_key(&desc.start_key),
        tardigrade_encoding::pretty_key(&desc.end_key),
        down.len(),
        voters,
        names.join(", ")
    ))
}

/// How long a node that failed to answer is tried after the others.
const UNREACHABLE_MEMORY: Duration = Duration::from_secs(5);
/// Rounds over a range's replicas between tries of a node that failed
/// to answer (while others answer).
const UNREACHABLE_RETRY_ROUNDS: u32 = 5;
/// Longest pause between rounds over a range's replicas while some of them
/// answer (an election or lease changeover is under way: it ends within
/// seconds, and the pause adds directly to the time until service resumes).
const SHORT_BACKOFF_CAP: Duration = Duration::from_millis(100);
/// Longest pause between rounds when no replica answers at all.
const LONG_BACKOFF_CAP: Duration = Duration::from_secs(1);

enum RouteError {
    Mismatch,
    Kv(Box<KvError>),
}

impl Sender for DistSender {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(self.send_batch(ba))
    }
}

/// Whether a batch whose outcome is unknown may be sent again to another
/// replica: a transaction's writes without its commit are (the server
/// replays a sequence number idempotently); a commit, a split and
/// non-transactional writes are not (they could apply twice, or the commit
/// may have finished the transaction), so their ambiguity goes back to the
/// client. Batches without writes never come back ambiguous from the
/// transport (their failures are `Unavailable`).
/// TODO(issue 3): the transaction coordinator could settle an ambiguous
/// commit by querying its record (CockroachDB returns it to the client,
/// as this does); SQL must map it to SQLSTATE 40003.
fn replay_safe(ba: &BatchRequest) -> bool {
    ba.header.txn.is_some()
        && !ba
            .requests
            .iter()
            .any(|r| matches!(r, Request::EndTxn { .. } | Request::AdminSplit { .. }))
}

fn unavailable(msg: &str) -> KvError {
    KvError::new(ErrorDetail::Unavailable(msg.to_string()))
}

fn retryable_routing(e: &KvError) -> bool {
    matches!(
        e.detail,
        ErrorDetail::Unavailable(_)
            | ErrorDetail::NotLeaseholder { .. }
            | ErrorDetail::RangeKeyMismatch { .. }
            | ErrorDetail::RangeNotFound { .. }
    )
}

/// The global key a request key is routed by (range-local keys route to the
/// key they are local to).
fn addr_of(key: &[u8]) -> Result<Vec<u8>, KvError> {
    let k = keys::addr(key).map_err(|e| KvError::invalid(format!("unroutable key: {e}")))?;
    if k.as_slice() >= keys::MAX_KEY {
        // No range holds it: refuse at once rather than look for one
        // until the deadline.
        return Err(KvError::invalid(format!(
            "key {} is at or above /Max",
            tardigrade_encoding::pretty_key(&k)
        )));
    }
    Ok(k)
}

fn span_fits(span: &Span, desc: &RangeDescriptor) -> bool {
    span.is_point() || span.end_key.as_slice() <= desc.end_key.as_slice()
}

fn is_ranged(req: &Request) -> bool {
    matches!(
        req,
        Request::Scan { .. } | Request::ReverseScan { .. } | Request::DeleteRange { .. }
    )
}

/// The same request over another span (for the pieces of a cut request).
fn with_span(req: &Request, span: Span) -> Request {
    let mut r = req.clone();
    match &mut r {
        Request::Scan { span: s }
        | Request::ReverseScan { span: s }
        | Request::DeleteRange { span: s }
        | Request::ResolveIntentRange { span: s, .. }
        | Request::Refresh { span: s, .. } => *s = span,
        _ => {}
    }
    r
}

fn split_span(span: &Span, at: &[u8]) -> (Span, Span) {
    (
        Span::new(span.key.clone(), at.to_vec()),
        Span::new(at.to_vec(), span.end_key.clone()),
    )
}

/// The response for a request that was not sent because the batch's key
/// limit was reached: nothing, and the whole span to resume from.
fn resume_only(req: &Request) -> Response {
    match req {
        Request::Scan { span } => Response::Scan {
            rows: Vec::new(),
            resume_span: Some(span.clone()),
        },
        Request::ReverseScan { span } => Response::ReverseScan {
            rows: Vec::new(),
            resume_span: Some(span.clone()),
        },
        Request::DeleteRange { span } => Response::DeleteRange {
            keys: Vec::new(),
            resume_span: Some(span.clone()),
        },
        _ => Response::Put,
    }
}

fn union(a: Span, b: Span) -> Span {
    Span::new(a.key.min(b.key), a.end_key.max(b.end_key))
}

/// Folds the response of one piece of a request into the request's response.
fn merge(slot: &mut Option<Response>, piece: Response) {
    let Some(existing) = slot.take() else {
        *slot = Some(piece);
        return;
    };
    // Rows (or keys) append in visiting order; the resume span covers
    // whatever any piece left unscanned.
    fn resume(a: Option<Span>, b: Option<Span>) -> Option<Span> {
        match (a, b) {
            (Some(a), Some(b)) => Some(union(a, b)),
            (a, b) => a.or(b),
        }
    }
    *slot = Some(match (existing, piece) {
        (
            Response::Scan {
                mut rows,
                resume_span: r1,
            },
            Response::Scan {
                rows: more,
                resume_span: r2,
            },
        ) => {
            rows.extend(more);
            Response::Scan {
                rows,
                resume_span: resume(r1, r2),
            }
        }
        (
            Response::ReverseScan {
                mut rows,
                resume_span: r1,
            },
            Response::ReverseScan {
                rows: more,
                resume_span: r2,
            },
        ) => {
            rows.extend(more);
            Response::ReverseScan {
                rows,
                resume_span: resume(r1, r2),
            }
        }
        (
            Response::DeleteRange {
                mut keys,
                resume_span: r1,
            },
            Response::DeleteRange {
                keys: more,
                resume_span: r2,
            },
        ) => {
            keys.extend(more);
            Response::DeleteRange {
                keys,
                resume_span: resume(r1, r2),
            }
        }
        (
            Response::ResolveIntentRange { resume_span: r1 },
            Response::ResolveIntentRange { resume_span: r2 },
        ) => Response::ResolveIntentRange {
            resume_span: resume(r1, r2),
        },
        (first, _) => first,
    });
}
