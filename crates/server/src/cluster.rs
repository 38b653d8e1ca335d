//! Cluster membership on top of KV: the store's identity, the bootstrap of a
//! new cluster's first range and metadata, node descriptors and liveness.
//!
//! Choice (issue 3): no gossip network. Node descriptors and liveness
//! records are ordinary KV values in the system span (`/System/node-desc/…`,
//! `/System/liveness-…`), written by each node and read by everyone through
//! `DistSender`. A node refreshes its view every couple of seconds, which is
//! all the allocator and the status pages need, and it reuses the
//! replication and transactions that KV already provides. What gossip gives
//! CockroachDB beyond that — the first range's descriptor before any KV
//! works — comes from the join handshake and from any node that holds a
//! replica of the first range.

use tardigrade_encoding::keys;
use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::{NodeId, RangeDescriptor, StoreId};
use tardigrade_storage::mvcc::{self};
use tardigrade_storage::{Batch, Engine, EngineError, MvccStats, Reader, Space};

/// Store-local key (never replicated) holding the store's identity.
pub const STORE_IDENT_KEY: &[u8] = b"\x01sident";
/// Prefix of node descriptor records.
pub const NODE_DESC_PREFIX: &[u8] = b"\x04node-desc/";

/// Who a store belongs to. Written once, when the store joins a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreIdent {
    pub cluster_id: [u8; 16],
    pub node_id: NodeId,
    pub store_id: StoreId,
}

impl StoreIdent {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(33);
        b.push(1);
        b.extend_from_slice(&self.cluster_id);
        b.extend_from_slice(&self.node_id.to_be_bytes());
        b.extend_from_slice(&self.store_id.to_be_bytes());
        b
    }

    pub fn decode(buf: &[u8]) -> Option<StoreIdent> {
        if buf.len() != 33 || buf[0] != 1 {
            return None;
        }
        let mut cluster_id = [0u8; 16];
        cluster_id.copy_from_slice(&buf[1..17]);
        let node_id = u64::from_be_bytes(buf[17..25].try_into().ok()?);
        let store_id = u64::from_be_bytes(buf[25..33].try_into().ok()?);
        Some(StoreIdent {
            cluster_id,
            node_id,
            store_id,
        })
    }

    pub fn cluster_id_string(&self) -> String {
        tardigrade_kvpb::TxnId(self.cluster_id).to_string()
    }
}

/// Reads the store's identity; `Ok(None)` for a store that has not joined a
/// cluster yet, an error for an identity that cannot be read.
pub fn load_ident(engine: &Engine) -> Result<Option<StoreIdent>, EngineError> {
    match engine.get(Space::Raw, STORE_IDENT_KEY)? {
        None => Ok(None),
        Some(raw) => StoreIdent::decode(&raw).map(Some).ok_or_else(|| {
            EngineError::corrupt_record(engine, STORE_IDENT_KEY, "unreadable store identity")
        }),
    }
}

/// What the cluster knows about a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeDescriptor {
    pub node_id: NodeId,
    /// Address of the node's RPC listener.
    pub address: String,
    /// `region=…,zone=…` tiers, most significant first.
    pub locality: Vec<(String, String)>,
    pub build_version: String,
}

impl NodeDescriptor {
    pub fn key(node_id: NodeId) -> Vec<u8> {
        let mut k = NODE_DESC_PREFIX.to_vec();
        k.extend_from_slice(&node_id.to_be_bytes());
        k
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(&self.node_id.to_be_bytes());
        put_str(&mut b, &self.address);
        b.extend_from_slice(&(self.locality.len() as u32).to_be_bytes());
        for (k, v) in &self.locality {
            put_str(&mut b, k);
            put_str(&mut b, v);
        }
        put_str(&mut b, &self.build_version);
        b
    }

    pub fn decode(buf: &[u8]) -> Option<NodeDescriptor> {
        let mut r = buf;
        if take(&mut r, 1)? != [1] {
            return None;
        }
        let node_id = u64::from_be_bytes(take(&mut r, 8)?.try_into().ok()?);
        let address = get_str(&mut r)?;
        let n = u32::from_be_bytes(take(&mut r, 4)?.try_into().ok()?) as usize;
        let mut locality = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            locality.push((get_str(&mut r)?, get_str(&mut r)?));
        }
        let build_version = get_str(&mut r)?;
        r.is_empty().then_some(NodeDescriptor {
            node_id,
            address,
            locality,
            build_version,
        })
    }

    pub fn locality_string(&self) -> String {
        self.locality
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Prefix of store capacity records (`/System/store-desc/<store id>`).
pub const STORE_DESC_PREFIX: &[u8] = b"\x04store-desc/";

/// A store's published figures, for the allocators of every node:
/// rewritten by its node with each liveness heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCapacity {
    pub node_id: NodeId,
    pub store_id: StoreId,
    pub range_count: u64,
    pub lease_count: u64,
}

impl StoreCapacity {
    pub fn key(store_id: StoreId) -> Vec<u8> {
        let mut k = STORE_DESC_PREFIX.to_vec();
        k.extend_from_slice(&store_id.to_be_bytes());
        k
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![1u8];
        for v in [
            self.node_id,
            self.store_id,
            self.range_count,
            self.lease_count,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b
    }

    pub fn decode(buf: &[u8]) -> Option<StoreCapacity> {
        if buf.len() != 33 || buf[0] != 1 {
            return None;
        }
        let at = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(
                buf.get(1 + 8 * i..9 + 8 * i)?.try_into().ok()?,
            ))
        };
        Some(StoreCapacity {
            node_id: at(0)?,
            store_id: at(1)?,
            range_count: at(2)?,
            lease_count: at(3)?,
        })
    }
}

