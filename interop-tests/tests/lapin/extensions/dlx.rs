//! Dead-lettering on reject/nack: where the copy goes, x-death and x-first-death-*.
//! (Expiry is in ttl.rs, maxlen in maxlen.rs, delivery_limit in quorum.rs.)

use super::*;
use lapin::ExchangeKind;

/// A topic DLX with a catch-all queue `dead`, and an exclusive source queue dead-lettering to it,
/// bound to amq.direct with key `rk`. Returns (dlx, dead, src).
async fn topic_dlx_setup(ch: &Channel, rk: &str) -> (String, String, String) {
    let dlx = exchange(ch, ExchangeKind::Topic).await;
    let dead = temp_queue(ch).await;
    bind(ch, &dead, &dlx, "#", FieldTable::default()).await;
    let src = xqueue(
        ch,
        "src",
        table(vec![("x-dead-letter-exchange", lstr(&dlx))]),
    )
    .await;
    bind(ch, &src, "amq.direct", rk, FieldTable::default()).await;
    (dlx, dead, src)
}

fn full_props() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_delivery_mode(2)
        .with_priority(3)
        .with_correlation_id("cid".into())
        .with_reply_to("rt".into())
        .with_message_id("mid".into())
        .with_timestamp(1234)
        .with_type("ty".into())
        .with_app_id("app".into())
        .with_user_id(credentials().0.as_str().into())
        .with_headers(table(vec![("z", int(1)), ("a", lstr("s"))]))
}

/// Publishes a fully dressed message to amq.direct, takes it from the source queue, refuses it
/// (basic.nack if `with_nack`, else basic.reject; requeue=false) and checks the dead-lettered copy.
async fn dead_letter_one(with_nack: bool) {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let rk = "rk1";
    let (dlx, dead, src) = topic_dlx_setup(&ch, rk).await;
    let c = publish_confirmed(&ch, "amq.direct", rk, b"body", full_props(), false).await;
    assert_eq!(c, Confirmation::Ack(None));
    let before = now_secs();
    let m = poll_get(&ch, &src, false).await;
    if with_nack {
        ch.basic_nack(
            m.delivery.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: false,
            },
        )
        .await
        .unwrap();
    } else {
        ch.basic_reject(
            m.delivery.delivery_tag,
            BasicRejectOptions { requeue: false },
        )
        .await
        .unwrap();
    }
    let d = poll_get(&ch, &dead, true).await.delivery;
    let after = now_secs();
    assert_eq!(d.data, b"body");
    // delivered through the DLX with the original routing key, not as a redelivery
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str(), d.redelivered),
        (dlx.as_str(), rk, false)
    );
    // every property is kept
    let want = full_props();
    let p = &d.properties;
    assert_eq!(p.content_type(), want.content_type());
    assert_eq!(p.delivery_mode(), want.delivery_mode());
    assert_eq!(p.priority(), want.priority());
    assert_eq!(p.correlation_id(), want.correlation_id());
    assert_eq!(p.reply_to(), want.reply_to());
    assert_eq!(p.message_id(), want.message_id());
    assert_eq!(p.timestamp(), want.timestamp());
    assert_eq!(p.kind(), want.kind());
    assert_eq!(p.app_id(), want.app_id());
    assert_eq!(p.user_id(), want.user_id());
    assert_eq!(*p.expiration(), None);
    // the original headers with their types, plus x-death and x-first-death-*
    assert_eq!(
        header_keys(&d),
        [
            "a",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason",
            "z"
        ]
    );
    assert_eq!(header(&d, "a"), Some(&lstr("s")));
    assert_eq!(header(&d, "z"), Some(&int(1)));
    let ds = deaths(&d);
    assert_eq!(ds.len(), 1);
    assert!(before <= ds[0].time && ds[0].time <= after, "{ds:?}");
    assert_eq!(
        sans_time(ds),
        [death(1, "rejected", &src, "amq.direct", &[rk], None)]
    );
    assert_eq!(
        first_death(&d),
        ("amq.direct".into(), src.clone(), "rejected".into())
    );
    delete_exchange(&ch, &dlx).await;
    close(conn).await;
}

#[tokio::test]
async fn rejected_message_is_dead_lettered_with_x_death() {
    dead_letter_one(false).await;
}

#[tokio::test]
async fn nacked_message_is_dead_lettered_with_x_death() {
    dead_letter_one(true).await;
}

