//! The replicate queue on real cluster nodes over loopback gRPC: the first
//! range goes from one replica to three once three nodes exist, onto the
//! 4th and 5th nodes when they join (5 replicas for the range holding meta
//! and system keys), with identical data on every replica; and a node dead
//! for longer than `server.time_until_store_dead` has its replica replaced.

use std::time::{Duration, Instant};

use tardigrade_kvpb::{RangeDescriptor, ReplicaType};
use tardigrade_kvserver::StoreConfig;
use tardigrade_kvserver::allocator::ReplicationSettings;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_storage::{Engine, Reader, Space, StoreSpec};

fn config(join: Vec<String>, zone: &str) -> NodeConfig {
    NodeConfig {
        testing_latency: None,
        store: StoreSpec::Memory,
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: None,
        join,
        locality: vec![
            ("region".into(), "test".into()),
            ("zone".into(), zone.into()),
        ],
        store_config: StoreConfig {
            raft_tick_interval: Duration::from_millis(50),
            lease_duration: Duration::from_secs(2),
            replication: ReplicationSettings {
                queue_interval: Duration::from_millis(200),
                time_until_store_dead: Duration::from_secs(2),
                ..ReplicationSettings::default()
            },
            ..StoreConfig::default()
        },
    }
}

async fn start(seed: Option<&str>, zone: &str) -> ClusterNode {
    let join = seed.map(|s| vec![s.to_string()]).unwrap_or_default();
    ClusterNode::start(config(join, zone)).await.expect("start")
}

async fn ready(n: &ClusterNode) {
    tokio::time::timeout(Duration::from_secs(30), n.wait_ready())
        .await
        .expect("node becomes ready");
}

/// The first range's descriptor as the node holding its lease sees it.
fn first_range(nodes: &[&ClusterNode]) -> Option<RangeDescriptor> {
    nodes
        .iter()
        .filter_map(|n| n.store()?.replica(1))
        .filter(|r| r.is_initialized())
        .max_by_key(|r| r.desc().generation)
        .map(|r| r.desc())
}

fn voter_nodes(d: &RangeDescriptor) -> Vec<u64> {
    let mut v: Vec<u64> = d
        .replicas
        .iter()
        .filter(|r| r.kind == ReplicaType::Voter)
        .map(|r| r.node_id)
        .collect();
    v.sort_unstable();
    v
}

async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

