//! Helpers shared by the tests that start clusters of nodes in one process.

use std::time::Duration;

use tardigrade_kvserver::StoreConfig;
use tardigrade_rpc::NodeClient;
use tardigrade_server::node::{ClusterNode, NodeConfig};
use tardigrade_storage::StoreSpec;

/// A node in memory on a free loopback port, joining `join`, with 50 ms
/// Raft ticks.
pub fn config(join: Vec<String>) -> NodeConfig {
    NodeConfig {
        testing_latency: None,
        store: StoreSpec::Memory,
        listen_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: None,
        join,
        locality: Vec::new(),
        store_config: StoreConfig {
            raft_tick_interval: Duration::from_millis(50),
            ..StoreConfig::default()
        },
    }
}

/// `init` through the node at `seed`, then waits (at most `within` each)
/// until every node of `nodes` is ready.
pub async fn init_and_wait_ready(seed: &str, nodes: &[&ClusterNode], within: Duration) {
    NodeClient::connect_lazy(seed)
        .expect("client")
        .bootstrap()
        .await
        .expect("init");
    for n in nodes {
        tokio::time::timeout(within, n.wait_ready())
            .await
            .expect("node becomes ready");
    }
}

/// Waits (at most `within`) until every range the first node knows has a
/// replica on each of `nodes`: from then on any majority of them is a
/// quorum of every range, which a test must know before it takes a node
/// away (a range caught at two replicas, one on the lost node, has none).
#[allow(dead_code)] // not every test binary takes nodes away
pub async fn wait_fully_replicated(nodes: &[&ClusterNode], within: Duration) {
    let replicated = async {
        loop {
            let ranges = nodes[0].store().map(|s| s.replicas()).unwrap_or_default();
            let all = !ranges.is_empty()
                && ranges.iter().all(|r| {
                    let id = r.desc().range_id;
                    r.desc().replicas.len() == nodes.len()
                        && nodes
                            .iter()
                            .all(|n| n.store().is_some_and(|s| s.replica(id).is_some()))
                });
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(within, replicated)
        .await
        .expect("every range replicated to every node");
}
