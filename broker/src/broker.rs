//! State shared by the whole broker: configuration, users, vhosts, connection ids.

use crate::auth::{User, Users};
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
    /// Users.
    pub users: Users,
    /// The store.
    pub store: Arc<Store>,
    /// Resource alarms (free disk space, store failures).
    pub alarms: Arc<crate::alarm::Alarms>,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    next_connection_id: AtomicU64,
}

impl Broker {
    /// A broker with the default vhost and user, on `store` (nothing is recovered yet: see
    /// `recovery::recover`).
    pub fn new(config: Config, store: Arc<Store>) -> Self {
        let mut users = Users::default();
        users.add(User {
            name: config.default_user.clone(),
            password: config.default_pass.clone(),
            loopback_only: config.default_user_loopback_only,
        });
        let mut vhosts = HashMap::new();
        vhosts.insert(
            config.default_vhost.clone(),
            Arc::new(VHost::new(
                &config.default_vhost,
                store.clone(),
                config.queue_budget(),
            )),
        );
        Broker {
            config,
            users,
            store,
            alarms: Arc::default(),
            vhosts: RwLock::new(vhosts),
            next_connection_id: AtomicU64::new(1),
        }
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
