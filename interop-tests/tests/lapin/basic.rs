//! basic.publish (mandatory), consume, cancel and get.

use crate::util::*;
use futures::StreamExt;
use interop_tests::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};

async fn consume_with(
    ch: &Channel,
    q: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> lapin::Result<Consumer> {
    ch.basic_consume(q.into(), tag.into(), options, FieldTable::default())
        .await
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_with_confirm() {
    let (conn, ch) = open().await;
    confirm_mode(&ch).await;
    let props = BasicProperties::default()
        .with_message_id("mid-1".into())
        .with_priority(3);
    let key = unique("nowhere");
    ch.basic_publish(
        "amq.direct".into(),
        key.as_str().into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"returned body",
        props.clone(),
    )
    .await
    .unwrap();
    let returned = within(10, ch.wait_for_confirms()).await.unwrap();
    assert_eq!(returned.len(), 1);
    let r = &returned[0];
    assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(r.delivery.exchange.as_str(), "amq.direct");
    assert_eq!(r.delivery.routing_key.as_str(), key);
    assert_eq!(r.delivery.data, b"returned body");
    assert_eq!(r.delivery.properties, props);
    // a routable mandatory publish is not returned
    let q = temp_queue(&ch).await;
    let c = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"routed",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(c, lapin::Confirmation::Ack(None));
    close(conn).await;
}

#[tokio::test]
async fn mandatory_unroutable_to_default_exchange_is_returned() {
    let (conn, ch) = open().await;
    confirm_mode(&ch).await;
    let q = unique("no-such-queue");
    let c = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(c.is_ack());
    let r = c.take_message().expect("returned");
    assert_eq!((r.reply_code, r.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(
        (
            r.delivery.exchange.as_str(),
            r.delivery.routing_key.as_str()
        ),
        ("", q.as_str())
    );
    close(conn).await;
}

#[tokio::test]
async fn consumer_tags_generated_and_given() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    let generated = consume_with(&ch, &q, "", BasicConsumeOptions::default())
        .await
        .unwrap();
    assert!(
        generated.tag().as_str().starts_with("amq.ctag-"),
        "{}",
        generated.tag()
    );
    let other = consume_with(&ch, &q, "", BasicConsumeOptions::default())
        .await
        .unwrap();
    assert_ne!(generated.tag(), other.tag());
    let tag = unique("my-tag");
    let given = consume_with(&ch, &q, &tag, BasicConsumeOptions::default())
        .await
        .unwrap();
    assert_eq!(given.tag().as_str(), tag);
    assert_eq!(queue_exists(&ch, &q).await.unwrap().consumer_count(), 3);
    close(conn).await;
}

#[tokio::test]
async fn duplicate_consumer_tag_closes_the_connection() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    let tag = unique("dup");
    let _c = consume_with(&ch, &q, &tag, BasicConsumeOptions::default())
        .await
        .unwrap();
    let r = consume_with(&ch, &q, &tag, BasicConsumeOptions::default()).await;
    assert_amqp_error(
        r,
        530,
        &format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
    );
    // a connection error: the whole connection is gone
    assert!(conn.create_channel().await.is_err());
    assert_broker_alive().await;
}

#[tokio::test]
async fn same_consumer_tag_on_another_channel_is_fine() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    let tag = unique("tag");
    let _a = consume_with(&ch, &q, &tag, BasicConsumeOptions::default())
        .await
        .unwrap();
    let ch2 = conn.create_channel().await.unwrap();
    let _b = consume_with(&ch2, &q, &tag, BasicConsumeOptions::default())
        .await
        .unwrap();
    assert_eq!(queue_exists(&ch, &q).await.unwrap().consumer_count(), 2);
    close(conn).await;
}

#[tokio::test]
async fn exclusive_consumer_conflicts() {
    let conn = connect().await;
    let ch = conn.create_channel().await.unwrap();
    let q = named_queue(&ch, "exclusive-consume").await;
    let in_use = format!("ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use");
    let excl = BasicConsumeOptions {
        exclusive: true,
        ..Default::default()
    };
    let c = consume_with(&ch, &q, "", excl).await.unwrap();
    // no other consumer, exclusive or not, while the exclusive one is there
    for opts in [BasicConsumeOptions::default(), excl] {
        let other = conn.create_channel().await.unwrap();
        assert_amqp_error(consume_with(&other, &q, "", opts).await, 403, &in_use);
    }
    ch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // an exclusive consumer cannot join existing consumers
    let _plain = consume_with(&ch, &q, "", BasicConsumeOptions::default())
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_amqp_error(consume_with(&other, &q, "", excl).await, 403, &in_use);
    delete_queue(&ch, &q).await;
    close(conn).await;
}

#[tokio::test]
async fn consume_from_missing_queue_is_not_found() {
    let (conn, ch) = open().await;
    let q = unique("missing");
    assert_amqp_error(
        consume_with(&ch, &q, "", BasicConsumeOptions::default()).await,
        404,
        &format!("NOT_FOUND - no queue '{q}' in vhost '/'"),
    );
    close(conn).await;
}

#[tokio::test]
async fn consume_then_cancel() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    let mut c = consume_with(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    publish(&ch, "", &q, b"one").await;
    let d = within(10, c.next()).await.unwrap().unwrap();
    assert_eq!(d.data, b"one");
    assert_eq!(d.delivery_tag, 1);
    assert!(!d.redelivered);
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", q.as_str())
    );
    ch.basic_cancel(c.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    // the stream ends; later messages stay in the queue
    assert!(within(10, c.next()).await.is_none());
    publish(&ch, "", &q, b"two").await;
    assert_eq!(drain(&ch, &q).await, vec![b"two".to_vec()]);
    assert_eq!(queue_exists(&ch, &q).await.unwrap().consumer_count(), 0);
    close(conn).await;
}

#[tokio::test]
async fn messages_published_before_consume_are_delivered() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    for i in 0..5 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    let mut c = consume_with(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 0..5u64 {
        let d = within(10, c.next()).await.unwrap().unwrap();
        assert_eq!(d.data, format!("{i}").as_bytes());
        assert_eq!(d.delivery_tag, i + 1);
    }
    close(conn).await;
}

#[tokio::test]
async fn get_and_get_empty() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    assert!(ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap()
        .is_none());
    let props = BasicProperties::default().with_content_type("text/plain".into());
    publish_with(&ch, "", &q, b"a", props.clone()).await;
    publish(&ch, "", &q, b"b").await;
    let m = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.message_count, 1);
    assert_eq!(m.delivery.data, b"a");
    assert_eq!(m.delivery.delivery_tag, 1);
    assert!(!m.delivery.redelivered);
    assert_eq!(
        (
            m.delivery.exchange.as_str(),
            m.delivery.routing_key.as_str()
        ),
        ("", q.as_str())
    );
    assert_eq!(m.delivery.properties, props);
    let m2 = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m2.message_count, m2.delivery.delivery_tag), (0, 2));
    assert!(ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap()
        .is_none());
    // the first one is still unacked
    m.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    assert!(get(&ch, &q).await.is_none());
    close(conn).await;
}

