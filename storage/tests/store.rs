//! The store against a real RocksDB in a temporary directory: what is committed survives a reopen,
//! counters and bounds come back without a scan, and bad directories are refused untouched.

use bytes::Bytes;
use storage::{
    BindingDef, ExchangeDef, MessageRecord, Op, QueueDef, Store, StoreConfig, StoreError,
};

fn record(body: &str) -> MessageRecord {
    MessageRecord {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::copy_from_slice(body.as_bytes()),
        delivery_count: 0,
        transient: false,
        published_at: 0,
        shared: None,
        in_transient_area: false,
    }
}

fn put(queue: u64, seq: u64, body: &str) -> Op {
    let r = record(body);
    Op::PutMessage {
        queue,
        seq,
        size: r.body.len() as u64,
        record: Bytes::from(r.encode()).into(),
        shared: None,
        transient: false,
    }
}

fn del(queue: u64, seq: u64, body: &str) -> Op {
    Op::DeleteMessage {
        queue,
        seq,
        size: body.len() as u64,
        shared: None,
        transient: false,
    }
}

/// A record pointing at shared body `id`.
fn put_shared(queue: u64, seq: u64, id: u64, body: &str) -> Op {
    let r = MessageRecord {
        shared: Some(id),
        ..record(body)
    };
    Op::PutMessage {
        queue,
        seq,
        size: body.len() as u64,
        record: Bytes::from(r.encode()).into(),
        shared: Some(id),
        transient: false,
    }
}

fn del_shared(queue: u64, seq: u64, id: u64, body: &str) -> Op {
    Op::DeleteMessage {
        queue,
        seq,
        size: body.len() as u64,
        shared: Some(id),
        transient: false,
    }
}

fn put_body(id: u64, body: &str) -> Op {
    let r = record(body);
    Op::PutBody {
        id,
        value: Bytes::from(MessageRecord::encode_body(&r.properties, &r.body)),
    }
}

fn queue_def(id: u64, name: &str) -> Op {
    let def = QueueDef {
        vhost: "/".into(),
        name: name.into(),
        id,
        auto_delete: false,
        arguments: vec![0, 0, 0, 0],
    };
    Op::PutDef {
        key: QueueDef::key("/", name),
        value: def.encode(),
    }
}

#[test]
fn committed_messages_and_definitions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let x = ExchangeDef {
            vhost: "/".into(),
            name: "logs".into(),
            kind: "topic".into(),
            auto_delete: false,
            internal: false,
            arguments: vec![0, 0, 0, 0],
            declared_by: "guest".into(),
        };
        let b = BindingDef {
            vhost: "/".into(),
            source: "logs".into(),
            to_exchange: false,
            destination: "tasks".into(),
            routing_key: "#".into(),
            arguments: vec![0, 0, 0, 0],
        };
        store
            .commit_blocking(vec![
                queue_def(7, "tasks"),
                Op::PutDef {
                    key: ExchangeDef::key("/", "logs"),
                    value: x.encode(),
                },
                Op::PutDef {
                    key: b.key(),
                    value: b.encode(),
                },
            ])
            .unwrap();
        let ops = (1..=5).map(|i| put(7, i, &format!("m{i}"))).collect();
        store.commit_blocking(ops).unwrap();
        store
            .commit_blocking(vec![
                del(7, 1, "m1"),
                del(7, 3, "m3"),
                Op::MarkDelivered { queue: 7, seq: 3 },
            ])
            .unwrap();
    }
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let r = store.recover().unwrap();
    assert_eq!(r.exchanges.len(), 1);
    assert_eq!(r.bindings.len(), 1);
    assert_eq!(r.queues.len(), 1);
    let q = &r.queues[0];
    assert_eq!(
        (q.def.id, q.count, q.bytes, q.head, q.tail, q.delivered),
        (7, 3, 6, Some(2), Some(5), 4)
    );
    let msgs = store.read_messages(7, 0, 100, usize::MAX).unwrap();
    let got: Vec<(u64, &str)> = msgs
        .iter()
        .map(|(s, m)| (*s, std::str::from_utf8(&m.body).unwrap()))
        .collect();
    assert_eq!(got, vec![(2, "m2"), (4, "m4"), (5, "m5")]);
    // Read windows: by count, and by bytes (at least one message).
    assert_eq!(store.read_messages(7, 3, 1, usize::MAX).unwrap()[0].0, 4);
    assert_eq!(store.read_messages(7, 0, 100, 1).unwrap().len(), 1);
    // Queue ids are never reused.
    assert!(store.allocate_queue_id() > 7);
}

