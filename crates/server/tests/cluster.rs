//! Nodes started as a cluster in one process over real loopback gRPC:
//! `init`, joining, node ids, and every node acting as a gateway.

use std::time::Duration;

use tardigrade_kvserver::StoreConfig;
use tardigrade_rpc::{NodeClient, NodeError};
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_storage::StoreSpec;

fn config(join: Vec<String>) -> NodeConfig {
    NodeConfig {
        store: StoreSpec::Memory,
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: None,
        join,
        locality: vec![("region".into(), "test".into())],
        store_config: StoreConfig {
            raft_tick_interval: Duration::from_millis(50),
            ..StoreConfig::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_after_init_and_every_node_is_a_gateway() {
    let n1 = ClusterNode::start(config(vec![])).await.expect("start n1");
    let seed = n1.local_addr().to_string();
    let n2 = ClusterNode::start(config(vec![seed.clone()]))
        .await
        .expect("start n2");
    let n3 = ClusterNode::start(config(vec![seed.clone()]))
        .await
        .expect("start n3");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(n2.node_id(), None, "no cluster before init");

    let client = NodeClient::connect_lazy(&seed).expect("client");
    let (_cluster, node) = client.bootstrap().await.expect("init");
    assert_eq!(node, 1);
    assert_eq!(
        client.bootstrap().await.expect_err("second init"),
        NodeError::AlreadyInitialized
    );
    for n in [&n1, &n2, &n3] {
        tokio::time::timeout(Duration::from_secs(20), n.wait_ready())
            .await
            .expect("node becomes ready");
    }
    let mut ids: Vec<u64> = [&n1, &n2, &n3].iter().filter_map(|n| n.node_id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3]);

    let db3 = n3.db().expect("db");
    db3.put(b"hello", b"world").await.expect("put through n3");
    let db2 = n2.db().expect("db");
    assert_eq!(
        db2.get(b"hello").await.expect("get through n2"),
        Some(b"world".to_vec())
    );

    // An init sent to a joined node is refused too.
    let c2 = NodeClient::connect_lazy(&n2.local_addr().to_string()).expect("client");
    assert_eq!(
        c2.bootstrap().await.expect_err("init on n2"),
        NodeError::AlreadyInitialized
    );

    for n in [n3, n2, n1] {
        n.shutdown().await;
    }
}
