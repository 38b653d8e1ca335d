//! The Internal service over real loopback gRPC, against fake senders.

use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvpb::{
    BatchRequest, BatchResponse, ErrorDetail, Header, KeyValue, KvError, Request, Response,
    RetryReason, SendFuture, Sender, Span, Timestamp, Value,
};
use tardigrade_rpc::pb::internal_client::InternalClient;
use tardigrade_rpc::{RpcSender, pb, serve};
use tokio::sync::oneshot;

/// Scans answer one row; a Get of "fail" fails with a retry error; a Get of
/// "panic" panics; everything else answers Put.
struct Fake;

impl Sender for Fake {
    fn send(&self, ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(async move {
            let mut responses = Vec::new();
            for (i, r) in ba.requests.iter().enumerate() {
                responses.push(match r {
                    Request::Get { key } if key == b"fail" => {
                        return Err(KvError::new(ErrorDetail::TransactionRetry {
                            reason: RetryReason::Serializable,
                        })
                        .with_index(i));
                    }
                    Request::Get { key } if key == b"panic" => panic!("fake store panics"),
                    Request::Scan { span } => Response::Scan {
                        rows: vec![KeyValue {
                            key: span.key.clone(),
                            value: Value {
                                bytes: b"v".to_vec(),
                                timestamp: Timestamp::new(5, 0),
                            },
                        }],
                        resume_span: None,
                    },
                    _ => Response::Put,
                });
            }
            Ok(BatchResponse {
                now: Timestamp::new(99, 1),
                txn: None,
                responses,
            })
        })
    }
}

struct Node {
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

async fn start() -> Node {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr").to_string();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(serve(listener, Arc::new(Fake), async {
        let _ = rx.await;
    }));
    Node {
        addr,
        stop: Some(tx),
        handle,
    }
}

impl Node {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let res = tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("server stops in time")
            .expect("server task");
        assert!(res.is_ok(), "{res:?}");
    }
}

fn batch(requests: Vec<Request>) -> BatchRequest {
    BatchRequest {
        header: Header::default(),
        requests,
    }
}

#[tokio::test]
async fn round_trip_through_grpc() {
    let node = start().await;
    let s = RpcSender::connect(&node.addr).await.expect("connect");
    let br = s
        .send(batch(vec![
            Request::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            Request::Scan {
                span: Span::new(b"a".to_vec(), b"b".to_vec()),
            },
        ]))
        .await
        .expect("batch succeeds");
    assert_eq!(br.now, Timestamp::new(99, 1));
    assert_eq!(br.responses.len(), 2);
    assert!(matches!(&br.responses[1], Response::Scan { rows, .. } if rows[0].key == b"a"));
    node.stop().await;
}

