//! Priority queues (x-max-priority): order, requeue, basic.get and consumers.

use super::*;

fn prio(p: Option<u8>) -> BasicProperties {
    match p {
        Some(p) => BasicProperties::default().with_priority(p),
        None => BasicProperties::default(),
    }
}

/// A queue with x-max-priority `max`, filled (confirmed) with (body, priority) pairs.
async fn filled(ch: &Channel, max: i32, plan: &[(&str, Option<u8>)]) -> String {
    let q = xqueue(ch, "prio", table(vec![("x-max-priority", int(max))])).await;
    for (body, p) in plan {
        send(ch, &q, body, prio(*p)).await;
    }
    q
}

#[tokio::test]
async fn higher_priority_first_fifo_within_a_level() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let plan = [
        ("a1", Some(1)),
        ("b5", Some(5)),
        ("c9", Some(9)),
        ("d5", Some(5)),
        ("e1", Some(1)),
        ("f9", Some(9)),
        ("g0", Some(0)),
        ("h5", Some(5)),
        ("i-", None),
    ];
    let q = filled(&ch, 10, &plan).await;
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(
        texts(&got),
        ["c9", "f9", "b5", "d5", "h5", "a1", "e1", "g0", "i-"]
    );
    // the priority property is delivered as published (absent stays absent)
    let props: Vec<Option<u8>> = got.iter().map(|d| *d.properties.priority()).collect();
    assert_eq!(
        props,
        [
            Some(9),
            Some(9),
            Some(5),
            Some(5),
            Some(5),
            Some(1),
            Some(1),
            Some(0),
            None
        ]
    );
    close(conn).await;
}

#[tokio::test]
async fn priority_above_the_maximum_counts_as_the_maximum() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let plan = [
        ("a0", None),
        ("b3", Some(3)),
        ("c10", Some(10)),
        ("d5", Some(5)),
        ("e3", Some(3)),
        ("f0", Some(0)),
        ("g7", Some(7)),
        ("h5", Some(5)),
    ];
    let q = filled(&ch, 5, &plan).await;
    let got = drain_deliveries(&ch, &q).await;
    // 10, 5, 7 and 5 all land in level 5, in publish order
    assert_eq!(
        texts(&got),
        ["c10", "d5", "g7", "h5", "b3", "e3", "a0", "f0"]
    );
    assert_eq!(*got[0].properties.priority(), Some(10));
    close(conn).await;
}

#[tokio::test]
async fn queue_without_max_priority_ignores_priorities() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = temp_queue(&ch).await;
    for (body, p) in [("a", Some(1)), ("b", Some(9)), ("c", None)] {
        send(&ch, &q, body, prio(p)).await;
    }
    // x-max-priority 0 is accepted and is a plain FIFO too
    let q0 = filled(&ch, 0, &[("a", None), ("b", Some(3)), ("c", Some(0))]).await;
    assert_eq!(drain_texts(&ch, &q).await, ["a", "b", "c"]);
    assert_eq!(drain_texts(&ch, &q0).await, ["a", "b", "c"]);
    close(conn).await;
}

#[tokio::test]
async fn basic_get_honours_priority_and_counts_all_levels() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = filled(
        &ch,
        10,
        &[("a1", Some(1)), ("b9", Some(9)), ("c5", Some(5))],
    )
    .await;
    assert_eq!(message_count(&ch, &q).await, 3);
    let mut got = Vec::new();
    while let Some(m) = get(&ch, &q).await {
        got.push((String::from_utf8(m.delivery.data).unwrap(), m.message_count));
    }
    assert_eq!(
        got,
        [
            ("b9".to_string(), 2),
            ("c5".to_string(), 1),
            ("a1".to_string(), 0)
        ]
    );
    close(conn).await;
}

