//! Broker hot paths without sockets: topic routing over 100,000 bindings, and a queue's
//! enqueue / basic.get / ack cycle.
//!
//! `cargo bench -p warren --bench broker` (about a minute).

// A benchmark, like a test, fails by panicking; criterion's macros generate undocumented items.
#![allow(clippy::unwrap_used, missing_docs)]

use amqp_codec::types::FieldTable;
use amqp_codec::Properties;
use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::sync::{Arc, Weak};
use warren::engine::Message;
use warren::engine::Outbox;
use warren::engine::{Budget, QueueStore};
use warren::engine::{ChannelLink, ChannelShared};
use warren::engine::{DeadLetter, DeliverySink, Queue, QueueArgs, QueueOwner, QueueSpec};
use warren::engine::{Destination, Exchange, ExchangeKind};

/// A topic exchange with 100,000 bindings: 99,000 exact three-word patterns spread over 1,000
/// "regions", 900 with `*`, 100 with `#`.
fn topic_exchange() -> Exchange {
    let x = Exchange::new(
        "bench.topic".into(),
        ExchangeKind::Topic,
        false,
        false,
        false,
        FieldTable::default(),
    );
    let args = FieldTable::default();
    for i in 0..99_000 {
        let key = format!("region{}.host{}.cpu", i % 1000, i);
        x.bind(Destination::Queue(format!("q{i}")), &key, &args)
            .unwrap();
    }
    for i in 0..900 {
        let key = format!("region{i}.*.mem");
        x.bind(Destination::Queue(format!("star{i}")), &key, &args)
            .unwrap();
    }
    for i in 0..100 {
        let key = format!("region{i}.#");
        x.bind(Destination::Queue(format!("hash{i}")), &key, &args)
            .unwrap();
    }
    x
}

fn routing(c: &mut Criterion) {
    let x = topic_exchange();
    let mut g = c.benchmark_group("topic_100k_bindings");
    g.throughput(Throughput::Elements(1));
    for key in [
        "region7.host7007.cpu",
        "region42.host1.mem",
        "nowhere.at.all",
    ] {
        g.bench_function(key, |b| {
            b.iter(|| {
                let mut n = 0;
                x.route(black_box(key), &mut || None, &mut |_| n += 1);
                n
            })
        });
    }
    g.finish();
}

/// A queue owner with nowhere to send dead letters (the bench makes none).
#[derive(Debug)]
struct NoOwner;

impl QueueOwner for NoOwner {
    fn dead_letters(&self, _: Vec<DeadLetter>) {}
    fn expire(&self, _: &Arc<Queue>) {}
}

fn queue_cycle(c: &mut Criterion) {
    // A transient queue within its memory budget never writes to its store.
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(storage::Store::open(dir.path(), storage::StoreConfig::default()).unwrap());
    let spec = QueueSpec {
        name: "bench".into(),
        ..Default::default()
    };
    let queue_store = QueueStore {
        id: store.allocate_queue_ids(1),
        store,
        budget: Budget::default(),
    };
    let owner: Weak<dyn QueueOwner> = Weak::<NoOwner>::new();
    let q = Arc::new(Queue::new(
        spec,
        "/".into(),
        QueueArgs::default(),
        queue_store,
        owner,
    ));
    let (outbox, mut rx) = Outbox::new();
    let (events, _events_rx) = tokio::sync::mpsc::unbounded_channel();
    let channel = Arc::new(ChannelShared::new(
        ChannelLink {
            id: 1,
            connection_id: 1,
            outbox,
            events,
            cancel_notify: true,
        },
        1,
    ));
    let sink: Arc<dyn DeliverySink> = channel.clone();
    let props = Properties::new(Bytes::from_static(&[0, 0])).unwrap();
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    for size in [16usize, 1024] {
        let body = Bytes::from(vec![7u8; size]);
        g.bench_function(format!("enqueue_get_ack_{size}B"), |b| {
            b.iter(|| {
                let m = Arc::new(Message::new(
                    String::new(),
                    "bench".into(),
                    props.clone(),
                    body.clone(),
                ));
                q.enqueue(m, None);
                assert!(q.get(&sink, false));
                let u = channel.deliveries().unacked.pop_front().unwrap();
                q.acked(std::slice::from_ref(&u));
                // The connection's writer would take this; drop it here.
                while rx.try_recv().is_ok() {}
            })
        });
    }
    g.finish();
}

criterion_group!(benches, routing, queue_cycle);
criterion_main!(benches);
