//! Malformed input on raw sockets; after each, a fresh lapin connection still works.

use interop_tests::raw::*;
use interop_tests::*;
use lapin::protocol::{queue, AMQPClass};
use lapin::types::FieldTable;

fn declare(name: &str) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: name.into(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        nowait: false,
        arguments: FieldTable::default(),
    }))
}

/// Expects connection.close (answering close-ok) and returns (code, text, class, method).
async fn closed(r: &mut Raw) -> (u16, String, u16, u16) {
    let c = r.expect_connection_close().await;
    (
        c.reply_code,
        c.reply_text.to_string(),
        c.class_id,
        c.method_id,
    )
}

#[tokio::test]
async fn garbage_protocol_header_gets_the_supported_header_back() {
    for garbage in [
        &b"GARBAGE!"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"AMQP\x01\x01\x00\x0a",
        b"AMQP\x00\x00\x09\x00",
    ] {
        let mut r = Raw::connect().await;
        r.send(garbage).await;
        assert_eq!(
            r.read_bytes(8).await.as_deref(),
            Some(&PROTOCOL_HEADER[..]),
            "after {garbage:?}"
        );
        assert!(r.wait_eof(10).await, "socket left open after {garbage:?}");
    }
    assert_broker_alive().await;
}

#[tokio::test]
async fn oversized_frame_is_a_frame_error() {
    let (mut r, hs) = Raw::open().await;
    assert_eq!(hs.tune.frame_max, 131072);
    r.open_channel(1).await;
    r.send(&frame(FRAME_METHOD, 1, &vec![0u8; 131072 + 100], FRAME_END))
        .await;
    let (code, text, class, method) = closed(&mut r).await;
    assert_eq!(
        (code, text.as_str(), class, method),
        (
            501,
            "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,131172,131064}",
            0,
            0
        )
    );
    assert!(r.wait_eof(10).await, "socket left open");
    assert_broker_alive().await;
}

#[tokio::test]
async fn bad_frame_end_is_a_frame_error() {
    let (mut r, _) = Raw::open().await;
    r.open_channel(1).await;
    let payload = encode_method(&declare("abc"));
    r.send(&frame(FRAME_METHOD, 1, &payload, 0xAB)).await;
    let (code, text, class, method) = closed(&mut r).await;
    assert_eq!((code, class, method), (501, 0, 0), "{text}");
    // RabbitMQ pretty-prints the Erlang term (line breaks may appear): compare without whitespace
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(
        compact,
        "FRAME_ERROR-type1,alloctets=<<0,50,0,10,0,0,3,97,98,99,0,0,0,0,0>>:{invalid_frame_end_marker,171}"
    );
    assert!(r.wait_eof(10).await, "socket left open");
    assert_broker_alive().await;
}

#[tokio::test]
async fn method_on_unopened_channel_is_a_channel_error() {
    let (mut r, _) = Raw::open().await;
    r.send_method(5, &declare(&unique("q"))).await;
    assert_eq!(
        closed(&mut r).await,
        (
            504,
            "CHANNEL_ERROR - expected 'channel.open'".into(),
            50,
            10
        )
    );
    assert!(r.wait_eof(10).await, "socket left open");
    assert_broker_alive().await;
}

#[tokio::test]
async fn unknown_frame_type_is_a_frame_error() {
    let (mut r, _) = Raw::open().await;
    r.open_channel(1).await;
    r.send(&frame(9, 1, b"abc", FRAME_END)).await;
    assert_eq!(
        closed(&mut r).await,
        (
            501,
            "FRAME_ERROR - type 9, all octets = <<\"abc\">>: unknown_frame".into(),
            0,
            0
        )
    );
    assert_broker_alive().await;
}

#[tokio::test]
async fn body_frame_without_publish_is_unexpected() {
    let (mut r, _) = Raw::open().await;
    r.open_channel(1).await;
    r.send(&frame(FRAME_BODY, 1, b"abc", FRAME_END)).await;
    assert_eq!(
        closed(&mut r).await,
        (
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead".into(),
            0,
            0
        )
    );
    assert_broker_alive().await;
}

#[tokio::test]
async fn lapin_connections_survive_a_misbehaving_neighbour() {
    // a lapin connection opened before the bad one keeps working after it is thrown out
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let (mut r, _) = Raw::open().await;
    r.send(&frame(FRAME_METHOD, 0, &[0u8; 3], 0x00)).await;
    let (code, ..) = closed(&mut r).await;
    assert_eq!(code, 501);
    ch.basic_qos(1, lapin::options::BasicQosOptions::default())
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
}