#[test]
fn a_message_deleted_before_its_batch_is_written_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    store.commit_blocking(vec![queue_def(1, "q")]).unwrap();
    // Put and delete in the same batch: the counters must not move and nothing is stored.
    store
        .commit_blocking(vec![put(1, 1, "a"), put(1, 2, "b"), del(1, 1, "a")])
        .unwrap();
    let r = store.recover().unwrap();
    assert_eq!((r.queues[0].count, r.queues[0].head), (1, Some(2)));
}

#[test]
fn a_rewrite_between_a_put_and_its_delete_does_not_bring_the_message_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    store.commit_blocking(vec![queue_def(1, "q")]).unwrap();
    // A quorum queue's return rewrites the record (delivery count) before the ack deletes it; all
    // three in one batch must leave nothing behind.
    let mut rewritten = record("a");
    rewritten.delivery_count = 1;
    store
        .commit_blocking(vec![
            put(1, 1, "a"),
            Op::UpdateMessage {
                queue: 1,
                seq: 1,
                record: Bytes::from(rewritten.encode()),
                transient: false,
            },
            del(1, 1, "a"),
        ])
        .unwrap();
    let r = store.recover().unwrap();
    assert_eq!((r.queues[0].count, r.queues[0].head), (0, None));
    assert!(store.read_messages(1, 0, 10, 1 << 20).unwrap().is_empty());
}

#[test]
fn dropping_a_queue_removes_its_messages_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    store
        .commit_blocking(vec![
            queue_def(1, "a"),
            queue_def(2, "b"),
            put(1, 1, "x"),
            put(2, 1, "y"),
        ])
        .unwrap();
    store
        .commit_blocking(vec![
            Op::DropQueueMessages { queue: 1 },
            Op::DeleteDef {
                key: QueueDef::key("/", "a"),
            },
        ])
        .unwrap();
    let r = store.recover().unwrap();
    assert_eq!(r.queues.len(), 1);
    assert_eq!(r.queues[0].def.name, "b");
    assert!(store
        .read_messages(1, 0, 10, usize::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(store.read_messages(2, 0, 10, usize::MAX).unwrap().len(), 1);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path(), StoreConfig::default()).unwrap();
    match Store::open(dir.path(), StoreConfig::default()) {
        Err(StoreError::Locked(_)) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_directory_of_another_format_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000001\n").unwrap();
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    let err = Store::open(dir.path(), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::Incompatible { .. } | StoreError::Db(_)),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
    assert_eq!(
        std::fs::read(dir.path().join("CURRENT")).unwrap(),
        b"MANIFEST-000001\n"
    );
}

#[test]
fn completions_run_after_the_write_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 1..=100u64 {
        let tx = tx.clone();
        store.submit(
            vec![put(1, i, "m")],
            Some(Box::new(move |r| tx.send((i, r.is_ok())).unwrap())),
        );
    }
    let got: Vec<(u64, bool)> = (0..100).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(got, (1..=100).map(|i| (i, true)).collect::<Vec<_>>());
    assert_eq!(
        store.read_messages(1, 0, 1000, usize::MAX).unwrap().len(),
        100
    );
}

