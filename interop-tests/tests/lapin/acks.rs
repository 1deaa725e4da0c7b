//! Acknowledgements: ack, nack, reject, recover, and their errors.

use crate::util::*;
use futures::StreamExt;
use interop_tests::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

/// A queue with `n` messages "0".."n-1" and a manual-ack consumer on it (on `ch`).
async fn consumer_with_messages(ch: &Channel, n: usize) -> (String, Consumer) {
    let q = temp_queue(ch).await;
    for i in 0..n {
        publish(ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let c = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    (q, c)
}

async fn next(c: &mut Consumer) -> Delivery {
    within(10, c.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

async fn take(c: &mut Consumer, n: usize) -> Vec<Delivery> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(next(c).await);
    }
    v
}

fn bodies(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8(d.data.clone()).unwrap())
        .collect()
}

/// Cancels the consumer and closes the channel, then counts what is left in the queue
/// (unacked messages are requeued when their channel closes).
async fn remaining_after_close(conn: &lapin::Connection, ch: Channel, q: &str) -> Vec<Vec<u8>> {
    ch.close(200, "bye".into()).await.unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let left = drain(&ch2, q).await;
    ch2.close(200, "bye".into()).await.unwrap();
    left
}

#[tokio::test]
async fn ack_single_and_multiple() {
    let (conn, ch) = open().await;
    let (q, mut c) = consumer_with_messages(&ch, 5).await;
    let ds = take(&mut c, 5).await;
    assert_eq!(
        ds.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // ack 2 alone, then 1..=4 with multiple (2 already acked)
    ch.basic_ack(2, BasicAckOptions::default()).await.unwrap();
    ch.basic_ack(4, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    // only 5 is left unacked: it comes back when the channel closes
    let left = remaining_after_close(&conn, ch, &q).await;
    assert_eq!(left, vec![b"4".to_vec()]);
    close(conn).await;
}

#[tokio::test]
async fn ack_zero_multiple_acks_everything() {
    let (conn, ch) = open().await;
    let (q, mut c) = consumer_with_messages(&ch, 3).await;
    take(&mut c, 3).await;
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert!(remaining_after_close(&conn, ch, &q).await.is_empty());
    close(conn).await;
}

#[tokio::test]
async fn nack_multiple_requeue_redelivers_in_original_order() {
    let (conn, ch) = open().await;
    let (_q, mut c) = consumer_with_messages(&ch, 4).await;
    let first = take(&mut c, 4).await;
    assert!(first.iter().all(|d| !d.redelivered));
    ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    )
    .await
    .unwrap();
    let again = take(&mut c, 3).await;
    assert_eq!(bodies(&again), vec!["0", "1", "2"]);
    assert!(again.iter().all(|d| d.redelivered));
    // delivery tags keep increasing on the channel
    assert_eq!(
        again.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    close(conn).await;
}

#[tokio::test]
async fn reject_requeue_goes_back_to_its_position() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    for b in ["a", "b", "c"] {
        publish(&ch, "", &q, b.as_bytes()).await;
    }
    let a = ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.delivery.data, b"a");
    a.delivery
        .acker
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(
        got.iter()
            .map(|d| (d.data.clone(), d.redelivered))
            .collect::<Vec<_>>(),
        vec![
            (b"a".to_vec(), true),
            (b"b".to_vec(), false),
            (b"c".to_vec(), false)
        ]
    );
    close(conn).await;
}

#[tokio::test]
async fn reject_and_nack_without_requeue_drop() {
    let (conn, ch) = open().await;
    let (q, mut c) = consumer_with_messages(&ch, 3).await;
    let ds = take(&mut c, 3).await;
    ds[0]
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    ch.basic_nack(
        3,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    )
    .await
    .unwrap();
    assert!(remaining_after_close(&conn, ch, &q).await.is_empty());
    close(conn).await;
}

#[tokio::test]
async fn unacked_messages_are_requeued_when_the_channel_closes() {
    let (conn, ch) = open().await;
    let (q, mut c) = consumer_with_messages(&ch, 3).await;
    let ds = take(&mut c, 3).await;
    ds[1].acker.ack(BasicAckOptions::default()).await.unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let got = drain_deliveries(&ch2, &q).await;
    assert_eq!(
        got.iter()
            .map(|d| (d.data.clone(), d.redelivered))
            .collect::<Vec<_>>(),
        vec![(b"0".to_vec(), true), (b"2".to_vec(), true)]
    );
    close(conn).await;
}

#[tokio::test]
async fn unknown_delivery_tag_is_precondition_failed() {
    let (conn, ch) = open().await;
    let (_q, mut c) = consumer_with_messages(&ch, 1).await;
    next(&mut c).await;
    ch.basic_ack(99, BasicAckOptions::default()).await.unwrap();
    // the consumer's stream reports the channel close
    let err = within(10, c.next()).await.unwrap().unwrap_err();
    assert_eq!(
        protocol_error(&err),
        Some((406, "PRECONDITION_FAILED - unknown delivery tag 99".into()))
    );
    assert!(conn.status().connected());
    close(conn).await;
}

#[tokio::test]
async fn double_ack_is_precondition_failed() {
    let (conn, ch) = open().await;
    let (_q, mut c) = consumer_with_messages(&ch, 2).await;
    let ds = take(&mut c, 2).await;
    ch.basic_ack(ds[0].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    // (lapin's acker refuses to ack twice, so go through the channel)
    ch.basic_ack(ds[0].delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let err = within(10, c.next()).await.unwrap().unwrap_err();
    assert_eq!(
        protocol_error(&err),
        Some((
            406,
            format!(
                "PRECONDITION_FAILED - unknown delivery tag {}",
                ds[0].delivery_tag
            )
        ))
    );
    close(conn).await;
}

#[tokio::test]
async fn ack_in_no_ack_mode_is_unknown_tag() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, b"m").await;
    let mut c = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = next(&mut c).await;
    ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    let err = within(10, c.next()).await.unwrap().unwrap_err();
    assert_eq!(
        protocol_error(&err),
        Some((406, "PRECONDITION_FAILED - unknown delivery tag 1".into()))
    );
    close(conn).await;
}

#[tokio::test]
async fn ack_on_another_channel_is_unknown_tag() {
    let (conn, ch) = open().await;
    let (_q, mut c) = consumer_with_messages(&ch, 1).await;
    let d = next(&mut c).await;
    let other = conn.create_channel().await.unwrap();
    let watch = watch_close(&other).await;
    other
        .basic_ack(d.delivery_tag, BasicAckOptions::default())
        .await
        .unwrap();
    assert_eq!(
        watch.closed().await,
        (406, "PRECONDITION_FAILED - unknown delivery tag 1".into())
    );
    // the delivering channel is unaffected
    d.acker.ack(BasicAckOptions::default()).await.unwrap();
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    close(conn).await;
}

#[tokio::test]
async fn recover_requeue_redelivers_unacked() {
    let (conn, ch) = open().await;
    let (_q, mut c) = consumer_with_messages(&ch, 3).await;
    let first = take(&mut c, 3).await;
    first[0]
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let again = take(&mut c, 2).await;
    assert_eq!(bodies(&again), vec!["1", "2"]);
    assert!(again.iter().all(|d| d.redelivered));
    assert!(again.iter().all(|d| d.delivery_tag > 3));
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    close(conn).await;
}

#[tokio::test]
async fn get_then_ack_multiple_mixed_with_consumer_deliveries() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    for i in 0..4 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let g = ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(g.delivery.delivery_tag, 1);
    let mut c = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ds = take(&mut c, 3).await;
    assert_eq!(
        ds.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    // one tag space per channel: a multiple ack covers get and consume deliveries
    ch.basic_ack(3, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    ch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert_eq!(
        remaining_after_close(&conn, ch, &q).await,
        vec![b"3".to_vec()]
    );
    close(conn).await;
}

#[tokio::test]
async fn recover_ok_precedes_the_redeliveries() {
    // lapin drops deliveries it has buffered but not handed out when basic.recover-ok arrives,
    // so a broker must answer recover-ok before redelivering (RabbitMQ does). Checked on the wire.
    use interop_tests::raw::{Raw, FRAME_BODY, FRAME_HEADER};
    use lapin::protocol::{basic, queue, AMQPClass};
    let (mut r, _) = Raw::open().await;
    r.open_channel(1).await;
    r.send_method(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "".into(),
            passive: false,
            durable: false,
            exclusive: true,
            auto_delete: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await;
    let q = match r.read_method().await {
        Some((1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)))) => ok.queue,
        other => panic!("expected queue.declare-ok, got {other:?}"),
    };
    r.publish(1, "", q.as_str(), b"m").await;
    r.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: q.clone(),
            consumer_tag: "c".into(),
            no_local: false,
            no_ack: false,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    )
    .await;
    let mut deliveries = Vec::new();
    let mut events = Vec::new();
    // consume-ok, then the delivery (method, header, body)
    while deliveries.is_empty() {
        let f = r.read_frame().await.expect("frame");
        match f.kind {
            FRAME_HEADER | FRAME_BODY => events.push("content"),
            _ => {
                let (_, m) = lapin::protocol::parse_class(&f.payload[..]).unwrap();
                match m {
                    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => events.push("consume-ok"),
                    AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => deliveries.push(d),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    assert!(!deliveries[0].redelivered);
    r.send_method(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
    )
    .await;
    let mut after = Vec::new();
    while after.len() < 2 {
        let f = r.read_frame().await.expect("frame");
        if f.kind == FRAME_HEADER || f.kind == FRAME_BODY {
            continue;
        }
        match lapin::protocol::parse_class(&f.payload[..]).unwrap().1 {
            AMQPClass::Basic(basic::AMQPMethod::RecoverOk(_)) => {
                after.push("recover-ok".to_string())
            }
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => {
                after.push(format!("deliver redelivered={}", d.redelivered))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(after, vec!["recover-ok", "deliver redelivered=true"]);
}
