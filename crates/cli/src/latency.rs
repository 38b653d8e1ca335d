//! Simulated distance between regions: the `--testing-latency` flag of
//! `tardigrade start`, and the latencies of `tardigrade demo --global`.
//!
//! The flag is a comma-separated list of `REGION:REGION=DELAY`: the one-way
//! delay between two regions (the `region` tier of `--locality`), the same
//! both ways. `us-east1:us-east1=1ms` sets the delay between two nodes of one
//! region; pairs not named get none. Delays take the units of `--duration`
//! (`33ms`, `500us`, `1s`), at most [`MAX_DELAY`]. For example, the demo's:
//!
//! ```text
//! --testing-latency=us-east1:us-west1=33ms,us-east1:europe-west1=32ms,us-west1:europe-west1=73ms
//! ```
//!
//! Each node delays what it sends to another node (Raft messages, KV
//! batches and their replies, heartbeats) by the delay between its region and
//! the peer's, which it looks up in its directory of nodes; give every node
//! of the cluster the same map. Testing and demos only.

use std::time::Duration;

use tardigrade_rpc::LatencyMap;

use crate::duration::parse_duration;

/// The largest one-way delay the flag accepts (a larger one is a typo).
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The regions and zones of `demo --global`, as CockroachDB's demo has them.
pub const GLOBAL_REGIONS: [(&str, [&str; 3]); 3] = [
    ("us-east1", ["b", "c", "d"]),
    ("us-west1", ["a", "b", "c"]),
    ("europe-west1", ["b", "c", "d"]),
];

/// The one-way delays of `demo --global`: half of the round trips
/// us-east1↔us-west1 66 ms, us-east1↔europe-west1 64 ms,
/// us-west1↔europe-west1 146 ms; none within a region.
pub fn global_latency() -> LatencyMap {
    let mut m = LatencyMap::new();
    m.set("us-east1", "us-west1", Duration::from_millis(33));
    m.set("us-east1", "europe-west1", Duration::from_millis(32));
    m.set("us-west1", "europe-west1", Duration::from_millis(73));
    m
}

/// Parses the `--testing-latency` flag (see the module doc).
pub fn parse_latency_map(s: &str) -> Result<LatencyMap, String> {
    const FORM: &str = "expected REGION:REGION=DELAY[,…], e.g. us-east1:us-west1=33ms";
    if s.trim().is_empty() {
        return Err(format!("empty latency map ({FORM})"));
    }
    let mut map = LatencyMap::new();
    for entry in s.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(format!("empty entry in {s:?} ({FORM})"));
        }
        let (pair, delay) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} has no delay ({FORM})"))?;
        let (a, b) = pair
            .split_once(':')
            .map(|(a, b)| (a.trim(), b.trim()))
            .ok_or_else(|| format!("{pair:?} is not a pair of regions REGION:REGION ({FORM})"))?;
        for region in [a, b] {
            if region.is_empty() || region.contains([':', '=', ' ', '\t']) {
                return Err(format!(
                    "{region:?} in {entry:?} is not a region name ({FORM})"
                ));
            }
        }
        let delay = parse_duration(delay).map_err(|e| format!("{entry:?}: {e}"))?;
        if delay > MAX_DELAY {
            return Err(format!(
                "{entry:?}: a one-way delay of more than {}s",
                MAX_DELAY.as_secs()
            ));
        }
        if let Some(old) = map.get(a, b) {
            return Err(format!(
                "the delay between {a} and {b} is given twice ({old:?} and {delay:?})"
            ));
        }
        map.set(a, b, delay);
    }
    Ok(map)
}

/// Checks that a node at `locality` can use `map`: it must have a region the
/// map names (otherwise nothing it sends would be delayed, which is surely
/// not what was meant).
pub fn check_node_region(map: &LatencyMap, locality: &[(String, String)]) -> Result<(), String> {
    let regions = map.regions();
    match tardigrade_rpc::latency::region_of(locality) {
        None => Err(format!(
            "--testing-latency needs this node's --locality to have a region tier (region=…); the map names {}",
            regions.join(", ")
        )),
        Some(r) if !regions.iter().any(|m| m == r) => Err(format!(
            "--testing-latency names no delay for this node's region {r:?}; it names {}",
            regions.join(", ")
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(region: &str) -> Vec<(String, String)> {
        vec![
            ("region".into(), region.into()),
            ("zone".into(), "b".into()),
        ]
    }

    #[test]
    fn the_flag_maps_region_pairs_to_one_way_delays() {
        let m = parse_latency_map(
            "us-east1:us-west1=33ms, us-east1:europe-west1=32ms,us-west1:europe-west1=73ms",
        )
        .expect("parses");
        assert_eq!(m, global_latency());
        assert_eq!(
            m.one_way(&loc("europe-west1"), &loc("us-west1")),
            Duration::from_millis(73)
        );
        assert_eq!(
            m.one_way(&loc("us-west1"), &loc("us-east1")),
            Duration::from_millis(33)
        );
        assert_eq!(
            m.one_way(&loc("us-west1"), &loc("us-west1")),
            Duration::ZERO
        );
        // What it prints parses back to the same map.
        assert_eq!(parse_latency_map(&m.to_string()), Ok(m));

        let m = parse_latency_map("a:a=500us,a:b=1s").expect("parses");
        assert_eq!(m.get("a", "a"), Some(Duration::from_micros(500)));
        assert_eq!(m.get("b", "a"), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_latency_map("a:b=0ms").expect("zero").get("a", "b"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let err = |s: &str| match parse_latency_map(s) {
            Ok(m) => panic!("{s:?} parsed as {m:?}"),
            Err(e) => e,
        };
        assert!(err("").contains("empty latency map"));
        assert!(err("a:b=1ms,").contains("empty entry"));
        assert!(err("a:b").contains("has no delay"));
        assert!(err("a=1ms").contains("not a pair of regions"));
        assert!(err("a:=1ms").contains("\"\" in \"a:=1ms\" is not a region name"));
        assert!(err("a:b:c=1ms").contains("is not a region name"));
        assert!(err("a:b=33").contains("missing unit"));
        assert!(err("a:b=fast").contains("expected a whole number"));
        assert!(err("a:b=-1ms").contains("expected a whole number"));
        assert!(err("a:b=11s").contains("more than 10s"));
        assert!(err("a:b=1ms,b:a=2ms").contains("given twice"));
    }

    #[test]
    fn a_node_must_be_in_a_region_the_map_names() {
        let m = global_latency();
        assert_eq!(check_node_region(&m, &loc("us-east1")), Ok(()));
        let e = check_node_region(&m, &loc("asia-east1")).expect_err("unknown region");
        assert!(
            e.contains("no delay for this node's region \"asia-east1\""),
            "{e}"
        );
        assert!(e.contains("europe-west1, us-east1, us-west1"), "{e}");
        let e = check_node_region(&m, &[]).expect_err("no region");
        assert!(e.contains("region tier"), "{e}");
    }
}
