//! The kv workload: random point reads and writes.

use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use tardigrade_kv::Db;
use tardigrade_kvpb::KvError;

pub const KV_PREFIX: &[u8] = b"workload/kv/";

/// `workload/kv/` followed by `n` as 8 big-endian bytes, written into `buf`.
pub fn kv_key(buf: &mut Vec<u8>, n: u64) {
    buf.clear();
    buf.extend_from_slice(KV_PREFIX);
    buf.extend_from_slice(&n.to_be_bytes());
}

pub struct KvWorker {
    db: Db,
    read_percent: u8,
    max_key: u64,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl KvWorker {
    pub fn new(db: Db, read_percent: u8, max_key: u64, value_size: usize) -> KvWorker {
        KvWorker {
            db,
            read_percent,
            max_key,
            key: Vec::with_capacity(KV_PREFIX.len() + 8),
            value: vec![0; value_size],
        }
    }

    pub async fn op(&mut self, rng: &mut StdRng) -> Result<(), KvError> {
        kv_key(&mut self.key, rng.random_range(0..self.max_key));
        if rng.random_range(0..100u8) < self.read_percent {
            self.db.get(&self.key).await?;
        } else {
            rng.fill_bytes(&mut self.value);
            self.db.put(&self.key, &self.value).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefix_plus_eight_bytes_in_numeric_order() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        kv_key(&mut a, 255);
        kv_key(&mut b, 256);
        assert_eq!(a.len(), KV_PREFIX.len() + 8);
        assert!(a.starts_with(KV_PREFIX));
        assert_eq!(&a[KV_PREFIX.len()..], &[0, 0, 0, 0, 0, 0, 0, 255]);
        assert!(a < b);
    }
}
