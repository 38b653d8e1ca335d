//! Simulated distance (`NodeConfig::testing_latency`) between three real
//! nodes in three regions over loopback gRPC: a KV batch sent to another
//! node costs at least the round trip, and a write that Raft must replicate
//! to a quorum costs at least one round trip too. Lower bounds only: a loaded machine is
//! slower, never faster.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tardigrade_rpc::LatencyMap;
use tardigrade_server::node::{ClusterNode, NodeConfig};

/// One way; a round trip is twice this.
const ONE_WAY: Duration = Duration::from_millis(40);

fn config(join: Vec<String>, region: &str, map: &Arc<LatencyMap>) -> NodeConfig {
    NodeConfig {
        locality: vec![("region".into(), region.into())],
        testing_latency: Some(map.clone()),
        ..common::config(join)
    }
}

/// The node holding the lease of the range that holds `key`, as the
/// nodes' replicas say.
fn leaseholder(nodes: &[&ClusterNode], key: &[u8]) -> Option<u64> {
    nodes.iter().find_map(|n| {
        let store = n.store()?;
        store
            .replicas()
            .into_iter()
            .find(|r| r.is_initialized() && r.desc().contains_key(key))
            .map(|r| r.lease().replica.node_id)
            .filter(|id| *id != 0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_batches_and_raft_messages_cross_the_injected_distance() {
    let mut map = LatencyMap::new();
    map.set("east", "west", ONE_WAY);
    map.set("east", "north", ONE_WAY);
    map.set("west", "north", ONE_WAY);
    let map = Arc::new(map);
    let n1 = ClusterNode::start(config(vec![], "east", &map))
        .await
        .expect("start n1");
    let seed = n1.local_addr().to_string();
    let n2 = ClusterNode::start(config(vec![seed.clone()], "west", &map))
        .await
        .expect("start n2");
    let n3 = ClusterNode::start(config(vec![seed.clone()], "north", &map))
        .await
        .expect("start n3");
    let nodes = [&n1, &n2, &n3];
    common::init_and_wait_ready(&seed, &nodes, Duration::from_secs(30)).await;
    common::wait_fully_replicated(&nodes, Duration::from_secs(60)).await;

    let key = b"distance";
    n1.db()
        .expect("db")
        .put(key, b"v0")
        .await
        .expect("first put");

    // Measured until the lease stayed put for the whole measurement (a
    // lease moving mid-way would make the read local).
    let mut measured = None;
    for _ in 0..20 {
        let Some(holder) = leaseholder(&nodes, key) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (Some(near), Some(far)) = (
            nodes.iter().find(|n| n.node_id() == Some(holder)),
            nodes.iter().find(|n| n.node_id() != Some(holder)),
        ) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Warm the far node's range cache, so the measured read is one batch.
        far.db().expect("db").get(key).await.expect("warm-up read");

        let start = Instant::now();
        let got = far.db().expect("db").get(key).await.expect("remote read");
        let read = start.elapsed();
        assert!(got.is_some(), "the value is there");

        // The leaseholder's write commits once another replica has it.
        let start = Instant::now();
        near.db()
            .expect("db")
            .put(key, b"v1")
            .await
            .expect("replicated put");
        let write = start.elapsed();

        if leaseholder(&nodes, key) == Some(holder) {
            measured = Some((read, write));
            break;
        }
    }
    let (read, write) = measured.expect("a measurement with a stable lease");
    assert!(
        read >= 2 * ONE_WAY,
        "a read from the other region took {read:?}, less than the {:?} round trip",
        2 * ONE_WAY
    );
    assert!(
        write >= 2 * ONE_WAY,
        "a write replicated to the other region took {write:?}, less than the {:?} round trip",
        2 * ONE_WAY
    );

    for n in [n3, n2, n1] {
        n.shutdown().await;
    }
}
