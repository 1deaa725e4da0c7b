//! What survives a broker restart, through lapin (issue 3; the pika suite has the same in
//! `test_restart.py`): durable exchanges, durable queues, bindings between durable ends, and
//! persistent messages in durable queues, in order with their properties, an unacknowledged one
//! redelivered; transient exchanges, queues and messages do not survive.
//!
//! Needs a command that restarts the broker at `AMQP_URL`: `BROKER_RESTART` (it returns once the
//! broker accepts connections again). Without it (the in-process Warren of `cargo test`) the test
//! returns at once. It restarts the broker under any test running beside it, so it runs alone
//! (`cargo test ... --test lapin restart::`): scripts/test.sh runs it against the Warren it
//! starts for the pika suite, scripts/interop.sh after the rest of the lapin suite; for RabbitMQ: `BROKER_RESTART="rabbitmqctl -q stop_app && rabbitmqctl -q start_app && rabbitmqctl -q await_startup"`.

use crate::util::*;
use interop_tests::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ExchangeKind};

fn restart_command() -> Option<String> {
    std::env::var("BROKER_RESTART")
        .ok()
        .filter(|c| !c.is_empty())
}

fn restart(command: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .expect("run BROKER_RESTART");
    assert!(status.success(), "BROKER_RESTART failed: {status}");
}

fn props(i: u8, mode: u8) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(mode)
        .with_content_type("text/plain".into())
        .with_correlation_id(format!("c{i}").into())
        .with_headers(table(vec![("i", AMQPValue::LongInt(i as i32))]))
}

async fn declare_exchange(ch: &lapin::Channel, x: &str, durable: bool) {
    ch.exchange_declare(
        x.into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
}

async fn declare_queue(ch: &lapin::Channel, q: &str, durable: bool) {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            durable,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
}

#[tokio::test]
async fn durable_entities_and_persistent_messages_survive_a_restart() {
    let Some(command) = restart_command() else {
        return;
    };
    let (dx, tx, dq, tq) = (
        unique("restart-dx"),
        unique("restart-tx"),
        unique("restart-dq"),
        unique("restart-tq"),
    );
    let (conn, ch) = open().await;
    confirm_mode(&ch).await;
    declare_exchange(&ch, &dx, true).await;
    declare_exchange(&ch, &tx, false).await;
    declare_queue(&ch, &dq, true).await;
    declare_queue(&ch, &tq, false).await;
    bind(&ch, &dq, &dx, "k", FieldTable::default()).await;
    bind(&ch, &tq, &dx, "k", FieldTable::default()).await;
    // Persistent and transient messages, interleaved.
    for i in 0..6u8 {
        let mode = if i % 2 == 0 { 2 } else { 1 };
        publish_with(&ch, &dx, "k", format!("m{i}").as_bytes(), props(i, mode)).await;
    }
    settle(&ch).await;
    // The first one is delivered and left unacknowledged when the broker goes down.
    let taker = conn.create_channel().await.expect("channel");
    let first = taker
        .basic_get(dq.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get")
        .expect("a message");
    assert_eq!(first.delivery.data, b"m0");

    restart(&command);
    drop(conn);

    let (conn, ch) = open().await;
    confirm_mode(&ch).await;
    exchange_exists(&ch, &dx)
        .await
        .expect("the durable exchange survives");
    assert_eq!(
        message_count(&ch, &dq).await,
        3,
        "the persistent messages survive"
    );
    let got = drain_deliveries(&ch, &dq).await;
    let seen: Vec<(Vec<u8>, bool)> = got
        .iter()
        .map(|d| (d.data.clone(), d.redelivered))
        .collect();
    assert_eq!(
        seen,
        vec![
            (b"m0".to_vec(), true),
            (b"m2".to_vec(), false),
            (b"m4".to_vec(), false)
        ]
    );
    for (d, i) in got.iter().zip([0u8, 2, 4]) {
        assert_eq!(d.properties, props(i, 2), "properties of m{i} kept");
    }
    // The binding between the durable ends survives (the one to the transient queue cannot).
    publish_with(&ch, &dx, "k", b"after", props(9, 2)).await;
    settle(&ch).await;
    assert_eq!(drain(&ch, &dq).await, vec![b"after".to_vec()]);
    let ch2 = conn.create_channel().await.expect("channel");
    assert!(
        exchange_exists(&ch2, &tx).await.is_err(),
        "the transient exchange is gone"
    );
    let ch3 = conn.create_channel().await.expect("channel");
    assert!(
        queue_exists(&ch3, &tq).await.is_err(),
        "the transient queue is gone"
    );
    delete_queue(&ch, &dq).await;
    delete_exchange(&ch, &dx).await;
    close(conn).await;
}
