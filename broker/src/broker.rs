//! State shared by the whole broker: configuration, access control, vhosts, connection ids.

use crate::auth::{AccessControl, AdminError, Limits, PasswordHash, VHostInfo};
use crate::channel::{ConnEvent, EventSender};
use crate::config::Config;
use crate::error::AmqpError;
use crate::reply_text;
use crate::vhost::VHost;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use storage::Store;

/// The broker.
#[derive(Debug)]
pub struct Broker {
    /// Configuration in force.
    pub config: Config,
    /// Users, vhosts' permissions.
    pub access: Arc<AccessControl>,
    /// The store.
    pub store: Arc<Store>,
    /// Resource alarms (free disk space, store failures).
    pub alarms: Arc<crate::alarm::Alarms>,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    next_connection_id: AtomicU64,
    /// Open connections (after the handshake), to close those of a deleted user or vhost.
    connections: Mutex<HashMap<u64, Registered>>,
    /// When the broker was made (uptime).
    pub(crate) started: std::time::Instant,
    /// The listeners, as (protocol, address), set when they are bound (`amqp`, `amqp/ssl`,
    /// `http`), for the management API's health checks and overview.
    pub(crate) listeners: std::sync::OnceLock<Vec<(&'static str, std::net::SocketAddr)>>,
    /// The amqps listeners' certificates (set at start-up when TLS is configured).
    pub(crate) tls: std::sync::OnceLock<Arc<crate::tls::Certificates>>,
}

/// An open connection as the broker knows it.
#[derive(Debug)]
struct Registered {
    user: String,
    vhost: String,
    events: EventSender,
    channels: Arc<AtomicUsize>,
    info: Arc<crate::connection_info::ConnectionInfo>,
}

impl Broker {
    /// A broker with no vhost yet, on `store` (see `recovery::recover`, which puts back the
    /// stored ones or, on a first start, makes the defaults).
    pub fn new(config: Config, store: Arc<Store>) -> Self {
        let loopback_users = config.loopback_user_list();
        let alarms: Arc<crate::alarm::Alarms> = Arc::default();
        alarms.set_memory_limit(config.vm_memory_high_watermark.bytes());
        Broker {
            access: Arc::new(AccessControl::new(store.clone(), loopback_users)),
            config,
            store,
            alarms,
            vhosts: RwLock::new(HashMap::new()),
            next_connection_id: AtomicU64::new(1),
            connections: Mutex::new(HashMap::new()),
            tls: std::sync::OnceLock::new(),
            listeners: std::sync::OnceLock::new(),
            started: std::time::Instant::now(),
        }
    }

    /// First start: the default user (tagged administrator, all permissions on the default
    /// vhost) and the default vhost, as RabbitMQ makes them.
    pub fn make_defaults(&self) {
        let cfg = &self.config;
        self.add_vhost(VHostInfo {
            name: cfg.default_vhost.clone(),
            description: "Default virtual host".into(),
            tags: Vec::new(),
            ..Default::default()
        });
        let _ = self.access.add_user(
            &cfg.default_user,
            PasswordHash::new(&cfg.default_pass),
            vec!["administrator".into()],
        );
        let _ =
            self.access
                .set_permissions(&cfg.default_user, &cfg.default_vhost, ".*", ".*", ".*");
        self.access.mark_initialized();
    }

    /// Creates a vhost (idempotent) with the pre-declared exchanges; true if it is new. Its
    /// delayed-message task is the caller's to start (`VHost::start_delayed`): `Server` starts
    /// those recovered once their exchanges are back, `ctl` those it adds.
    pub fn add_vhost(&self, info: VHostInfo) -> (Arc<VHost>, bool) {
        let name = info.name.clone();
        self.access.add_vhost(info);
        let mut vhosts = self.vhosts.write().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = vhosts.get(&name) {
            return (v.clone(), false);
        }
        let creator = self.access.vhost_creator(&name);
        let v = Arc::new(VHost::new(
            &name,
            self.store.clone(),
            self.config.queue_budget(),
            &creator,
        ));
        v.set_max_queues(self.access.vhost_limit(&name, "max-queues"));
        vhosts.insert(name, v.clone());
        (v, true)
    }

