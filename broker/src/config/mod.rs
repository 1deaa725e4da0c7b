//! Broker configuration: defaults, a TOML file or RabbitMQ's `rabbitmq.conf`
//! ([`rabbitmq_conf`]), environment variables and flags (flags win).

pub(crate) mod rabbitmq_conf;

use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

/// Settings of one broker instance. Every field has a default that works out of the box.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on; default all IPv4 and IPv6 interfaces.
    pub bind: Vec<IpAddr>,
    /// AMQP port.
    pub port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log filter (`info`, `debug`, `warren=debug`, ...).
    pub log_level: String,
    /// The user created at first start (RabbitMQ's guest).
    pub default_user: String,
    /// Its password.
    pub default_pass: String,
    /// Whether the default user may only connect from loopback (RabbitMQ: true for guest).
    pub default_user_loopback_only: bool,
    /// The vhost created at first start.
    pub default_vhost: String,
    /// Largest message body accepted, in bytes (RabbitMQ 3.13: 128 MiB).
    pub max_message_size: u64,
    /// frame_max offered in connection.tune.
    pub frame_max: u32,
    /// channel_max offered in connection.tune.
    pub channel_max: u16,
    /// Heartbeat interval offered in connection.tune, seconds.
    pub heartbeat: u16,
    /// Seconds a client has to finish the AMQP handshake (RabbitMQ's `handshake_timeout`).
    pub handshake_timeout: u64,
    /// Seconds a client has to finish the TLS handshake (RabbitMQ's `ssl_handshake_timeout`).
    pub tls_handshake_timeout: u64,
    /// Sync the store's write-ahead log before confirming (off trades durability on power loss for
    /// speed, like RabbitMQ, which does not fsync before confirming).
    pub fsync: bool,
    /// Compress what the store writes (LZ4; message bodies in RocksDB's blob files too). Off for
    /// bodies that do not compress (floats, images, data already compressed): RocksDB stores a
    /// blob's LZ4 output even when it is larger, so they would pay LZ4 on every flush and read.
    /// Applies to what is written from then on; a store may hold both.
    pub store_compression: bool,
    /// Ready messages a durable queue keeps in memory before it pages new ones to the store.
    pub queue_memory_messages: usize,
    /// Ready message bytes a durable queue keeps in memory before it pages new ones to the store.
    pub queue_memory_bytes: usize,
    /// Milliseconds a consumer may hold a delivery unacknowledged (RabbitMQ's `consumer_timeout`;
    /// a queue's `x-consumer-timeout` overrides it; 0: no limit).
    pub consumer_timeout: u64,
    /// Publishers are blocked while less than this many bytes are free on the data directory's
    /// filesystem (RabbitMQ's `disk_free_limit`, default 50 MB; 0: no check).
    pub disk_free_limit: u64,
    /// A RabbitMQ definitions file (JSON) applied at every start (RabbitMQ's
    /// `load_definitions`): users, vhosts, permissions, exchanges, queues, bindings.
    pub load_definitions: Option<PathBuf>,
    /// Exact listener addresses (`listeners.tcp.N` of rabbitmq.conf); when set, `bind` and
    /// `port` are not used. An empty list: no AMQP listener.
    pub listeners: Option<Vec<SocketAddr>>,
    /// Users that may connect only from loopback (`loopback_users`); when unset, the default
    /// user if `default_user_loopback_only`.
    pub loopback_users: Option<Vec<String>>,
    /// Publishers are blocked while the broker's memory is above this (RabbitMQ's
    /// `vm_memory_high_watermark`; default: 0.4 of the machine's memory).
    pub vm_memory_high_watermark: crate::alarm::Watermark,
    /// TLS (`[tls]` in TOML, `ssl_options.*` in rabbitmq.conf); no amqps listener without it.
    pub tls: Option<crate::tls::TlsSettings>,
    /// amqps listener addresses (`listeners.ssl.*`); with `tls` set and none given, port 5671
    /// on the `bind` addresses.
    pub tls_listeners: Option<Vec<SocketAddr>>,
    /// SASL mechanisms offered, in this order (`auth_mechanisms.N`); `EXTERNAL` only to TLS
    /// clients that presented a verified certificate.
    pub auth_mechanisms: Vec<String>,
    /// Where `EXTERNAL` takes the user name from (`ssl_cert_login_from`,
    /// `ssl_cert_login_san_type`, `ssl_cert_login_san_index`).
    #[serde(flatten)]
    pub cert_login: crate::auth::CertLogin,
    /// Most connections open at once, counting those still in their handshake (RabbitMQ's
    /// `connection_max`). At the limit the listeners stop accepting: new clients wait in the
    /// kernel's backlog until a connection closes, as with RabbitMQ. None: no limit.
    pub connection_max: Option<usize>,
    /// The management HTTP API's port (`management.tcp.port`); None: no HTTP listener.
    pub management_port: Option<u16>,
    /// Its address (`management.tcp.ip`); None: every interface (IPv4 and IPv6).
    pub management_ip: Option<IpAddr>,
    /// The Prometheus endpoint's port (`prometheus.tcp.port`); None: no metrics listener.
    pub prometheus_port: Option<u16>,
    /// Its address (`prometheus.tcp.ip`); None: every interface.
    pub prometheus_ip: Option<IpAddr>,
    /// Most connections in their handshake (TLS and AMQP, before connection.open-ok) at once;
    /// one more is closed at once. Bounds what clients that never log in can hold.
    pub handshake_max: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
            port: 5672,
            data_dir: PathBuf::from("./warren-data"),
            log_level: "info".into(),
            default_user: "guest".into(),
            default_pass: "guest".into(),
            default_user_loopback_only: true,
            default_vhost: "/".into(),
            max_message_size: 128 << 20,
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            handshake_timeout: 10,
            tls_handshake_timeout: 5,
            fsync: true,
            store_compression: true,
            queue_memory_messages: crate::queue::Budget::default().messages,
            queue_memory_bytes: crate::queue::Budget::default().bytes,
            consumer_timeout: 1_800_000,
            disk_free_limit: 50_000_000,
            load_definitions: None,
            listeners: None,
            loopback_users: None,
            vm_memory_high_watermark: crate::alarm::Watermark::Relative(0.4),
            tls: None,
            tls_listeners: None,
            auth_mechanisms: vec!["PLAIN".into(), "AMQPLAIN".into()],
            cert_login: crate::auth::CertLogin::default(),
            connection_max: None,
            management_port: Some(15672),
            management_ip: None,
            prometheus_port: Some(15692),
            prometheus_ip: None,
            handshake_max: 1024,
        }
    }
}

