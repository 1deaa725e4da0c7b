//! The harness shared by the interop tests.
//!
//! Tests talk to the broker at `AMQP_URL` when it is set (so the same tests run against RabbitMQ), and
//! otherwise to a Warren started in-process, once per test binary, on 127.0.0.1 with a free port and a
//! fresh data directory.

use std::sync::OnceLock;
use std::time::Duration;

static URL: OnceLock<String> = OnceLock::new();

/// True when the tests run against an in-process Warren rather than an external `AMQP_URL`.
pub fn in_process() -> bool {
    std::env::var("AMQP_URL")
        .map(|u| u.is_empty())
        .unwrap_or(true)
}

/// The broker's URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2F`.
pub fn amqp_url() -> String {
    URL.get_or_init(|| match std::env::var("AMQP_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => start_warren(),
    })
    .clone()
}

fn start_warren() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("warren-under-test".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime for the broker under test");
            rt.block_on(async move {
                let dir =
                    std::env::temp_dir().join(format!("warren-interop-{}", std::process::id()));
                let server = warren::Server::bind(warren::Config::for_test(dir))
                    .await
                    .expect("bind");
                tx.send(server.local_addr()).expect("report address");
                server.run(std::future::pending()).await.expect("serve");
            });
        })
        .expect("broker thread");
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("broker started");
    format!("amqp://guest:guest@{addr}/%2F")
}

/// Host and port of the broker, for raw-socket tests.
pub fn broker_addr() -> String {
    let url = amqp_url();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5672")
    }
}

/// The URL with other credentials or vhost, for negative tests.
pub fn url_with(user: &str, pass: &str, vhost_encoded: &str) -> String {
    let addr = broker_addr();
    format!("amqp://{user}:{pass}@{addr}/{vhost_encoded}")
}

/// Connects with lapin.
pub async fn connect() -> lapin::Connection {
    lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect to the broker")
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// The AMQP reply code and text carried by a lapin error, if it is a protocol error.
pub fn protocol_error(e: &lapin::Error) -> Option<(u16, String)> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            Some((amqp.get_id(), amqp.get_message().to_string()))
        }
        _ => None,
    }
}

/// Awaits `f` for at most `secs` seconds; a test waits on an event, never on a fixed sleep.
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out waiting for the broker")
}
