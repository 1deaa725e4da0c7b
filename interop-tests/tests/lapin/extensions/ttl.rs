//! Message TTL (x-message-ttl, the expiration property), expiry dead-lettering, and queue expiry
//! (x-expires).

use super::*;

fn expiring(ms: &str) -> BasicProperties {
    BasicProperties::default().with_expiration(ms.into())
}

#[tokio::test]
async fn queue_ttl_expires_messages_that_are_never_delivered() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "ttl", table(vec![("x-message-ttl", int(100))])).await;
    send(&ch, &q, "short-lived", BasicProperties::default()).await;
    // the head expires on its own: the count drops without any fetch
    wait_count(&ch, &q, 0).await;
    assert!(get(&ch, &q).await.is_none());
    close(conn).await;
}

#[tokio::test]
async fn per_message_expiration_expires_the_head() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = temp_queue(&ch).await;
    send(&ch, &q, "doomed", expiring("30")).await;
    send(&ch, &q, "keep", expiring("600000")).await;
    wait_count(&ch, &q, 1).await;
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(texts(&got), ["keep"]);
    // the expiration property is delivered unchanged
    assert_eq!(
        got[0].properties.expiration().as_ref().map(|s| s.as_str()),
        Some("600000")
    );
    close(conn).await;
}

#[tokio::test]
async fn queue_ttl_adds_no_expiration_property() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "ttl", table(vec![("x-message-ttl", int(600_000))])).await;
    send(&ch, &q, "a", expiring("500000")).await;
    send(&ch, &q, "b", BasicProperties::default()).await;
    let got = drain_deliveries(&ch, &q).await;
    let exp: Vec<Option<String>> = got
        .iter()
        .map(|d| d.properties.expiration().as_ref().map(|s| s.to_string()))
        .collect();
    assert_eq!(exp, [Some("500000".to_string()), None]);
    close(conn).await;
}

/// A DLX-ed queue with x-message-ttl `queue_ttl`; one message with `expiration` expires into
/// the dead-letter queue: returns that delivery and the source queue name.
async fn expire_into_dead(queue_ttl: Option<i32>, expiration: Option<&str>) -> (Delivery, String) {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let mut args = dlx_to(&dead);
    if let Some(ttl) = queue_ttl {
        args.push(("x-message-ttl", int(ttl)));
    }
    let q = xqueue(&ch, "src", table(args)).await;
    let props = BasicProperties::default()
        .with_priority(2)
        .with_headers(table(vec![("h", int(1))]));
    let props = match expiration {
        Some(e) => props.with_expiration(e.into()),
        None => props,
    };
    send(&ch, &q, "e", props).await;
    let m = poll_get(&ch, &dead, true).await;
    wait_count(&ch, &q, 0).await;
    close(conn).await;
    (m.delivery, q)
}

#[tokio::test]
async fn smaller_message_expiration_wins_and_is_recorded_in_x_death() {
    let before = now_secs();
    let (d, q) = expire_into_dead(Some(600_000), Some("50")).await;
    let after = now_secs();
    assert_eq!(d.data, b"e");
    // dead-lettered through the default exchange with the x-dead-letter-routing-key
    assert_eq!(d.exchange.as_str(), "");
    // the expiration property is removed; other properties stay
    assert_eq!(*d.properties.expiration(), None);
    assert_eq!(*d.properties.priority(), Some(2));
    assert_eq!(
        header_keys(&d),
        [
            "h",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ]
    );
    assert_eq!(header(&d, "h"), Some(&int(1)));
    let ds = deaths(&d);
    assert!(before <= ds[0].time && ds[0].time <= after, "{ds:?}");
    assert_eq!(
        sans_time(ds),
        [death(1, "expired", &q, "", &[&q], Some("50"))]
    );
    assert_eq!(first_death(&d), ("".into(), q.clone(), "expired".into()));
}

#[tokio::test]
async fn smaller_queue_ttl_wins_and_the_message_expiration_is_still_recorded() {
    let (d, q) = expire_into_dead(Some(50), Some("600000")).await;
    assert_eq!(*d.properties.expiration(), None);
    assert_eq!(
        sans_time(deaths(&d)),
        [death(1, "expired", &q, "", &[&q], Some("600000"))]
    );
}

#[tokio::test]
async fn queue_ttl_expiry_without_expiration_has_no_original_expiration() {
    let (d, q) = expire_into_dead(Some(30), None).await;
    assert_eq!(
        sans_time(deaths(&d)),
        [death(1, "expired", &q, "", &[&q], None)]
    );
}

#[tokio::test]
async fn long_ttls_do_not_expire() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = xqueue(&ch, "ttl", table(vec![("x-message-ttl", int(600_000))])).await;
    send(&ch, &q, "stays", expiring("600000")).await;
    assert_eq!(drain_texts(&ch, &q).await, ["stays"]);
    close(conn).await;
}

#[tokio::test]
async fn ttl_zero_without_a_consumer_is_gone_at_once() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q1 = xqueue(&ch, "ttl0", table(vec![("x-message-ttl", int(0))])).await;
    let q2 = temp_queue(&ch).await;
    publish(&ch, "", &q1, b"x").await;
    publish_with(&ch, "", &q2, b"x", expiring("0")).await;
    // basic.get is handled after the publishes on the same channel: already expired
    assert!(get(&ch, &q1).await.is_none());
    assert!(get(&ch, &q2).await.is_none());
    close(conn).await;
}

