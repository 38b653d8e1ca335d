//! How a store's Raft messages reach other nodes.
//!
//! The scheduler hands each round's messages for one node, as one
//! [`RaftMessageBatch`], to a [`RaftTransport`]. Two implementations:
//! [`LocalRaftTransport`] delivers in process (tests: many stores in one
//! process), [`GrpcRaftTransport`] sends over the `Raft` gRPC service to the
//! address a [`NodeResolver`] gives. Both go through a
//! [`FaultInjector`] when one is set, so tests can partition, drop and delay.
//! The gRPC one also simulates distance when given a [`PeerLatency`]
//! (`demo --global`): each batch is delivered its one-way delay after it
//! was handed over, in order per destination, without holding up the
//! batches behind it for longer than their own delay.
//! Delivery is best effort: Raft retransmits what is lost.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tardigrade_kvpb::NodeId;
use tardigrade_rpc::{FaultInjector, NodeIdentity, PeerLatency, RaftClient};
pub use tardigrade_rpc::{RaftHandler, RaftMessage, RaftMessageBatch};

/// Sends a batch of Raft messages to `batch.to_node`. Must not block.
pub trait RaftTransport: Send + Sync {
    fn send(&self, batch: RaftMessageBatch);
}

impl fmt::Debug for dyn RaftTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RaftTransport")
    }
}

/// Where a node listens.
pub trait NodeResolver: Send + Sync {
    fn resolve(&self, node: NodeId) -> Option<String>;
}

impl<F: Fn(NodeId) -> Option<String> + Send + Sync> NodeResolver for F {
    fn resolve(&self, node: NodeId) -> Option<String> {
        self(node)
    }
}

/// In-process delivery between stores registered by node id.
#[derive(Default)]
pub struct LocalRaftTransport {
    nodes: RwLock<HashMap<NodeId, Weak<dyn RaftHandler>>>,
    faults: Option<FaultInjector>,
}

impl LocalRaftTransport {
    pub fn new(faults: Option<FaultInjector>) -> Arc<LocalRaftTransport> {
        Arc::new(LocalRaftTransport {
            nodes: RwLock::default(),
            faults,
        })
    }

    /// Delivers batches for `node` to `handler` (held weakly).
    pub fn register(&self, node: NodeId, handler: Weak<dyn RaftHandler>) {
        self.nodes.write().insert(node, handler);
    }

    /// Stops delivering to `node` (as if it died).
    pub fn unregister(&self, node: NodeId) {
        self.nodes.write().remove(&node);
    }
}

impl RaftTransport for LocalRaftTransport {
    fn send(&self, batch: RaftMessageBatch) {
        let delay = match &self.faults {
            Some(f) => match f.admit(batch.from_node, batch.to_node) {
                Ok(d) => d,
                Err(_) => return,
            },
            None => std::time::Duration::ZERO,
        };
        let Some(handler) = self
            .nodes
            .read()
            .get(&batch.to_node)
            .and_then(Weak::upgrade)
        else {
            return;
        };
        if delay.is_zero() {
            let _ = handler.handle_raft_batch(batch);
        } else {
            let faults = self.faults.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                if faults.is_some_and(|f| f.is_partitioned(batch.from_node, batch.to_node)) {
                    return;
                }
                let _ = handler.handle_raft_batch(batch);
            });
        }
    }
}

/// Batches queued per destination before new ones are dropped.
const QUEUE_LEN: usize = 256;

/// Raft over gRPC: one queue and one sending task per destination node, so
/// batches to a node stay in order and a slow node delays only itself.
pub struct GrpcRaftTransport {
    resolver: Arc<dyn NodeResolver>,
    faults: Option<FaultInjector>,
    /// Stamped on every batch (the receiver refuses Raft traffic from
    /// another cluster or without a cluster id).
    identity: Option<Arc<NodeIdentity>>,
    /// Simulated distance (`None`: no delay, nothing looked up).
    latency: Option<Arc<dyn PeerLatency>>,
    runtime: tokio::runtime::Handle,
    queues: Mutex<HashMap<NodeId, RaftQueue>>,
}

/// A batch and when it may be delivered (`None`: at once).
type Queued = (Option<Instant>, RaftMessageBatch);
type RaftQueue = tokio::sync::mpsc::Sender<Queued>;

impl GrpcRaftTransport {
    /// Must be called inside a Tokio runtime: the sending tasks run on it.
    /// `latency` delays each batch by the one-way delay to its destination.
    pub fn new(
        resolver: Arc<dyn NodeResolver>,
        faults: Option<FaultInjector>,
        identity: Option<Arc<NodeIdentity>>,
        latency: Option<Arc<dyn PeerLatency>>,
    ) -> Result<Arc<GrpcRaftTransport>, tardigrade_kvpb::KvError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            tardigrade_kvpb::KvError::internal("GrpcRaftTransport::new outside a Tokio runtime")
        })?;
        Ok(Arc::new(GrpcRaftTransport {
            resolver,
            faults,
            identity,
            latency,
            runtime,
            queues: Mutex::default(),
        }))
    }

    fn queue(&self, node: NodeId) -> RaftQueue {
        let mut queues = self.queues.lock();
        if let Some(q) = queues.get(&node)
            && !q.is_closed()
        {
            return q.clone();
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(QUEUE_LEN);
        let resolver = self.resolver.clone();
        let faults = self.faults.clone();
        let identity = self.identity.clone();
        self.runtime.spawn(async move {
            let mut client: Option<RaftClient> = None;
            while let Some((deliver_at, batch)) = rx.recv().await {
                // In flight: the batches behind it left later, so they
                // are due no earlier (unless the delay shrank).
                if let Some(at) = deliver_at {
                    tokio::time::sleep_until(at.into()).await;
                }
                let Some(addr) = resolver.resolve(node) else {
                    continue;
                };
                if let Some(f) = &faults {
                    match f.admit_to(batch.from_node, batch.to_node, &addr) {
                        Ok(d) if !d.is_zero() => tokio::time::sleep(d).await,
                        Ok(_) => {}
                        Err(_) => continue,
                    }
                }
                if client.as_ref().is_none_or(|c| c.addr() != addr) {
                    client = RaftClient::connect_lazy(&addr)
                        .ok()
                        .map(|c| match &identity {
                            Some(id) => c.with_identity(id.clone()),
                            None => c,
                        });
                }
                if let Some(c) = &client
                    && let Err(e) = c.send(batch).await
                {
                    tracing::debug!(node, error = %e, "raft batch not delivered");
                }
            }
        });
        queues.insert(node, tx.clone());
        tx
    }
}

impl RaftTransport for GrpcRaftTransport {
    fn send(&self, batch: RaftMessageBatch) {
        let deliver_at = self
            .latency
            .as_ref()
            .map(|l| l.delay_to(batch.to_node))
            .filter(|d| !d.is_zero())
            .map(|d| Instant::now() + d);
        let q = self.queue(batch.to_node);
        // Full: the node is slow or gone; Raft will retransmit.
        let _ = q.try_send((deliver_at, batch));
    }
}
