//! Direct reply-to, the consistent-hash exchange (RabbitMQ's plugin, enabled by
//! `scripts/rabbitmq-interop.sh`), and two Warren-only features: the delayed-message exchange
//! (the plugin is not in Debian's RabbitMQ) and a per-queue consumer timeout that cancels only the
//! late consumer.

use super::*;

#[tokio::test]
async fn direct_reply_to_round_trip() {
    let conn = connect().await;
    let client = conn.create_channel().await.expect("channel");
    let server = conn.create_channel().await.expect("channel");
    let requests = xqueue(&server, "rpc", FieldTable::default()).await;
    let mut replies = consume(&client, "amq.rabbitmq.reply-to", "replies", true).await;
    client
        .basic_publish(
            "".into(),
            requests.as_str().into(),
            BasicPublishOptions::default(),
            b"ping",
            BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
        )
        .await
        .expect("publish request");
    let request = poll_get(&server, &requests, true).await;
    let address = request
        .delivery
        .properties
        .reply_to()
        .as_ref()
        .expect("reply_to")
        .to_string();
    assert!(address.starts_with("amq.rabbitmq.reply-to."), "{address}");
    server
        .basic_publish(
            "".into(),
            address.as_str().into(),
            BasicPublishOptions::default(),
            b"pong",
            BasicProperties::default(),
        )
        .await
        .expect("publish reply");
    let reply = next(&mut replies).await;
    assert_eq!(reply.data, b"pong");
    assert_eq!(reply.routing_key.as_str(), address);
    assert_eq!(reply.exchange.as_str(), "");
    close(conn).await;
}

#[tokio::test]
async fn direct_reply_to_consumer_must_be_no_ack() {
    let conn = connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let err = ch
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "acking".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("an acking reply consumer");
    assert_eq!(
        protocol_error(&err),
        Some((
            406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge".to_string()
        ))
    );
    close(conn).await;
}

#[tokio::test]
async fn consistent_hash_spreads_by_weight_and_sticks() {
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("chx");
    ch.exchange_declare(
        x.as_str().into(),
        lapin::ExchangeKind::Custom("x-consistent-hash".into()),
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("declare x-consistent-hash");
    let light = xqueue(&ch, "w1", FieldTable::default()).await;
    let heavy = xqueue(&ch, "w3", FieldTable::default()).await;
    for (q, weight) in [(&light, "1"), (&heavy, "3")] {
        ch.queue_bind(
            q.as_str().into(),
            x.as_str().into(),
            weight.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
    for i in 0..2000 {
        let key = format!("key-{i}");
        publish_confirmed(
            &ch,
            &x,
            &key,
            key.as_bytes(),
            BasicProperties::default(),
            false,
        )
        .await;
    }
    let (l, h) = (
        message_count(&ch, &light).await,
        message_count(&ch, &heavy).await,
    );
    assert_eq!(l + h, 2000);
    assert!((300..=700).contains(&l), "light {l}, heavy {h}");
    // The same key goes where it went before.
    let first = drain_texts(&ch, &light).await;
    drain_texts(&ch, &heavy).await;
    for key in first.iter().take(20) {
        publish_confirmed(
            &ch,
            &x,
            key,
            key.as_bytes(),
            BasicProperties::default(),
            false,
        )
        .await;
    }
    assert_eq!(drain_texts(&ch, &light).await, first[..20.min(first.len())]);
    close(conn).await;
}

#[tokio::test]
async fn warren_only_delayed_messages_are_routed_in_due_order() {
    if !in_process() {
        return; // Debian's RabbitMQ has no delayed-message plugin
    }
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let x = unique("delayed");
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString("direct".into()),
    );
    ch.exchange_declare(
        x.as_str().into(),
        lapin::ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        args,
    )
    .await
    .expect("declare x-delayed-message");
    let q = xqueue(&ch, "delayed", FieldTable::default()).await;
    ch.queue_bind(
        q.as_str().into(),
        x.as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    for (body, delay) in [("late", Some(400)), ("early", Some(150)), ("now", None)] {
        let mut headers = FieldTable::default();
        if let Some(d) = delay {
            headers.insert("x-delay".into(), int(d));
        }
        let props = BasicProperties::default().with_headers(headers);
        publish_confirmed(&ch, &x, "k", body.as_bytes(), props, false).await;
    }
    wait_count(&ch, &q, 3).await;
    let got = drain_deliveries(&ch, &q).await;
    assert_eq!(texts(&got), ["now", "early", "late"]);
    // Delivered with the delay negated, as the plugin does.
    assert!(matches!(
        header(&got[2], "x-delay"),
        Some(AMQPValue::LongInt(-400))
    ));
    close(conn).await;
}

#[tokio::test]
async fn warren_only_consumer_timeout_cancels_only_that_consumer() {
    if !in_process() {
        return; // RabbitMQ 3.10 has no per-queue timeout and closes the channel instead
    }
    let conn = connect().await;
    let ch = confirm_channel(&conn).await;
    let mut args = FieldTable::default();
    args.insert("x-consumer-timeout".into(), int(300));
    let q = xqueue(&ch, "timeout", args).await;
    send(&ch, &q, "held", BasicProperties::default()).await;
    let slow = conn.create_channel().await.expect("channel");
    let mut late = consume(&slow, &q, "late", false).await;
    let d = next(&mut late).await;
    assert_eq!(d.data, b"held");
    // Never acked: the broker cancels this consumer (the stream ends) and requeues the message.
    let ended = within(10, late.next()).await;
    assert!(ended.is_none(), "consumer not cancelled: {ended:?}");
    assert!(slow.status().connected(), "the channel must stay open");
    let again = poll_get(&ch, &q, true).await;
    assert_eq!(again.delivery.data, b"held");
    assert!(again.delivery.redelivered);
    close(conn).await;
}