#[test]
fn a_range_delete_removes_the_paged_part_and_fixes_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let mut ops = vec![queue_def(1, "q")];
    ops.extend((1..=10).map(|i| put(1, i, "ab")));
    store.commit_blocking(ops).unwrap();
    store
        .commit_blocking(vec![Op::DeleteRange {
            queue: 1,
            from: 4,
            to: 10,
            count: 7,
            bytes: 14,
        }])
        .unwrap();
    let r = store.recover().unwrap();
    assert_eq!(
        (r.queues[0].count, r.queues[0].bytes, r.queues[0].tail),
        (3, 6, Some(3))
    );
}

#[test]
fn a_body_shared_by_queues_is_stored_once_and_goes_with_its_last_reference() {
    let dir = tempfile::tempdir().unwrap();
    let body = "fanned out";
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let id = store.allocate_body_id();
        let mut ops = vec![queue_def(1, "a"), queue_def(2, "b"), queue_def(3, "c")];
        ops.push(put_body(id, body));
        ops.extend((1..=3).map(|q| put_shared(q, 1, id, body)));
        store.commit_blocking(ops).unwrap();
        store.commit_blocking(vec![Op::ReleaseBody { id }]).unwrap();
        assert_eq!(store.stored_bodies().unwrap(), 1);
        store
            .commit_blocking(vec![del_shared(1, 1, id, body)])
            .unwrap();
        assert_eq!(store.stored_bodies().unwrap(), 1);
    }
    // After a reopen, the remaining queues still read the body, and new ids do not collide.
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let r = store.recover().unwrap();
    let counts: Vec<u64> = r.queues.iter().map(|q| q.count).collect();
    assert_eq!(counts, vec![0, 1, 1]);
    for q in [2, 3] {
        let got = store.read_messages(q, 0, 10, usize::MAX).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.body, Bytes::from_static(body.as_bytes()));
        assert_eq!(got[0].1.properties, record(body).properties);
        assert_eq!(got[0].1.shared, Some(1));
    }
    assert_eq!(store.allocate_body_id(), 2);
    store
        .commit_blocking(vec![del_shared(2, 1, 1, body)])
        .unwrap();
    assert_eq!(store.stored_bodies().unwrap(), 1);
    store
        .commit_blocking(vec![del_shared(3, 1, 1, body)])
        .unwrap();
    assert_eq!(store.stored_bodies().unwrap(), 0);
}

#[test]
fn a_shared_body_acked_everywhere_before_its_batch_is_never_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let id = store.allocate_body_id();
    let (tx, rx) = std::sync::mpsc::channel();
    // One submission per step, as the broker makes them; they may share a batch or not.
    let steps = vec![
        vec![put_body(id, "x")],
        vec![put_shared(1, 1, id, "x")],
        vec![put_shared(2, 1, id, "x")],
        vec![Op::ReleaseBody { id }],
        vec![del_shared(1, 1, id, "x")],
        vec![del_shared(2, 1, id, "x")],
    ];
    for ops in steps {
        let tx = tx.clone();
        store.submit(ops, Some(Box::new(move |r| tx.send(r.is_ok()).unwrap())));
    }
    for _ in 0..6 {
        assert!(rx.recv().unwrap());
    }
    assert_eq!(store.stored_bodies().unwrap(), 0);
    assert!(store
        .read_messages(1, 0, 10, usize::MAX)
        .unwrap()
        .is_empty());
    assert!(store
        .read_messages(2, 0, 10, usize::MAX)
        .unwrap()
        .is_empty());
}

