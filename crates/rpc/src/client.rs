//! The client side: a [`Sender`] that sends batches to a node over gRPC.

use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvpb::{BatchRequest, ErrorDetail, KvError, SendFuture, Sender};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::convert::batch_result_from_pb;
use crate::identity::NodeIdentity;
use crate::pb;
use crate::pb::internal_client::InternalClient;
use crate::server::MAX_MESSAGE_SIZE;

/// How long establishing a connection may take before it counts as unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends batches to the node at `host:port`. Cheap to clone; clones share the
/// connection. A transport failure surfaces as [`ErrorDetail::Unavailable`].
#[derive(Clone, Debug)]
pub struct RpcSender {
    addr: String,
    client: InternalClient<Channel>,
    identity: Option<Arc<NodeIdentity>>,
}

pub(crate) fn endpoint(addr: &str) -> Result<Endpoint, KvError> {
    if addr.is_empty() || addr.contains('/') {
        return Err(KvError::invalid(format!(
            "bad address {addr:?}: expected HOST:PORT"
        )));
    }
    Endpoint::from_shared(format!("http://{addr}"))
        .map(|e| {
            e.connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(20))
                .keep_alive_while_idle(true)
        })
        .map_err(|e| KvError::invalid(format!("bad address {addr:?}: {e}")))
}

fn unavailable(addr: &str, e: impl std::fmt::Display) -> KvError {
    KvError::new(ErrorDetail::Unavailable(format!("node at {addr}: {e}")))
}

impl RpcSender {
    fn from_channel(addr: &str, channel: Channel) -> RpcSender {
        let client = InternalClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        RpcSender {
            addr: addr.to_string(),
            client,
            identity: None,
        }
    }

    /// Stamps `identity` (a node's cluster id, node id and version) on every
    /// batch, so the receiving node can refuse a node of another cluster.
    pub fn with_identity(mut self, identity: Arc<NodeIdentity>) -> RpcSender {
        self.identity = Some(identity);
        self
    }

    /// Connects now, so that an unreachable node is reported at once
    /// (as `Unavailable`). Later failures reconnect transparently.
    pub async fn connect(addr: &str) -> Result<RpcSender, KvError> {
        let channel = endpoint(addr)?
            .connect()
            .await
            .map_err(|e| unavailable(addr, error_chain(&e)))?;
        Ok(RpcSender::from_channel(addr, channel))
    }

    /// Connects on first use. Must be called inside a Tokio runtime.
    pub fn connect_lazy(addr: &str) -> Result<RpcSender, KvError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(KvError::internal(
                "RpcSender::connect_lazy called outside a Tokio runtime",
            ));
        }
        let channel = endpoint(addr)?.connect_lazy();
        Ok(RpcSender::from_channel(addr, channel))
    }

    /// The `host:port` this sender talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn send_batch(
        &self,
        ba: BatchRequest,
    ) -> Result<tardigrade_kvpb::BatchResponse, KvError> {
        let n = ba.requests.len();
        let writes = ba
            .requests
            .iter()
            .any(tardigrade_kvpb::Request::writes_or_commits);
        let mut client = self.client.clone();
        let mut req = tonic::Request::new(pb::BatchRequest::from(ba));
        if let Some(id) = &self.identity {
            id.stamp(req.metadata_mut());
        }
        let resp = client
            .batch(req)
            .await
            .map_err(|s| batch_status_to_error(&self.addr, s, writes))?;
        let br = batch_result_from_pb(resp.into_inner()).map_err(|e| {
            KvError::internal(format!("malformed response from {}: {e}", self.addr))
        })??;
        if br.responses.len() != n {
            return Err(KvError::internal(format!(
                "node at {} answered {} requests with {} responses",
                self.addr,
                n,
                br.responses.len()
            )));
        }
        Ok(br)
    }
}

impl Sender for RpcSender {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(self.send_batch(ba))
    }
}

/// The message of an error and its sources ("transport error: connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        source = s.source();
    }
    msg
}

/// Whether a failed call certainly never reached the server's handler:
/// the connection could not be made, the server refused the stream, or it
/// refused the request itself (identity, validation).
fn did_not_start(s: &tonic::Status) -> bool {
    match s.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::Unimplemented => true,
        Code::Unavailable => {
            // A keep-alive timeout breaks a connection that may have
            // carried the request; a connect failure never sent it.
            let msg = match std::error::Error::source(s) {
                Some(src) => format!("{} {}", s.message(), error_chain(src)),
                None => s.message().to_string(),
            };
            !msg.contains("keep-alive") && !msg.contains("keepalive")
        }
        _ => false,
    }
}

/// [`status_to_error`] for a batch: a transport failure after a batch with
/// writes may have been sent is [`ErrorDetail::AmbiguousResult`] (the write
/// may have been applied; retrying it elsewhere could apply it twice); for
/// a read-only batch it is `Unavailable` (safe to retry on another replica).
fn batch_status_to_error(addr: &str, s: tonic::Status, writes: bool) -> KvError {
    if did_not_start(&s) {
        return status_to_error(addr, s);
    }
    let msg = match std::error::Error::source(&s).map(error_chain) {
        Some(chain) if chain.starts_with(s.message()) => format!("{:?}: {chain}", s.code()),
        Some(chain) => format!("{:?}: {}: {chain}", s.code(), s.message()),
        None => format!("{:?}: {}", s.code(), s.message()),
    };
    if writes {
        KvError::new(ErrorDetail::AmbiguousResult(format!(
            "node at {addr} failed after the write was sent ({msg}); it may or may not have been applied"
        )))
    } else {
        unavailable(addr, msg)
    }
}

/// A gRPC status is never a KV outcome (those travel in the response), so it
/// means the call itself failed.
pub(crate) fn status_to_error(addr: &str, s: tonic::Status) -> KvError {
    match s.code() {
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted => {
            let msg = match std::error::Error::source(&s) {
                Some(src) => format!("{}: {}", s.message(), error_chain(src)),
                None => s.message().to_string(),
            };
            unavailable(addr, msg)
        }
        Code::InvalidArgument | Code::FailedPrecondition => KvError::invalid(format!(
            "node at {addr} refused the request: {}",
            s.message()
        )),
        code => KvError::internal(format!("node at {addr}: {code:?}: {}", s.message())),
    }
}
