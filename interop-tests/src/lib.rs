//! The harness shared by the interop tests.
//!
//! Tests talk to the broker at `AMQP_URL` when it is set (so the same tests run against RabbitMQ), and
//! otherwise to a Warren started in-process, once per test binary, on 127.0.0.1 with a free port and a
//! fresh data directory.

use std::sync::OnceLock;
use std::time::Duration;

use futures::StreamExt;

pub mod raw;

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
                let dir = in_process_data_dir();
                // A fresh store: nothing left over from an earlier run with the same pid.
                let _ = std::fs::remove_dir_all(&dir);
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

/// The data directory of the in-process Warren (its admin socket is there).
fn in_process_data_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("warren-interop-{}", std::process::id()))
}

/// Why [`ctl`] cannot reach the broker under test, if it cannot: against an external broker
/// (`AMQP_URL`) it needs `CTL`, the broker's `rabbitmqctl`-compatible command prefix.
pub fn ctl_unavailable() -> Option<String> {
    if in_process() || std::env::var("CTL").is_ok_and(|c| !c.trim().is_empty()) {
        None
    } else {
        Some(
            "AMQP_URL is set but CTL is not: give the broker's rabbitmqctl-compatible command \
             prefix, e.g. CTL=\"rabbitmqctl -n rabbit@localhost\" or \
             CTL=\"warren ctl --data-dir DIR\""
                .to_string(),
        )
    }
}

/// Runs a `rabbitmqctl` subcommand (`add_user`, `set_permissions`, ...) on the broker under
/// test: `warren::ctl` on the in-process Warren's data directory, or else the `CTL` command
/// prefix (split on whitespace) with `args`. Returns an error describing a non-zero exit.
/// Call [`ctl_unavailable`] first to skip when neither is possible.
pub async fn ctl(args: &[&str]) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let shown = args.join(" ");
    tokio::task::spawn_blocking(move || ctl_blocking(&args))
        .await
        .map_err(|e| format!("ctl {shown}: {e}"))?
}

/// [`ctl`] for synchronous callers (a `Drop` cleaning up after a failed test).
pub fn ctl_blocking(args: &[String]) -> Result<(), String> {
    if in_process() {
        amqp_url(); // the in-process broker (and its admin socket) is up
        let code = warren::ctl(&in_process_data_dir(), args.to_vec());
        return if code == 0 {
            Ok(())
        } else {
            Err(format!("warren ctl {} exited with {code}", args.join(" ")))
        };
    }
    let prefix = std::env::var("CTL").unwrap_or_default();
    let mut words = prefix.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| ctl_unavailable().unwrap_or_default())?;
    let out = std::process::Command::new(program)
        .args(words)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {prefix}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{prefix} {}` exited with {}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
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

/// Asserts that `r` failed with the AMQP reply `code` and a reply text starting with `prefix`;
/// returns the full reply text.
#[track_caller]
pub fn assert_amqp_error<T: std::fmt::Debug>(
    r: lapin::Result<T>,
    code: u16,
    prefix: &str,
) -> String {
    match r {
        Ok(v) => panic!("expected AMQP error {code} {prefix:?}, got Ok({v:?})"),
        Err(e) => {
            let (got_code, text) = protocol_error(&e)
                .unwrap_or_else(|| panic!("expected AMQP error {code} {prefix:?}, got {e}"));
            assert!(
                got_code == code && text.starts_with(prefix),
                "expected AMQP error {code} {prefix:?}..., got {got_code} {text:?}"
            );
            text
        }
    }
}

/// Watches a channel (or its connection) for the broker closing it, for errors provoked by
/// asynchronous methods (publish, ack, ...) that have no reply of their own.
///
/// It is a consumer on an exclusive server-named queue of that channel: lapin ends its stream
/// with the close error whenever the channel or connection is closed by the broker.
pub struct CloseWatch {
    consumer: lapin::Consumer,
}

/// Starts watching `ch` for a close by the broker; see [`CloseWatch`].
pub async fn watch_close(ch: &lapin::Channel) -> CloseWatch {
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare the watch queue");
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("consume from the watch queue");
    CloseWatch { consumer }
}

impl CloseWatch {
    /// Waits (at most 10 s) for the broker to close the channel; returns the reply code and text.
    pub async fn closed(mut self) -> (u16, String) {
        loop {
            match within(10, self.consumer.next()).await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return protocol_error(&e)
                        .unwrap_or_else(|| panic!("channel ended without an AMQP error: {e}"))
                }
                None => panic!("the watch consumer was cancelled instead of the channel closed"),
            }
        }
    }
}

/// A publish and consume round trip on a fresh connection: the broker still serves clients.
pub async fn assert_broker_alive() {
    use lapin::options::*;
    let conn = connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare");
    ch.basic_publish(
        "".into(),
        q.name().clone(),
        BasicPublishOptions::default(),
        b"alive",
        lapin::BasicProperties::default(),
    )
    .await
    .expect("publish");
    let got = within(10, async {
        loop {
            if let Some(m) = ch
                .basic_get(q.name().clone(), BasicGetOptions { no_ack: true })
                .await
                .expect("get")
            {
                return m;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(got.delivery.data, b"alive");
    conn.close(200, "bye".into()).await.expect("close");
}

/// User, password and vhost (decoded) of the broker URL.
pub fn credentials() -> (String, String, String) {
    let url = amqp_url();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let (userinfo, hostpath) = rest.rsplit_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let vhost = hostpath.split_once('/').map(|(_, v)| v).unwrap_or("");
    let vhost = if vhost.is_empty() {
        "/".to_string()
    } else {
        percent_decode(vhost)
    };
    (percent_decode(user), percent_decode(pass), vhost)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
