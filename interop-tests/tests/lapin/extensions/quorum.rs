//! Quorum queues: x-delivery-count, x-delivery-limit dead-lettering, single active consumer.

use super::*;

/// A durable quorum queue with `args`; the test deletes it at the end.
async fn quorum(ch: &Channel, args: Vec<(&str, AMQPValue)>) -> String {
    let q = unique("qq");
    let mut a = vec![("x-queue-type", lstr("quorum"))];
    a.extend(args);
    declare(
        ch,
        &q,
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table(a),
    )
    .await
    .expect("declare quorum queue");
    q
}

fn delivery_count(d: &Delivery) -> Option<i64> {
    header(d, "x-delivery-count").map(|v| match v {
        AMQPValue::LongLongInt(n) => *n,
        other => panic!("x-delivery-count must be a long (l), got {other:?}"),
    })
}

#[tokio::test]
async fn delivery_count_on_redeliveries_to_a_consumer() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = quorum(&ch, vec![]).await;
    send(
        &ch,
        &q,
        "x",
        BasicProperties::default().with_headers(table(vec![("z", int(1))])),
    )
    .await;
    let cch = conn.create_channel().await.unwrap();
    let mut c = consume(&cch, &q, "", false).await;
    let mut seen = Vec::new();
    for i in 0..4 {
        let d = next(&mut c).await;
        seen.push((d.redelivered, delivery_count(&d), header(&d, "z").cloned()));
        match i {
            0 | 2 => d
                .acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
                .unwrap(),
            1 => d
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await
                .unwrap(),
            _ => d.acker.ack(BasicAckOptions::default()).await.unwrap(),
        };
    }
    let z = Some(int(1));
    // the first delivery to a consumer has no x-delivery-count
    assert_eq!(
        seen,
        [
            (false, None, z.clone()),
            (true, Some(1), z.clone()),
            (true, Some(2), z.clone()),
            (true, Some(3), z),
        ]
    );
    cch.close(200, "bye".into()).await.unwrap();
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn basic_get_adds_delivery_count_zero_and_channel_close_counts_as_a_return() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = quorum(&ch, vec![]).await;
    send(&ch, &q, "x", BasicProperties::default()).await;
    let taker = conn.create_channel().await.unwrap();
    let d = poll_get(&taker, &q, false).await.delivery;
    assert_eq!((d.redelivered, delivery_count(&d)), (false, Some(0)));
    assert_eq!(header_keys(&d), ["x-delivery-count"]);
    taker.close(200, "bye".into()).await.unwrap();
    let d = poll_get(&ch, &q, false).await.delivery;
    assert_eq!((d.redelivered, delivery_count(&d)), (true, Some(1)));
    d.acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await
        .unwrap();
    let d = poll_get(&ch, &q, true).await.delivery;
    assert_eq!((d.redelivered, delivery_count(&d)), (true, Some(2)));
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn delivery_limit_dead_letters_with_reason_delivery_limit() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let mut args = dlx_to(&dead);
    args.push(("x-delivery-limit", int(2)));
    let q = quorum(&ch, args).await;
    send(
        &ch,
        &q,
        "poison",
        BasicProperties::default().with_headers(table(vec![("a", int(1))])),
    )
    .await;
    // deliveries with count 0, 1, 2; the third return goes over the limit
    let mut counts = Vec::new();
    for _ in 0..3 {
        let d = poll_get(&ch, &q, false).await.delivery;
        counts.push(delivery_count(&d));
        d.acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .unwrap();
    }
    assert_eq!(counts, [Some(0), Some(1), Some(2)]);
    let d = poll_get(&ch, &dead, true).await.delivery;
    assert_eq!(d.data, b"poison");
    // no x-delivery-count on the dead-lettered copy; the original headers stay
    assert_eq!(
        header_keys(&d),
        [
            "a",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ]
    );
    assert_eq!(header(&d, "a"), Some(&int(1)));
    assert_eq!(
        sans_time(deaths(&d)),
        [death(1, "delivery_limit", &q, "", &[&q], None)]
    );
    assert_eq!(
        first_death(&d),
        ("".into(), q.clone(), "delivery_limit".into())
    );
    wait_count(&ch, &q, 0).await;
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn delivery_limit_zero_without_dlx_drops_on_the_first_return() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = quorum(&ch, vec![("x-delivery-limit", int(0))]).await;
    send(&ch, &q, "once", BasicProperties::default()).await;
    send(&ch, &q, "marker", BasicProperties::default()).await;
    let d = poll_get(&ch, &q, false).await.delivery;
    assert_eq!(d.data, b"once");
    d.acker
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    // the returned message is gone; only the marker is left
    wait_count(&ch, &q, 1).await;
    let rest = drain_deliveries(&ch, &q).await;
    assert_eq!(texts(&rest), ["marker"]);
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn quorum_queue_single_active_consumer_takes_over_on_cancel() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = quorum(
        &ch,
        vec![("x-single-active-consumer", AMQPValue::Boolean(true))],
    )
    .await;
    let ach = conn.create_channel().await.unwrap();
    let bch = conn.create_channel().await.unwrap();
    let mut a = consume(&ach, &q, "a", true).await;
    let mut b = consume(&bch, &q, "b", true).await;
    send(&ch, &q, "1", BasicProperties::default()).await;
    send(&ch, &q, "2", BasicProperties::default()).await;
    assert_eq!(texts(&[next(&mut a).await, next(&mut a).await]), ["1", "2"]);
    ach.basic_cancel("a".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    send(&ch, &q, "3", BasicProperties::default()).await;
    assert_eq!(next(&mut b).await.data, b"3");
    bch.close(200, "bye".into()).await.unwrap();
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn quorum_queue_flags_are_checked() {
    let conn = connect().await;
    let quorum_args = || table(vec![("x-queue-type", lstr("quorum"))]);
    for (options, prop) in [
        (QueueDeclareOptions::default(), "non-durable"),
        (
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                ..Default::default()
            },
            "exclusive-owner",
        ),
        (
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            "auto-delete",
        ),
    ] {
        let q = unique("qq");
        assert_eq!(
            declare_error(&conn, &q, options, quorum_args()).await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid property '{prop}' for {}",
                    qname(&q)
                )
            )
        );
    }
    close(conn).await;
}