#[tokio::test]
async fn get_from_missing_queue_is_not_found() {
    let (conn, ch) = open().await;
    let q = unique("missing");
    let r = ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await;
    assert_amqp_error(r, 404, &format!("NOT_FOUND - no queue '{q}' in vhost '/'"));
    close(conn).await;
}

#[tokio::test]
async fn fifo_order_of_1000_messages() {
    let (conn, ch) = open().await;
    let q = temp_queue(&ch).await;
    for i in 0..1000 {
        publish(&ch, "", &q, format!("{i}").as_bytes()).await;
    }
    // half by get, the rest by a consumer
    for i in 0..500 {
        let m = get(&ch, &q).await.unwrap();
        assert_eq!(m.delivery.data, format!("{i}").as_bytes());
    }
    let mut c = consume_with(
        &ch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 500..1000 {
        let d = within(10, c.next()).await.unwrap().unwrap();
        assert_eq!(d.data, format!("{i}").as_bytes());
    }
    close(conn).await;
}

#[tokio::test]
async fn publishes_from_one_channel_reach_a_consumer_in_order() {
    let conn = connect().await;
    let cch = conn.create_channel().await.unwrap();
    let q = temp_queue(&cch).await;
    let mut c = consume_with(
        &cch,
        &q,
        "",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let pconn = connect().await;
    let pch = pconn.create_channel().await.unwrap();
    for i in 0..1000 {
        publish(&pch, "", &q, format!("{i}").as_bytes()).await;
    }
    for i in 0..1000 {
        let d = within(10, c.next()).await.unwrap().unwrap();
        assert_eq!(d.data, format!("{i}").as_bytes());
    }
    close(pconn).await;
    close(conn).await;
}