#[tokio::test]
async fn nack_requeue_returns_messages_to_their_place_in_their_level() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = filled(
        &ch,
        10,
        &[
            ("a1", Some(1)),
            ("b5", Some(5)),
            ("c5", Some(5)),
            ("d1", Some(1)),
            ("e9", Some(9)),
        ],
    )
    .await;
    let taker = conn.create_channel().await.unwrap();
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(poll_get(&taker, &q, false).await.delivery);
    }
    assert_eq!(texts(&taken), ["e9", "b5", "c5"]);
    // published after b5 and c5 were taken
    send(&ch, &q, "f5", prio(Some(5))).await;
    taker
        .basic_nack(
            taken[2].delivery_tag,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
    wait_count(&ch, &q, 6).await;
    let got = drain_deliveries(&ch, &q).await;
    let seen: Vec<(String, bool)> = texts(&got)
        .into_iter()
        .zip(got.iter().map(|d| d.redelivered))
        .collect();
    let expected = [
        ("e9", true),
        ("b5", true),
        ("c5", true),
        ("f5", false),
        ("a1", false),
        ("d1", false),
    ];
    assert_eq!(
        seen,
        expected.map(|(b, r)| (b.to_string(), r)),
        "requeued b5/c5 go back ahead of the later f5"
    );
    close(conn).await;
}

#[tokio::test]
async fn reject_requeue_in_reverse_order_restores_the_original_order() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let plan = [
        ("a1", Some(1)),
        ("b5", Some(5)),
        ("c5", Some(5)),
        ("d1", Some(1)),
        ("e9", Some(9)),
    ];
    let q = filled(&ch, 10, &plan).await;
    let taker = conn.create_channel().await.unwrap();
    let mut taken = Vec::new();
    for _ in 0..5 {
        taken.push(poll_get(&taker, &q, false).await.delivery);
    }
    for d in taken.iter().rev() {
        taker
            .basic_reject(d.delivery_tag, BasicRejectOptions { requeue: true })
            .await
            .unwrap();
    }
    wait_count(&ch, &q, 5).await;
    assert_eq!(drain_texts(&ch, &q).await, ["e9", "b5", "c5", "a1", "d1"]);
    close(conn).await;
}

#[tokio::test]
async fn consumer_at_its_prefetch_limit_gets_waiting_messages_by_priority() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = filled(&ch, 10, &[("first", Some(0))]).await;
    let cch = conn.create_channel().await.unwrap();
    cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&cch, &q, "", false).await;
    let first = next(&mut c).await;
    assert_eq!(first.data, b"first");
    // these wait: the consumer holds one unacked message
    for (body, p) in [
        ("low", Some(1)),
        ("mid", Some(4)),
        ("high", Some(8)),
        ("mid2", Some(4)),
    ] {
        send(&ch, &q, body, prio(p)).await;
    }
    wait_count(&ch, &q, 4).await;
    let mut seen = Vec::new();
    let mut last = first;
    for _ in 0..4 {
        last.acker.ack(BasicAckOptions::default()).await.unwrap();
        last = next(&mut c).await;
        seen.push(String::from_utf8(last.data.clone()).unwrap());
    }
    assert_eq!(seen, ["high", "mid", "mid2", "low"]);
    last.acker.ack(BasicAckOptions::default()).await.unwrap();
    close(conn).await;
}

#[tokio::test]
async fn max_length_drop_head_drops_the_highest_priority_message() {
    // the "head" x-max-length drops is the next message to be delivered
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(
        &ch,
        "prio",
        table(vec![("x-max-priority", int(10)), ("x-max-length", int(2))]),
    )
    .await;
    for (body, p) in [("a1", Some(1)), ("b9", Some(9)), ("c5", Some(5))] {
        send(&ch, &q, body, prio(p)).await;
    }
    assert_eq!(drain_texts(&ch, &q).await, ["c5", "a1"]);
    close(conn).await;
}

#[tokio::test]
async fn channel_close_requeues_into_priority_order() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = filled(
        &ch,
        10,
        &[("a1", Some(1)), ("b5", Some(5)), ("c9", Some(9))],
    )
    .await;
    let taker = conn.create_channel().await.unwrap();
    let taken = [
        poll_get(&taker, &q, false).await.delivery,
        poll_get(&taker, &q, false).await.delivery,
    ];
    assert_eq!(texts(&taken), ["c9", "b5"]);
    send(&ch, &q, "d9", prio(Some(9))).await;
    taker.close(200, "bye".into()).await.unwrap();
    wait_count(&ch, &q, 4).await;
    assert_eq!(drain_texts(&ch, &q).await, ["c9", "d9", "b5", "a1"]);
    close(conn).await;
}