fn user_data(engine: &Engine) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan(Space::Mvcc, b"\x05", &[0xff; 8], false)
        .map(|kv| {
            let (k, v) = kv.expect("scan");
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn engine_of(n: &ClusterNode) -> Engine {
    n.store().expect("store").engine().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_range_upreplicates_and_moves_onto_new_nodes() {
    let n1 = start(None, "a").await;
    let seed = n1.local_addr().to_string();
    let n2 = start(Some(&seed), "b").await;
    let n3 = start(Some(&seed), "c").await;
    NodeClient::connect_lazy(&seed)
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    for n in [&n1, &n2, &n3] {
        ready(n).await;
    }
    let t = wait_for("three voters", Duration::from_secs(60), || {
        first_range(&[&n1, &n2, &n3]).is_some_and(|d| voter_nodes(&d) == vec![1, 2, 3])
    })
    .await;
    eprintln!("first range at 3 voters {t:?} after init");
    let db = n2.db().expect("db");
    for i in 0..50 {
        db.put(format!("user/{i:03}").as_bytes(), b"v")
            .await
            .expect("put");
    }

    // Nodes 4 and 5 join: the first range holds meta and system keys, so
    // with five nodes it wants five voters.
    let n4 = start(Some(&seed), "d").await;
    let n5 = start(Some(&seed), "e").await;
    ready(&n4).await;
    ready(&n5).await;
    let all = [&n1, &n2, &n3, &n4, &n5];
    let t = wait_for("five voters", Duration::from_secs(60), || {
        first_range(&all).is_some_and(|d| voter_nodes(&d) == vec![1, 2, 3, 4, 5])
    })
    .await;
    eprintln!("first range at 5 voters {t:?} after nodes 4 and 5 joined");
    db.put(b"user/last", b"x").await.expect("put");
    wait_for(
        "identical data on every replica",
        Duration::from_secs(20),
        || {
            let d1 = user_data(&engine_of(&n1));
            all.iter().all(|n| user_data(&engine_of(n)) == d1)
        },
    )
    .await;
    assert_eq!(user_data(&engine_of(&n5)).len(), 51);
    // Reads through a new node work (it is a full member now).
    let db5 = n5.db().expect("db");
    assert_eq!(
        db5.get(b"user/007").await.expect("get"),
        Some(b"v".to_vec())
    );
    for n in [n5, n4, n3, n2, n1] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_node_replica_is_replaced_and_range_stays_available() {
    let n1 = start(None, "a").await;
    let seed = n1.local_addr().to_string();
    let n2 = start(Some(&seed), "b").await;
    let n3 = start(Some(&seed), "c").await;
    NodeClient::connect_lazy(&seed)
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    for n in [&n1, &n2, &n3] {
        ready(n).await;
    }
    let n4 = start(Some(&seed), "d").await;
    ready(&n4).await;
    let mut nodes: Vec<Option<ClusterNode>> = vec![Some(n1), Some(n2), Some(n3), Some(n4)];
    // With four nodes the first range wants three voters (five capped to
    // the cluster size, and odd).
    wait_for("three voters", Duration::from_secs(60), || {
        let refs: Vec<&ClusterNode> = nodes.iter().flatten().collect();
        first_range(&refs).is_some_and(|d| voter_nodes(&d).len() == 3)
    })
    .await;
    let refs: Vec<&ClusterNode> = nodes.iter().flatten().collect();
    let desc = first_range(&refs).expect("desc");
    let db = refs[0].db().expect("db");
    db.put(b"user/before", b"1").await.expect("put");
    // Kill a voter that does not hold the lease (node 1 is the seed; any
    // voter other than the leaseholder will do).
    let lease_node = refs
        .iter()
        .filter_map(|n| n.store()?.replica(1))
        .map(|r| r.lease().replica.node_id)
        .max()
        .unwrap_or(0);
    let victim = voter_nodes(&desc)
        .into_iter()
        .find(|n| *n != lease_node && *n != 1)
        .expect("a victim");
    let idx = nodes
        .iter()
        .position(|n| n.as_ref().and_then(|n| n.node_id()) == Some(victim))
        .expect("victim index");
    let dead = nodes[idx].take().expect("victim node");
    let killed = Instant::now();
    dead.shutdown().await;
    let refs: Vec<&ClusterNode> = nodes.iter().flatten().collect();
    // Still available with two of three voters.
    let db = refs[0].db().expect("db");
    db.put(b"user/during", b"2")
        .await
        .expect("put while a voter is dead");
    let t = wait_for("dead voter replaced", Duration::from_secs(60), || {
        first_range(&refs).is_some_and(|d| {
            let v = voter_nodes(&d);
            v.len() == 3 && !v.contains(&victim) && d.replicas.len() == 3
        })
    })
    .await;
    eprintln!(
        "dead voter replaced {:?} after the kill ({t:?} of waiting)",
        killed.elapsed()
    );
    db.put(b"user/after", b"3").await.expect("put after");
    assert_eq!(
        db.get(b"user/before").await.expect("get"),
        Some(b"1".to_vec())
    );
    let desc = first_range(&refs).expect("desc");
    let holders: Vec<&ClusterNode> = refs
        .iter()
        .copied()
        .filter(|n| {
            n.node_id()
                .is_some_and(|id| voter_nodes(&desc).contains(&id))
        })
        .collect();
    wait_for("identical data", Duration::from_secs(20), || {
        let d0 = user_data(&engine_of(holders[0]));
        d0.len() == 3 && holders.iter().all(|n| user_data(&engine_of(n)) == d0)
    })
    .await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

/// Initialized replicas on `n` (those leading their range if `leaders`).
fn replica_count(n: &ClusterNode, leaders: bool) -> usize {
    n.store()
        .map(|s| {
            s.replicas()
                .iter()
                .filter(|r| r.is_initialized() && (!leaders || r.is_raft_leader()))
                .count()
        })
        .unwrap_or(0)
}

fn range_count(n: &ClusterNode) -> usize {
    replica_count(n, false)
}

/// (b) with many ranges: after splits, nodes 4 and 5 receive replicas by
/// range-count rebalancing (add first, then remove), every range keeps its
/// replication factor, and the meta records follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_nodes_receive_replicas_by_range_count() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let n1 = start(None, "a").await;
    let seed = n1.local_addr().to_string();
    let n2 = start(Some(&seed), "b").await;
    let n3 = start(Some(&seed), "c").await;
    NodeClient::connect_lazy(&seed)
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    for n in [&n1, &n2, &n3] {
        ready(n).await;
    }
    wait_for("three voters", Duration::from_secs(60), || {
        first_range(&[&n1, &n2, &n3]).is_some_and(|d| voter_nodes(&d) == vec![1, 2, 3])
    })
    .await;
    let db = n1.db().expect("db");
    for i in 0..8 {
        let key = format!("user/{i}");
        let mut attempts = 0;
        while let Err(e) = db.admin_split(key.as_bytes()).await {
            attempts += 1;
            assert!(attempts < 50, "split at {key}: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        db.put(format!("user/{i}/x").as_bytes(), b"v")
            .await
            .expect("put");
    }
    wait_for("nine ranges everywhere", Duration::from_secs(30), || {
        [&n1, &n2, &n3].iter().all(|n| range_count(n) == 9)
    })
    .await;

    let n4 = start(Some(&seed), "d").await;
    let n5 = start(Some(&seed), "e").await;
    ready(&n4).await;
    ready(&n5).await;
    let all = [&n1, &n2, &n3, &n4, &n5];
    // 9 ranges: the first with 5 voters, 8 with 3: 29 replicas, ~6 a store.
    // Leases (and Raft leadership) move too, so the stores that held them
    // (node 1 led every range after the splits) can give up replicas; a
    // replica removed before its meta record is rewritten must not stall
    // requests routed by that record (`RangeNotFound`).
    let t = wait_for(
        "replicas spread onto nodes 4 and 5",
        Duration::from_secs(90),
        || {
            let counts: Vec<usize> = all.iter().map(|n| range_count(n)).collect();
            counts[3] >= 4 && counts[4] >= 4
        },
    )
    .await;
    let counts: Vec<usize> = all.iter().map(|n| range_count(n)).collect();
    eprintln!("replica counts per node {counts:?}, {t:?} after nodes 4 and 5 joined");
    // Every range has its replication factor, and its meta2 record agrees.
    let leaders: Vec<_> = all
        .iter()
        .filter_map(|n| n.store())
        .flat_map(|s| s.replicas())
        .filter(|r| r.is_initialized() && r.is_raft_leader())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for r in &leaders {
        seen.insert(r.range_id);
    }
    assert_eq!(seen.len(), 9, "one leader per range");
    let mut ok = false;
    for _ in 0..100 {
        ok = true;
        for r in all
            .iter()
            .filter_map(|n| n.store())
            .flat_map(|s| s.replicas())
            .filter(|r| r.is_initialized() && r.is_raft_leader())
        {
            let d = r.desc();
            let want = if d.range_id == 1 { 5 } else { 3 };
            let meta = db
                .get(&tardigrade_encoding::keys::range_meta_key(&d.end_key))
                .await
                .unwrap_or_else(|e| {
                    for n in all {
                        if let Some(r) = n.store().and_then(|s| s.replica(1)) {
                            eprintln!(
                                "n{:?} r1 leader={} lease={:?} desc={:?} now={:?}",
                                n.node_id(),
                                r.is_raft_leader(),
                                r.lease(),
                                r.desc(),
                                n.store().map(|s| s.clock().now())
                            );
                        }
                    }
                    panic!("meta get: {e}")
                })
                .and_then(|b| RangeDescriptor::decode(&b).ok());
            if voter_nodes(&d).len() != want
                || d.replicas.len() != want
                || meta.as_ref() != Some(&d)
            {
                eprintln!("r{}: {d:?}\n   meta {meta:?}", d.range_id);
                ok = false;
            }
        }
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "replication factors and meta records converge");
    // Leadership, which leases follow, spreads onto the new nodes too.
    let t = wait_for("leaders spread", Duration::from_secs(30), || {
        let l: Vec<usize> = all.iter().map(|n| replica_count(n, true)).collect();
        l[3] + l[4] >= 1 && l.iter().all(|c| *c <= 4)
    })
    .await;
    let l: Vec<usize> = all.iter().map(|n| replica_count(n, true)).collect();
    eprintln!("ranges led per node {l:?} ({t:?} after the meta records converged)");
    for i in 0..8 {
        assert_eq!(
            db.get(format!("user/{i}/x").as_bytes()).await.expect("get"),
            Some(b"v".to_vec())
        );
    }
    for n in [n5, n4, n3, n2, n1] {
        n.shutdown().await;
    }
}
