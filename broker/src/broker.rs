//! State shared by the whole broker: configuration, access control, vhosts, connection ids.

use crate::auth::{AccessControl, PasswordHash, VHostInfo};
use crate::config::Config;
use crate::vhost::VHost;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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
}

impl Broker {
    /// A broker with no vhost yet, on `store` (see `recovery::recover`, which puts back the
    /// stored ones or, on a first start, makes the defaults).
    pub fn new(config: Config, store: Arc<Store>) -> Self {
        let loopback_users = if config.default_user_loopback_only {
            vec![config.default_user.clone()]
        } else {
            Vec::new()
        };
        Broker {
            access: Arc::new(AccessControl::new(store.clone(), loopback_users)),
            config,
            store,
            alarms: Arc::default(),
            vhosts: RwLock::new(HashMap::new()),
            next_connection_id: AtomicU64::new(1),
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

    /// Creates a vhost (idempotent) with the pre-declared exchanges. Its delayed-message task is
    /// the caller's to start (`Server` does, for those that exist when it starts).
    pub fn add_vhost(&self, info: VHostInfo) -> Arc<VHost> {
        let name = info.name.clone();
        self.access.add_vhost(info);
        let mut vhosts = self.vhosts.write().unwrap_or_else(|e| e.into_inner());
        vhosts
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(VHost::new(
                    &name,
                    self.store.clone(),
                    self.config.queue_budget(),
                ))
            })
            .clone()
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

    /// A fresh connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }
}
