//! basic.qos prefetch (per consumer and global) and distribution between consumers.

use crate::util::*;
use futures::StreamExt;
use interop_tests::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};

/// A queue holding `n` confirmed messages "0".."n-1" (declared and filled on a channel of
/// `conn`, so the consuming channel stays clean).
async fn filled_queue(conn: &lapin::Connection, n: usize) -> String {
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    confirm_mode(&ch).await;
    for i in 0..n {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    settle(&ch).await;
    ch.close(200, "bye".into()).await.unwrap();
    q
}

async fn consume(ch: &Channel, q: &str, no_ack: bool) -> Consumer {
    ch.basic_consume(
        q.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap()
}

async fn next(c: &mut Consumer) -> Delivery {
    within(10, c.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries_per_consumer() {
    let conn = connect().await;
    let q = filled_queue(&conn, 10).await;
    let ch = conn.create_channel().await.unwrap();
    let probe = conn.create_channel().await.unwrap();
    ch.basic_qos(3, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&ch, &q, false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next(&mut c).await);
    }
    // exactly 3 left the queue: the other 7 are still ready
    assert_eq!(message_count(&probe, &q).await, 7);
    // one ack lets exactly one more through
    got[0].acker.ack(BasicAckOptions::default()).await.unwrap();
    got.push(next(&mut c).await);
    assert_eq!(got[3].data, b"3");
    assert_eq!(message_count(&probe, &q).await, 6);
    // the limit is per consumer: a second consumer on the channel gets its own 3
    let mut c2 = consume(&ch, &q, false).await;
    for _ in 0..3 {
        next(&mut c2).await;
    }
    assert_eq!(message_count(&probe, &q).await, 3);
    // acking everything lets the rest flow
    ch.basic_ack(0, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    let mut rest = 0;
    let mut both = futures::stream::select(c, c2);
    while rest < 3 {
        within(10, both.next()).await.unwrap().unwrap();
        rest += 1;
    }
    close(conn).await;
}

#[tokio::test]
async fn global_prefetch_is_shared_by_the_channel() {
    let conn = connect().await;
    let q1 = filled_queue(&conn, 5).await;
    let q2 = filled_queue(&conn, 5).await;
    let ch = conn.create_channel().await.unwrap();
    let probe = conn.create_channel().await.unwrap();
    ch.basic_qos(2, BasicQosOptions { global: true })
        .await
        .unwrap();
    let c1 = consume(&ch, &q1, false).await;
    let c2 = consume(&ch, &q2, false).await;
    let mut both = futures::stream::select(c1, c2);
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(within(10, both.next()).await.unwrap().unwrap());
    }
    let ready = message_count(&probe, &q1).await + message_count(&probe, &q2).await;
    assert_eq!(ready, 8, "two deliveries in all for the channel");
    got[0].acker.ack(BasicAckOptions::default()).await.unwrap();
    within(10, both.next()).await.unwrap().unwrap();
    let ready = message_count(&probe, &q1).await + message_count(&probe, &q2).await;
    assert_eq!(ready, 7);
    close(conn).await;
}

#[tokio::test]
async fn prefetch_zero_is_unlimited_and_no_ack_ignores_prefetch() {
    let conn = connect().await;
    let q1 = filled_queue(&conn, 20).await;
    let q2 = filled_queue(&conn, 20).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(0, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&ch, &q1, false).await;
    for i in 0..20 {
        assert_eq!(next(&mut c).await.data, format!("{i}").as_bytes());
    }
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&ch, &q2, true).await;
    for i in 0..20 {
        assert_eq!(next(&mut c).await.data, format!("{i}").as_bytes());
    }
    close(conn).await;
}

#[tokio::test]
async fn prefetch_one_with_acks_delivers_everything_in_order() {
    let conn = connect().await;
    let q = filled_queue(&conn, 50).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&ch, &q, false).await;
    for i in 0..50 {
        let d = next(&mut c).await;
        assert_eq!(d.data, format!("{i}").as_bytes());
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    close(conn).await;
}

#[tokio::test]
async fn two_consumers_share_round_robin() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    let cch = conn.create_channel().await.unwrap();
    let mut a = consume(&cch, &q, true).await;
    let mut b = consume(&cch, &q, true).await;
    for i in 0..10 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..5 {
        got_a.push(String::from_utf8(next(&mut a).await.data).unwrap());
        got_b.push(String::from_utf8(next(&mut b).await.data).unwrap());
    }
    let evens: Vec<String> = (0..10).step_by(2).map(|i| i.to_string()).collect();
    let odds: Vec<String> = (1..10).step_by(2).map(|i| i.to_string()).collect();
    assert!(
        (got_a == evens && got_b == odds) || (got_a == odds && got_b == evens),
        "a: {got_a:?}, b: {got_b:?}"
    );
    close(conn).await;
}

#[tokio::test]
async fn two_consumers_with_prefetch_one_alternate() {
    let conn = connect().await;
    let q = filled_queue(&conn, 6).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut a = consume(&ch, &q, false).await;
    let mut b = consume(&ch, &q, false).await;
    // each holds one message; the others wait for acks
    let da = next(&mut a).await;
    let db = next(&mut b).await;
    let probe = conn.create_channel().await.unwrap();
    assert_eq!(message_count(&probe, &q).await, 4);
    let mut seen = vec![da.data.clone(), db.data.clone()];
    da.acker.ack(BasicAckOptions::default()).await.unwrap();
    let da2 = next(&mut a).await;
    seen.push(da2.data.clone());
    db.acker.ack(BasicAckOptions::default()).await.unwrap();
    let db2 = next(&mut b).await;
    seen.push(db2.data.clone());
    seen.sort();
    assert_eq!(
        seen,
        vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
    );
    assert_eq!(message_count(&probe, &q).await, 2);
    close(conn).await;
}
