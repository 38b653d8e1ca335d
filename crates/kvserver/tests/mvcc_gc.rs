//! MVCC GC on one store: versions older than the zone's `gc.ttlseconds`
//! that newer ones shadow (and old tombstones) are removed, the newest
//! value stays readable, and reads at or below the GC threshold are
//! refused instead of returning what GC left.

use std::sync::Arc;
use std::time::Duration;

use tardigrade_encoding::keys;
use tardigrade_hlc::{Hlc, Timestamp};
use tardigrade_kvpb::zone::{SpanConfig, ZoneConfig};
use tardigrade_kvpb::{BatchRequest, Header, KvError, Request, Response};
use tardigrade_kvserver::span_config::SpanConfigSet;
use tardigrade_kvserver::{Store, StoreConfig};
use tardigrade_storage::{Engine, StoreSpec};

async fn send(store: &Store, ts: Timestamp, req: Request) -> Result<Response, KvError> {
    let ba = BatchRequest {
        header: Header {
            timestamp: ts,
            ..Header::default()
        },
        requests: vec![req],
    };
    let mut resp = store.execute(ba).await?;
    Ok(resp.responses.remove(0))
}

async fn get(store: &Store, ts: Timestamp, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
    match send(store, ts, Request::Get { key: key.to_vec() }).await? {
        Response::Get { value, .. } => Ok(value.map(|v| v.bytes)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_go_and_reads_below_the_threshold_are_refused() {
    let engine = Engine::open(&StoreSpec::Memory).expect("engine");
    let clock = Arc::new(Hlc::system());
    let cfg = StoreConfig::default();
    let store = Store::open(engine, clock.clone(), cfg.clone()).expect("store");
    let (a, b, c) = (b"\x90a".to_vec(), b"\x90b".to_vec(), b"\x90c".to_vec());
    for v in ["1", "2", "3"] {
        let put = Request::Put {
            key: a.clone(),
            value: v.as_bytes().to_vec(),
        };
        send(&store, clock.now(), put).await.expect("put a");
    }
    let put_b = Request::Put {
        key: b.clone(),
        value: b"gone".to_vec(),
    };
    send(&store, clock.now(), put_b).await.expect("put b");
    send(&store, clock.now(), Request::Delete { key: b.clone() })
        .await
        .expect("delete b");
    let put_c = Request::Put {
        key: c.clone(),
        value: b"only".to_vec(),
    };
    send(&store, clock.now(), put_c).await.expect("put c");
    // The last write's timestamp (writes of a fresh store go in above the
    // time it opened plus the maximum clock offset).
    let written = match send(&store, clock.now(), Request::Get { key: c.clone() }).await {
        Ok(Response::Get { value: Some(v), .. }) => v.timestamp,
        other => panic!("read c: {other:?}"),
    };
    assert_eq!(
        get(&store, written, &a).await.expect("read"),
        Some(b"3".to_vec())
    );

    // A one-second TTL for everything (the store's one range holds the
    // meta and system spans too, whose built-in zones keep an hour).
    let one_second = ZoneConfig {
        gc_ttl_seconds: Some(1),
        ..Default::default()
    };
    let span = |start: &[u8], end: &[u8]| SpanConfig {
        start: start.to_vec(),
        end: end.to_vec(),
        config: one_second.clone(),
    };
    store.set_span_configs(SpanConfigSet::new(
        vec![
            span(keys::META_MIN, keys::META_MAX),
            span(keys::SYSTEM_PREFIX, keys::TABLE_DATA_MIN),
        ],
        Some(one_second.clone()),
        &cfg.replication,
        cfg.range_max_bytes,
    ));
    let r = store
        .replicas()
        .into_iter()
        .find(|r| r.start_key().as_slice() <= a.as_slice() && a.as_slice() < r.end_key().as_slice())
        .expect("range of a");
    let before = r.stats();
    // Nothing is old enough yet.
    assert_eq!(
        tardigrade_kvserver::gc_queue::process(&store, &r)
            .await
            .expect("gc"),
        0
    );
    // Wait until the writes are a TTL old.
    while clock.now().wall < written.wall + 1_100_000_000 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removed = tardigrade_kvserver::gc_queue::process(&store, &r)
        .await
        .expect("gc");
    assert_eq!(
        removed, 2,
        "a's old versions and b's tombstone; c has one version"
    );
    let after = r.stats();
    assert_eq!(
        after.val_count,
        before.val_count - 4,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.key_count, before.key_count - 1, "b is gone entirely");
    assert_eq!(after.live_count, before.live_count);
    assert!(
        r.gc_threshold() > written,
        "the threshold moved past the writes"
    );

    let now = clock.now();
    assert_eq!(
        get(&store, now, &a).await.expect("read"),
        Some(b"3".to_vec())
    );
    assert_eq!(get(&store, now, &b).await.expect("read"), None);
    assert_eq!(
        get(&store, now, &c).await.expect("read"),
        Some(b"only".to_vec())
    );
    let err = get(&store, written, &a)
        .await
        .expect_err("below the threshold");
    assert!(err.to_string().contains("GC threshold"), "{err}");
    // Nothing left to collect.
    assert_eq!(
        tardigrade_kvserver::gc_queue::process(&store, &r)
            .await
            .expect("gc"),
        0
    );
    // The threshold is replicated state: it survives a restart.
    let threshold = r.gc_threshold();
    let engine = store.engine().clone();
    store.stop();
    drop(r);
    drop(store);
    let store = Store::open(engine, clock.clone(), cfg).expect("reopen");
    let r = store
        .replicas()
        .into_iter()
        .find(|x| x.range_id == 1)
        .expect("range");
    assert_eq!(r.gc_threshold(), threshold);
}
