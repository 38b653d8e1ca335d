//! The store's view of the span configs ([`tardigrade_kvpb::zone`]): which
//! zone configuration applies to each range, and where ranges must be split
//! so that no range straddles two configs.
//!
//! The SQL layer writes one record per table (and per index with a zone of
//! its own) under `SPAN_CONFIG_PREFIX`, plus `RANGE default`'s record. A
//! task of each store ([`watch`]) re-reads them every split-queue interval
//! ([`refresh`], one small scan of the system range) and installs them in
//! the store — on its own, so that a queue busy with a slow change does not
//! leave the others acting on old configs; the split, replicate
//! and GC queues then look up a range's config with
//! [`SpanConfigSet::config_for`]. Records are read outside any transaction:
//! a queue acting on a config one pass old is harmless, as the next pass
//! corrects it.
//!
//! Built in, below everything the SQL layer sets: `RANGE default` from the
//! store's [`ReplicationSettings`] and `range_max_bytes`, and `RANGE meta` /
//! `RANGE system` (the meta and system spans) with
//! `num_replicas_system` replicas and one hour of GC history.

use std::time::Duration;

use tardigrade_encoding::keys;
use tardigrade_kvpb::zone::{SpanConfig, ZoneConfig};
use tardigrade_kvpb::{BatchRequest, Header, KvError, RangeDescriptor, Request, Response, Span};

use crate::allocator::ReplicationSettings;
use crate::store::Store;

/// `gc.ttlseconds` of the built-in meta and system zones.
const SYSTEM_GC_TTL_SECONDS: u32 = 60 * 60;

/// The span configs one store knows, sorted by start key.
#[derive(Clone, Debug, Default)]
pub struct SpanConfigSet {
    /// The SQL layer's records.
    entries: Vec<SpanConfig>,
    /// The built-in meta and system zones, where the SQL layer wrote none.
    /// Ranges are not split at their bounds (a store bootstrapped as one
    /// range keeps serving as one; `tardigrade start` splits at /System and
    /// /Table when it bootstraps).
    builtin: Vec<SpanConfig>,
    /// `RANGE default`, every field set.
    default: ZoneConfig,
}

impl SpanConfigSet {
    /// Only the built-in zones (before the first read, or on a store
    /// without a cluster).
    pub fn builtin(settings: &ReplicationSettings, range_max_bytes: u64) -> SpanConfigSet {
        Self::new(Vec::new(), None, settings, range_max_bytes)
    }

    /// `records` as read (any order), `default_record` the stored `RANGE
    /// default` if any.
    pub fn new(
        mut records: Vec<SpanConfig>,
        default_record: Option<ZoneConfig>,
        settings: &ReplicationSettings,
        range_max_bytes: u64,
    ) -> SpanConfigSet {
        let mut default = default_record.unwrap_or_default();
        default.inherit_from(&ZoneConfig::builtin_default(
            settings.num_replicas as u32,
            range_max_bytes,
        ));
        // The meta and system spans keep their built-in zones unless the
        // SQL layer wrote records for them (`ALTER RANGE meta|system`).
        let mut builtin = Vec::new();
        for (start, end) in [
            (keys::META_MIN, keys::META_MAX),
            (keys::SYSTEM_PREFIX, keys::SYSTEM_MAX),
        ] {
            if !records.iter().any(|r| r.start.as_slice() == start) {
                builtin.push(SpanConfig {
                    start: start.to_vec(),
                    end: end.to_vec(),
                    config: ZoneConfig {
                        num_replicas: Some(settings.num_replicas_system as u32),
                        gc_ttl_seconds: Some(SYSTEM_GC_TTL_SECONDS),
                        ..Default::default()
                    },
                });
            }
        }
        records.retain(|r| r.start < r.end);
        records.sort_by(|a, b| a.start.cmp(&b.start));
        SpanConfigSet {
            entries: records,
            builtin,
            default,
        }
    }