#[tokio::test]
async fn unacked_message_whose_ttl_passed_expires_when_requeued() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let q = xqueue(&ch, "src", table(dlx_to(&dead))).await;
    send(&ch, &q, "held", expiring("100")).await;
    let taker = conn.create_channel().await.unwrap();
    let held = poll_get(&taker, &q, false).await.delivery;
    // while unacked it does not expire, also well after its TTL
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        assert_eq!(message_count(&ch, &dead).await, 0);
        pace().await;
    }
    taker
        .basic_nack(
            held.delivery_tag,
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
        .unwrap();
    let d = poll_get(&ch, &dead, true).await.delivery;
    assert_eq!(d.data, b"held");
    assert_eq!(deaths(&d)[0].reason, "expired");
    wait_count(&ch, &q, 0).await;
    close(conn).await;
}

#[tokio::test]
async fn invalid_expiration_closes_the_channel() {
    let conn = connect().await;
    let q = temp_queue(&conn.create_channel().await.unwrap()).await;
    for (expiration, reason) in [
        ("abc", "no_integer"),
        ("-1", "{value_negative,-1}"),
        ("1.5", "{leftover_string,\".5\"}"),
        ("315360000001", "{value_too_large,315360000001}"),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let watch = watch_close(&ch).await;
        publish_with(&ch, "", &q, b"x", expiring(expiration)).await;
        assert_eq!(
            watch.closed().await,
            (
                406,
                format!("PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}")
            )
        );
    }
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(message_count(&ch, &q).await, 0);
    close(conn).await;
}

// ---------------------------------------------------------------------------------------------
// x-expires
// ---------------------------------------------------------------------------------------------

/// Declares a non-exclusive queue with x-expires `ms` (it deletes itself).
async fn expiring_queue(ch: &Channel, ms: i32) -> String {
    let q = unique("expires");
    declare(
        ch,
        &q,
        QueueDeclareOptions::default(),
        table(vec![("x-expires", int(ms))]),
    )
    .await
    .expect("declare");
    q
}

#[tokio::test]
async fn unused_queue_is_deleted_after_x_expires() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let declared = Instant::now();
    let q = expiring_queue(&ch, 200).await;
    wait_gone_by_publish(&ch, &q).await;
    assert!(
        declared.elapsed() >= Duration::from_millis(180),
        "expired after {:?}",
        declared.elapsed()
    );
    let other = conn.create_channel().await.unwrap();
    assert_amqp_error(
        queue_exists(&other, &q).await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '{}'", vhost()),
    );
    close(conn).await;
}

#[tokio::test]
async fn messages_do_not_keep_a_queue_alive() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = expiring_queue(&ch, 150).await;
    for _ in 0..3 {
        send(&ch, &q, "x", BasicProperties::default()).await;
    }
    wait_gone_by_publish(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn a_consumer_keeps_the_queue_alive_until_it_cancels() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let q = expiring_queue(&ch, 100).await;
    let cch = conn.create_channel().await.unwrap();
    let c = consume(&cch, &q, "", true).await;
    // several periods later it is still there (mandatory publishes are routed, not returned)
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(500) {
        let r = publish_confirmed(&ch, "", &q, b"alive", BasicProperties::default(), true).await;
        assert_eq!(r, Confirmation::Ack(None), "expired while consumed");
        pace().await;
    }
    cch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // the period starts again once the last consumer is gone
    wait_gone_by_publish(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn ttl_zero_is_delivered_to_a_ready_consumer() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q1 = xqueue(&ch, "ttl0", table(vec![("x-message-ttl", int(0))])).await;
    let q2 = temp_queue(&ch).await;
    let cch = conn.create_channel().await.unwrap();
    let mut c1 = consume(&cch, &q1, "", true).await;
    let mut c2 = consume(&cch, &q2, "", true).await;
    for i in 0..5 {
        publish(&ch, "", &q1, format!("{i}").as_bytes()).await;
        publish_with(&ch, "", &q2, format!("{i}").as_bytes(), expiring("0")).await;
    }
    for i in 0..5 {
        let d1 = next(&mut c1).await;
        let d2 = next(&mut c2).await;
        assert_eq!(
            (d1.data, d2.data),
            (format!("{i}").into_bytes(), format!("{i}").into_bytes())
        );
        assert_eq!(*d1.properties.expiration(), None);
        // a message's own expiration "0" is delivered as it is
        assert_eq!(
            d2.properties.expiration().as_ref().map(|e| e.as_str()),
            Some("0")
        );
    }
    close(conn).await;
}

#[tokio::test]
async fn ttl_zero_with_a_consumer_at_its_prefetch_limit_dead_letters() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let dead = temp_queue(&ch).await;
    let mut args = dlx_to(&dead);
    args.push(("x-message-ttl", int(0)));
    let q = xqueue(&ch, "ttl0", table(args)).await;
    let cch = conn.create_channel().await.unwrap();
    cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut c = consume(&cch, &q, "", false).await;
    for i in 0..3 {
        send(&ch, &q, &i.to_string(), BasicProperties::default()).await;
    }
    wait_count(&ch, &dead, 2).await;
    assert_eq!(next(&mut c).await.data, b"0");
    assert_eq!(message_count(&ch, &q).await, 0);
    let got = drain_deliveries(&ch, &dead).await;
    assert_eq!(texts(&got), ["1", "2"]);
    assert_eq!(deaths(&got[0])[0].reason, "expired");
    close(conn).await;
}

#[tokio::test]
async fn passive_declare_and_basic_get_renew_the_x_expires_lease() {
    let conn = connect().await;
    let probe = confirm_channel(&conn).await;
    let ch = conn.create_channel().await.unwrap();
    for use_get in [false, true] {
        let q = expiring_queue(&ch, 400).await;
        // three periods of touching it every few ms: it stays
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1200) {
            if use_get {
                get(&ch, &q).await;
            } else {
                queue_exists(&ch, &q)
                    .await
                    .expect("expired although renewed");
            }
            pace().await;
        }
        // left alone, it goes
        wait_gone_by_publish(&probe, &q).await;
    }
    close(conn).await;
}