#[tokio::test]
async fn nack_multiple_dead_letters_each_message_in_order() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let src = xqueue(&ch, "src", table(dlx_to(&dead))).await;
    for b in ["0", "1", "2"] {
        send(&ch, &src, b, BasicProperties::default()).await;
    }
    let mut last = 0;
    for _ in 0..3 {
        last = poll_get(&ch, &src, false).await.delivery.delivery_tag;
    }
    ch.basic_nack(
        last,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    )
    .await
    .unwrap();
    wait_count(&ch, &dead, 3).await;
    let got = drain_deliveries(&ch, &dead).await;
    assert_eq!(texts(&got), ["0", "1", "2"]);
    for d in &got {
        assert_eq!(
            sans_time(deaths(d)),
            [death(1, "rejected", &src, "", &[&src], None)]
        );
    }
    assert_eq!(message_count(&ch, &src).await, 0);
    close(conn).await;
}

#[tokio::test]
async fn dead_letter_routing_key_replaces_the_routing_key() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dlx = exchange(&ch, ExchangeKind::Direct).await;
    let dead = temp_queue(&ch).await;
    bind(&ch, &dead, &dlx, "dl-key", FieldTable::default()).await;
    let src = xqueue(
        &ch,
        "src",
        table(vec![
            ("x-dead-letter-exchange", lstr(&dlx)),
            ("x-dead-letter-routing-key", lstr("dl-key")),
        ]),
    )
    .await;
    send(&ch, &src, "x", BasicProperties::default()).await;
    let m = poll_get(&ch, &src, false).await;
    m.delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = poll_get(&ch, &dead, true).await.delivery;
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (dlx.as_str(), "dl-key")
    );
    // x-death still records the original routing key
    assert_eq!(deaths(&d)[0].routing_keys, std::slice::from_ref(&src));
    delete_exchange(&ch, &dlx).await;
    close(conn).await;
}

#[tokio::test]
async fn second_death_prepends_an_entry_and_first_death_headers_stay() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let mid = xqueue(&ch, "mid", table(dlx_to(&dead))).await;
    let src = xqueue(&ch, "src", table(dlx_to(&mid))).await;
    send(
        &ch,
        &src,
        "twice",
        BasicProperties::default().with_expiration("600000".into()),
    )
    .await;
    let m = poll_get(&ch, &src, false).await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    let m = poll_get(&ch, &mid, false).await;
    // the expiration is gone after the first death
    assert_eq!(*m.delivery.properties.expiration(), None);
    ch.basic_nack(
        m.delivery.delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: false,
        },
    )
    .await
    .unwrap();
    let d = poll_get(&ch, &dead, true).await.delivery;
    assert_eq!(
        sans_time(deaths(&d)),
        [
            death(1, "rejected", &mid, "", &[&mid], None),
            death(1, "rejected", &src, "", &[&src], Some("600000")),
        ]
    );
    assert_eq!(first_death(&d), ("".into(), src.clone(), "rejected".into()));
    close(conn).await;
}

#[tokio::test]
async fn retry_loop_counts_deaths_per_queue_and_reason() {
    // work --reject--> retry --(TTL: expired)--> work --reject--> ...
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let work = unique("work");
    let retry = unique("retry");
    let mut retry_args = dlx_to(&work);
    retry_args.push(("x-message-ttl", int(20)));
    declare(
        &ch,
        &work,
        QueueDeclareOptions::exclusive(),
        table(dlx_to(&retry)),
    )
    .await
    .unwrap();
    declare(
        &ch,
        &retry,
        QueueDeclareOptions::exclusive(),
        table(retry_args),
    )
    .await
    .unwrap();
    send(
        &ch,
        &work,
        "job",
        BasicProperties::default().with_headers(table(vec![("orig", lstr("y"))])),
    )
    .await;
    for n in 0..3i64 {
        let d = poll_get(&ch, &work, false).await.delivery;
        assert_eq!((d.data.as_slice(), d.redelivered), (&b"job"[..], false));
        assert_eq!(header(&d, "orig"), Some(&lstr("y")));
        if n == 0 {
            assert_eq!(header_keys(&d), ["orig"]);
        } else {
            let got: Vec<(String, String, i64)> = deaths(&d)
                .into_iter()
                .map(|x| (x.queue, x.reason, x.count))
                .collect();
            // most recent death first, one entry per (queue, reason)
            assert_eq!(
                got,
                [
                    (retry.clone(), "expired".to_string(), n),
                    (work.clone(), "rejected".to_string(), n)
                ]
            );
            assert_eq!(
                first_death(&d),
                ("".into(), work.clone(), "rejected".into())
            );
        }
        ch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: false })
            .await
            .unwrap();
    }
    close(conn).await;
}

