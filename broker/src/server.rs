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
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound broker, not yet serving.
pub struct Server {
    listeners: Vec<TcpListener>,
    /// amqps listeners (their certificates are the broker's `tls`).
    tls_listeners: Vec<TcpListener>,
    /// The management HTTP API's listeners.
    management_listeners: Vec<TcpListener>,
    /// The Prometheus endpoint's listeners.
    prometheus_listeners: Vec<TcpListener>,
    broker: Arc<Broker>,
}

/// Binds an HTTP listener's addresses. Its IPv6 twin, or its default port when taken (another
/// broker on this host), is warned about and skipped: AMQP still serves.
fn bind_http(
    addrs: Vec<SocketAddr>,
    what: &str,
    default_port: bool,
    any_ip: bool,
) -> io::Result<Vec<TcpListener>> {
    let mut bound = Vec::new();
    for addr in addrs {
        match bind_one(addr) {
            Ok(l) => {
                info!("started HTTP ({what}) listener on {}", l.local_addr()?);
                bound.push(l);
            }
            Err(e) if addr.is_ipv6() && any_ip => {
                warn!("cannot listen on {addr}: {e}; continuing without it")
            }
            Err(e) if default_port && any_ip => {
                warn!("cannot listen on {addr} for {what}: {e}; continuing without it")
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ))
            }
        }
    }
    Ok(bound)
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
        compression: config.store_compression,
        ..Default::default()
    };
    let store =
        storage::Store::open(&dir, store_config).map_err(|e| io::Error::other(e.to_string()))?;
    let tls = match &config.tls {
        Some(settings) => Some(Arc::new(
            crate::tls::Certificates::load(settings.clone())
                .map_err(|e| io::Error::new(e.kind(), format!("TLS: {e}")))?,
        )),
        None => None,
    };
    let broker = Broker::new(config, Arc::new(store));
    if let Some(tls) = tls {
        let _ = broker.tls.set(tls);
    }
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
        if broker.tls.get().is_some() {
            for addr in config.tls_listen_addrs() {
                match bind_one(addr) {
                    Ok(l) => {
                        info!("started TLS (SSL) listener on {}", l.local_addr()?);
                        tls_listeners.push(l);
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
        let management_listeners = bind_http(
            config.management_addrs(),
            "management",
            config.management_port == Config::default().management_port,
            config.management_ip.is_none(),
        )?;
        let prometheus_listeners = bind_http(
            config.prometheus_addrs(),
            "prometheus",
            config.prometheus_port == Config::default().prometheus_port,
            config.prometheus_ip.is_none(),
        )?;
        let mut bound = Vec::new();
        for (protocol, set) in [
            ("amqp", &listeners),
            ("amqp/ssl", &tls_listeners),
            ("http", &management_listeners),
            ("http/prometheus", &prometheus_listeners),
        ] {
            bound.extend(
                set.iter()
                    .filter_map(|l| l.local_addr().ok())
                    .map(|a| (protocol, a)),
            );
        }
        let _ = broker.listeners.set(bound);
        if listeners.is_empty() && tls_listeners.is_empty() {
            return Err(last_err.unwrap_or_else(|| io::Error::other("no address to listen on")));
        }
        Ok(Server {
            listeners,
            tls_listeners,
            management_listeners,
            prometheus_listeners,
            broker,
        })
    }

    /// The first listener's address (useful with port 0); the first amqps one if there is no
    /// plain listener.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .or(self.tls_listeners.first())
            .and_then(|l| l.local_addr().ok())
            .expect("bound listener has an address")
    }

    /// The first amqps listener's address, if TLS is configured.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_listeners.first().and_then(|l| l.local_addr().ok())
    }

    /// The first management API listener's address, if it is on.
    pub fn management_local_addr(&self) -> Option<SocketAddr> {
        self.management_listeners
            .first()
            .and_then(|l| l.local_addr().ok())
    }

    /// The first Prometheus listener's address, if it is on.
    pub fn prometheus_local_addr(&self) -> Option<SocketAddr> {
        self.prometheus_listeners
            .first()
            .and_then(|l| l.local_addr().ok())
    }

    /// The broker state (for tests and tools).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Serves until `shutdown` completes, then closes every connection with 320 CONNECTION_FORCED
    /// and waits (bounded) for them to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        let admission = Arc::new(Admission::new(&self.broker.config));
        let mut accepts = JoinSet::new();
        let all = self
            .listeners
            .into_iter()
            .map(|l| (l, false))
            .chain(self.tls_listeners.into_iter().map(|l| (l, true)));
        for (listener, tls) in all {
            accepts.spawn(accept_loop(
                listener,
                tls,
                admission.clone(),
                conn_tx.clone(),
            ));
        }
        drop(conn_tx);
        if let Some(certs) = self.broker.tls.get().cloned() {
            accepts.spawn(reload_on_sighup(certs));
        }
        let backend: Arc<dyn management::Backend> =
            Arc::new(crate::management::Backend(self.broker.clone()));
        for listener in self.management_listeners {
            let backend = backend.clone();
            accepts.spawn(async move {
                if let Err(e) = management::serve(listener, backend).await {
                    error!("management API stopped: {e}");
                }
            });
        }
        for listener in self.prometheus_listeners {
            let backend = backend.clone();
            accepts.spawn(async move {
                if let Err(e) = management::serve_prometheus(listener, backend).await {
                    error!("Prometheus endpoint stopped: {e}");
                }
            });
        }
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = conn_rx.recv() => match accepted {
                    Some(a) => {
                        let (broker, stop) = (self.broker.clone(), stop_rx.clone());
                        connections.spawn(async move {
                            // Held while the connection lives: `connection_max`.
                            let _open = a.open;
                            match a.tls {
                                false => connection::serve(a.socket, a.peer, a.handshake, broker, stop).await,
                                true => connection::serve_tls(a.socket, a.peer, a.handshake, broker, stop).await,
                            }
                        });
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

/// An accepted socket with its admission tickets.
struct Accepted {
    socket: TcpStream,
    peer: SocketAddr,
    tls: bool,
    /// A `connection_max` slot (None without a limit).
    open: Option<OwnedSemaphorePermit>,
    /// A `handshake_max` slot, given back when the handshake ends.
    handshake: OwnedSemaphorePermit,
}

/// The connection limits every listener shares.
struct Admission {
    /// Free `connection_max` slots.
    open: Option<Arc<Semaphore>>,
    /// Free `handshake_max` slots.
    handshakes: Arc<Semaphore>,
    connection_max: usize,
    handshake_max: usize,
}

impl Admission {
    fn new(config: &Config) -> Self {
        Admission {
            open: config.connection_max.map(|n| Arc::new(Semaphore::new(n))),
            handshakes: Arc::new(Semaphore::new(config.handshake_max)),
            connection_max: config.connection_max.unwrap_or(0),
            handshake_max: config.handshake_max,
        }
    }
}

/// Accepts on one listener. At `connection_max` it stops accepting until a connection closes
/// (clients wait in the kernel's backlog, as RabbitMQ's listeners make them); past
/// `handshake_max` connections in their handshake, a new one is closed at once. Each limit is
/// logged when it is reached, not for every client it turns away.
async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    admission: Arc<Admission>,
    conn_tx: tokio::sync::mpsc::UnboundedSender<Accepted>,
) {
    let mut handshakes_full = false;
    loop {
        let open = match &admission.open {
            None => None,
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    warn!(
                        "connection limit ({}) reached: not accepting connections until one closes",
                        admission.connection_max
                    );
                    match slots.clone().acquire_owned().await {
                        Ok(p) => Some(p),
                        Err(_) => return,
                    }
                }
            },
        };
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(handshake) = admission.handshakes.clone().try_acquire_owned() else {
            if !handshakes_full {
                warn!(
                    "{} connections are in their handshake: closing new ones until one finishes",
                    admission.handshake_max
                );
                handshakes_full = true;
            }
            drop(socket);
            continue;
        };
        handshakes_full = false;
        let accepted = Accepted {
            socket,
            peer,
            tls,
            open,
            handshake,
        };
        if conn_tx.send(accepted).is_err() {
            return;
        }
    }
}

/// Re-reads the TLS certificates on SIGHUP.
async fn reload_on_sighup(certs: Arc<crate::tls::Certificates>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        warn!("cannot handle SIGHUP: TLS certificates reload only with warren ctl");
        return;
    };
    while hup.recv().await.is_some() {
        let certs = certs.clone();
        match tokio::task::spawn_blocking(move || certs.reload()).await {
            Ok(Ok(())) => info!("SIGHUP: TLS certificates reloaded"),
            Ok(Err(e)) => {
                error!("SIGHUP: cannot reload TLS certificates, keeping the old ones: {e}")
            }
            Err(e) => error!("SIGHUP: TLS reload failed: {e}"),
        }
    }
}
