//! Warren-only: `load_definitions` at start-up. These tests start their own Warren (whatever
//! `AMQP_URL` says), with a definitions file in its configuration.

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// `hashu`/`test12` as RabbitMQ 3.10.8 exported it.
const EXPORTED_HASH: &str = "A2vETqt7Ft1gbYgnVDnQZ+f+QGFdOFBflu4N696NkPTPkptq";

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data dir");
    dir
}

fn definitions() -> String {
    serde_json::json!({
        "rabbit_version": "3.10.8",
        "users": [{"name": "trainer", "password_hash": EXPORTED_HASH,
                   "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "tags": ["monitoring"], "limits": {}}],
        "vhosts": [{"name": "training", "limits": [["max-queues", 5]],
                    "metadata": {"description": "jobs", "tags": []}}],
        "permissions": [{"user": "trainer", "vhost": "training",
                         "configure": "^tasks", "write": ".*", "read": ".*"}],
        "topic_permissions": [],
        "parameters": [],
        "policies": [],
        "exchanges": [{"name": "jobs", "vhost": "training", "type": "direct", "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "queues": [{"name": "tasks", "vhost": "training", "durable": true,
                    "auto_delete": false, "arguments": {"x-max-priority": 5}}],
        "bindings": [{"source": "jobs", "vhost": "training", "destination": "tasks",
                      "destination_type": "queue", "routing_key": "t", "arguments": {}}]
    })
    .to_string()
}

async fn start(dir: &std::path::Path, defs: &std::path::Path) -> std::io::Result<String> {
    let mut config = warren::Config::for_test(dir.join("data"));
    config.load_definitions = Some(defs.to_path_buf());
    let server = warren::Server::bind(config).await?;
    let addr = server.local_addr().to_string();
    tokio::spawn(server.run(std::future::pending()));
    Ok(addr)
}

#[tokio::test]
async fn warren_only_load_definitions_at_start_up() {
    let dir = fresh_dir("defs");
    let defs = dir.join("defs.json");
    std::fs::write(&defs, definitions()).expect("write definitions");
    let addr = start(&dir, &defs).await.expect("start with definitions");
    let conn = Connection::connect(
        &format!("amqp://trainer:test12@{addr}/training"),
        ConnectionProperties::default(),
    )
    .await
    .expect("the imported user logs in with RabbitMQ's hash");
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_publish(
        "jobs".into(),
        "t".into(),
        BasicPublishOptions::default(),
        b"job",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    // The publish and the get travel on one channel, in order: the get finds the message.
    let got = ch
        .basic_get("tasks".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("the message routed through the imported binding");
    assert_eq!(got.delivery.data, b"job");
    // Permissions came with it: configure only on ^tasks.
    let refused = ch
        .queue_declare(
            "other".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("configure on 'other' is not granted");
    assert!(
        refused
            .to_string()
            .contains("ACCESS_REFUSED - access to queue 'other' in vhost 'training' refused for user 'trainer'"),
        "{refused}"
    );
    let wrong = Connection::connect(
        &format!("amqp://trainer:nope@{addr}/training"),
        ConnectionProperties::default(),
    )
    .await;
    assert!(wrong.is_err(), "a wrong password is refused");
}

#[tokio::test]
async fn warren_only_bad_definitions_file_stops_start_up() {
    let dir = fresh_dir("bad-defs");
    let defs = dir.join("defs.json");
    std::fs::write(&defs, "{ not json").expect("write");
    let err = start(&dir, &defs).await.expect_err("refused");
    assert!(err.to_string().contains("not JSON"), "{err}");
    let missing = dir.join("missing.json");
    let err = start(&dir, &missing).await.expect_err("refused");
    assert!(err.to_string().contains("missing.json"), "{err}");
    // A bad entry refuses the whole file, as the API's import does: the queue before it is
    // not declared either (nothing is half-applied), and start-up stops with the reason.
    let bad_entry = dir.join("bad-entry.json");
    std::fs::write(
        &bad_entry,
        r#"{"queues": [{"name": "before-bad", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}],
            "exchanges": [{"name": "x-bad", "vhost": "/", "type": "no-such-type", "durable": true,
                           "auto_delete": false, "internal": false, "arguments": {}}]}"#,
    )
    .expect("write");
    let err = start(&dir, &bad_entry).await.expect_err("refused");
    assert!(err.to_string().contains("refused"), "{err}");
    let clean = dir.join("clean.json");
    std::fs::write(&clean, "{}").expect("write");
    let addr = start(&dir, &clean)
        .await
        .expect("starts with an empty file");
    let conn = Connection::connect(
        &format!("amqp://guest:guest@{addr}/%2F"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let passive = ch
        .queue_declare(
            "before-bad".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(passive.is_err(), "the refused file declared nothing");
}
