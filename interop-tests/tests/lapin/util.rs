//! Small helpers shared by the lapin test modules.

use interop_tests::*;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

/// A connection and one channel on it.
pub(crate) async fn open() -> (Connection, Channel) {
    let conn = connect().await;
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

/// Closes the connection normally.
///
/// lapin closes a channel by itself when its last handle is dropped; if that races with this
/// close, lapin fails the close with `InvalidChannelState` (a client-side race, nothing the
/// broker did), which is tolerated here.
pub(crate) async fn close(conn: Connection) {
    match conn.close(200, "bye".into()).await {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), lapin::ErrorKind::InvalidChannelState(..)) => {}
        Err(e) => panic!("close: {e}"),
    }
}

/// Declares an exclusive server-named queue; returns its name.
pub(crate) async fn temp_queue(ch: &Channel) -> String {
    ch.queue_declare(
        "".into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    )
    .await
    .expect("declare temp queue")
    .name()
    .to_string()
}

/// Declares a named, non-exclusive, auto-delete-free queue the test deletes itself.
pub(crate) async fn named_queue(ch: &Channel, prefix: &str) -> String {
    let q = unique(prefix);
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare queue");
    q
}

/// Declares a non-durable exchange of `kind` with a unique name.
pub(crate) async fn exchange(ch: &Channel, kind: ExchangeKind) -> String {
    let x = unique("x");
    ch.exchange_declare(
        x.as_str().into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare exchange");
    x
}

pub(crate) async fn delete_exchange(ch: &Channel, x: &str) {
    ch.exchange_delete(x.into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
}

pub(crate) async fn delete_queue(ch: &Channel, q: &str) {
    ch.queue_delete(q.into(), QueueDeleteOptions::default())
        .await
        .expect("delete queue");
}

pub(crate) async fn bind(ch: &Channel, q: &str, x: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        q.into(),
        x.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .expect("bind");
}

/// Publishes (no confirms) with default properties.
pub(crate) async fn publish(ch: &Channel, x: &str, key: &str, body: &[u8]) {
    publish_with(ch, x, key, body, BasicProperties::default()).await;
}

pub(crate) async fn publish_with(
    ch: &Channel,
    x: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    ch.basic_publish(
        x.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .expect("publish");
}

/// One basic.get (no_ack). A message published earlier on the same channel is already
/// enqueued: the broker handles a channel's methods in order.
pub(crate) async fn get(ch: &Channel, q: &str) -> Option<BasicGetMessage> {
    within(10, ch.basic_get(q.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
}

/// Gets (no_ack) until the queue is empty; returns the bodies in order.
pub(crate) async fn drain(ch: &Channel, q: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, q).await {
        out.push(m.delivery.data);
    }
    out
}

/// Gets (no_ack) until the queue is empty; returns the deliveries in order.
pub(crate) async fn drain_deliveries(ch: &Channel, q: &str) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Some(m) = get(ch, q).await {
        out.push(m.delivery);
    }
    out
}

/// Message count from a passive declare.
pub(crate) async fn message_count(ch: &Channel, q: &str) -> u32 {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

/// Passive declare of an exchange.
pub(crate) async fn exchange_exists(ch: &Channel, x: &str) -> lapin::Result<()> {
    ch.exchange_declare(
        x.into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

/// Passive declare of a queue.
pub(crate) async fn queue_exists(ch: &Channel, q: &str) -> lapin::Result<lapin::Queue> {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

/// Builds a field table from (key, value) pairs.
pub(crate) fn table(entries: Vec<(&str, lapin::types::AMQPValue)>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(k.into(), v);
    }
    t
}

/// A long-string field value.
pub(crate) fn lstr(s: &str) -> lapin::types::AMQPValue {
    lapin::types::AMQPValue::LongString(s.into())
}

/// Puts the channel in confirm mode.
pub(crate) async fn confirm_mode(ch: &Channel) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
}

/// Waits for all outstanding confirms of a confirm-mode channel (all must be acks without
/// returns). Once confirmed, a message is in its queues: RabbitMQ answers a queue.declare before
/// it has handled earlier publishes, so message counts are only checked after this.
pub(crate) async fn settle(ch: &Channel) {
    let returned = within(30, ch.wait_for_confirms())
        .await
        .expect("wait for confirms");
    assert!(returned.is_empty(), "unexpected returns: {returned:?}");
}
