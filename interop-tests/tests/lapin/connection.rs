//! Connection and channel lifecycle.

use interop_tests::raw::Raw;
use interop_tests::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

#[tokio::test]
async fn open_and_close() {
    let conn = connect().await;
    assert!(conn.status().connected());
    let ch = conn.create_channel().await.unwrap();
    assert!(ch.status().connected());
    conn.close(200, "bye".into()).await.unwrap();
    // (lapin records the final Closed state asynchronously after close-ok)
    assert!(!conn.status().connected());
    assert!(!ch.status().connected());
    // nothing works on a closed connection
    assert!(conn.create_channel().await.is_err());
}

#[tokio::test]
async fn server_properties_advertise_capabilities() {
    // lapin does not expose connection.start, so read it on a raw socket.
    let (_raw, hs) = Raw::open().await;
    assert_eq!((hs.start.version_major, hs.start.version_minor), (0, 9));
    let mechanisms = hs.start.mechanisms.to_string();
    let mechanisms: Vec<&str> = mechanisms.split_whitespace().collect();
    assert!(mechanisms.contains(&"PLAIN"), "{mechanisms:?}");
    assert!(mechanisms.contains(&"AMQPLAIN"), "{mechanisms:?}");
    assert_eq!(hs.start.locales.to_string(), "en_US");
    let props = hs.start.server_properties.inner();
    for key in ["product", "version", "platform", "cluster_name"] {
        assert!(
            matches!(props.get(key), Some(AMQPValue::LongString(_))),
            "server property {key}: {:?}",
            props.get(key)
        );
    }
    let caps = match props.get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => t.inner().clone(),
        other => panic!("capabilities: {other:?}"),
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        assert_eq!(
            caps.get(cap),
            Some(&AMQPValue::Boolean(true)),
            "capability {cap}"
        );
    }
}

#[tokio::test]
async fn negotiated_limits() {
    let conn = connect().await;
    let cfg = conn.configuration();
    assert_eq!(cfg.frame_max(), 131072);
    assert_eq!(cfg.channel_max(), 2047);
    assert_eq!(cfg.heartbeat(), 60);
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn client_can_lower_frame_max_and_channel_max() {
    let url = format!("{}?frame_max=8192&channel_max=10&heartbeat=5", amqp_url());
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let cfg = conn.configuration();
    assert_eq!(
        (cfg.frame_max(), cfg.channel_max(), cfg.heartbeat()),
        (8192, 10, 5)
    );
    // a message bigger than frame_max still goes through, split into body frames
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body = vec![7u8; 50_000];
    ch.basic_publish(
        "".into(),
        q.name().clone(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let got = within(10, async {
        loop {
            if let Some(m) = ch
                .basic_get(q.name().clone(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                return m;
            }
        }
    })
    .await;
    assert_eq!(got.delivery.data, body);
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn wrong_password_is_access_refused() {
    let (user, _, _) = credentials();
    let url = url_with(&user, &unique("wrong-password"), "%2F");
    let err = Connection::connect(&url, ConnectionProperties::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        protocol_error(&err),
        Some((
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. \
             For details see the broker logfile."
                .to_string()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_user_is_access_refused() {
    let url = url_with(&unique("nobody"), "guest", "%2F");
    let err = Connection::connect(&url, ConnectionProperties::default())
        .await
        .map(|_| ())
        .unwrap_err();
    let (code, text) = protocol_error(&err).unwrap_or_else(|| panic!("{err}"));
    assert_eq!(code, 403);
    assert!(
        text.starts_with("ACCESS_REFUSED - Login was refused"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_vhost_is_not_allowed() {
    let (user, pass, _) = credentials();
    let vhost = unique("no-such-vhost");
    let err = Connection::connect(
        &url_with(&user, &pass, &vhost),
        ConnectionProperties::default(),
    )
    .await
    .map(|_| ())
    .unwrap_err();
    assert_eq!(
        protocol_error(&err),
        Some((530, format!("NOT_ALLOWED - vhost {vhost} not found"))),
        "{err}"
    );
    assert_broker_alive().await;
}

#[tokio::test]
async fn many_channels_on_one_connection() {
    let conn = connect().await;
    let mut channels = Vec::new();
    for _ in 0..200 {
        channels.push(conn.create_channel().await.unwrap());
    }
    let mut ids: Vec<u16> = channels.iter().map(|c| c.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    // every channel works independently
    let q = channels[0]
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for (i, ch) in channels.iter().enumerate() {
        ch.basic_publish(
            "".into(),
            q.name().clone(),
            BasicPublishOptions::default(),
            format!("{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    // publishes on different channels are not ordered among each other; wait for all of them
    let declared = within(10, async {
        loop {
            let d = channels[199]
                .queue_declare(
                    q.name().clone(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            if d.message_count() == 200 {
                return d;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(declared.message_count(), 200);
    // closing half of them leaves the others usable
    for ch in channels.iter().step_by(2) {
        ch.close(200, "bye".into()).await.unwrap();
    }
    for ch in channels.iter().skip(1).step_by(2) {
        ch.basic_qos(5, BasicQosOptions::default()).await.unwrap();
    }
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn channel_close_then_reopen() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    ch.close(200, "bye".into()).await.unwrap();
    assert!(!ch.status().connected());
    assert!(ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::default(),
            FieldTable::default()
        )
        .await
        .is_err());
    // a new channel on the same connection works and sees the exclusive queue
    let ch2 = conn.create_channel().await.unwrap();
    let d = ch2
        .queue_declare(
            q.name().clone(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(d.message_count(), 0);
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn channel_error_leaves_connection_and_other_channels_open() {
    let conn = connect().await;
    let good = conn.create_channel().await.unwrap();
    let bad = conn.create_channel().await.unwrap();
    let missing = unique("missing");
    let r = bad
        .queue_declare(
            missing.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_amqp_error(
        r,
        404,
        &format!("NOT_FOUND - no queue '{missing}' in vhost '/'"),
    );
    assert!(!bad.status().connected());
    assert!(conn.status().connected());
    good.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    // the connection can open more channels
    let again = conn.create_channel().await.unwrap();
    again
        .exchange_declare(
            "amq.direct".into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn connection_close_by_client_ends_consumers() {
    use futures::StreamExt;
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions::exclusive(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    // the stream ends (possibly after an error item)
    within(10, async {
        while let Some(item) = consumer.next().await {
            assert!(item.is_err(), "no delivery expected: {item:?}");
        }
    })
    .await;
}