impl Config {
    /// A configuration for tests: 127.0.0.1, any free port, the given data directory, small queue
    /// memory budgets.
    pub fn for_test(data_dir: PathBuf) -> Self {
        Config {
            bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: 0,
            data_dir,
            // Small budgets, so that tests with modest backlogs exercise paging to the store.
            queue_memory_messages: 64,
            queue_memory_bytes: 64 << 10,
            // No HTTP listener unless a test asks for one.
            management_port: None,
            prometheus_port: None,
            ..Config::default()
        }
    }

    /// Reads a TOML file; unknown keys are errors.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads a configuration file: RabbitMQ's `rabbitmq.conf` format if the name ends in
    /// `.conf`, Warren's TOML otherwise. Returns it with the keys that were ignored (to log).
    pub fn from_file(path: &std::path::Path) -> Result<(Self, Vec<String>), String> {
        if path.extension().is_some_and(|e| e == "conf") {
            let p = rabbitmq_conf::read(path)?;
            Ok((p.config, p.ignored))
        } else {
            Ok((Self::from_toml_file(path)?, Vec::new()))
        }
    }

    /// The amqps listener addresses (none without TLS settings).
    pub fn tls_listen_addrs(&self) -> Vec<SocketAddr> {
        if self.tls.is_none() {
            return Vec::new();
        }
        match &self.tls_listeners {
            Some(l) => l.clone(),
            None => self
                .bind
                .iter()
                .map(|ip| SocketAddr::new(*ip, 5671))
                .collect(),
        }
    }

    /// The management API's listener addresses (none when it is off).
    pub fn management_addrs(&self) -> Vec<SocketAddr> {
        http_addrs(self.management_port, self.management_ip)
    }

    /// The Prometheus endpoint's listener addresses (none when it is off).
    pub fn prometheus_addrs(&self) -> Vec<SocketAddr> {
        http_addrs(self.prometheus_port, self.prometheus_ip)
    }
}

/// An HTTP listener's addresses: the port on the given address, or on every interface.
fn http_addrs(port: Option<u16>, ip: Option<IpAddr>) -> Vec<SocketAddr> {
    let Some(port) = port else {
        return Vec::new();
    };
    match ip {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ],
    }
}

impl Config {
    /// The users restricted to loopback connections.
    pub fn loopback_user_list(&self) -> Vec<String> {
        match &self.loopback_users {
            Some(users) => users.clone(),
            None if self.default_user_loopback_only => vec![self.default_user.clone()],
            None => Vec::new(),
        }
    }

    /// The memory budget of each durable queue.
    pub fn queue_budget(&self) -> crate::queue::Budget {
        crate::queue::Budget {
            messages: self.queue_memory_messages,
            bytes: self.queue_memory_bytes,
        }
    }

    /// The socket addresses to listen on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        if let Some(l) = &self.listeners {
            return l.clone();
        }
        self.bind
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect()
    }
}
