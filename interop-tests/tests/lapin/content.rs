//! Message content: all basic properties, header field types, body sizes around frame_max.

use crate::util::*;
use futures::StreamExt;
use interop_tests::*;
use lapin::options::*;
use lapin::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use lapin::BasicProperties;

/// Publishes on `ch` and receives through a consumer on a second channel.
async fn round_trip(
    conn: &lapin::Connection,
    body: &[u8],
    props: BasicProperties,
) -> lapin::message::Delivery {
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    let cch = conn.create_channel().await.unwrap();
    let mut c = cch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish_with(&ch, "", &q, body, props).await;
    within(30, c.next()).await.unwrap().unwrap()
}

#[tokio::test]
async fn all_basic_properties_pass_through() {
    let conn = connect().await;
    let (user, _, _) = credentials();
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(table(vec![("h", lstr("v"))]))
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-1".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("order.created".into())
        .with_user_id(user.as_str().into())
        .with_app_id("interop".into())
        .with_cluster_id("cluster-x".into());
    let d = round_trip(&conn, b"{}", props.clone()).await;
    assert_eq!(d.properties, props);
    assert_eq!(d.data, b"{}");
    // and through basic.get as well
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    publish_with(&ch, "", &q, b"g", props.clone()).await;
    assert_eq!(get(&ch, &q).await.unwrap().delivery.properties, props);
    close(conn).await;
}

#[tokio::test]
async fn no_properties_stay_empty() {
    let conn = connect().await;
    let d = round_trip(&conn, b"plain", BasicProperties::default()).await;
    assert_eq!(d.properties, BasicProperties::default());
    close(conn).await;
}

#[tokio::test]
async fn header_values_of_every_field_type_pass_through() {
    let conn = connect().await;
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongInt(-5));
    nested.insert(
        "deeper".into(),
        AMQPValue::FieldTable(table(vec![("x", lstr("y"))])),
    );
    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        lstr("two"),
        AMQPValue::Boolean(false),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void])),
    ]);
    // (ShortString is left out: lapin encodes it with type tag '_', which is not an AMQP type)
    let headers = table(vec![
        ("bool-t", AMQPValue::Boolean(true)),
        ("bool-f", AMQPValue::Boolean(false)),
        ("i8", AMQPValue::ShortShortInt(-8)),
        ("u8", AMQPValue::ShortShortUInt(200)),
        ("i16", AMQPValue::ShortInt(-1600)),
        ("u16", AMQPValue::ShortUInt(60000)),
        ("i32", AMQPValue::LongInt(-320_000)),
        ("u32", AMQPValue::LongUInt(4_000_000_000)),
        ("i64", AMQPValue::LongLongInt(-6_400_000_000_000)),
        ("f32", AMQPValue::Float(1.5)),
        ("f64", AMQPValue::Double(-2.25e100)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12345,
            }),
        ),
        (
            "longstr",
            AMQPValue::LongString(LongString::from("long string ü")),
        ),
        ("empty-str", lstr("")),
        ("array", AMQPValue::FieldArray(array)),
        ("empty-array", AMQPValue::FieldArray(FieldArray::default())),
        ("timestamp", AMQPValue::Timestamp(1_600_000_000)),
        ("table", AMQPValue::FieldTable(nested)),
        ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255])),
        ),
        ("void", AMQPValue::Void),
    ]);
    let props = BasicProperties::default().with_headers(headers.clone());
    let d = round_trip(&conn, b"typed", props).await;
    let got = d.properties.headers().clone().expect("headers");
    let wrong: Vec<String> = headers
        .inner()
        .iter()
        .filter(|(k, v)| got.inner().get(k.as_str()) != Some(v))
        .map(|(k, v)| format!("{k}: sent {v:?}, got {:?}", got.inner().get(k.as_str())))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(got.inner().len(), headers.inner().len());
    close(conn).await;
}

#[tokio::test]
async fn long_keys_and_many_headers() {
    let conn = connect().await;
    let mut t = FieldTable::default();
    for i in 0..300 {
        t.insert(
            ShortString::from(format!("k{i:03}-{}", "x".repeat(200))),
            AMQPValue::LongInt(i),
        );
    }
    let props = BasicProperties::default().with_headers(t.clone());
    let d = round_trip(&conn, b"many", props).await;
    assert_eq!(d.properties.headers().as_ref(), Some(&t));
    close(conn).await;
}

#[tokio::test]
async fn body_sizes_around_frame_max() {
    let conn = connect().await;
    assert_eq!(conn.configuration().frame_max(), 131072);
    for size in [
        0usize,
        1,
        131063,
        131064,
        131065,
        131072,
        131073,
        3 * 131064 + 5,
    ] {
        let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let d = round_trip(&conn, &body, BasicProperties::default()).await;
        assert_eq!(d.data.len(), size);
        assert!(d.data == body, "body of {size} bytes corrupted");
    }
    close(conn).await;
}

#[tokio::test]
async fn five_mib_body() {
    let conn = connect().await;
    let size = 5 * 1024 * 1024;
    let body: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
    let props = BasicProperties::default().with_message_id("big".into());
    let d = round_trip(&conn, &body, props.clone()).await;
    assert_eq!(d.data.len(), size);
    assert!(d.data == body, "5 MiB body corrupted");
    assert_eq!(d.properties, props);
    // and through basic.get
    let ch = conn.create_channel().await.unwrap();
    let q = temp_queue(&ch).await;
    publish(&ch, "", &q, &body).await;
    let m = get(&ch, &q).await.unwrap();
    assert!(m.delivery.data == body);
    close(conn).await;
}

#[tokio::test]
async fn user_id_must_match_the_authenticated_user() {
    let (conn, ch) = open().await;
    let (user, _, _) = credentials();
    let q = temp_queue(&ch).await;
    let watch = watch_close(&ch).await;
    publish_with(
        &ch,
        "",
        &q,
        b"forged",
        BasicProperties::default().with_user_id("someone-else".into()),
    )
    .await;
    assert_eq!(
        watch.closed().await,
        (
            406,
            format!(
                "PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user was '{user}'"
            )
        )
    );
    close(conn).await;
}