    /// The record whose span holds `key` (the SQL layer's, else a built-in
    /// one).
    fn entry_for(&self, key: &[u8]) -> Option<&SpanConfig> {
        let i = self.entries.partition_point(|e| e.start.as_slice() <= key);
        let sql = i
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .filter(|e| key < e.end.as_slice());
        sql.or_else(|| {
            self.builtin
                .iter()
                .find(|e| e.start.as_slice() <= key && key < e.end.as_slice())
        })
    }

    /// The zone of the range `desc` (by its start key), every field set.
    pub fn config_for(&self, desc: &RangeDescriptor) -> ZoneConfig {
        // The range starting at /Min holds the meta span.
        let key = if desc.start_key.is_empty() {
            keys::META_MIN
        } else {
            desc.start_key.as_slice()
        };
        let mut conf = self
            .entry_for(key)
            .map(|e| e.config.clone())
            .unwrap_or_default();
        conf.inherit_from(&self.default);
        conf
    }

    /// The GC TTL of the range `desc`: the longest of the zones it
    /// overlaps (a range not split yet along the configs keeps history for
    /// every zone it holds).
    pub fn gc_ttl_for(&self, desc: &RangeDescriptor) -> u32 {
        let default_ttl = self
            .default
            .gc_ttl_seconds
            .unwrap_or(tardigrade_kvpb::zone::DEFAULT_GC_TTL_SECONDS);
        let start = desc.start_key.as_slice();
        let end = desc.end_key.as_slice();
        let inside_one = self
            .entry_for(if start.is_empty() {
                keys::META_MIN
            } else {
                start
            })
            .is_some_and(|e| e.start.as_slice() <= start && end <= e.end.as_slice());
        let mut ttl = if inside_one { 0 } else { default_ttl };
        for e in self.entries.iter().chain(&self.builtin) {
            if e.start.as_slice() < end && start < e.end.as_slice() {
                ttl = ttl.max(e.config.gc_ttl_seconds.unwrap_or(default_ttl));
            }
        }
        ttl.max(1)
    }

