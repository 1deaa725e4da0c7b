//! Queue unit tests: a queue driven through the [`DeliverySink`] seam, with no channel and no
//! socket, on a real store in a temporary directory.

use super::settings::PolicySettings;
use super::*;
use crate::persist::{Budget, QueueStore};
use amqp_codec::Properties;
use bytes::Bytes;
use std::sync::mpsc;
use std::time::Duration;
use storage::{Store, StoreConfig};

/// What a sink was handed.
#[derive(Debug)]
enum Got {
    Deliver {
        tag: Arc<str>,
        body: Bytes,
        redelivered: bool,
        delivery: Delivery,
    },
    GetOk {
        body: Bytes,
        redelivered: bool,
        remaining: u32,
        deferred: bool,
        delivery: Delivery,
    },
    GetEmpty {
        deferred: bool,
    },
    Cancelled(Arc<str>),
}

/// A sink that takes whatever it is offered (up to `room` deliveries, if set) and reports it.
#[derive(Debug)]
struct TestSink {
    room: Mutex<Option<usize>>,
    tx: Mutex<mpsc::Sender<Got>>,
}

impl TestSink {
    fn new(room: Option<usize>) -> (Arc<TestSink>, mpsc::Receiver<Got>) {
        let (tx, rx) = mpsc::channel();
        let sink = Arc::new(TestSink {
            room: Mutex::new(room),
            tx: Mutex::new(tx),
        });
        (sink, rx)
    }

    fn send(&self, g: Got) {
        self.tx.lock().unwrap().send(g).unwrap();
    }
}

impl DeliverySink for TestSink {
    fn attached(&self, _consumer: &Arc<Consumer>, _announce: bool) {}

    fn offer(&self, consumer: &Arc<Consumer>, take: &mut sink::Take<'_>) -> bool {
        let mut room = self.room.lock().unwrap();
        if *room == Some(0) {
            return false;
        }
        let Some(t) = take() else {
            return false;
        };
        if let Some(r) = room.as_mut() {
            *r -= 1;
        }
        self.send(Got::Deliver {
            tag: consumer.tag.clone(),
            body: t.outgoing.body.clone(),
            redelivered: t.redelivered,
            delivery: t.delivery,
        });
        true
    }

    fn answer_get(
        &self,
        _queue: &Arc<Queue>,
        _no_ack: bool,
        take: &mut sink::Take<'_>,
        deferred: bool,
    ) {
        match take() {
            Some(t) => self.send(Got::GetOk {
                body: t.outgoing.body.clone(),
                redelivered: t.redelivered,
                remaining: t.remaining,
                deferred,
                delivery: t.delivery,
            }),
            None => self.send(Got::GetEmpty { deferred }),
        }
    }

    fn cancelled(&self, consumer: &Arc<Consumer>) {
        self.send(Got::Cancelled(consumer.tag.clone()));
    }
}

/// An owner that keeps the dead letters it is given.
#[derive(Debug, Default)]
struct TestOwner {
    dead: Mutex<Vec<DeadLetter>>,
}

impl QueueOwner for TestOwner {
    fn dead_letters(&self, letters: Vec<DeadLetter>) {
        self.dead.lock().unwrap().extend(letters);
    }
    fn expire(&self, _queue: &Arc<Queue>) {}
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    owner: Arc<TestOwner>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            sync: false,
            ..Default::default()
        };
        let store = Arc::new(Store::open(dir.path(), config).unwrap());
        Fixture {
            _dir: dir,
            store,
            owner: Arc::new(TestOwner::default()),
        }
    }

    /// A durable queue keeping at most `budget` messages in memory.
    fn queue(&self, budget: usize, arguments: FieldTable) -> Arc<Queue> {
        let args = QueueArgs::parse(&arguments, "queue 'q' in vhost '/'").unwrap();
        let store = QueueStore {
            store: self.store.clone(),
            id: self.store.allocate_queue_ids(args.lanes() as u64),
            budget: Budget {
                messages: budget,
                bytes: 1 << 30,
            },
        };
        let spec = QueueSpec {
            name: "q".into(),
            durable: true,
            arguments,
            ..Default::default()
        };
        let owner = Arc::downgrade(&self.owner);
        let owner: Weak<dyn QueueOwner> = owner;
        Arc::new(Queue::new(spec, "/".into(), args, store, owner))
    }
}

