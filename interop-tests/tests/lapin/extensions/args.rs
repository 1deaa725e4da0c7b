//! Validation of the queue-extension arguments at queue.declare: 406 with RabbitMQ's texts, and
//! the queue is not created.

use super::*;
use lapin::types::DecimalValue;

/// Declares a fresh classic queue with the single argument `arg: value`; expects a 406 with
/// `PRECONDITION_FAILED - invalid arg '<arg>' for Q: <reason>`.
async fn refused(conn: &Connection, arg: &str, value: AMQPValue, reason: &str) {
    let q = unique("args");
    let got = declare_error(
        conn,
        &q,
        QueueDeclareOptions::default(),
        table(vec![(arg, value.clone())]),
    )
    .await;
    let want = format!(
        "PRECONDITION_FAILED - invalid arg '{arg}' for {}: {reason}",
        qname(&q)
    );
    assert_eq!(got, (406, want), "{arg} = {value:?}");
}

#[tokio::test]
async fn invalid_max_priority() {
    let conn = connect().await;
    refused(
        &conn,
        "x-max-priority",
        int(256),
        "{max_value_exceeded,256}",
    )
    .await;
    refused(
        &conn,
        "x-max-priority",
        long(1 << 40),
        "{max_value_exceeded,1099511627776}",
    )
    .await;
    refused(&conn, "x-max-priority", int(-1), "{value_negative,-1}").await;
    refused(
        &conn,
        "x-max-priority",
        lstr("5"),
        "\"expected integer, got longstr\"",
    )
    .await;
    refused(
        &conn,
        "x-max-priority",
        AMQPValue::Boolean(true),
        "\"expected integer, got bool\"",
    )
    .await;
    refused(
        &conn,
        "x-max-priority",
        AMQPValue::DecimalValue(DecimalValue {
            scale: 1,
            value: 55,
        }),
        "\"expected integer, got decimal\"",
    )
    .await;
    close(conn).await;
}

#[tokio::test]
async fn invalid_ttl_and_expires() {
    let conn = connect().await;
    refused(&conn, "x-message-ttl", int(-1), "{value_negative,-1}").await;
    refused(
        &conn,
        "x-message-ttl",
        lstr("100"),
        "\"expected integer, got longstr\"",
    )
    .await;
    refused(
        &conn,
        "x-message-ttl",
        long(315_360_000_001),
        "{value_too_large,315360000001}",
    )
    .await;
    refused(&conn, "x-expires", int(0), "{value_zero,0}").await;
    refused(&conn, "x-expires", int(-5), "{value_negative,-5}").await;
    refused(
        &conn,
        "x-expires",
        long(315_360_000_001),
        "{value_too_large,315360000001}",
    )
    .await;
    close(conn).await;
}

#[tokio::test]
async fn ttl_and_expires_bounds_are_accepted() {
    let (conn, ch) = open().await;
    for (arg, v) in [
        ("x-message-ttl", long(0)),
        ("x-message-ttl", long(315_360_000_000)),
        ("x-expires", long(315_360_000_000)),
        ("x-max-priority", int(0)),
        ("x-max-priority", int(255)),
        ("x-max-length", long(i64::MAX)),
    ] {
        xqueue(&ch, "args", table(vec![(arg, v)])).await;
    }
    close(conn).await;
}

#[tokio::test]
async fn integer_arguments_accept_every_integer_type() {
    let (conn, ch) = open().await;
    for v in [
        AMQPValue::ShortShortInt(5),
        AMQPValue::ShortShortUInt(5),
        AMQPValue::ShortInt(5),
        AMQPValue::ShortUInt(5),
        AMQPValue::LongInt(5),
        AMQPValue::LongUInt(5),
        AMQPValue::LongLongInt(5),
    ] {
        let q = xqueue(&ch, "args", table(vec![("x-max-priority", v)])).await;
        // and it is a priority queue
        send_unconfirmed_pair(&ch, &q).await;
        assert_eq!(drain_texts(&ch, &q).await, ["high", "low"]);
    }
    close(conn).await;
}

async fn send_unconfirmed_pair(ch: &Channel, q: &str) {
    publish_with(
        ch,
        "",
        q,
        b"low",
        BasicProperties::default().with_priority(1),
    )
    .await;
    publish_with(
        ch,
        "",
        q,
        b"high",
        BasicProperties::default().with_priority(5),
    )
    .await;
}

#[tokio::test]
async fn invalid_length_limits_and_overflow() {
    let conn = connect().await;
    refused(&conn, "x-max-length", int(-1), "{value_negative,-1}").await;
    refused(&conn, "x-max-length-bytes", int(-1), "{value_negative,-1}").await;
    refused(
        &conn,
        "x-max-length",
        lstr("10"),
        "\"expected integer, got longstr\"",
    )
    .await;
    refused(&conn, "x-overflow", lstr("bad"), "invalid_overflow").await;
    refused(&conn, "x-overflow", lstr("Drop-Head"), "invalid_overflow").await;
    refused(&conn, "x-overflow", int(1), "{unacceptable_type,signedint}").await;
    close(conn).await;
}