/// Parses `--locality=region=us,zone=a`.
pub fn parse_locality(s: &str) -> Result<Vec<(String, String)>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|tier| match tier.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("locality tier {tier:?} is not KEY=VALUE")),
        })
        .collect()
}

/// A node's liveness: it is live while `expiration` is in the future.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    pub node_id: NodeId,
    /// Incremented when the node restarts or its record had expired.
    pub epoch: u64,
    pub expiration: Timestamp,
}

impl Liveness {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![1u8];
        b.extend_from_slice(&self.node_id.to_be_bytes());
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&self.expiration.wall.to_be_bytes());
        b.extend_from_slice(&self.expiration.logical.to_be_bytes());
        b
    }

    pub fn decode(buf: &[u8]) -> Option<Liveness> {
        if buf.len() != 29 || buf[0] != 1 {
            return None;
        }
        Some(Liveness {
            node_id: u64::from_be_bytes(buf[1..9].try_into().ok()?),
            epoch: u64::from_be_bytes(buf[9..17].try_into().ok()?),
            expiration: Timestamp::new(
                i64::from_be_bytes(buf[17..25].try_into().ok()?),
                i32::from_be_bytes(buf[25..29].try_into().ok()?),
            ),
        })
    }

    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expiration
    }
}

/// Writes what a brand-new cluster needs in its first range as MVCC values
/// at `ts`: the meta records addressing the first range (meta1 at the end of
/// meta1 space, meta2 at the end of the key space), the range descriptor,
/// the id generators, and the first node's descriptor; plus the store
/// identity (store-local). The Raft state of the range is the store's job.
pub fn write_bootstrap_data(
    b: &mut Batch,
    ident: &StoreIdent,
    first_range: &RangeDescriptor,
    node: &NodeDescriptor,
    ts: Timestamp,
) -> Result<MvccStats, mvcc::MvccError> {
    let mut stats = MvccStats::default();
    let desc = first_range.encode();
    let counter = |v: u64| (v as i64).to_be_bytes().to_vec();
    let puts: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (keys::meta1_key(keys::MAX_KEY), desc.clone()),
        (keys::range_meta_key(&first_range.end_key), desc.clone()),
        (keys::range_descriptor_key(&first_range.start_key), desc),
        (keys::NODE_ID_GENERATOR.to_vec(), counter(ident.node_id)),
        (keys::STORE_ID_GENERATOR.to_vec(), counter(ident.store_id)),
        (
            keys::RANGE_ID_GENERATOR.to_vec(),
            counter(first_range.range_id),
        ),
        (NodeDescriptor::key(node.node_id), node.encode()),
    ];
    for (k, v) in puts {
        mvcc::mvcc_put(b, &mut stats, &k, ts, Some(&v), None)?;
    }
    b.put(Space::Raw, STORE_IDENT_KEY, &ident.encode());
    Ok(stats)
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u32).to_be_bytes());
    b.extend_from_slice(s.as_bytes());
}

fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if r.len() < n {
        return None;
    }
    let (head, rest) = r.split_at(n);
    *r = rest;
    Some(head)
}

fn get_str(r: &mut &[u8]) -> Option<String> {
    let n = u32::from_be_bytes(take(r, 4)?.try_into().ok()?) as usize;
    String::from_utf8(take(r, n)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_store_identity_is_an_error_naming_the_store_and_key() {
        let eng = Engine::open(&tardigrade_storage::StoreSpec::Memory).expect("engine");
        assert_eq!(load_ident(&eng).expect("no identity yet"), None);
        let mut b = eng.batch();
        b.put(Space::Raw, STORE_IDENT_KEY, b"\x01garbage");
        eng.commit(b.writes(), false).expect("commit");
        let msg = load_ident(&eng).expect_err("corrupt").to_string();
        assert!(msg.contains(&eng.path().display().to_string()), "{msg}");
        assert!(msg.contains("sident"), "{msg}");
    }

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let ident = StoreIdent {
            cluster_id: [9; 16],
            node_id: 3,
            store_id: 4,
        };
        assert_eq!(StoreIdent::decode(&ident.encode()), Some(ident));
        assert_eq!(StoreIdent::decode(b"junk"), None);
        let node = NodeDescriptor {
            node_id: 2,
            address: "127.0.0.1:26258".into(),
            locality: parse_locality("region=eu,zone=b").expect("locality"),
            build_version: "0.1.0".into(),
        };
        let enc = node.encode();
        assert_eq!(NodeDescriptor::decode(&enc), Some(node.clone()));
        for cut in 0..enc.len() {
            assert_eq!(NodeDescriptor::decode(&enc[..cut]), None);
        }
        assert_eq!(node.locality_string(), "region=eu,zone=b");
        let l = Liveness {
            node_id: 2,
            epoch: 5,
            expiration: Timestamp::new(100, 1),
        };
        assert_eq!(Liveness::decode(&l.encode()), Some(l));
        let c = StoreCapacity {
            node_id: 2,
            store_id: 3,
            range_count: 40,
            lease_count: 12,
        };
        assert_eq!(StoreCapacity::decode(&c.encode()), Some(c));
        assert_eq!(StoreCapacity::decode(&c.encode()[..20]), None);
        assert!(l.is_live(Timestamp::new(99, 0)));
        assert!(!l.is_live(Timestamp::new(100, 1)));
    }

    #[test]
    fn locality_flags_are_validated() {
        assert_eq!(parse_locality("").expect("empty"), vec![]);
        assert!(parse_locality("region").is_err());
        assert!(parse_locality("region=,zone=a").is_err());
    }
}