#[tokio::test]
async fn requeue_does_not_dead_letter() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let src = xqueue(&ch, "src", table(dlx_to(&dead))).await;
    send(&ch, &src, "a", BasicProperties::default()).await;
    send(&ch, &src, "b", BasicProperties::default()).await;
    let a = poll_get(&ch, &src, false).await.delivery;
    let b = poll_get(&ch, &src, false).await.delivery;
    ch.basic_reject(a.delivery_tag, BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    // b is dead-lettered after a's requeue: once b is in `dead`, a would be there too
    ch.basic_reject(b.delivery_tag, BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let d = poll_get(&ch, &dead, true).await.delivery;
    assert_eq!(d.data, b"b");
    assert!(get(&ch, &dead).await.is_none());
    let again = poll_get(&ch, &src, true).await.delivery;
    assert_eq!(
        (again.data.as_slice(), again.redelivered),
        (&b"a"[..], true)
    );
    close(conn).await;
}

#[tokio::test]
async fn dead_lettering_to_a_missing_exchange_drops_the_message() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let missing = unique("missing");
    let src = xqueue(
        &ch,
        "src",
        table(vec![("x-dead-letter-exchange", lstr(&missing))]),
    )
    .await;
    send(&ch, &src, "lost", BasicProperties::default()).await;
    let m = poll_get(&ch, &src, false).await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    send(
        &ch,
        &src,
        "lost-too",
        BasicProperties::default().with_expiration("10".into()),
    )
    .await;
    wait_count(&ch, &src, 0).await;
    // no error, and the messages are not parked until the exchange appears
    ch.exchange_declare(
        missing.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let dead = temp_queue(&ch).await;
    bind(&ch, &dead, &missing, "", FieldTable::default()).await;
    send(&ch, &src, "found", BasicProperties::default()).await;
    let m = poll_get(&ch, &src, false).await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .unwrap();
    wait_count(&ch, &dead, 1).await;
    assert_eq!(drain_texts(&ch, &dead).await, ["found"]);
    delete_exchange(&ch, &missing).await;
    close(conn).await;
}

#[tokio::test]
async fn an_expiry_cycle_is_dropped() {
    // q1 --expired--> q2 --expired--> fanout(q1, observer): the copy for q1 would close a cycle
    // made only of expiries and is dropped; the observer gets its copy
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let fan = exchange(&ch, ExchangeKind::Fanout).await;
    let q1 = unique("q1");
    let q2 = unique("q2");
    let mut a1 = dlx_to(&q2);
    a1.push(("x-message-ttl", int(20)));
    declare(&ch, &q1, QueueDeclareOptions::exclusive(), table(a1))
        .await
        .unwrap();
    let a2 = vec![
        ("x-dead-letter-exchange", lstr(&fan)),
        ("x-message-ttl", int(20)),
    ];
    declare(&ch, &q2, QueueDeclareOptions::exclusive(), table(a2))
        .await
        .unwrap();
    let observer = temp_queue(&ch).await;
    bind(&ch, &q1, &fan, "", FieldTable::default()).await;
    bind(&ch, &observer, &fan, "", FieldTable::default()).await;
    send(&ch, &q1, "cycle", BasicProperties::default()).await;
    wait_count(&ch, &observer, 1).await;
    // had q1 got a copy, it would reach the observer again within ~40 ms
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(400) {
        assert_eq!(message_count(&ch, &observer).await, 1);
        pace().await;
    }
    assert_eq!(message_count(&ch, &q1).await, 0);
    assert_eq!(message_count(&ch, &q2).await, 0);
    let d = poll_get(&ch, &observer, true).await.delivery;
    let got: Vec<(String, String)> = deaths(&d)
        .into_iter()
        .map(|x| (x.queue, x.reason))
        .collect();
    assert_eq!(
        got,
        [
            (q2.clone(), "expired".to_string()),
            (q1.clone(), "expired".to_string())
        ]
    );
    delete_exchange(&ch, &fan).await;
    close(conn).await;
}
