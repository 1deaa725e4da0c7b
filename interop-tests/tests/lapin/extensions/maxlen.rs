//! Length limits (x-max-length, x-max-length-bytes) with x-overflow drop-head, reject-publish
//! and reject-publish-dlx.

use super::*;
use lapin::ExchangeKind;

fn plain() -> BasicProperties {
    BasicProperties::default()
}

/// Publishes `body` to the default exchange; true for an ack, false for a nack (never a return).
async fn accepted(ch: &Channel, q: &str, body: &str) -> bool {
    match publish_confirmed(ch, "", q, body.as_bytes(), plain(), false).await {
        Confirmation::Ack(None) => true,
        Confirmation::Nack(None) => false,
        other => panic!("unexpected confirmation {other:?}"),
    }
}

/// An exclusive queue with `args` dead-lettering into a fresh queue: (dead, q).
async fn with_dlx(ch: &Channel, args: Vec<(&str, AMQPValue)>) -> (String, String) {
    let dead = temp_queue(ch).await;
    let mut a = dlx_to(&dead);
    a.extend(args);
    let q = xqueue(ch, "maxlen", table(a)).await;
    (dead, q)
}

#[tokio::test]
async fn max_length_drops_from_the_head() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    for overflow in [None, Some("drop-head")] {
        let mut args = vec![("x-max-length", int(3))];
        if let Some(o) = overflow {
            args.push(("x-overflow", lstr(o)));
        }
        let q = xqueue(&ch, "maxlen", table(args)).await;
        for i in 0..5 {
            assert!(accepted(&ch, &q, &i.to_string()).await, "drop-head acks");
        }
        assert_eq!(message_count(&ch, &q).await, 3);
        assert_eq!(drain_texts(&ch, &q).await, ["2", "3", "4"]);
    }
    close(conn).await;
}

#[tokio::test]
async fn drop_head_dead_letters_with_reason_maxlen() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (dead, q) = with_dlx(&ch, vec![("x-max-length", int(2))]).await;
    for i in 0..4 {
        send(&ch, &q, &i.to_string(), plain()).await;
    }
    wait_count(&ch, &dead, 2).await;
    let got = drain_deliveries(&ch, &dead).await;
    assert_eq!(texts(&got), ["0", "1"]);
    for d in &got {
        assert_eq!(
            sans_time(deaths(d)),
            [death(1, "maxlen", &q, "", &[&q], None)]
        );
        assert_eq!(first_death(d), ("".into(), q.clone(), "maxlen".into()));
    }
    assert_eq!(drain_texts(&ch, &q).await, ["2", "3"]);
    close(conn).await;
}

#[tokio::test]
async fn max_length_bytes_counts_body_bytes_only() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(
        &ch,
        "maxbytes",
        table(vec![("x-max-length-bytes", int(10))]),
    )
    .await;
    for body in ["aaaa", "bbbb", "cccc"] {
        send(&ch, &q, body, plain()).await;
    }
    assert_eq!(drain_texts(&ch, &q).await, ["bbbb", "cccc"]);
    // headers and properties do not count
    let big = BasicProperties::default()
        .with_headers(table(vec![("h", lstr(&"x".repeat(1000)))]))
        .with_content_type("y".repeat(200).as_str().into());
    send(&ch, &q, "dddd", big.clone()).await;
    send(&ch, &q, "eeeee", big).await;
    assert_eq!(drain_texts(&ch, &q).await, ["dddd", "eeeee"]);
    close(conn).await;
}

#[tokio::test]
async fn unacked_messages_do_not_count() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "maxlen", table(vec![("x-max-length", int(2))])).await;
    send(&ch, &q, "1", plain()).await;
    send(&ch, &q, "2", plain()).await;
    let taker = conn.create_channel().await.unwrap();
    poll_get(&taker, &q, false).await;
    let last = poll_get(&taker, &q, false).await.delivery.delivery_tag;
    send(&ch, &q, "3", plain()).await;
    send(&ch, &q, "4", plain()).await;
    // two unacked and two ready: nothing was dropped
    assert_eq!(message_count(&ch, &q).await, 2);
    taker
        .basic_ack(last, BasicAckOptions { multiple: true })
        .await
        .unwrap();
    assert_eq!(drain_texts(&ch, &q).await, ["3", "4"]);
    close(conn).await;
}

/// Warren bug (requeue-ignores-max-length): a requeue that takes a drop-head queue over its
/// x-max-length leaves it over the limit until the next publish; RabbitMQ drops (and
/// dead-letters, reason maxlen) from the head at once.
#[tokio::test]
async fn requeue_over_the_limit_drops_from_the_head_at_once() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (dead, q) = with_dlx(&ch, vec![("x-max-length", int(2))]).await;
    send(&ch, &q, "1", plain()).await;
    send(&ch, &q, "2", plain()).await;
    let taker = conn.create_channel().await.unwrap();
    poll_get(&taker, &q, false).await;
    let last = poll_get(&taker, &q, false).await.delivery.delivery_tag;
    send(&ch, &q, "3", plain()).await;
    send(&ch, &q, "4", plain()).await;
    // "1" and "2" go back to the head, four ready with a limit of two: the head is dropped
    taker
        .basic_nack(
            last,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
    wait_count(&ch, &dead, 2).await;
    let got = drain_deliveries(&ch, &dead).await;
    assert_eq!(texts(&got), ["1", "2"]);
    for d in &got {
        assert_eq!(
            sans_time(deaths(d)),
            [death(1, "maxlen", &q, "", &[&q], None)]
        );
    }
    assert_eq!(drain_texts(&ch, &q).await, ["3", "4"]);
    close(conn).await;
}

