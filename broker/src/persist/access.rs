//! Access-control records (users, vhosts, permissions, topic permissions) in the store's
//! definitions area. Values are JSON, keys say what a record is about, so a change replaces the
//! record it changes and a delete needs only the names.

use serde::{Deserialize, Serialize};
use storage::{Op, Store};

/// One access-control record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccessRecord {
    /// The first start's defaults (default user, vhost, permissions) were made.
    Initialized,
    /// A user.
    User {
        /// Name.
        name: String,
        /// RabbitMQ's `password_hash` (base64; empty for no password).
        password_hash: String,
        /// RabbitMQ's `hashing_algorithm`.
        hashing_algorithm: String,
        /// Tags.
        tags: Vec<String>,
    },
    /// A vhost.
    #[serde(rename = "vhost")]
    VHost {
        /// Name.
        name: String,
        /// Description.
        description: String,
        /// Tags.
        tags: Vec<String>,
        /// Tracing on (RabbitMQ's firehose flag; kept and shown).
        #[serde(default)]
        tracing: bool,
        /// The default queue type (`classic`, `quorum`, `stream`), if set.
        #[serde(default)]
        default_queue_type: Option<String>,
        /// Who created it (empty: the broker).
        #[serde(default)]
        created_by: String,
    },
    /// A user's permissions in a vhost.
    Permission {
        /// User.
        user: String,
        /// Vhost.
        vhost: String,
        /// Configure pattern.
        configure: String,
        /// Write pattern.
        write: String,
        /// Read pattern.
        read: String,
    },
    /// A vhost's limits (`max-connections`, `max-queues`).
    VhostLimits {
        /// Vhost.
        vhost: String,
        /// Limit name to value.
        limits: std::collections::BTreeMap<String, i64>,
    },
    /// A user's limits (`max-connections`, `max-channels`).
    UserLimits {
        /// User.
        user: String,
        /// Limit name to value.
        limits: std::collections::BTreeMap<String, i64>,
    },
    /// A user's topic permissions on an exchange of a vhost.
    TopicPermission {
        /// User.
        user: String,
        /// Vhost.
        vhost: String,
        /// Exchange.
        exchange: String,
        /// Write pattern.
        write: String,
        /// Read pattern.
        read: String,
    },
    /// A policy or operator policy of a vhost.
    Policy {
        /// `policy` or `operator_policy` (RabbitMQ's runtime parameter components).
        component: String,
        /// Vhost.
        vhost: String,
        /// Name.
        name: String,
        /// Pattern.
        pattern: String,
        /// `queues`, `exchanges` or `all`.
        apply_to: String,
        /// Definition.
        definition: serde_json::Value,
        /// Priority.
        priority: serde_json::Value,
    },
}

impl AccessRecord {
    /// The record's key: its kind and the names that identify it, NUL-separated.
    fn key(&self) -> Vec<u8> {
        let (kind, names): (u8, Vec<&str>) = match self {
            AccessRecord::Initialized => (b'i', vec![]),
            AccessRecord::User { name, .. } => (b'u', vec![name]),
            AccessRecord::VHost { name, .. } => (b'v', vec![name]),
            AccessRecord::Permission { user, vhost, .. } => (b'p', vec![vhost, user]),
            AccessRecord::VhostLimits { vhost, .. } => (b'l', vec![vhost]),
            AccessRecord::UserLimits { user, .. } => (b'm', vec![user]),
            AccessRecord::TopicPermission {
                user,
                vhost,
                exchange,
                ..
            } => (b't', vec![vhost, user, exchange]),
            AccessRecord::Policy {
                component,
                vhost,
                name,
                ..
            } => (b'y', vec![component, vhost, name]),
        };
        storage::access_key(kind, &names)
    }

    /// Decodes a stored value (`None`: not a record this version knows).
    pub fn decode(value: &[u8]) -> Option<Self> {
        serde_json::from_slice(value).ok()
    }
}

/// Access-control changes, submitted to the store together.
#[derive(Debug, Default)]
#[must_use = "nothing is written until `submit`"]
pub(crate) struct AccessWrites {
    ops: Vec<Op>,
}

impl AccessWrites {
    /// Stores `record` (replacing the one with the same key).
    pub(crate) fn put(&mut self, record: &AccessRecord) {
        let value = serde_json::to_vec(record).unwrap_or_default();
        self.ops.push(Op::PutDef {
            key: record.key(),
            value,
        });
    }

    /// Deletes the record with `record`'s key (its other fields are ignored).
    pub(crate) fn delete(&mut self, record: &AccessRecord) {
        self.ops.push(Op::DeleteDef { key: record.key() });
    }

    /// Hands the changes to the store's writer.
    pub(crate) fn submit(self, store: &Store) {
        if !self.ops.is_empty() {
            store.submit(self.ops, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_keys_identify() {
        let r = AccessRecord::Permission {
            user: "alice".into(),
            vhost: "v1".into(),
            configure: "C".into(),
            write: "W".into(),
            read: "".into(),
        };
        let v = serde_json::to_vec(&r).unwrap();
        assert_eq!(AccessRecord::decode(&v), Some(r.clone()));
        let other = AccessRecord::Permission {
            user: "alice".into(),
            vhost: "v1".into(),
            configure: ".*".into(),
            write: "".into(),
            read: "".into(),
        };
        assert_eq!(r.key(), other.key(), "a change replaces the record");
        let u = AccessRecord::User {
            name: "v1".into(),
            password_hash: String::new(),
            hashing_algorithm: String::new(),
            tags: vec![],
        };
        assert_ne!(u.key(), storage::access_key(b'v', &["v1"]));
        assert_eq!(
            AccessRecord::decode(b"{\"kind\":\"initialized\"}"),
            Some(AccessRecord::Initialized)
        );
    }
}
