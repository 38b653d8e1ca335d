//! Transaction metadata that MVCC stores in intents and that `kvpb` reuses.

use tardigrade_hlc::Timestamp;

/// A transaction's unique id (a random UUID).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TxnId(pub [u8; 16]);

impl std::fmt::Debug for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first 4 bytes are enough to tell transactions apart in logs.
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The part of a transaction that every intent carries.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnMeta {
    pub id: TxnId,
    /// The key the transaction record is anchored at (its first written key).
    pub key: Vec<u8>,
    /// Incremented on every restart; intents of older epochs are ignored.
    pub epoch: u32,
    /// The timestamp the transaction currently writes at (may be pushed).
    pub write_timestamp: Timestamp,
    /// The timestamp the transaction started at; bounds how far it can be refreshed.
    pub min_timestamp: Timestamp,
    /// Higher priority wins pushes.
    pub priority: i32,
    /// The sequence number of the request that wrote (or reads).
    pub sequence: i32,
}