#[tokio::test]
async fn reject_publish_nacks_new_messages_while_full() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    for overflow in ["reject-publish", "reject-publish-dlx"] {
        let q = xqueue(
            &ch,
            "full",
            table(vec![
                ("x-max-length", int(2)),
                ("x-overflow", lstr(overflow)),
            ]),
        )
        .await;
        let mut got = Vec::new();
        for i in 0..4 {
            got.push(accepted(&ch, &q, &i.to_string()).await);
        }
        assert_eq!(got, [true, true, false, false], "{overflow}");
        assert_eq!(drain_texts(&ch, &q).await, ["0", "1"]);
        // room again
        assert!(accepted(&ch, &q, "4").await);
    }
    close(conn).await;
}

#[tokio::test]
async fn reject_publish_with_mandatory_is_a_nack_without_basic_return() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(
        &ch,
        "full",
        table(vec![
            ("x-max-length", int(1)),
            ("x-overflow", lstr("reject-publish")),
        ]),
    )
    .await;
    let fits = publish_confirmed(&ch, "", &q, b"fits", plain(), true).await;
    assert_eq!(fits, Confirmation::Ack(None));
    let refused = publish_confirmed(&ch, "", &q, b"refused", plain(), true).await;
    assert_eq!(refused, Confirmation::Nack(None));
    assert_eq!(drain_texts(&ch, &q).await, ["fits"]);
    close(conn).await;
}

#[tokio::test]
async fn reject_publish_bytes_refuses_what_would_not_fit() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(
        &ch,
        "full",
        table(vec![
            ("x-max-length-bytes", int(10)),
            ("x-overflow", lstr("reject-publish")),
        ]),
    )
    .await;
    let mut got = Vec::new();
    for body in ["aaaaaa", "bbbbbb", "cccc"] {
        got.push(accepted(&ch, &q, body).await);
    }
    assert_eq!(got, [true, false, true]);
    assert_eq!(drain_texts(&ch, &q).await, ["aaaaaa", "cccc"]);
    // alone bigger than the limit: refused even into an empty queue
    assert!(!accepted(&ch, &q, &"x".repeat(11)).await);
    assert!(accepted(&ch, &q, &"x".repeat(10)).await);
    close(conn).await;
}

#[tokio::test]
async fn reject_publish_nacks_even_when_another_queue_took_the_message() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let fan = exchange(&ch, ExchangeKind::Fanout).await;
    let full = xqueue(
        &ch,
        "full",
        table(vec![
            ("x-max-length", int(1)),
            ("x-overflow", lstr("reject-publish")),
        ]),
    )
    .await;
    let other = temp_queue(&ch).await;
    bind(&ch, &full, &fan, "", FieldTable::default()).await;
    bind(&ch, &other, &fan, "", FieldTable::default()).await;
    let first = publish_confirmed(&ch, &fan, "", b"first", plain(), false).await;
    let second = publish_confirmed(&ch, &fan, "", b"second", plain(), false).await;
    assert_eq!(
        (first, second),
        (Confirmation::Ack(None), Confirmation::Nack(None))
    );
    assert_eq!(drain_texts(&ch, &full).await, ["first"]);
    assert_eq!(drain_texts(&ch, &other).await, ["first", "second"]);
    delete_exchange(&ch, &fan).await;
    close(conn).await;
}

#[tokio::test]
async fn reject_publish_does_not_dead_letter_the_refused_message() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (dead, q) = with_dlx(
        &ch,
        vec![
            ("x-max-length", int(1)),
            ("x-overflow", lstr("reject-publish")),
        ],
    )
    .await;
    assert!(accepted(&ch, &q, "kept").await);
    assert!(!accepted(&ch, &q, "refused").await);
    // a rejection dead-letters after the refusal: once it arrives, a dead-lettered "refused"
    // would be there ahead of it
    let m = poll_get(&ch, &q, false).await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    wait_count(&ch, &dead, 1).await;
    let got = drain_deliveries(&ch, &dead).await;
    assert_eq!(texts(&got), ["kept"]);
    assert_eq!(deaths(&got[0])[0].reason, "rejected");
    close(conn).await;
}

#[tokio::test]
async fn reject_publish_dlx_dead_letters_the_refused_message() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let (dead, q) = with_dlx(
        &ch,
        vec![
            ("x-max-length", int(1)),
            ("x-overflow", lstr("reject-publish-dlx")),
        ],
    )
    .await;
    assert!(accepted(&ch, &q, "kept").await);
    assert!(!accepted(&ch, &q, "refused").await);
    let d = poll_get(&ch, &dead, true).await.delivery;
    assert_eq!(d.data, b"refused");
    assert_eq!(
        sans_time(deaths(&d)),
        [death(1, "maxlen", &q, "", &[&q], None)]
    );
    assert_eq!(drain_texts(&ch, &q).await, ["kept"]);
    close(conn).await;
}
