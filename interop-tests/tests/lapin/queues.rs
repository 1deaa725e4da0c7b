//! queue.declare / bind / purge / delete, exclusive and auto-delete queues.

use crate::util::*;
use futures::StreamExt;
use interop_tests::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};

/// Waits until a passive declare of `q` fails with 404 (the broker may delete a queue
/// asynchronously after the event that triggers the deletion). Uses fresh channels of `conn`.
async fn wait_until_gone(conn: &Connection, q: &str) {
    within(10, async {
        loop {
            let ch = conn.create_channel().await.unwrap();
            match queue_exists(&ch, q).await {
                Ok(_) => {
                    ch.close(200, "bye".into()).await.unwrap();
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    assert_eq!(
                        protocol_error(&e),
                        Some((404, format!("NOT_FOUND - no queue '{q}' in vhost '/'")))
                    );
                    return;
                }
            }
        }
    })
    .await
}

async fn consume(ch: &Channel, q: &str, tag: &str) -> lapin::Consumer {
    ch.basic_consume(
        q.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn server_named_queue() {
    let (conn, ch) = open().await;
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
    assert!(q.name().as_str().len() > "amq.gen-".len() + 10);
    assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    let q2 = temp_queue(&ch).await;
    assert_ne!(q.name().as_str(), q2);
    // the name can be used like any other
    publish(&ch, "", q.name().as_str(), b"m").await;
    assert_eq!(drain(&ch, q.name().as_str()).await, vec![b"m".to_vec()]);
    close(conn).await;
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_not_found() {
    let (conn, ch) = open().await;
    let q = unique("missing");
    assert_amqp_error(
        queue_exists(&ch, &q).await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn amq_prefix_is_reserved_for_queues() {
    let (conn, ch) = open().await;
    let q = format!("amq.{}", unique("q"));
    let r = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        403,
        &format!("ACCESS_REFUSED - queue name '{q}' contains reserved prefix 'amq.*'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn exclusive_queue_is_locked_to_its_connection() {
    let (owner, och) = open().await;
    let q = unique("exclusive");
    och.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let other = connect().await;
    let locked = format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'."
    );
    // declare (exclusive or not), passive declare, consume and get are all refused
    for opts in [
        QueueDeclareOptions::exclusive(),
        QueueDeclareOptions::default(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
    ] {
        let ch = other.create_channel().await.unwrap();
        let r = ch
            .queue_declare(q.as_str().into(), opts, FieldTable::default())
            .await;
        assert_amqp_error(r, 405, &locked);
    }
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(r, 405, &locked);
    let ch = other.create_channel().await.unwrap();
    let r = ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await;
    assert_amqp_error(r, 405, &locked);
    // the owner's other channels may use it
    let och2 = owner.create_channel().await.unwrap();
    queue_exists(&och2, &q).await.unwrap();
    close(other).await;
    close(owner).await;
}

#[tokio::test]
async fn exclusive_queue_is_deleted_with_its_connection() {
    let (owner, och) = open().await;
    let q = unique("exclusive");
    och.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    confirm_mode(&och).await;
    publish(&och, "", &q, b"lost").await;
    settle(&och).await;
    assert_eq!(message_count(&och, &q).await, 1);
    close(owner).await;
    let other = connect().await;
    wait_until_gone(&other, &q).await;
    // and the name is free again
    let ch = other.create_channel().await.unwrap();
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    close(other).await;
}

#[tokio::test]
async fn auto_delete_queue_goes_after_last_consumer_cancels() {
    let (conn, ch) = open().await;
    let q = unique("auto-delete");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    // never consumed from: stays
    queue_exists(&ch, &q).await.unwrap();
    let c1 = consume(&ch, &q, "c1").await;
    let c2 = consume(&ch, &q, "c2").await;
    assert_eq!(queue_exists(&ch, &q).await.unwrap().consumer_count(), 2);
    ch.basic_cancel(c1.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert_eq!(queue_exists(&ch, &q).await.unwrap().consumer_count(), 1);
    ch.basic_cancel(c2.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    wait_until_gone(&conn, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn auto_delete_queue_goes_when_consumer_channel_closes() {
    let (conn, ch) = open().await;
    let q = unique("auto-delete");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    let cch = conn.create_channel().await.unwrap();
    let _c = consume(&cch, &q, "").await;
    cch.close(200, "bye".into()).await.unwrap();
    wait_until_gone(&conn, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn redeclare_with_different_properties_is_precondition_failed() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = named_queue(&ch, "redeclare").await;
    // an identical redeclare is fine
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let cases: Vec<(QueueDeclareOptions, FieldTable, String)> = vec![
        (
            QueueDeclareOptions::durable(),
            FieldTable::default(),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{q}' in vhost '/': \
                 received 'true' but current is 'false'"
            ),
        ),
        (
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '{q}' in vhost '/': \
                 received 'true' but current is 'false'"
            ),
        ),
        (
            QueueDeclareOptions::default(),
            table(vec![("x-max-length", AMQPValue::LongInt(10))]),
            format!(
                "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': \
                 received the value '10' of type 'signedint' but current is none"
            ),
        ),
    ];
    for (opts, args, text) in cases {
        let bad = conn.create_channel().await.unwrap();
        let r = bad.queue_declare(q.as_str().into(), opts, args).await;
        assert_amqp_error(r, 406, &text);
    }
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn declare_ok_counts_ready_messages_and_consumers() {
    let (conn, ch) = open().await;
    let q = unique("counts");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions::exclusive(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    confirm_mode(&ch).await;
    for i in 0..3 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    settle(&ch).await;
    let d = queue_exists(&ch, &q).await.unwrap();
    assert_eq!((d.message_count(), d.consumer_count()), (3, 0));
    // an active redeclare reports the same counts
    let d = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!((d.message_count(), d.consumer_count()), (3, 0));
    let cch = conn.create_channel().await.unwrap();
    cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&cch, &q, "").await;
    let first = within(10, c.next()).await.unwrap().unwrap();
    assert_eq!(first.data, b"0");
    // the unacked message is no longer counted as ready
    let d = queue_exists(&ch, &q).await.unwrap();
    assert_eq!((d.message_count(), d.consumer_count()), (2, 1));
    close(conn).await;
}

#[tokio::test]
async fn purge_returns_the_count_and_spares_unacked() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let held = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.message_count, 4);
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 4);
    assert_eq!(message_count(&ch, &q).await, 0);
    // purging an empty queue is fine
    let purged = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 0);
    // the unacked message survives and comes back when rejected
    ch.basic_reject(
        held.delivery.delivery_tag,
        BasicRejectOptions { requeue: true },
    )
    .await
    .unwrap();
    let back = get(&ch, &q).await.unwrap();
    assert_eq!(
        (back.delivery.data.as_slice(), back.delivery.redelivered),
        (&b"0"[..], true)
    );
    close(conn).await;
}

#[tokio::test]
async fn purge_of_missing_queue_is_not_found() {
    let (conn, ch) = open().await;
    let q = unique("missing");
    let r = ch
        .queue_purge(q.as_str().into(), QueuePurgeOptions::default())
        .await;
    assert_amqp_error(r, 404, &format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
    close(conn).await;
}

#[tokio::test]
async fn delete_returns_count_and_honours_if_unused_and_if_empty() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = named_queue(&ch, "delete").await;
    confirm_mode(&ch).await;
    publish(&ch, "", &q, b"m").await;
    settle(&ch).await;
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await;
    assert_amqp_error(
        r,
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"),
    );
    let cch = conn.create_channel().await.unwrap();
    let c = consume(&cch, &q, "").await;
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await;
    assert_amqp_error(
        r,
        406,
        &format!("PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"),
    );
    cch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // the consumer got the message (unacked), cancelling requeues nothing until the channel
    // closes; close it so the message is back
    cch.close(200, "bye".into()).await.unwrap();
    let n = ch
        .queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_amqp_error(
        queue_exists(&ch, &q).await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn delete_missing_queue_is_ok() {
    let (conn, ch) = open().await;
    let n = ch
        .queue_delete(
            unique("missing").as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    close(conn).await;
}

#[tokio::test]
async fn delete_with_consumers_cancels_them() {
    let (conn, ch) = open().await;
    let q = named_queue(&ch, "delete-consumed").await;
    let cconn = connect().await;
    let cch = cconn.create_channel().await.unwrap();
    let mut c = consume(&cch, &q, "").await;
    let n = ch
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(n, 0);
    // basic.cancel from the broker: lapin ends the consumer's stream
    let end = within(10, c.next()).await;
    assert!(end.is_none(), "{end:?}");
    // the channel stays open
    assert!(cch.status().connected());
    cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    close(cconn).await;
    close(conn).await;
}

#[tokio::test]
async fn bind_errors() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    let missing = unique("missing");
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .queue_bind(
            q.as_str().into(),
            missing.as_str().into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        404,
        &format!("NOT_FOUND - no exchange '{missing}' in vhost '/'"),
    );
    let bad = conn.create_channel().await.unwrap();
    let r = bad
        .queue_bind(
            missing.as_str().into(),
            "amq.direct".into(),
            "k".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        404,
        &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
    );
    // unbinding something never bound is fine
    ch.queue_unbind(
        q.as_str().into(),
        "amq.direct".into(),
        "never".into(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    close(conn).await;
}

#[tokio::test]
async fn empty_queue_name_means_last_declared_queue() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    let x = exchange(&ch, ExchangeKind::Fanout).await;
    // queue.bind with an empty queue name binds the channel's last declared queue
    ch.queue_bind(
        "".into(),
        x.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, &x, "", b"via-x").await;
    let m = ch
        .basic_get("".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("message in the last declared queue");
    assert_eq!(m.delivery.data, b"via-x");
    assert_eq!(message_count(&ch, &q).await, 0);
    delete_exchange(&ch, &x).await;
    close(conn).await;
}