#[test]
fn purging_or_dropping_queues_releases_the_bodies_their_records_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let mut ops = vec![queue_def(1, "a"), queue_def(2, "b")];
    for seq in 1..=5 {
        let id = store.allocate_body_id();
        ops.push(put_body(id, "shared"));
        ops.push(put_shared(1, seq, id, "shared"));
        ops.push(put_shared(2, seq, id, "shared"));
        ops.push(Op::ReleaseBody { id });
        ops.push(put(1, 100 + seq, "own"));
    }
    store.commit_blocking(ops).unwrap();
    assert_eq!(store.stored_bodies().unwrap(), 5);
    // A purge of part of queue 1 and a put in the same group: the body stays for queue 2.
    store
        .commit_blocking(vec![
            Op::DeleteRange {
                queue: 1,
                from: 1,
                to: 3,
                count: 3,
                bytes: 18,
            },
            put(1, 200, "after"),
        ])
        .unwrap();
    assert_eq!(store.stored_bodies().unwrap(), 5);
    // Queue 2 dropped: bodies 1-3 have no reference left; 4 and 5 are still queue 1's.
    store
        .commit_blocking(vec![Op::DropQueueMessages { queue: 2 }])
        .unwrap();
    assert_eq!(store.stored_bodies().unwrap(), 2);
    let left: Vec<u64> = store
        .read_messages(1, 0, 100, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(left, vec![4, 5, 101, 102, 103, 104, 105, 200]);
    store
        .commit_blocking(vec![Op::DropQueueMessages { queue: 1 }])
        .unwrap();
    assert_eq!(store.stored_bodies().unwrap(), 0);
}

#[test]
fn a_store_of_the_previous_format_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A v2 store as that version left it: four column families and its markers.
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&o, dir.path(), ["meta", "defs", "msgs", "counts"]).unwrap();
        db.put_cf(
            &db.cf_handle("meta").unwrap(),
            b"format",
            b"warren-store-v2",
        )
        .unwrap();
        let r = record("old");
        db.put_cf(
            &db.cf_handle("msgs").unwrap(),
            storage::keys::message(1, 1),
            r.encode(),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("WARREN_STORE"), "warren-store-v2\n").unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let got = store.read_messages(1, 0, 10, usize::MAX).unwrap();
    assert_eq!(got, vec![(1, record("old"))]);
    drop(store);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("WARREN_STORE")).unwrap(),
        "warren-store-v3\n"
    );
    // And it opens again as v3.
    Store::open(dir.path(), StoreConfig::default()).unwrap();
}

#[test]
fn transient_records_are_read_in_order_and_gone_after_a_reopen_without_counting() {
    let dir = tempfile::tempdir().unwrap();
    let transient = |seq: u64, body: &str| {
        let r = MessageRecord {
            transient: true,
            ..record(body)
        };
        Op::PutMessage {
            queue: 1,
            seq,
            size: body.len() as u64,
            record: Bytes::from(r.encode()).into(),
            shared: None,
            transient: true,
        }
    };
    {
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        store
            .commit_blocking(vec![
                queue_def(1, "q"),
                put(1, 1, "p1"),
                transient(2, "t2"),
                transient(3, "t3"),
                put(1, 4, "p4"),
                transient(5, "t5"),
            ])
            .unwrap();
        store
            .commit_blocking(vec![Op::DeleteMessage {
                queue: 1,
                seq: 3,
                size: 2,
                shared: None,
                transient: true,
            }])
            .unwrap();
        let got: Vec<(u64, Bytes)> = store
            .read_messages(1, 0, 10, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(seq, r)| (seq, r.body))
            .collect();
        let want: Vec<(u64, Bytes)> = [(1, "p1"), (2, "t2"), (4, "p4"), (5, "t5")]
            .into_iter()
            .map(|(s, b)| (s, Bytes::from_static(b.as_bytes())))
            .collect();
        assert_eq!(got, want);
        // A chunk boundary between the two kinds: reading on from where the last chunk ended.
        let first: Vec<u64> = store
            .read_messages(1, 0, 2, usize::MAX)
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(first, vec![1, 2]);
        let rest: Vec<u64> = store
            .read_messages(1, 3, 10, usize::MAX)
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(rest, vec![4, 5]);
    }
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let r = store.recover().unwrap();
    assert_eq!(
        (
            r.queues[0].count,
            r.queues[0].bytes,
            r.queues[0].head,
            r.queues[0].tail
        ),
        (2, 4, Some(1), Some(4))
    );
    let seqs: Vec<u64> = store
        .read_messages(1, 0, 10, usize::MAX)
        .unwrap()
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(seqs, vec![1, 4]);
}