/// A persistent message with body `body`.
fn message(body: &str) -> Arc<Message> {
    // Property flags with only delivery-mode set (bit 12), then delivery-mode 2.
    let props = Properties::new(Bytes::from_static(&[0x10, 0x00, 0x02])).unwrap();
    Arc::new(Message::new(
        String::new(),
        "q".into(),
        props,
        Bytes::copy_from_slice(body.as_bytes()),
    ))
}

fn consumer_of(q: &Arc<Queue>, sink: &Arc<TestSink>, prefetch: u32) -> Arc<Consumer> {
    consumer(q, "model", sink, prefetch)
}

fn consumer(q: &Arc<Queue>, tag: &str, sink: &Arc<TestSink>, prefetch: u32) -> Arc<Consumer> {
    Arc::new(Consumer {
        tag: tag.into(),
        sink: sink.clone(),
        queue: q.clone(),
        no_ack: false,
        exclusive: false,
        prefetch,
        priority: 0,
        unacked: std::sync::atomic::AtomicU32::new(0),
    })
}

fn next(rx: &mpsc::Receiver<Got>) -> Got {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the sink got nothing within 10 s")
}

fn body_text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn consumers_take_turns_within_their_prefetch() {
    let f = Fixture::new();
    let q = f.queue(1000, FieldTable::default());
    let (sink, rx) = TestSink::new(None);
    let a = consumer(&q, "a", &sink, 2);
    let b = consumer(&q, "b", &sink, 2);
    assert!(matches!(q.consume(a.clone(), true), ConsumeCheck::Ok));
    assert!(matches!(q.consume(b.clone(), true), ConsumeCheck::Ok));
    for i in 0..6 {
        q.enqueue(message(&i.to_string()), None);
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        match next(&rx) {
            Got::Deliver { tag, body, .. } => seen.push((tag.to_string(), body_text(&body))),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [("a", "0"), ("b", "1"), ("a", "2"), ("b", "3")]
            .map(|(t, m)| (t.to_string(), m.to_string()))
    );
    assert!(rx.try_recv().is_err(), "prefetch 2 each: nothing more");
    assert_eq!(q.counts(), (2, 2));
}

#[test]
fn an_ack_frees_credit_and_a_requeue_goes_back_to_its_place_redelivered() {
    let f = Fixture::new();
    let q = f.queue(1000, FieldTable::default());
    let (sink, rx) = TestSink::new(None);
    let a = consumer(&q, "a", &sink, 1);
    q.consume(a.clone(), true);
    for i in 0..3 {
        q.enqueue(message(&i.to_string()), None);
    }
    let Got::Deliver { delivery: d0, .. } = next(&rx) else {
        panic!("expected a delivery")
    };
    assert!(rx.try_recv().is_err(), "prefetch 1");
    // Settled as a channel would: the consumer's count first, then the queue.
    a.unacked.fetch_sub(1, Ordering::Relaxed);
    q.requeue(&[d0]);
    let Got::Deliver {
        body,
        redelivered,
        delivery: d0,
        ..
    } = next(&rx)
    else {
        panic!("expected a redelivery")
    };
    assert_eq!((body_text(&body).as_str(), redelivered), ("0", true));
    a.unacked.fetch_sub(1, Ordering::Relaxed);
    q.acked(&[d0]);
    q.dispatch();
    let Got::Deliver {
        body, redelivered, ..
    } = next(&rx)
    else {
        panic!("expected a delivery")
    };
    assert_eq!((body_text(&body).as_str(), redelivered), ("1", false));
}

#[test]
fn a_get_on_a_paged_queue_is_answered_once_its_head_is_read_back() {
    let f = Fixture::new();
    // Nothing kept in memory: all 50 are paged to the store.
    let q = f.queue(0, FieldTable::default());
    for i in 0..50 {
        q.enqueue(message(&i.to_string()), None);
    }
    let (sink, rx) = TestSink::new(None);
    let sink_dyn: Arc<dyn DeliverySink> = sink.clone();
    let mut bodies = Vec::new();
    let mut deferred = 0;
    for i in 0..50 {
        let now = q.get(&sink_dyn, true);
        assert!(
            i > 0 || !now,
            "the first get cannot be answered from memory"
        );
        match next(&rx) {
            Got::GetOk {
                body,
                deferred: d,
                remaining,
                ..
            } => {
                assert_eq!(d, !now, "a get answered later says so");
                deferred += d as usize;
                bodies.push(body_text(&body));
                assert_eq!(remaining as usize, 50 - bodies.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(bodies, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(deferred >= 1, "the first get had to wait for the store");
    assert!(q.get(&sink_dyn, true));
    assert!(matches!(next(&rx), Got::GetEmpty { deferred: false }));
}

#[test]
fn deleting_a_queue_answers_waiting_gets_and_cancels_consumers() {
    let f = Fixture::new();
    let q = f.queue(1, FieldTable::default());
    for i in 0..5 {
        q.enqueue(message(&i.to_string()), None);
    }
    let (sink, rx) = TestSink::new(Some(0));
    let c = consumer(&q, "c", &sink, 0);
    q.consume(c, true);
    q.delete();
    assert!(matches!(next(&rx), Got::Cancelled(t) if &*t == "c"));
    let sink_dyn: Arc<dyn DeliverySink> = sink.clone();
    assert!(q.get(&sink_dyn, true));
    assert!(matches!(next(&rx), Got::GetEmpty { .. }));
}

#[test]
fn a_drop_head_queue_over_its_limit_with_its_head_paged_counts_as_at_its_limit() {
    let f = Fixture::new();
    let mut args = FieldTable::default();
    args.insert(
        "x-max-length".into(),
        amqp_codec::types::AMQPValue::LongInt(10),
    );
    let q = f.queue(2, args);
    for i in 0..40 {
        q.enqueue(message(&i.to_string()), None);
        assert!(q.counts().0 <= 10, "over the limit after message {i}");
    }
    // Whatever was still being read back, the oldest 30 are dropped: the rest come out in order.
    let (sink, rx) = TestSink::new(None);
    let sink_dyn: Arc<dyn DeliverySink> = sink.clone();
    let mut bodies = Vec::new();
    for _ in 0..10 {
        q.get(&sink_dyn, true);
        match next(&rx) {
            Got::GetOk { body, .. } => bodies.push(body_text(&body)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(bodies, (30..40).map(|i| i.to_string()).collect::<Vec<_>>());
    q.get(&sink_dyn, true);
    assert!(matches!(next(&rx), Got::GetEmpty { .. }));
}

/// A message with body `body`, persistent or not.
fn message_of(body: &str, persistent: bool) -> Arc<Message> {
    let raw: &'static [u8] = if persistent {
        &[0x10, 0x00, 0x02]
    } else {
        &[0x00, 0x00]
    };
    Arc::new(Message::new(
        String::new(),
        "q".into(),
        Properties::new(Bytes::from_static(raw)).unwrap(),
        Bytes::copy_from_slice(body.as_bytes()),
    ))
}

mod model {
    //! A model-based test in the manner of RabbitMQ's `classic_queue_prop_SUITE`: random
    //! publishes, gets (with and without ack), acks, requeues, purges and restarts of a durable
    //! queue that pages almost everything to the store; after every step the queue agrees with
    //! a plain list.

    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Publish { persistent: bool },
        Get { no_ack: bool },
        Consume { prefetch: u32 },
        Cancel,
        Ack(usize),
        Requeue(usize),
        Reject(usize),
        Purge,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<bool>().prop_map(|persistent| Op::Publish { persistent }),
            5 => any::<bool>().prop_map(|no_ack| Op::Get { no_ack }),
            1 => (1u32..4).prop_map(|prefetch| Op::Consume { prefetch }),
            1 => Just(Op::Cancel),
            2 => any::<usize>().prop_map(Op::Ack),
            2 => any::<usize>().prop_map(Op::Requeue),
            1 => any::<usize>().prop_map(Op::Reject),
            1 => Just(Op::Purge),
            1 => Just(Op::Restart),
        ]
    }

    /// The model's consumer: the queue's, its prefetch, and how many of its deliveries are
    /// unacked.
    struct ModelConsumer {
        c: Arc<Consumer>,
        /// Which consumer of the run it is (a delivery is settled against the one that took it).
        number: usize,
        prefetch: usize,
        held: usize,
    }

    /// A message as the model knows it.
    #[derive(Debug, Clone)]
    struct M {
        id: u64,
        persistent: bool,
        delivered: bool,
    }

    struct World {
        dir: tempfile::TempDir,
        store: Option<Arc<Store>>,
        id: u64,
        owner: Arc<TestOwner>,
        q: Option<Arc<Queue>>,
    }

    impl World {
        fn new() -> World {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(
                Store::open(
                    dir.path(),
                    StoreConfig {
                        sync: false,
                        ..Default::default()
                    },
                )
                .unwrap(),
            );
            let id = store.allocate_queue_ids(1);
            let mut w = World {
                dir,
                store: Some(store),
                id,
                owner: Arc::new(TestOwner::default()),
                q: None,
            };
            w.q = Some(w.fresh_queue());
            w
        }

        fn fresh_queue(&self) -> Arc<Queue> {
            let store = QueueStore {
                store: self.store.clone().unwrap(),
                id: self.id,
                // At most 2 in memory: nearly everything goes through the store.
                budget: Budget {
                    messages: 2,
                    bytes: 1 << 30,
                },
            };
            let spec = QueueSpec {
                name: "q".into(),
                durable: true,
                ..Default::default()
            };
            let owner = Arc::downgrade(&self.owner);
            let owner: Weak<dyn QueueOwner> = owner;
            Arc::new(Queue::new(
                spec,
                "/".into(),
                QueueArgs::default(),
                store,
                owner,
            ))
        }

        fn q(&self) -> &Arc<Queue> {
            self.q.as_ref().unwrap()
        }

        /// Stops the queue and the store (everything submitted is written), opens the store
        /// again (which drops transient records, as at start-up) and restores the queue from
        /// the store's counters, as recovery does.
        fn restart(&mut self) {
            let q = self.q.take().unwrap();
            drop(q);
            // A read-ahead may still hold the queue (and so the store) on a blocking thread:
            // wait until it let go, as a process exit would.
            let mut store = self.store.take().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match Arc::try_unwrap(store) {
                    Ok(s) => {
                        s.close();
                        break;
                    }
                    Err(s) if std::time::Instant::now() < deadline => {
                        store = s;
                        std::thread::yield_now();
                    }
                    Err(_) => panic!("the store is still in use 10 s after the queue was dropped"),
                }
            }
            let store = Arc::new(
                Store::open(
                    self.dir.path(),
                    StoreConfig {
                        sync: false,
                        ..Default::default()
                    },
                )
                .unwrap(),
            );
            store.reserve_queue_ids(self.id);
            let state = store.queue_state(self.id).unwrap();
            self.store = Some(store);
            let q = self.fresh_queue();
            q.restore(&[state]);
            self.q = Some(q);
        }
    }

    /// How long a delivery or an answer may take (from a blocking thread when it was paged).
    const WAIT: Duration = Duration::from_secs(5);

    fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut w = World::new();
        let (sink, rx) = TestSink::new(None);
        let sink: Arc<dyn DeliverySink> = sink;
        let mut next_id = 0u64;
        let mut ready: Vec<M> = Vec::new();
        // Unacked deliveries: the model's message, the queue's record of it, and whether the
        // consumer (rather than a get) took it.
        let mut unacked: Vec<(M, Delivery, Option<usize>)> = Vec::new();
        let mut consumers_made = 0;
        let (csink, crx) = TestSink::new(None);
        let mut consumer: Option<ModelConsumer> = None;
        for op in ops {
            match op {
                Op::Publish { persistent } => {
                    w.q()
                        .enqueue(message_of(&next_id.to_string(), persistent), None);
                    ready.push(M {
                        id: next_id,
                        persistent,
                        delivered: false,
                    });
                    next_id += 1;
                }
                Op::Get { no_ack } => {
                    w.q().get(&sink, no_ack);
                    let got = rx.recv_timeout(Duration::from_secs(10));
                    prop_assert!(got.is_ok(), "get not answered");
                    match (got.unwrap(), ready.is_empty()) {
                        (Got::GetEmpty { .. }, true) => {}
                        (
                            Got::GetOk {
                                body,
                                remaining,
                                delivery,
                                redelivered,
                                ..
                            },
                            false,
                        ) => {
                            let mut m = ready.remove(0);
                            prop_assert_eq!(body_text(&body), m.id.to_string());
                            prop_assert_eq!(
                                redelivered,
                                m.delivered,
                                "redelivered flag of {}",
                                m.id
                            );
                            prop_assert_eq!(remaining as usize, ready.len());
                            m.delivered = true;
                            if !no_ack {
                                unacked.push((m, delivery, None));
                            }
                        }
                        (other, _) => {
                            prop_assert!(false, "got {:?} with {} ready", other, ready.len())
                        }
                    }
                }
                Op::Consume { prefetch } => {
                    if consumer.is_none() {
                        let c = consumer_of(w.q(), &csink, prefetch);
                        w.q().consume(c.clone(), true);
                        consumers_made += 1;
                        consumer = Some(ModelConsumer {
                            c,
                            number: consumers_made,
                            prefetch: prefetch as usize,
                            held: 0,
                        });
                    }
                }
                Op::Cancel => {
                    // Its unacked deliveries stay unacked, as in RabbitMQ.
                    if let Some(mc) = consumer.take() {
                        w.q().cancel(&mc.c);
                    }
                }
                Op::Ack(i) | Op::Requeue(i) | Op::Reject(i) if !unacked.is_empty() => {
                    let (m, d, by_consumer) = unacked.remove(i % unacked.len());
                    // Settled as a channel does: the consumer's count first, then the queue,
                    // then the queue may deliver again.
                    if let Some(mc) = consumer
                        .as_mut()
                        .filter(|mc| by_consumer == Some(mc.number))
                    {
                        mc.c.unacked.fetch_sub(1, Ordering::Relaxed);
                        mc.held -= 1;
                    }
                    match op {
                        Op::Ack(_) => w.q().acked(&[d]),
                        Op::Reject(_) => w.q().discarded(&[d]),
                        _ => {
                            w.q().requeue(&[d]);
                            let at = ready.partition_point(|r| r.id < m.id);
                            ready.insert(at, m);
                        }
                    }
                    w.q().dispatch();
                }
                Op::Ack(_) | Op::Requeue(_) | Op::Reject(_) => {}
                Op::Purge => {
                    prop_assert_eq!(w.q().purge() as usize, ready.len());
                    ready.clear();
                }
                Op::Restart => {
                    // Unacked messages come back; only persistent ones survive; consumers are
                    // gone with their connections (which cancel them).
                    if let Some(mc) = consumer.take() {
                        w.q().cancel(&mc.c);
                    }
                    for (m, _, _) in unacked.drain(..) {
                        let at = ready.partition_point(|r| r.id < m.id);
                        ready.insert(at, m);
                    }
                    ready.retain(|m| m.persistent);
                    w.restart();
                }
            }
            // A consumer with room takes the head of the queue, in order, as far as its
            // prefetch allows (from a blocking thread when the head was paged).
            if let Some(mc) = consumer.as_mut() {
                let expected = (mc.prefetch - mc.held).min(ready.len());
                for _ in 0..expected {
                    match crx.recv_timeout(WAIT) {
                        Ok(Got::Deliver {
                            body,
                            redelivered,
                            delivery,
                            ..
                        }) => {
                            let mut m = ready.remove(0);
                            prop_assert_eq!(body_text(&body), m.id.to_string());
                            prop_assert_eq!(
                                redelivered,
                                m.delivered,
                                "redelivered flag of {}",
                                m.id
                            );
                            m.delivered = true;
                            unacked.push((m, delivery, Some(mc.number)));
                            mc.held += 1;
                        }
                        other => prop_assert!(false, "expected a delivery, got {:?}", other),
                    }
                }
            }
            prop_assert!(
                crx.try_recv().is_err(),
                "a delivery past the prefetch or the model"
            );
            prop_assert_eq!(w.q().counts().0 as usize, ready.len());
        }
        if let Some(mc) = consumer.take() {
            w.q().cancel(&mc.c);
        }
        // Whatever is left comes out in order, flagged redelivered if it was delivered before.
        for m in ready {
            w.q().get(&sink, true);
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Got::GetOk {
                    body, redelivered, ..
                }) => {
                    prop_assert_eq!(body_text(&body), m.id.to_string());
                    prop_assert_eq!(redelivered, m.delivered);
                }
                other => prop_assert!(false, "expected message {}, got {:?}", m.id, other),
            }
        }
        w.q().get(&sink, true);
        let last = rx.recv_timeout(Duration::from_secs(10));
        prop_assert!(
            matches!(last, Ok(Got::GetEmpty { .. })),
            "expected get-empty, got {:?}",
            last
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn a_paging_durable_queue_agrees_with_a_list(ops in proptest::collection::vec(op(), 1..60)) {
            run(ops)?;
        }
    }
}

#[test]
fn policy_and_arguments_resolve_as_rabbitmq_does() {
    use super::settings::{PolicySettings, Settings};
    let mut t = FieldTable::default();
    t.insert(
        "x-max-length".into(),
        amqp_codec::types::AMQPValue::LongInt(10),
    );
    t.insert(
        "x-message-ttl".into(),
        amqp_codec::types::AMQPValue::LongInt(60_000),
    );
    t.insert(
        "x-dead-letter-exchange".into(),
        amqp_codec::types::AMQPValue::LongString("from-args".into()),
    );
    let args = QueueArgs::parse(&t, "queue 'q' in vhost '/'").unwrap();
    let policy = PolicySettings {
        max_length: Some(20),
        message_ttl: Some(1_000),
        dlx: Some("from-policy".into()),
        dlrk: Some("rk".into()),
        overflow: Some(Overflow::RejectPublish),
        expires: Some(5_000),
        ..Default::default()
    };
    let s = Settings::resolve(&args, &policy);
    // Limits: the lower wins, whichever side sets it.
    assert_eq!(s.max_length, Some(10));
    assert_eq!(s.message_ttl, Some(1_000));
    assert_eq!(s.expires, Some(5_000));
    // Dead-lettering and overflow: the argument wins; the policy fills in what it leaves unset.
    assert_eq!(s.dlx.as_deref(), Some("from-args"));
    assert_eq!(s.dlrk.as_deref(), Some("rk"));
    assert_eq!(s.overflow, Overflow::RejectPublish);
    // An operator policy lowers limits further, never raises them.
    let operator = PolicySettings {
        max_length: Some(5),
        message_ttl: Some(9_000),
        ..Default::default()
    };
    let merged = policy.with_operator(&operator);
    assert_eq!(merged.max_length, Some(5));
    assert_eq!(merged.message_ttl, Some(1_000));
}

#[test]
fn a_length_limit_policy_trims_an_existing_queue_at_once() {
    let f = Fixture::new();
    let q = f.queue(1000, FieldTable::default());
    for i in 0..10 {
        q.enqueue(message(&i.to_string()), None);
    }
    assert_eq!(q.counts().0, 10);
    q.apply_policies(Some(&PolicySettings {
        max_length: Some(3),
        ..Default::default()
    }));
    assert_eq!(q.counts().0, 3);
    let (sink, rx) = TestSink::new(None);
    let sink_dyn: Arc<dyn DeliverySink> = sink.clone();
    q.get(&sink_dyn, true);
    assert!(matches!(next(&rx), Got::GetOk { body, .. } if body_text(&body) == "7"));
    // Without the policy, the limit is gone again.
    q.apply_policies(None);
    for i in 10..20 {
        q.enqueue(message(&i.to_string()), None);
    }
    assert_eq!(q.counts().0, 12);
}

/// A channel reads a queue's consumer timeout while holding its deliveries lock, and a queue
/// that delivers holds its own lock while it takes that one: reading the timeout must not wait
/// for the queue lock, or the two deadlock (seen in a backlog drain: the consumer-timeout check
/// and a chunk load each held one lock and waited for the other).
#[test]
fn the_consumer_timeout_is_read_without_the_queue_lock() {
    let f = Fixture::new();
    let mut t = FieldTable::default();
    t.insert(
        "x-consumer-timeout".into(),
        amqp_codec::types::AMQPValue::LongInt(60_000),
    );
    let q = f.queue(1000, t);
    let held = q.lock();
    let (tx, rx) = mpsc::channel();
    let reader = q.clone();
    std::thread::spawn(move || {
        let _ = tx.send(reader.consumer_timeout());
    });
    let got = rx.recv_timeout(Duration::from_secs(10));
    drop(held);
    assert_eq!(got, Ok(Some(60_000)), "blocked on the queue lock");
    // A policy's timeout is seen the same way, and so is its removal.
    q.apply_policies(Some(&PolicySettings {
        consumer_timeout: Some(5_000),
        ..Default::default()
    }));
    assert_eq!(q.consumer_timeout(), Some(5_000));
    let plain = f.queue(1000, FieldTable::default());
    assert_eq!(plain.consumer_timeout(), None);
}