#[tokio::test]
async fn kv_errors_travel_in_the_response() {
    let node = start().await;
    let s = RpcSender::connect(&node.addr).await.expect("connect");
    let err = s
        .send(batch(vec![
            Request::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            Request::Get {
                key: b"fail".to_vec(),
            },
        ]))
        .await
        .expect_err("fails");
    assert_eq!(err.index, Some(1));
    assert!(err.detail.is_retryable());
    node.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_invalid_argument() {
    let node = start().await;
    // Through RpcSender: the server validates.
    let s = RpcSender::connect(&node.addr).await.expect("connect");
    let err = s
        .send(batch(vec![Request::Scan {
            span: Span::new(b"b".to_vec(), b"a".to_vec()),
        }]))
        .await
        .expect_err("invalid");
    assert!(
        matches!(&err.detail, ErrorDetail::InvalidArgument(m) if m.contains("end_key must be greater")),
        "{err:?}"
    );
    // Raw protobuf: no header at all; the answer is an error response, not a gRPC status.
    let mut raw = InternalClient::connect(format!("http://{}", node.addr))
        .await
        .expect("connect");
    let resp = raw
        .batch(pb::BatchRequest {
            header: None,
            requests: Vec::new(),
        })
        .await
        .expect("a response, not a status")
        .into_inner();
    let err = resp.error.and_then(|e| e.detail);
    assert!(
        matches!(&err, Some(pb::error::Detail::InvalidArgument(m)) if m.msg.contains("missing batch header")),
        "{err:?}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_panicking_store_yields_an_internal_error_and_the_server_survives() {
    let node = start().await;
    let s = RpcSender::connect(&node.addr).await.expect("connect");
    let err = s
        .send(batch(vec![Request::Get {
            key: b"panic".to_vec(),
        }]))
        .await
        .expect_err("fails");
    assert!(matches!(err.detail, ErrorDetail::Internal(_)), "{err:?}");
    assert!(
        s.send(batch(vec![Request::Get {
            key: b"ok".to_vec()
        }]))
        .await
        .is_ok()
    );
    node.stop().await;
}

#[tokio::test]
async fn unreachable_node_is_unavailable() {
    // Bind then drop to find a port nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let err = RpcSender::connect(&addr)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err.detail, ErrorDetail::Unavailable(_)), "{err:?}");

    let lazy = RpcSender::connect_lazy(&addr).expect("lazy");
    let err = lazy
        .send(batch(vec![Request::Get { key: b"k".to_vec() }]))
        .await
        .expect_err("nothing listens");
    assert!(matches!(err.detail, ErrorDetail::Unavailable(_)), "{err:?}");

    let err = RpcSender::connect("not an address/")
        .await
        .expect_err("bad");
    assert!(
        matches!(err.detail, ErrorDetail::InvalidArgument(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn stopped_server_is_unavailable_to_connected_clients() {
    let node = start().await;
    let s = RpcSender::connect(&node.addr).await.expect("connect");
    assert!(
        s.send(batch(vec![Request::Get { key: b"k".to_vec() }]))
            .await
            .is_ok()
    );
    node.stop().await;
    let err = s
        .send(batch(vec![Request::Get { key: b"k".to_vec() }]))
        .await
        .expect_err("server gone");
    assert!(matches!(err.detail, ErrorDetail::Unavailable(_)), "{err:?}");
}

/// Never answers (until the node dies).
struct Hang;

impl Sender for Hang {
    fn send(&self, _ba: BatchRequest) -> SendFuture<'_> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Err(KvError::internal("hang ended"))
        })
    }
}

/// A node that dies (its runtime dropped, connections reset) with batches
/// in flight: the write's outcome is unknown (`AmbiguousResult`), the
/// read's is not (`Unavailable`, retryable elsewhere); a node that cannot
/// be reached at all never got the write (`Unavailable`).
#[test]
fn a_node_dying_mid_request_makes_writes_ambiguous_and_reads_unavailable() {
    let server_rt = tokio::runtime::Runtime::new().expect("runtime");
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    server_rt.spawn(serve(listener, Arc::new(Hang), std::future::pending()));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sender = rt.block_on(RpcSender::connect(&addr)).expect("connect");
    let put = BatchRequest {
        header: Header::default(),
        requests: vec![Request::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        }],
    };
    let get = BatchRequest {
        header: Header::default(),
        requests: vec![Request::Get { key: b"k".to_vec() }],
    };
    let (s1, s2) = (sender.clone(), sender.clone());
    let (p, g) = (put.clone(), get.clone());
    let write = rt.spawn(async move { s1.send(p).await });
    let read = rt.spawn(async move { s2.send(g).await });
    std::thread::sleep(Duration::from_millis(300));
    server_rt.shutdown_background();

    let e = rt.block_on(write).expect("join").expect_err("node died");
    assert!(
        matches!(e.detail, ErrorDetail::AmbiguousResult(_)),
        "write: {e}"
    );
    let e = rt.block_on(read).expect("join").expect_err("node died");
    assert!(matches!(e.detail, ErrorDetail::Unavailable(_)), "read: {e}");
    // Once the client has seen the connection close (a send racing with
    // that may still go out on the dying connection, and is rightly
    // ambiguous), a node nobody listens on never got the write.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let e = rt
            .block_on(sender.send(put.clone()))
            .expect_err("nobody listening");
        match e.detail {
            ErrorDetail::Unavailable(_) => break,
            ErrorDetail::AmbiguousResult(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => panic!("refused: {e}"),
        }
    }
}
