//! Warren-only: a RabbitMQ `rabbitmq.conf` starts Warren unchanged. These tests start their own
//! Warren (whatever `AMQP_URL` says).

use lapin::{Connection, ConnectionProperties};

fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test]
async fn warren_only_rabbitmq_conf_sets_listener_and_default_user() {
    let dir = fresh_dir("conf");
    let conf = dir.join("rabbitmq.conf");
    std::fs::write(
        &conf,
        "# as RabbitMQ reads it\n\
         listeners.tcp.local = 127.0.0.1:0\n\
         default_user = trainer\n\
         default_pass = s3cret\n\
         default_vhost = training\n\
         loopback_users = none\n\
         heartbeat = 20\n\
         cluster_formation.peer_discovery_backend = classic_config\n",
    )
    .expect("write conf");
    let (mut config, ignored) = warren::Config::from_file(&conf).expect("parses");
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert!(ignored[0].contains("line 8"), "{ignored:?}");
    config.data_dir = dir.join("data");
    config.management_port = None;
    let server = warren::Server::bind(config).await.expect("bind");
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback(), "{addr}");
    tokio::spawn(server.run(std::future::pending()));
    let conn = Connection::connect(
        &format!("amqp://trainer:s3cret@{addr}/training"),
        ConnectionProperties::default(),
    )
    .await
    .expect("the default user of rabbitmq.conf logs in to its default vhost");
    conn.create_channel().await.expect("channel");
    assert!(
        Connection::connect(
            &format!("amqp://guest:guest@{addr}/training"),
            ConnectionProperties::default()
        )
        .await
        .is_err(),
        "no guest when default_user says otherwise"
    );
}

#[tokio::test]
async fn warren_only_rabbitmq_conf_errors_name_the_line() {
    let dir = fresh_dir("bad-conf");
    let conf = dir.join("rabbitmq.conf");
    std::fs::write(&conf, "heartbeat = 30\nlisteners.tcp.1 = nowhere\n").expect("write");
    let err = warren::Config::from_file(&conf).expect_err("refused");
    assert!(err.contains("line 2: 'listeners.tcp.1'"), "{err}");
}
