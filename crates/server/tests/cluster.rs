//! Nodes started as a cluster in one process over real loopback gRPC:
//! `init`, joining, node ids, and every node acting as a gateway.

mod common;

use std::time::Duration;

use tardigrade_rpc::{NodeClient, NodeError};
use tardigrade_server::node::{ClusterNode, NodeConfig};

fn config(join: Vec<String>) -> NodeConfig {
    NodeConfig {
        locality: vec![("region".into(), "test".into())],
        ..common::config(join)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_jumps_stops_itself_and_the_others_keep_serving() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use tardigrade_hlc::{SkewedClock, SystemClock};
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();

    let n1 = ClusterNode::start(config(vec![])).await.expect("start n1");
    let seed = n1.local_addr().to_string();
    let n2 = ClusterNode::start(config(vec![seed.clone()]))
        .await
        .expect("start n2");
    let skewed = Arc::new(SkewedClock {
        inner: SystemClock,
        offset_nanos: AtomicI64::new(0),
    });
    let n3 = ClusterNode::start_with_clock(config(vec![seed.clone()]), skewed.clone())
        .await
        .expect("start n3");
    common::init_and_wait_ready(&seed, &[&n1, &n2, &n3], Duration::from_secs(20)).await;
    // Every range on all three nodes first: a range still at two replicas,
    // one of them n3's, would lose its quorum when n3 stops (CI caught
    // that once up-replication was slow).
    common::wait_fully_replicated(&[&n1, &n2, &n3], Duration::from_secs(60)).await;
    // In step: nobody stops.
    let calm = tokio::time::timeout(Duration::from_secs(3), n3.fatal()).await;
    assert!(calm.is_err(), "a node in step stopped: {calm:?}");

    // n3's clock jumps back 2 s (four times the maximum offset): it is
    // the odd one out and stops itself within a few heartbeats.
    skewed.offset_nanos.store(-2_000_000_000, Ordering::Relaxed);
    let msg = tokio::time::timeout(Duration::from_secs(10), n3.fatal())
        .await
        .expect("the skewed node stops itself");
    assert!(msg.contains("clock synchronization error"), "{msg}");
    assert!(n3.store().expect("store").is_stopped());

    // The healthy majority does not stop, and serves.
    for n in [&n1, &n2] {
        let still = tokio::time::timeout(Duration::from_millis(500), n.fatal()).await;
        assert!(still.is_err(), "a healthy node stopped: {still:?}");
    }
    let db1 = n1.db().expect("db");
    let last_error = std::sync::Mutex::new(None);
    let served = tokio::time::timeout(Duration::from_secs(30), async {
        while let Err(e) = db1.put(b"after-skew", b"ok").await {
            *last_error.lock().expect("lock") = Some(e.to_string());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "the healthy nodes serve writes; last error: {:?}",
        last_error.lock().expect("lock")
    );
    for n in [n3, n2, n1] {
        n.shutdown().await;
    }
}