    /// The first bound of the SQL layer's records strictly inside `(start,
    /// end)` that `accept` takes: the range must be split there so that one
    /// config applies to all of it.
    pub fn split_key_within(
        &self,
        start: &[u8],
        end: &[u8],
        accept: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let i = self.entries.partition_point(|e| e.end.as_slice() <= start);
        let mut best: Option<&[u8]> = None;
        for e in &self.entries[i.saturating_sub(1)..] {
            if e.start.as_slice() >= end {
                break;
            }
            for b in [e.start.as_slice(), e.end.as_slice()] {
                if b > start && b < end && best.is_none_or(|x| b < x) && accept(b) {
                    best = Some(b);
                }
            }
        }
        best.map(<[u8]>::to_vec)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Re-reads the span configs every `split_queue_interval` until the store
/// stops.
pub(crate) async fn watch(store: std::sync::Weak<Store>) {
    let interval = match store.upgrade() {
        Some(s) => s.config().split_queue_interval,
        None => return,
    };
    loop {
        let Some(s) = store.upgrade() else { return };
        if s.is_stopped() {
            return;
        }
        if let Err(e) = refresh(&s).await {
            tracing::debug!(error = %e, "could not read span configs");
        }
        drop(s);
        tokio::time::sleep(interval).await;
    }
}

/// Reads the span config records through the cluster and installs them in
/// `store`. A record that cannot be decoded is skipped (and logged): one
/// bad record must not stop the queues from using the others.
pub async fn refresh(store: &Store) -> Result<(), KvError> {
    let scan = Request::Scan {
        span: Span::new(
            keys::SPAN_CONFIG_PREFIX.to_vec(),
            keys::prefix_end(keys::SPAN_CONFIG_PREFIX),
        ),
    };
    let get = Request::Get {
        key: keys::SPAN_CONFIG_DEFAULT.to_vec(),
    };
    let ba = BatchRequest {
        header: Header::default(),
        requests: vec![scan, get],
    };
    let resp = tokio::time::timeout(Duration::from_secs(2), store.send_routed(ba))
        .await
        .map_err(|_| KvError::internal("reading span configs timed out"))??;
    let mut records = Vec::new();
    let mut default_record = None;
    for r in resp.responses {
        match r {
            Response::Scan { rows, .. } => {
                for kv in rows {
                    let start = kv.key[keys::SPAN_CONFIG_PREFIX.len()..].to_vec();
                    match SpanConfig::decode(start, &kv.value.bytes) {
                        Ok(sc) => records.push(sc),
                        Err(e) => tracing::warn!(
                            key = %tardigrade_encoding::pretty_key(&kv.key),
                            error = %e,
                            "skipping an unreadable span config"
                        ),
                    }
                }
            }
            Response::Get { value: Some(v), .. } => match ZoneConfig::decode(&v.bytes) {
                Ok(z) => default_record = Some(z),
                Err(e) => tracing::warn!(error = %e, "unreadable RANGE default span config"),
            },
            _ => {}
        }
    }
    let cfg = store.config();
    let set = SpanConfigSet::new(
        records,
        default_record,
        &cfg.replication,
        cfg.range_max_bytes,
    );
    store.set_span_configs(set);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(start: &[u8], end: &[u8]) -> RangeDescriptor {
        RangeDescriptor {
            range_id: 1,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }
    }

    fn record(start: &[u8], end: &[u8], replicas: u32) -> SpanConfig {
        SpanConfig {
            start: start.to_vec(),
            end: end.to_vec(),
            config: ZoneConfig {
                num_replicas: Some(replicas),
                ..Default::default()
            },
        }
    }

    #[test]
    fn configs_resolve_by_start_key_and_inherit_the_default() {
        let s = ReplicationSettings::default();
        let set = SpanConfigSet::new(
            vec![record(b"\x90", b"\x91", 5), record(b"\x89", b"\x8a", 1)],
            Some(ZoneConfig {
                gc_ttl_seconds: Some(600),
                ..Default::default()
            }),
            &s,
            512 << 20,
        );
        let t = set.config_for(&desc(b"\x89", b"\x8a"));
        assert_eq!(t.num_replicas, Some(1));
        assert_eq!(t.gc_ttl_seconds, Some(600));
        let other = set.config_for(&desc(b"\x8a", b"\x90"));
        assert_eq!(other.num_replicas, Some(3));
        // A range over several zones keeps the longest history.
        assert_eq!(set.gc_ttl_for(&desc(b"\x89", b"\x8a")), 600);
        assert_eq!(
            set.gc_ttl_for(&desc(b"", b"\xff\xff")),
            SYSTEM_GC_TTL_SECONDS
        );
        assert_eq!(set.gc_ttl_for(&desc(b"\x88", b"\xff\xff")), 600);
        assert_eq!(set.gc_ttl_for(&desc(b"", b"\x04")), SYSTEM_GC_TTL_SECONDS);
        let meta = set.config_for(&desc(b"", b"\x04"));
        assert_eq!(meta.num_replicas, Some(5));
        assert_eq!(meta.gc_ttl_seconds, Some(SYSTEM_GC_TTL_SECONDS));
    }

    #[test]
    fn ranges_straddling_records_split_at_the_first_bound() {
        let s = ReplicationSettings::default();
        let set = SpanConfigSet::new(
            vec![record(b"\x89", b"\x8a", 3), record(b"\x8b", b"\x8c", 3)],
            None,
            &s,
            512 << 20,
        );
        assert_eq!(
            set.split_key_within(b"\x88", b"\xff", |_| true),
            Some(b"\x89".to_vec())
        );
        assert_eq!(
            set.split_key_within(b"\x89", b"\xff", |_| true),
            Some(b"\x8a".to_vec())
        );
        assert_eq!(
            set.split_key_within(b"\x8a", b"\xff", |_| true),
            Some(b"\x8b".to_vec())
        );
        assert_eq!(set.split_key_within(b"\x8b", b"\x8c", |_| true), None);
        assert_eq!(set.split_key_within(b"\x8c", b"\xff", |_| true), None);
        // Refused bounds are skipped.
        assert_eq!(
            set.split_key_within(b"", b"\xff", |k| k > b"\x89".as_slice()),
            Some(b"\x8a".to_vec())
        );
        // The built-in zones are no split points.
        assert_eq!(set.split_key_within(b"", b"\x89", |_| true), None);
        assert_eq!(set.len(), 2);
    }
}