#[tokio::test]
async fn invalid_dead_letter_arguments() {
    let conn = connect().await;
    refused(
        &conn,
        "x-dead-letter-routing-key",
        lstr("k"),
        "routing_key_but_no_dlx_defined",
    )
    .await;
    // a non-string DLX has its own text
    let q = unique("args");
    assert_eq!(
        declare_error(
            &conn,
            &q,
            QueueDeclareOptions::default(),
            table(vec![("x-dead-letter-exchange", int(5))])
        )
        .await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in {}",
                qname(&q)
            )
        )
    );
    let q = unique("args");
    assert_eq!(
        declare_error(
            &conn,
            &q,
            QueueDeclareOptions::default(),
            table(vec![
                ("x-dead-letter-exchange", lstr("dlx")),
                ("x-dead-letter-routing-key", int(5))
            ])
        )
        .await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for {}: {{unacceptable_type,signedint}}",
                qname(&q)
            )
        )
    );
    close(conn).await;
}

#[tokio::test]
async fn invalid_single_active_consumer_and_queue_type() {
    let conn = connect().await;
    refused(
        &conn,
        "x-single-active-consumer",
        lstr("true"),
        "{unacceptable_type,longstr}",
    )
    .await;
    refused(
        &conn,
        "x-single-active-consumer",
        int(1),
        "{unacceptable_type,signedint}",
    )
    .await;
    for t in ["stream2", "Quorum", ""] {
        refused(
            &conn,
            "x-queue-type",
            lstr(t),
            &format!("\"unsupported queue type '{t}'\""),
        )
        .await;
    }
    refused(
        &conn,
        "x-queue-type",
        int(1),
        "{unacceptable_type,signedint}",
    )
    .await;
    refused(
        &conn,
        "x-queue-mode",
        lstr("bad"),
        "\"unsupported queue mode 'bad'\"",
    )
    .await;
    close(conn).await;
}

#[tokio::test]
async fn arguments_of_another_queue_type_are_refused() {
    let conn = connect().await;
    for v in [int(5), lstr("5"), int(-1)] {
        let q = unique("args");
        assert_eq!(
            declare_error(
                &conn,
                &q,
                QueueDeclareOptions::default(),
                table(vec![("x-delivery-limit", v)])
            )
            .await,
            (
                406,
                format!(
                    "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for {} of queue type rabbit_classic_queue",
                    qname(&q)
                )
            )
        );
    }
    let q = unique("args");
    assert_eq!(
        declare_error(
            &conn,
            &q,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            table(vec![
                ("x-queue-type", lstr("quorum")),
                ("x-max-priority", int(5))
            ])
        )
        .await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-priority' for {} of queue type rabbit_quorum_queue",
                qname(&q)
            )
        )
    );
    close(conn).await;
}

#[tokio::test]
async fn the_first_failing_check_in_rabbitmq_order_wins() {
    let conn = connect().await;
    // x-expires is checked before x-message-ttl, whatever the table order
    let q = unique("args");
    let got = declare_error(
        &conn,
        &q,
        QueueDeclareOptions::default(),
        table(vec![("x-message-ttl", int(-1)), ("x-expires", int(0))]),
    )
    .await;
    assert_eq!(
        got,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-expires' for {}: {{value_zero,0}}",
                qname(&q)
            )
        )
    );
    // the generic checks come before the queue-type specific ones
    let q = unique("args");
    let got = declare_error(
        &conn,
        &q,
        QueueDeclareOptions::default(),
        table(vec![
            ("x-delivery-limit", int(1)),
            ("x-max-length", int(-1)),
        ]),
    )
    .await;
    assert_eq!(
        got,
        (
            406,
            format!(
                "PRECONDITION_FAILED - invalid arg 'x-max-length' for {}: {{value_negative,-1}}",
                qname(&q)
            )
        )
    );
    close(conn).await;
}

#[tokio::test]
async fn refused_declare_creates_no_queue_and_unknown_arguments_are_ignored() {
    let conn = connect().await;
    let q = unique("args");
    let (code, _) = declare_error(
        &conn,
        &q,
        QueueDeclareOptions::default(),
        table(vec![("x-max-priority", int(256))]),
    )
    .await;
    assert_eq!(code, 406);
    let ch = conn.create_channel().await.unwrap();
    assert_amqp_error(
        queue_exists(&ch, &q).await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '{}'", vhost()),
    );
    let ch = conn.create_channel().await.unwrap();
    xqueue(
        &ch,
        "args",
        table(vec![
            ("x-unknown-argument", lstr("whatever")),
            ("x-consumer-timeout", int(1000)),
            ("not-x", int(1)),
            ("x-dead-letter-exchange", lstr(&unique("missing"))),
        ]),
    )
    .await;
    close(conn).await;
}
