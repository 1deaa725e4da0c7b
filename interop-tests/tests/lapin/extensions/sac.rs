//! Single active consumer (x-single-active-consumer) on classic queues. (Quorum: quorum.rs.)

use super::*;
use futures::FutureExt;

fn sac() -> FieldTable {
    table(vec![("x-single-active-consumer", AMQPValue::Boolean(true))])
}

/// A consumer on its own channel of `conn` (so it can be closed alone).
async fn consumer_on_own_channel(
    conn: &Connection,
    q: &str,
    tag: &str,
    prefetch: u16,
    no_ack: bool,
) -> (Channel, Consumer) {
    let ch = conn.create_channel().await.unwrap();
    if prefetch > 0 {
        ch.basic_qos(prefetch, BasicQosOptions::default())
            .await
            .unwrap();
    }
    let c = consume(&ch, q, tag, no_ack).await;
    (ch, c)
}

/// The first delivery to any of `cs`: (index of the consumer, body).
async fn first_of(cs: &mut [&mut Consumer]) -> (usize, String) {
    let streams = cs
        .iter_mut()
        .enumerate()
        .map(|(i, c)| Box::pin(c.next().map(move |d| (i, d))));
    let ((i, d), _, _) = within(10, futures::future::select_all(streams)).await;
    let d = d.expect("consumer ended").expect("delivery");
    (i, String::from_utf8(d.data).unwrap())
}

#[tokio::test]
async fn only_the_first_registered_consumer_receives() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "sac", sac()).await;
    let (_a_ch, mut a) = consumer_on_own_channel(&conn, &q, "a", 0, true).await;
    let (_b_ch, _b) = consumer_on_own_channel(&conn, &q, "b", 0, true).await;
    let (_c_ch, _c) = consumer_on_own_channel(&conn, &q, "c", 0, true).await;
    for i in 0..10 {
        send(&ch, &q, &i.to_string(), BasicProperties::default()).await;
    }
    // all ten reach a, in order (so b and c got none)
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(String::from_utf8(next(&mut a).await.data).unwrap());
    }
    assert_eq!(got, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    // every consumer counts in declare-ok
    assert_eq!(queue_exists(&ch, &q).await.unwrap().consumer_count(), 3);
    close(conn).await;
}

#[tokio::test]
async fn next_consumer_in_registration_order_takes_over() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "sac", sac()).await;
    let (a_ch, mut a) = consumer_on_own_channel(&conn, &q, "a", 0, true).await;
    let (b_ch, mut b) = consumer_on_own_channel(&conn, &q, "b", 0, true).await;
    let (_c_ch, mut c) = consumer_on_own_channel(&conn, &q, "c", 0, true).await;
    send(&ch, &q, "1", BasicProperties::default()).await;
    assert_eq!(
        first_of(&mut [&mut a, &mut b, &mut c]).await,
        (0, "1".into())
    );
    // basic.cancel: b (registered before c) takes over
    a_ch.basic_cancel("a".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    send(&ch, &q, "2", BasicProperties::default()).await;
    assert_eq!(first_of(&mut [&mut b, &mut c]).await, (0, "2".into()));
    // a newcomer waits at the back
    let (_d_ch, mut d) = consumer_on_own_channel(&conn, &q, "d", 0, true).await;
    // channel close: c takes over
    b_ch.close(200, "bye".into()).await.unwrap();
    send(&ch, &q, "3", BasicProperties::default()).await;
    assert_eq!(first_of(&mut [&mut c, &mut d]).await, (0, "3".into()));
    close(conn).await;
}

#[tokio::test]
async fn takeover_while_the_old_consumer_holds_unacked_messages() {
    // Kept clear of the RabbitMQ 3.10.8 bug where the cancelled consumer was blocked at its
    // prefetch limit with messages waiting (see the notes).
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "sac", sac()).await;
    let (a_ch, mut a) = consumer_on_own_channel(&conn, &q, "a", 3, false).await;
    let (_b_ch, mut b) = consumer_on_own_channel(&conn, &q, "b", 0, false).await;
    send(&ch, &q, "1", BasicProperties::default()).await;
    send(&ch, &q, "2", BasicProperties::default()).await;
    assert_eq!(texts(&[next(&mut a).await, next(&mut a).await]), ["1", "2"]);
    a_ch.basic_cancel("a".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    // b is active at once, while a still holds "1" and "2"
    send(&ch, &q, "3", BasicProperties::default()).await;
    let d3 = next(&mut b).await;
    assert_eq!((d3.data.as_slice(), d3.redelivered), (&b"3"[..], false));
    // a's unacked messages come back to b, in order, when a's channel closes
    a_ch.close(200, "bye".into()).await.unwrap();
    let d1 = next(&mut b).await;
    let d2 = next(&mut b).await;
    assert_eq!(
        [(d1.data, d1.redelivered), (d2.data, d2.redelivered)],
        [(b"1".to_vec(), true), (b"2".to_vec(), true)]
    );
    close(conn).await;
}

#[tokio::test]
async fn exclusive_consume_on_a_single_active_consumer_queue_is_refused() {
    let conn = connect().await;
    let q = xqueue(&conn.create_channel().await.unwrap(), "sac", sac()).await;
    let text = format!("ACCESS_REFUSED - {} in exclusive use", qname(&q));
    // even with no consumer at all
    let ch = conn.create_channel().await.unwrap();
    let r = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(assert_amqp_error(r, 403, &text), text);
    close(conn).await;
}

#[tokio::test]
async fn single_active_consumer_false_is_round_robin() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(
        &ch,
        "sac",
        table(vec![(
            "x-single-active-consumer",
            AMQPValue::Boolean(false),
        )]),
    )
    .await;
    let (_a_ch, mut a) = consumer_on_own_channel(&conn, &q, "a", 0, true).await;
    let (_b_ch, mut b) = consumer_on_own_channel(&conn, &q, "b", 0, true).await;
    for i in 0..4 {
        send(&ch, &q, &i.to_string(), BasicProperties::default()).await;
    }
    let got_a = texts(&[next(&mut a).await, next(&mut a).await]);
    let got_b = texts(&[next(&mut b).await, next(&mut b).await]);
    assert_eq!(
        (got_a, got_b),
        (
            vec!["0".to_string(), "2".into()],
            vec!["1".to_string(), "3".into()]
        )
    );
    close(conn).await;
}

#[tokio::test]
async fn basic_get_works_beside_the_active_consumer() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "sac", sac()).await;
    let (_a_ch, mut a) = consumer_on_own_channel(&conn, &q, "a", 1, false).await;
    for b in ["1", "2", "3"] {
        send(&ch, &q, b, BasicProperties::default()).await;
    }
    assert_eq!(next(&mut a).await.data, b"1");
    wait_count(&ch, &q, 2).await;
    assert_eq!(drain_texts(&ch, &q).await, ["2", "3"]);
    close(conn).await;
}

#[tokio::test]
async fn consumer_priority_is_ignored() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "sac", sac()).await;
    let (_low_ch, mut low) = consumer_on_own_channel(&conn, &q, "low", 0, true).await;
    let high_ch = conn.create_channel().await.unwrap();
    let mut high = high_ch
        .basic_consume(
            q.as_str().into(),
            "high".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            table(vec![("x-priority", int(10))]),
        )
        .await
        .unwrap();
    for b in ["1", "2", "3"] {
        send(&ch, &q, b, BasicProperties::default()).await;
    }
    for b in ["1", "2", "3"] {
        assert_eq!(
            first_of(&mut [&mut low, &mut high]).await,
            (0, b.to_string())
        );
    }
    close(conn).await;
}
