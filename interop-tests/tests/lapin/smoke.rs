use futures::StreamExt;
use interop_tests::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

#[tokio::test]
async fn publish_then_consume_round_trip() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = unique("smoke");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"hello",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut consumer = ch
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
    let d = within(10, consumer.next()).await.unwrap().unwrap();
    assert_eq!(d.data, b"hello");
    conn.close(200, "bye".into()).await.unwrap();
}
