//! Listeners, the accept loop, and graceful shutdown.
//!
//! `main` is thin: it builds a [`Config`], binds a [`Server`] and runs it until a signal. Tests do the
//! same in-process on port 0.

use crate::broker::Broker;
use crate::config::Config;
use crate::connection;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound broker, not yet serving.
pub struct Server {
    listeners: Vec<TcpListener>,
    /// amqps listeners, with the acceptor of their TLS sessions.
    tls_listeners: Vec<(TcpListener, tokio_rustls::TlsAcceptor)>,
    broker: Arc<Broker>,
}

fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        // IPv4 has its own listener; keep the two apart so both can bind the same port.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Opens the store under the data directory, builds the broker and recovers its durable state.
fn open_broker(config: Config) -> io::Result<Arc<Broker>> {
    let dir = config.data_dir.join("store");
    let store_config = storage::StoreConfig {
        sync: config.fsync,
        ..Default::default()
    };
    let store =
        storage::Store::open(&dir, store_config).map_err(|e| io::Error::other(e.to_string()))?;
    let broker = Broker::new(config, Arc::new(store));
    crate::recovery::recover(&broker)
        .map_err(|e| io::Error::other(format!("recovery failed: {e}")))?;
    if let Some(path) = broker.config.load_definitions.clone() {
        crate::definitions::load_file(&broker, &path)
            .map_err(|e| io::Error::other(format!("cannot load definitions: {e}")))?;
    }
    Ok(Arc::new(broker))
}

impl Server {
    /// Binds every configured address. An IPv6 address that cannot be bound (no IPv6 on this host)
    /// is skipped with a warning as long as another address was bound.
    pub async fn bind(config: Config) -> io::Result<Server> {
        // Open the store and recover before listening, so no client sees a half-recovered broker.
        let broker = tokio::task::spawn_blocking(move || open_broker(config))
            .await
            .map_err(io::Error::other)??;
        tokio::spawn(crate::alarm::monitor(crate::alarm::Watched {
            alarms: Arc::downgrade(&broker.alarms),
            store: broker.store.clone(),
            data_dir: broker.config.data_dir.clone(),
            disk_free_limit: broker.config.disk_free_limit,
        }));
        let admin = crate::admin::socket::bind(&broker.config.data_dir).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create the admin socket: {e}"))
        })?;
        tokio::spawn(crate::admin::socket::serve(admin, broker.clone()));
        // Delayed-message exchanges: one task per vhost routes messages as they fall due.
        for vhost in broker.vhosts() {
            vhost.start_delayed();
        }
        let config = &broker.config;
        let mut listeners = Vec::new();
        let mut last_err = None;
        for addr in config.listen_addrs() {
            match bind_one(addr) {
                Ok(l) => {
                    info!("started TCP listener on {}", l.local_addr()?);
                    listeners.push(l);
                }
                Err(e) if addr.is_ipv6() => {
                    warn!("cannot listen on {addr}: {e}; continuing without it");
                    last_err = Some(e);
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot listen on {addr}: {e}"),
                    ))
                }
            }
        }
        let mut tls_listeners = Vec::new();
        if let Some(settings) = &config.tls {
            let acceptor = crate::tls::acceptor(settings)
                .map_err(|e| io::Error::new(e.kind(), format!("TLS: {e}")))?;
            for addr in config.tls_listen_addrs() {
                match bind_one(addr) {
                    Ok(l) => {
                        info!("started TLS (SSL) listener on {}", l.local_addr()?);
                        tls_listeners.push((l, acceptor.clone()));
                    }
                    Err(e) if addr.is_ipv6() => {
                        warn!("cannot listen on {addr}: {e}; continuing without it")
                    }
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("cannot listen on {addr}: {e}"),
                        ))
                    }
                }
            }
        }
        if listeners.is_empty() && tls_listeners.is_empty() {
            return Err(last_err.unwrap_or_else(|| io::Error::other("no address to listen on")));
        }
        Ok(Server {
            listeners,
            tls_listeners,
            broker,
        })
    }

    /// The first listener's address (useful with port 0); the first amqps one if there is no
    /// plain listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .or(self.tls_listeners.first().map(|(l, _)| l))
            .and_then(|l| l.local_addr().ok())
            .expect("bound listener has an address")
    }

    /// The first amqps listener's address, if TLS is configured.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_listeners
            .first()
            .and_then(|(l, _)| l.local_addr().ok())
    }

    /// The broker state (for tests and tools).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` completes, then closes every connection with 320 CONNECTION_FORCED
    /// and waits (bounded) for them to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        type Accepted = (TcpStream, SocketAddr, Option<tokio_rustls::TlsAcceptor>);
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        let mut accepts = JoinSet::new();
        let all = self
            .listeners
            .into_iter()
            .map(|l| (l, None))
            .chain(self.tls_listeners.into_iter().map(|(l, a)| (l, Some(a))));
        for (listener, tls) in all {
            let conn_tx = conn_tx.clone();
            accepts.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((socket, peer)) => {
                            if conn_tx.send((socket, peer, tls.clone())).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            error!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        drop(conn_tx);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = conn_rx.recv() => match accepted {
                    Some((socket, peer, None)) => {
                        connections.spawn(connection::serve(socket, peer, self.broker.clone(), stop_rx.clone()));
                    }
                    Some((socket, peer, Some(tls))) => {
                        connections.spawn(connection::serve_tls(socket, peer, tls, self.broker.clone(), stop_rx.clone()));
                    }
                    None => break,
                },
                // Reap finished connection tasks so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        info!("stopping: closing {} connection(s)", connections.len());
        accepts.abort_all();
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("{} connection(s) did not close in time", connections.len());
            connections.abort_all();
        }
        // Joining the writer thread and flushing RocksDB block: not on a runtime worker.
        let store = self.broker.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        info!("stopped");
        Ok(())
    }
}