/// Total size of the store's blob files (where bodies of 512 bytes or more go when flushed).
fn blob_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "blob"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn an_old_message_left_at_the_head_does_not_keep_its_blob_file() {
    const N: u64 = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    store.commit_blocking(vec![queue_def(1, "q")]).unwrap();
    // Bodies compression cannot shrink much (hex of a xorshift sequence).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut body = |len: usize| {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(&format!("{x:016x}"));
        }
        s.truncate(len);
        s
    };
    let old = body(2048);
    store.commit_blocking(vec![put(1, 1, &old)]).unwrap();
    let bodies: Vec<String> = (0..N).map(|_| body(1024)).collect();
    // One op per message 2..=N+1 (the bulk), committed a thousand at a time.
    let bulk = |op: fn(u64, u64, &str) -> Op| {
        for first in (2..N + 2).step_by(1000) {
            let ops = (first..(first + 1000).min(N + 2))
                .map(|s| op(1, s, &bodies[(s - 2) as usize]))
                .collect();
            store.commit_blocking(ops).unwrap();
        }
    };
    bulk(put);
    let stored = blob_bytes(dir.path());
    assert!(
        stored > 8 << 20,
        "bodies are not in blob files: {stored} bytes"
    );
    // Everything but the old message is consumed.
    bulk(del);
    // The compactor gets to the consumed range once the writer is idle: polled, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while blob_bytes(dir.path()) > 1 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} bytes of blob files left of {stored}",
            blob_bytes(dir.path())
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let left = store.read_messages(1, 0, 10, usize::MAX).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].0, &left[0].1.body[..]), (1, old.as_bytes()));
}

#[test]
fn bodies_written_with_or_without_compression_read_back_after_switching() {
    const BODY: usize = 1500; // over the blob threshold, and compresses well
    let dir = tempfile::tempdir().unwrap();
    let body = |i: u64| format!("{i:04}-{}", "x".repeat(BODY));
    let compressed = StoreConfig::default();
    let plain = StoreConfig {
        compression: false,
        ..StoreConfig::default()
    };
    let put_range = |store: &Store, range: std::ops::RangeInclusive<u64>| {
        let ops = range.map(|i| put(1, i, &body(i))).collect();
        store.commit_blocking(ops).unwrap();
    };
    let all_there = |store: &Store| {
        let msgs = store.read_messages(1, 0, 1000, usize::MAX).unwrap();
        let got: Vec<(u64, String)> = msgs
            .iter()
            .map(|(s, m)| (*s, String::from_utf8(m.body.to_vec()).unwrap()))
            .collect();
        let want: Vec<(u64, String)> = (1..=200).map(|i| (i, body(i))).collect();
        assert!(
            got == want,
            "the 200 messages did not read back as written ({} read)",
            got.len()
        );
    };
    {
        let store = Store::open(dir.path(), compressed.clone()).unwrap();
        store.commit_blocking(vec![queue_def(1, "q")]).unwrap();
        put_range(&store, 1..=100);
    }
    // Each open replays the log and flushes what it held into blob files, with the options of
    // that open: here without compression...
    let plain_bytes = {
        let store = Store::open(dir.path(), plain.clone()).unwrap();
        let bytes = blob_bytes(dir.path());
        assert!(
            bytes >= 100 * BODY as u64,
            "100 bodies of {BODY} bytes stored without compression in {bytes} bytes of blob files"
        );
        put_range(&store, 101..=200);
        bytes
    };
    // ... and here with it.
    {
        let store = Store::open(dir.path(), compressed).unwrap();
        let added = blob_bytes(dir.path()) - plain_bytes;
        assert!(
            added < 100 * BODY as u64 / 4,
            "100 compressible bodies of {BODY} bytes took {added} bytes of blob files"
        );
        all_there(&store);
    }
    let store = Store::open(dir.path(), plain).unwrap();
    all_there(&store);
}
