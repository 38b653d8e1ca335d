//! Nodes refuse RPCs from other clusters, from node ids their cluster does
//! not know, and from incompatible versions — join, Raft and KV alike — and
//! keep serving their own cluster afterwards. Two single-node clusters in
//! one process over loopback gRPC.

use std::sync::Arc;
use std::time::Duration;

use tardigrade_kvpb::{BatchRequest, Header, Request, Sender};
use tardigrade_kvserver::StoreConfig;
use tardigrade_rpc::identity::cluster_id_string;
use tardigrade_rpc::{
    NodeClient, NodeError, NodeIdentity, RaftClient, RaftMessage, RaftMessageBatch, RpcSender,
};
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_storage::StoreSpec;

fn config() -> NodeConfig {
    NodeConfig {
        testing_latency: None,
        store: StoreSpec::Memory,
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: None,
        join: vec![],
        locality: vec![("region".into(), "test".into())],
        store_config: StoreConfig {
            raft_tick_interval: Duration::from_millis(50),
            ..StoreConfig::default()
        },
    }
}

async fn single_node_cluster() -> ClusterNode {
    let n = ClusterNode::start(config()).await.expect("start");
    NodeClient::connect_lazy(&n.local_addr().to_string())
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    tokio::time::timeout(Duration::from_secs(20), n.wait_ready())
        .await
        .expect("ready");
    n
}

fn get_batch(range_id: u64) -> BatchRequest {
    BatchRequest {
        header: Header {
            range_id,
            ..Header::default()
        },
        requests: vec![Request::Get { key: b"k".to_vec() }],
    }
}

fn raft_batch() -> RaftMessageBatch {
    RaftMessageBatch {
        from_node: 1,
        to_node: 1,
        cluster_id: 0,
        messages: vec![RaftMessage {
            range_id: 1,
            from_replica: 1,
            to_replica: 1,
            message: vec![],
            quiesce: false,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_refuse_other_clusters_unknown_nodes_and_versions() {
    let a = single_node_cluster().await;
    let b = single_node_cluster().await;
    let a_id = a.identity();
    let (Some(ca), Some(cb)) = (a_id.cluster_id(), b.identity().cluster_id()) else {
        panic!("both nodes have cluster ids");
    };
    assert_ne!(ca, cb);
    let b_addr = b.local_addr().to_string();
    let refusal = format!(
        "refusing RPC from cluster {} (node n1): this node belongs to cluster {}",
        cluster_id_string(&ca),
        cluster_id_string(&cb)
    );

    // Join (and the first-range lookup) from a node of cluster A.
    let nc = NodeClient::connect_lazy(&b_addr)
        .expect("client")
        .with_identity(a_id.clone());
    match nc.join("127.0.0.1:1", "region=test", "0.1.0").await {
        Err(NodeError::Refused(msg)) => assert!(msg.contains(&refusal), "{msg}"),
        other => panic!("join from cluster A: {other:?}"),
    }
    match nc.first_range().await {
        Err(NodeError::Refused(msg)) => assert!(msg.contains(&refusal), "{msg}"),
        other => panic!("first range from cluster A: {other:?}"),
    }

    // Raft messages: from cluster A, and without any cluster id.
    let rc = RaftClient::connect_lazy(&b_addr).expect("raft client");
    let e = rc
        .clone()
        .with_identity(a_id.clone())
        .send(raft_batch())
        .await
        .expect_err("raft from cluster A");
    assert!(e.to_string().contains(&refusal), "{e}");
    let e = rc.send(raft_batch()).await.expect_err("raft without id");
    assert!(e.to_string().contains("without a cluster id"), "{e}");

    // KV batches: from cluster A, from an unknown node of cluster B, and
    // from an incompatible version.
    let kv = RpcSender::connect_lazy(&b_addr).expect("sender");
    let e = kv
        .clone()
        .with_identity(a_id.clone())
        .send(get_batch(1))
        .await
        .expect_err("kv from cluster A");
    assert!(e.to_string().contains(&refusal), "{e}");
    let stranger = Arc::new(NodeIdentity::new(env!("CARGO_PKG_VERSION")));
    stranger.set(cb, 99);
    let e = kv
        .clone()
        .with_identity(stranger)
        .send(get_batch(1))
        .await
        .expect_err("unknown node");
    assert!(
        e.to_string()
            .contains("refusing RPC from node n99: no such node in cluster"),
        "{e}"
    );
    let future = Arc::new(NodeIdentity::new("9.9.0"));
    let e = kv
        .clone()
        .with_identity(future)
        .send(get_batch(1))
        .await
        .expect_err("version");
    assert!(
        e.to_string()
            .contains("running version 9.9.0: incompatible"),
        "{e}"
    );

    // Both clusters keep serving (B also to clients without an identity).
    let db_b = b.db().expect("db");
    db_b.put(b"after", b"b").await.expect("put on B");
    let resp = kv.send(get_batch(0)).await.expect("client get on B");
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(
        db_b.get(b"after").await.expect("get on B"),
        Some(b"b".to_vec())
    );
    let db_a = a.db().expect("db");
    db_a.put(b"after", b"a").await.expect("put on A");
    assert_eq!(
        db_a.get(b"after").await.expect("get on A"),
        Some(b"a".to_vec())
    );

    b.shutdown().await;
    a.shutdown().await;
}
