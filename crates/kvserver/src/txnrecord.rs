//! The stored form of a transaction record.
//!
//! Records live under `keys::transaction_key(anchor, id)` in the raw
//! (unversioned) space of the range holding the anchor key. The format is a
//! version byte followed by fixed-order fields; decoding is checked and never
//! panics on garbage.

use tardigrade_hlc::Timestamp;
use tardigrade_kvpb::codec::{ByteReader, DecodeError, put_bytes, put_ts};
use tardigrade_kvpb::{Span, Transaction, TransactionStatus, TxnId, TxnMeta};

const FORMAT: u8 = 1;

pub fn record_key(meta: &TxnMeta) -> Vec<u8> {
    tardigrade_encoding::keys::transaction_key(&meta.key, meta.id.0)
}

pub fn encode(txn: &Transaction) -> Vec<u8> {
    let mut b = Vec::with_capacity(96 + txn.meta.key.len());
    b.push(FORMAT);
    b.extend_from_slice(&txn.meta.id.0);
    put_bytes(&mut b, &txn.meta.key);
    b.extend_from_slice(&txn.meta.epoch.to_be_bytes());
    put_ts(&mut b, txn.meta.write_timestamp);
    put_ts(&mut b, txn.meta.min_timestamp);
    b.extend_from_slice(&txn.meta.priority.to_be_bytes());
    b.extend_from_slice(&txn.meta.sequence.to_be_bytes());
    b.push(match txn.status {
        TransactionStatus::Pending => 0,
        TransactionStatus::Staging => 1,
        TransactionStatus::Committed => 2,
        TransactionStatus::Aborted => 3,
    });
    put_ts(&mut b, txn.read_timestamp);
    put_ts(&mut b, txn.last_heartbeat);
    b.extend_from_slice(&(txn.lock_spans.len() as u32).to_be_bytes());
    for s in &txn.lock_spans {
        put_bytes(&mut b, &s.key);
        put_bytes(&mut b, &s.end_key);
    }
    // Appended later: records written before it end here (none ignored).
    b.extend_from_slice(&(txn.ignored_seqs.len() as u32).to_be_bytes());
    for (lo, hi) in &txn.ignored_seqs {
        b.extend_from_slice(&lo.to_be_bytes());
        b.extend_from_slice(&hi.to_be_bytes());
    }
    b
}

pub fn decode(buf: &[u8]) -> Result<Transaction, String> {
    decode_checked(buf).map_err(|e| format!("transaction record: {e}"))
}

fn decode_checked(buf: &[u8]) -> Result<Transaction, DecodeError> {
    let mut r = ByteReader::new(buf);
    if r.u8()? != FORMAT {
        return Err(DecodeError("unknown transaction record format"));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(r.take(16)?);
    let key = r.bytes()?;
    let epoch = r.u32()?;
    let write_timestamp = r.ts()?;
    let min_timestamp = r.ts()?;
    let priority = r.u32()? as i32;
    let sequence = r.u32()? as i32;
    let status = match r.u8()? {
        0 => TransactionStatus::Pending,
        1 => TransactionStatus::Staging,
        2 => TransactionStatus::Committed,
        3 => TransactionStatus::Aborted,
        _ => return Err(DecodeError("bad transaction status")),
    };
    let read_timestamp = r.ts()?;
    let last_heartbeat = r.ts()?;
    let n = r.u32()? as usize;
    let mut lock_spans = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let k = r.bytes()?;
        let e = r.bytes()?;
        lock_spans.push(Span::new(k, e));
    }
    // Sequence numbers rolled back by savepoints (absent from records
    // written before they were stored): whoever resolves the intents of a
    // committed transaction from its record must drop those writes.
    let mut ignored_seqs = Vec::new();
    if r.done().is_err() {
        let n = r.u32()? as usize;
        ignored_seqs.reserve(n.min(1024));
        for _ in 0..n {
            let lo = r.u32()? as i32;
            let hi = r.u32()? as i32;
            ignored_seqs.push((lo, hi));
        }
    }
    Ok(Transaction {
        meta: TxnMeta {
            id: TxnId(id),
            key,
            epoch,
            write_timestamp,
            min_timestamp,
            priority,
            sequence,
        },
        name: String::new(),
        status,
        read_timestamp,
        global_uncertainty_limit: Timestamp::ZERO,
        last_heartbeat,
        lock_spans,
        ignored_seqs,
        // Not stored: only the coordinator and its requests use them.
        observed_timestamps: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let txn = Transaction {
            meta: TxnMeta {
                id: TxnId([7; 16]),
                key: b"anchor".to_vec(),
                epoch: 2,
                write_timestamp: Timestamp::new(100, 3),
                min_timestamp: Timestamp::new(90, 0),
                priority: -5,
                sequence: 12,
            },
            status: TransactionStatus::Committed,
            read_timestamp: Timestamp::new(95, 1),
            last_heartbeat: Timestamp::new(99, 0),
            lock_spans: vec![
                Span::point(b"a".to_vec()),
                Span::new(b"b".to_vec(), b"c".to_vec()),
            ],
            ignored_seqs: vec![(2, 3), (7, 7)],
            ..Default::default()
        };
        let enc = encode(&txn);
        assert_eq!(decode(&enc), Ok(txn.clone()));
        // A record written before savepoints were stored ends after its lock
        // spans: it reads back with none ignored. Every other cut is an error.
        let old_format_len = enc.len() - 4 - 2 * 8;
        for cut in 0..enc.len() {
            let decoded = decode(&enc[..cut]);
            if cut == old_format_len {
                let mut old = txn.clone();
                old.ignored_seqs.clear();
                assert_eq!(decoded, Ok(old));
            } else {
                assert!(decoded.is_err(), "cut at {cut}");
            }
        }
        assert!(decode(&[9, 9, 9]).is_err());
    }
}
