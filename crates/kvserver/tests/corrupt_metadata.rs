//! A store whose own metadata records do not decode (Raft hard state,
//! applied state, lease, range descriptor) refuses to open with an error
//! naming the store directory and the key — never a panic, never a default.
//! (Bytes damaged on disk never get this far: fjall checks every journal
//! batch and table block against its checksum; see `docs/design.md`.)

use std::sync::Arc;

use tardigrade_encoding::keys;
use tardigrade_hlc::{DEFAULT_MAX_OFFSET, Hlc, SystemClock};
use tardigrade_kvpb::RangeDescriptor;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_storage::{Engine, EngineError, Space, StoreSpec};

/// Opens a bootstrapped store after `key` got bytes that do not decode;
/// returns the directory (kept until dropped), the store path and the error.
fn open_with_garbage_at(key: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, EngineError) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let desc =
        RangeDescriptor::with_voters(1, keys::MIN_KEY.to_vec(), keys::MAX_KEY.to_vec(), 1..=1);
    {
        let engine = Engine::open(&StoreSpec::Dir(path.clone())).expect("engine");
        Store::bootstrap(&engine, std::slice::from_ref(&desc)).expect("bootstrap");
        let mut b = engine.batch();
        b.put(Space::Raw, key, b"\x07not a record");
        engine.commit(b.writes(), true).expect("commit");
    }
    let engine = Engine::open(&StoreSpec::Dir(path.clone())).expect("engine reopens");
    let clock = Arc::new(Hlc::new(Arc::new(SystemClock), DEFAULT_MAX_OFFSET));
    let cfg = StoreConfig {
        node_id: 1,
        store_id: 1,
        ..StoreConfig::default()
    };
    let err = Store::open(engine, clock, cfg)
        .err()
        .expect("a store with a corrupt record must not open");
    (dir, path, err)
}

#[test]
fn corrupt_raft_and_range_records_are_refused_naming_the_store_and_key() {
    let cases: [(&str, Vec<u8>); 4] = [
        ("raft hard state", keys::raft_hard_state_key(1)),
        ("applied state", keys::range_applied_state_key(1)),
        ("lease", keys::range_lease_key(1)),
        (
            "range descriptor",
            keys::range_descriptor_key(keys::MIN_KEY),
        ),
    ];
    for (what, key) in cases {
        let (_dir, path, err) = open_with_garbage_at(&key);
        let msg = err.to_string();
        assert!(
            matches!(err, EngineError::CorruptRecord { .. }),
            "{what}: {msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
        assert!(
            msg.contains(&key.escape_ascii().to_string()),
            "{what}: {msg}"
        );
    }
}
