//! The admin socket: a unix socket in the data directory, mode 0600, so only the broker's OS
//! user (and root) can use it. One request per connection: a JSON line `{"args": [...]}`,
//! answered with one JSON line ([`super::Answer`]).

use super::{execute, Answer};
use crate::broker::Broker;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

/// Where the socket lives under a data directory.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("warren-ctl.sock")
}

#[derive(Deserialize)]
struct Request {
    args: Vec<String>,
}

/// Binds the admin socket (replacing a stale one left by a previous run).
pub(crate) fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let p = path(data_dir);
    let _ = std::fs::remove_file(&p);
    let listener = UnixListener::bind(&p)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves admin requests until the listener is dropped.
pub(crate) async fn serve(listener: UnixListener, broker: Arc<Broker>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(handle(stream, broker.clone()));
            }
            Err(e) => {
                warn!("admin socket: {e}");
                return;
            }
        }
    }
}

async fn handle(stream: UnixStream, broker: Arc<Broker>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    // A request is a few hundred bytes; cap what one client may make us hold.
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 1 << 20));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(req) => {
            let what = req.args.first().cloned().unwrap_or_default();
            // Commands touch the store's writer queue and locks only briefly; run them off the
            // runtime anyway, as deleting a vhost may drop many queues.
            let b = broker.clone();
            let answer = tokio::task::spawn_blocking(move || execute(&b, req.args))
                .await
                .unwrap_or_else(|_| Answer {
                    error: Some("internal error".into()),
                    exit: 70,
                    ..Default::default()
                });
            if answer.exit == 0 && !what.starts_with("list_") && what != "authenticate_user" {
                info!("admin: {what} done");
            }
            answer
        }
        Err(e) => Answer {
            error: Some(format!("bad request: {e}")),
            exit: 64,
            ..Default::default()
        },
    };
    let mut out = serde_json::to_vec(&answer).unwrap_or_default();
    out.push(b'\n');
    let _ = write.write_all(&out).await;
}
