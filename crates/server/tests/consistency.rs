//! The consistency checker on real cluster nodes over loopback gRPC: every
//! node's `CheckConsistency` finds the replicas identical; a version written
//! straight into one follower's engine is then reported as that replica
//! diverged, and that replica (only) is fenced.

mod common;

use std::time::{Duration, Instant};

use tardigrade_kvpb::ReplicaType;
use tardigrade_kvserver::consistency;
use tardigrade_rpc::{NodeClient, RangeConsistency};
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_storage::Space;
use tardigrade_storage::mvcc::key::encode_mvcc_key;

const USER_KEY: &[u8] = b"user/007";

fn config(join: Vec<String>) -> NodeConfig {
    let mut config = common::config(join);
    config.store_config.lease_duration = Duration::from_secs(2);
    config
}

async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every node checks the ranges it leases; their answers for `range_id`.
async fn check(nodes: &[&ClusterNode], range_id: u64) -> RangeConsistency {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for n in nodes {
            let client = NodeClient::connect_lazy(&n.local_addr().to_string()).expect("client");
            let (_, ranges) = client.check_consistency().await.expect("check");
            if let Some(r) = ranges.into_iter().find(|r| r.range_id == range_id) {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "no node checked r{range_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_consistency_finds_the_replica_written_underneath_raft_and_fences_it() {
    let n1 = ClusterNode::start(config(Vec::new())).await.expect("start");
    let seed = n1.local_addr().to_string();
    let n2 = ClusterNode::start(config(vec![seed.clone()]))
        .await
        .expect("start");
    let n3 = ClusterNode::start(config(vec![seed.clone()]))
        .await
        .expect("start");
    let nodes = [&n1, &n2, &n3];
    common::init_and_wait_ready(&seed, &nodes, Duration::from_secs(30)).await;
    let db = n1.db().expect("db");
    for i in 0..20 {
        db.put(format!("user/{i:03}").as_bytes(), b"v")
            .await
            .expect("put");
    }
    let range_of_user_key = || {
        nodes
            .iter()
            .filter_map(|n| n.store()?.replica_for_key(USER_KEY))
            .max_by_key(|r| r.desc().generation)
            .map(|r| r.desc())
    };
    wait_for("three voters", Duration::from_secs(60), || {
        range_of_user_key().is_some_and(|d| {
            d.replicas
                .iter()
                .filter(|r| r.kind == ReplicaType::Voter)
                .count()
                == 3
        })
    })
    .await;
    let desc = range_of_user_key().expect("range");
    db.put(b"user/last", b"x").await.expect("put");

    let healthy = check(&nodes, desc.range_id).await;
    assert_eq!(healthy.replicas.len(), 3, "{healthy:?}");
    assert!(
        healthy
            .replicas
            .iter()
            .all(|r| !r.diverged && r.error.is_empty() && r.digest.len() == 64),
        "{healthy:?}"
    );

    // A follower's engine gets a version Raft never carried.
    let victim = nodes
        .iter()
        .find(|n| {
            let r = n.store().and_then(|s| s.replica(desc.range_id));
            r.is_some_and(|r| r.lease().replica.replica_id != r.replica_id)
        })
        .expect("a follower");
    let store = victim.store().expect("store");
    let mut b = store.engine().batch();
    b.put(
        Space::Mvcc,
        &encode_mvcc_key(USER_KEY, tardigrade_hlc::Timestamp::new(1, 0)),
        b"bit rot",
    );
    store
        .engine()
        .commit(b.writes(), true)
        .expect("write underneath");

    let after = check(&nodes, desc.range_id).await;
    let diverged: Vec<u64> = after
        .replicas
        .iter()
        .filter(|r| r.diverged)
        .map(|r| r.node_id)
        .collect();
    assert_eq!(diverged, vec![store.node_id()], "{after:?}");
    let fenced = store.replica(desc.range_id).expect("replica");
    assert!(consistency::fenced_reason(&fenced).is_some());
    for n in nodes
        .iter()
        .filter(|n| n.store().expect("store").node_id() != store.node_id())
    {
        let r = n
            .store()
            .and_then(|s| s.replica(desc.range_id))
            .expect("replica");
        assert_eq!(consistency::fenced_reason(&r), None);
    }
    // The cluster still serves the range from the healthy replicas.
    assert_eq!(db.get(b"user/003").await.expect("get"), Some(b"v".to_vec()));
    for n in [n3, n2, n1] {
        n.shutdown().await;
    }
}