    /// Looks a vhost up.
    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every vhost.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Admits a connection of `user` to `vhost` unless a connection limit is reached (the
    /// vhost's, then the user's: RabbitMQ's 530 texts), and registers it: it is closed through
    /// `events` if its user or vhost is deleted. Counting and registering under one lock, two
    /// connections cannot both take the last place.
    pub fn admit(
        &self,
        info: Arc<crate::connection_info::ConnectionInfo>,
        events: EventSender,
        channels: Arc<AtomicUsize>,
    ) -> Result<(), AmqpError> {
        let (id, user, vhost) = (info.id, info.user.as_str(), info.vhost.as_str());
        let vhost_max = self.access.vhost_limit(vhost, "max-connections");
        let user_max = self.access.user_limit(user, "max-connections");
        let mut conns = self.conns();
        if let Some(max) = vhost_max {
            if conns.values().filter(|c| c.vhost == vhost).count() as u64 >= max {
                return Err(reply_text::vhost_connection_limit(vhost, user, max));
            }
        }
        if let Some(max) = user_max {
            if conns.values().filter(|c| c.user == user).count() as u64 >= max {
                return Err(reply_text::user_connection_limit(user, max));
            }
        }
        conns.insert(
            id,
            Registered {
                user: user.into(),
                vhost: vhost.into(),
                events,
                channels,
                info: info.clone(),
            },
        );
        crate::metrics::COUNTERS.connections_opened.inc();
        Ok(())
    }

    /// channel.open: counts the channel in `count` (its connection's) unless the user's
    /// `max-channels`, counted over all their connections, is reached (530, a connection error).
    pub fn admit_channel(&self, user: &str, count: &AtomicUsize) -> Result<(), AmqpError> {
        // Held until the channel is counted: two channel.opens cannot both take the last place.
        let mut _counting = None;
        if let Some(max) = self.access.user_limit(user, "max-channels") {
            let conns = self.conns();
            let open: usize = conns
                .values()
                .filter(|c| c.user == user)
                .map(|c| c.channels.load(Ordering::Acquire))
                .sum();
            if open as u64 >= max {
                return Err(reply_text::user_channel_limit(user, max));
            }
            _counting = Some(conns);
        }
        count.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// `set_vhost_limits`: records them and applies `max-queues` to the vhost at once.
    pub fn set_vhost_limits(&self, vhost: &str, limits: Limits) -> Result<(), AdminError> {
        self.access.set_vhost_limits(vhost, limits)?;
        if let Some(v) = self.vhost(vhost) {
            v.set_max_queues(self.access.vhost_limit(vhost, "max-queues"));
        }
        Ok(())
    }

    /// Forgets a connection that ended.
    pub fn unregister_connection(&self, id: u64) {
        if self.conns().remove(&id).is_some() {
            crate::metrics::COUNTERS.connections_closed.inc();
        }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Registered>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closes every connection of `user` (or to `vhost`) with `error`.
    fn close_connections(&self, user: Option<&str>, vhost: Option<&str>, error: &AmqpError) {
        for c in self.conns().values() {
            if user.is_some_and(|u| u == c.user) || vhost.is_some_and(|v| v == c.vhost) {
                let _ = c.events.send(ConnEvent::Close(error.clone()));
            }
        }
    }

    /// `delete_user`: forgets the user and their permissions and closes their connections
    /// (320 `user 'u' is deleted`, as RabbitMQ).
    pub fn delete_user(&self, name: &str) -> Result<(), AdminError> {
        self.access.delete_user(name)?;
        self.close_connections(Some(name), None, &reply_text::user_deleted(name));
        Ok(())
    }

    /// `delete_vhost`: closes its connections (320 `vhost 'v' is deleted`), then deletes its
    /// queues with their messages, its exchanges and bindings, its delayed messages and its
    /// permissions.
    pub fn delete_vhost(&self, name: &str) -> Result<(), AdminError> {
        self.access.delete_vhost(name)?;
        let vhost = self
            .vhosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.close_connections(None, Some(name), &reply_text::vhost_deleted(name));
        if let Some(vhost) = vhost {
            vhost.delete_everything();
        }
        Ok(())
    }

    /// The node's name as RabbitMQ's tools show it (`warren@host`).
    pub fn node_name(&self) -> String {
        static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        NAME.get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .and_then(|h| h.trim().split('.').next().map(str::to_string))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            format!("warren@{host}")
        })
        .clone()
    }

    /// (open connections, open channels) after the handshake, of the vhosts `in_vhost` accepts.
    pub fn connection_totals(&self, in_vhost: impl Fn(&str) -> bool) -> (usize, usize) {
        let conns = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let mine = conns.values().filter(|c| in_vhost(&c.vhost));
        mine.fold((0, 0), |(n, ch), c| {
            (n + 1, ch + c.channels.load(Ordering::Relaxed))
        })
    }

    /// Every open connection (after its handshake), by id.
    pub fn connections(&self) -> Vec<Arc<crate::connection_info::ConnectionInfo>> {
        let mut all: Vec<_> = self.conns().values().map(|c| c.info.clone()).collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// Closes the connection named `name` (RabbitMQ's `peer -> local`) with 320 and `reason`;
    /// false if there is none.
    pub fn close_connection(&self, name: &str, reason: &str) -> bool {
        let conns = self.conns();
        let Some(c) = conns.values().find(|c| c.info.name == name) else {
            return false;
        };
        let _ = c
            .events
            .send(ConnEvent::Close(AmqpError::connection_forced(reason)));
        true
    }

    /// A fresh connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
