//! RabbitMQ's queue extensions through lapin: priorities, TTL and queue expiry, dead-lettering
//! (x-death), length limits, single active consumer, quorum delivery counts and limits, argument
//! validation, and CC/BCC sender-selected routing.
//!
//! The lapin counterpart of `interop-tests/pika/test_ext_*.py`; the behaviours are those written
//! down in `docs/rabbitmq-extensions-observed.md` (observed on RabbitMQ 3.10.8). Every wait is a poll
//! against a deadline; timings (TTLs, x-expires) are small.
//!
//! Queues are exclusive where the feature allows it (so they go with the connection), named
//! with [`unique`]; quorum queues and x-expires queues are named and deleted (or expire).

mod args;
mod cc_bcc;
mod dlx;
mod maxlen;
mod priority;
mod quorum;
mod routing;
mod sac;
mod ttl;

use std::time::{Duration, Instant};

use crate::util::*;
use futures::StreamExt;
use interop_tests::*;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer};

/// How long any single wait may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The pause between two polls of a deadline-bounded loop (pacing, not synchronisation).
async fn pace() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// An AMQP `I` (signed 32-bit) field value.
pub(crate) fn int(v: i32) -> AMQPValue {
    AMQPValue::LongInt(v)
}

/// An AMQP `l` (signed 64-bit) field value.
pub(crate) fn long(v: i64) -> AMQPValue {
    AMQPValue::LongLongInt(v)
}

/// The vhost of the broker URL (as it appears in reply texts).
pub(crate) fn vhost() -> String {
    credentials().2
}

/// `queue '<q>' in vhost '<v>'`, as RabbitMQ names a queue in reply texts.
pub(crate) fn qname(q: &str) -> String {
    format!("queue '{q}' in vhost '{}'", vhost())
}

/// Declares queue `q` with `args`.
pub(crate) async fn declare(
    ch: &Channel,
    q: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(q.into(), options, args).await
}

/// Declares an exclusive queue with a unique name and `args`; returns its name.
pub(crate) async fn xqueue(ch: &Channel, prefix: &str, args: FieldTable) -> String {
    let q = unique(prefix);
    declare(ch, &q, QueueDeclareOptions::exclusive(), args)
        .await
        .expect("declare queue");
    q
}

/// Dead-lettering arguments sending to queue `dead` through the default exchange.
pub(crate) fn dlx_to(dead: &str) -> Vec<(&'static str, AMQPValue)> {
    vec![
        ("x-dead-letter-exchange", lstr("")),
        ("x-dead-letter-routing-key", lstr(dead)),
    ]
}

/// A confirm-mode channel on `conn`.
pub(crate) async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel");
    confirm_mode(&ch).await;
    ch
}

/// Publishes and waits for the publisher confirm (the channel must be in confirm mode).
pub(crate) async fn publish_confirmed(
    ch: &Channel,
    x: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
    mandatory: bool,
) -> Confirmation {
    let confirm = ch
        .basic_publish(
            x.into(),
            key.into(),
            BasicPublishOptions {
                mandatory,
                ..Default::default()
            },
            body,
            props,
        )
        .await
        .expect("publish");
    within(10, confirm).await.expect("confirm")
}

/// Publishes to the default exchange and asserts a plain ack (no return).
pub(crate) async fn send(ch: &Channel, q: &str, body: &str, props: BasicProperties) {
    let c = publish_confirmed(ch, "", q, body.as_bytes(), props, false).await;
    assert_eq!(c, Confirmation::Ack(None), "publish of {body:?} to {q}");
}

/// basic.get until a message arrives (fails after [`WAIT`]).
pub(crate) async fn poll_get(ch: &Channel, q: &str, no_ack: bool) -> BasicGetMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(m) = within(10, ch.basic_get(q.into(), BasicGetOptions { no_ack }))
            .await
            .expect("basic.get")
        {
            return m;
        }
        assert!(Instant::now() < deadline, "nothing arrived in {q}");
        pace().await;
    }
}

/// Polls the ready-message count (passive declare) until it is `n` (fails after [`WAIT`]).
pub(crate) async fn wait_count(ch: &Channel, q: &str, n: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = message_count(ch, q).await;
        if got == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{q} holds {got} messages, expected {n}"
        );
        pace().await;
    }
}

/// Bodies as strings.
pub(crate) fn texts<'a>(ds: impl IntoIterator<Item = &'a Delivery>) -> Vec<String> {
    ds.into_iter()
        .map(|d| String::from_utf8(d.data.clone()).expect("utf-8 body"))
        .collect()
}

/// All bodies left in `q` (basic.get, no-ack), as strings.
pub(crate) async fn drain_texts(ch: &Channel, q: &str) -> Vec<String> {
    texts(&drain_deliveries(ch, q).await)
}

