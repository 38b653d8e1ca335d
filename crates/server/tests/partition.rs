//! A network partition of real nodes in one process, through each node's
//! fault injector (`ClusterNode::start_with_faults`), cutting by peer
//! address as the nemesis suite's partition file does: the isolated
//! leaseholder loses its lease, the majority serves, the isolated node's
//! clients get an error within seconds, and after healing it serves again.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tardigrade_hlc::SystemClock;
use tardigrade_rpc::{FaultInjector, NodeClient};
use tardigrade_server::node::ClusterNode;

/// Retries `put` through `node` until it succeeds or `within` passes;
/// returns how long it took.
async fn put_within(node: &ClusterNode, key: &[u8], within: Duration) -> Duration {
    let db = node.db().expect("db");
    let started = Instant::now();
    loop {
        match db.put(key, b"v").await {
            Ok(()) => return started.elapsed(),
            Err(e) if started.elapsed() > within => panic!("put not served in {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leaseholder_loses_its_lease_and_the_majority_serves_until_healed() {
    let faults: Vec<FaultInjector> = (0..3).map(FaultInjector::new).collect();
    let start = |join: Vec<String>, f: &FaultInjector| {
        ClusterNode::start_with_faults(common::config(join), Arc::new(SystemClock), Some(f.clone()))
    };
    let n1 = start(vec![], &faults[0]).await.expect("start n1");
    let seed = n1.local_addr().to_string();
    let n2 = start(vec![seed.clone()], &faults[1])
        .await
        .expect("start n2");
    let n3 = start(vec![seed.clone()], &faults[2])
        .await
        .expect("start n3");
    common::init_and_wait_ready(&seed, &[&n1, &n2, &n3], Duration::from_secs(20)).await;
    let nodes = [n1, n2, n3];
    // Every range on all three nodes, so that two of them are a quorum.
    common::wait_fully_replicated(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(60)).await;
    put_within(&nodes[0], b"k-before", Duration::from_secs(10)).await;
    let holder_of_k = |n: &ClusterNode| {
        let store = n.store().expect("store");
        store
            .replica_for_key(b"k-before")
            .map(|r| r.lease().replica.node_id)
    };
    let holder = holder_of_k(&nodes[0]).expect("k's range has a replica on n1");
    let victim = nodes
        .iter()
        .position(|n| n.node_id() == Some(holder))
        .expect("the leaseholder is one of the nodes");
    let addr = |i: usize| nodes[i].local_addr().to_string();
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();

    // The partition: each side cannot send to the other.
    faults[victim].set_unreachable_addrs(others.iter().map(|i| addr(*i)));
    for &i in &others {
        faults[i].set_unreachable_addrs([addr(victim)]);
    }
    let failover = put_within(&nodes[others[0]], b"k-during", Duration::from_secs(15)).await;
    eprintln!("the majority served a write {failover:?} after the partition");
    assert_ne!(
        holder_of_k(&nodes[others[0]]),
        Some(holder),
        "the lease moved off the isolated node"
    );

    // The isolated side cannot serve it, and says so within seconds.
    let started = Instant::now();
    let err = nodes[victim]
        .db()
        .expect("db")
        .get(b"k-during")
        .await
        .expect_err("no quorum on the isolated node");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    assert!(err.to_string().contains("no quorum"), "{err}");

    for f in &faults {
        f.heal();
    }
    let db = nodes[victim].db().expect("db");
    let healed = Instant::now();
    loop {
        match db.get(b"k-during").await {
            Ok(v) => {
                assert_eq!(v, Some(b"v".to_vec()));
                break;
            }
            Err(e) => assert!(
                healed.elapsed() < Duration::from_secs(15),
                "not served after healing: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in nodes.into_iter().rev() {
        n.shutdown().await;
    }
}

/// A node cut off while a range splits, and while the left side's log is
/// truncated past the split, gets two snapshots when the partition heals:
/// one of the left range (narrower than its replica) and one of the new
/// right range (inside its left replica's old span). The right one must
/// wait until the left one is in; installed first, it would be cleared by
/// the left snapshot's old span, leaving a right replica without data (and
/// a store that no longer opens). Every replica of both ranges must end
/// identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_a_split_ends_with_both_sides_intact() {
    let faults: Vec<FaultInjector> = (0..3).map(FaultInjector::new).collect();
    let start = |join: Vec<String>, f: &FaultInjector| {
        let mut config = common::config(join);
        config.store_config.raft_log_max_entries = 8;
        ClusterNode::start_with_faults(config, Arc::new(SystemClock), Some(f.clone()))
    };
    let n1 = start(vec![], &faults[0]).await.expect("start n1");
    let seed = n1.local_addr().to_string();
    let n2 = start(vec![seed.clone()], &faults[1]).await.expect("n2");
    let n3 = start(vec![seed.clone()], &faults[2]).await.expect("n3");
    common::init_and_wait_ready(&seed, &[&n1, &n2, &n3], Duration::from_secs(20)).await;
    let nodes = [n1, n2, n3];
    common::wait_fully_replicated(&nodes.iter().collect::<Vec<_>>(), Duration::from_secs(60)).await;
    let db = nodes[0].db().expect("db");
    put_within(&nodes[0], b"split/a0", Duration::from_secs(10)).await;

    let addr = |i: usize| nodes[i].local_addr().to_string();
    faults[2].set_unreachable_addrs([addr(0), addr(1)]);
    faults[0].set_unreachable_addrs([addr(2)]);
    faults[1].set_unreachable_addrs([addr(2)]);
    let (left, right) = db.admin_split(b"split/m").await.expect("split");
    for i in 0..40 {
        db.put(format!("split/a{i:02}").as_bytes(), b"left")
            .await
            .expect("put left");
        db.put(format!("split/z{i:02}").as_bytes(), b"right")
            .await
            .expect("put right");
    }
    for f in &faults {
        f.heal();
    }

    let isolated = nodes[2].store().expect("n3's store");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let both = [left.range_id, right.range_id].iter().all(|id| {
            isolated.replica(*id).is_some_and(|r| {
                r.is_initialized()
                    && r.end_key()
                        == if *id == left.range_id {
                            left.end_key.clone()
                        } else {
                            right.end_key.clone()
                        }
            })
        });
        if both {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "n3 never caught up with the split"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The checker (on the leaseholder) compares every replica of a range.
    let deadline = Instant::now() + Duration::from_secs(30);
    'check: loop {
        let mut checked = Vec::new();
        for i in 0..3 {
            let client = NodeClient::connect_lazy(&addr(i)).expect("client");
            if let Ok((_, ranges)) = client.check_consistency().await {
                checked.extend(
                    ranges
                        .into_iter()
                        .filter(|r| r.range_id == left.range_id || r.range_id == right.range_id),
                );
            }
        }
        let clean = |id: u64| {
            checked.iter().any(|r| {
                r.range_id == id
                    && r.replicas.len() == 3
                    && r.replicas.iter().all(|x| !x.diverged && x.error.is_empty())
            })
        };
        if clean(left.range_id) && clean(right.range_id) {
            break 'check;
        }
        assert!(
            Instant::now() < deadline,
            "replicas differ after healing: {checked:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for n in nodes.into_iter().rev() {
        n.shutdown().await;
    }
}