/// Starts a consumer on `q`.
pub(crate) async fn consume(ch: &Channel, q: &str, tag: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        q.into(),
        tag.into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

/// The next delivery of a consumer (fails after 10 s).
pub(crate) async fn next(c: &mut Consumer) -> Delivery {
    within(10, c.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

/// Header `key` of a delivery.
pub(crate) fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(key))
}

/// The header keys, sorted.
pub(crate) fn header_keys(d: &Delivery) -> Vec<String> {
    d.properties
        .headers()
        .as_ref()
        .map(|h| h.inner().keys().map(|k| k.to_string()).collect())
        .unwrap_or_default()
}

/// A long-string value as a `String`; panics on any other type.
#[track_caller]
pub(crate) fn as_lstr(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).expect("utf-8"),
        other => panic!("expected a long string, got {other:?}"),
    }
}

/// One x-death entry, with every field type checked on the way in: `count` a long (`l`),
/// `time` a timestamp (`T`), `routing-keys` an array of long strings, the rest long strings,
/// and no other keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Death {
    pub count: i64,
    pub reason: String,
    pub queue: String,
    pub exchange: String,
    pub routing_keys: Vec<String>,
    pub time: u64,
    pub original_expiration: Option<String>,
}

#[track_caller]
fn death_entry(v: &AMQPValue) -> Death {
    let AMQPValue::FieldTable(t) = v else {
        panic!("an x-death entry is a table, got {v:?}")
    };
    let m = t.inner();
    let mut keys: Vec<&str> = m.keys().map(|k| k.as_str()).collect();
    keys.sort_unstable();
    let mut expected = vec![
        "count",
        "exchange",
        "queue",
        "reason",
        "routing-keys",
        "time",
    ];
    if m.contains_key("original-expiration") {
        expected.insert(2, "original-expiration");
    }
    assert_eq!(keys, expected, "x-death entry keys");
    let count = match &m["count"] {
        AMQPValue::LongLongInt(n) => *n,
        other => panic!("x-death count must be a long (l), got {other:?}"),
    };
    let time = match &m["time"] {
        AMQPValue::Timestamp(t) => *t,
        other => panic!("x-death time must be a timestamp (T), got {other:?}"),
    };
    let routing_keys = match &m["routing-keys"] {
        AMQPValue::FieldArray(a) => a.as_slice().iter().map(as_lstr).collect(),
        other => panic!("x-death routing-keys must be an array, got {other:?}"),
    };
    Death {
        count,
        reason: as_lstr(&m["reason"]),
        queue: as_lstr(&m["queue"]),
        exchange: as_lstr(&m["exchange"]),
        routing_keys,
        time,
        original_expiration: m.get("original-expiration").map(as_lstr),
    }
}

/// The x-death header of a delivery, most recent death first (types checked, see [`Death`]).
#[track_caller]
pub(crate) fn deaths(d: &Delivery) -> Vec<Death> {
    match header(d, "x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().iter().map(death_entry).collect(),
        other => panic!("x-death must be an array, got {other:?}"),
    }
}

/// The x-first-death-{exchange, queue, reason} headers (long strings).
#[track_caller]
pub(crate) fn first_death(d: &Delivery) -> (String, String, String) {
    let get = |k: &str| as_lstr(header(d, k).unwrap_or_else(|| panic!("no {k} header")));
    (
        get("x-first-death-exchange"),
        get("x-first-death-queue"),
        get("x-first-death-reason"),
    )
}

/// Shorthand for a `Death` expectation without time (compare with [`sans_time`]).
pub(crate) fn death(
    count: i64,
    reason: &str,
    queue: &str,
    exchange: &str,
    routing_keys: &[&str],
    original_expiration: Option<&str>,
) -> Death {
    Death {
        count,
        reason: reason.into(),
        queue: queue.into(),
        exchange: exchange.into(),
        routing_keys: routing_keys.iter().map(|s| s.to_string()).collect(),
        time: 0,
        original_expiration: original_expiration.map(String::from),
    }
}

/// The deaths with `time` zeroed, for comparing with [`death`] expectations.
pub(crate) fn sans_time(ds: Vec<Death>) -> Vec<Death> {
    ds.into_iter().map(|d| Death { time: 0, ..d }).collect()
}

/// Unix time in seconds.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Opens a fresh channel on `conn`, declares `q` with `options`/`args` expecting a channel
/// error, and returns (reply code, reply text).
pub(crate) async fn declare_error(
    conn: &Connection,
    q: &str,
    options: QueueDeclareOptions,
    args: FieldTable,
) -> (u16, String) {
    let ch = conn.create_channel().await.expect("channel");
    match declare(&ch, q, options, args).await {
        Ok(ok) => panic!("declare of {q} succeeded: {ok:?}"),
        Err(e) => protocol_error(&e).unwrap_or_else(|| panic!("not a protocol error: {e}")),
    }
}

/// Waits until queue `q` no longer exists, probing with mandatory publishes in confirm mode
/// (which, unlike a passive declare or basic.get, do not renew an x-expires lease): the first
/// one returned with 312 NO_ROUTE shows the queue is gone. Returns the time it took.
pub(crate) async fn wait_gone_by_publish(ch: &Channel, q: &str) -> Duration {
    let start = Instant::now();
    loop {
        match publish_confirmed(ch, "", q, b"probe", BasicProperties::default(), true).await {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(r)) => {
                assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
                return start.elapsed();
            }
            other => panic!("unexpected confirmation {other:?}"),
        }
        assert!(start.elapsed() < WAIT, "{q} did not expire");
        pace().await;
    }
}
