//! The broker's side of the management plane: [`management::Backend`] over the broker's own
//! operations (the same `AccessControl` and `Broker` calls that `warren ctl`, definitions import
//! and AMQP use), so every rule lives in one place. The HTTP server itself is the `management`
//! crate's.

use crate::auth::{
    limits_from, AdminError, Credentials, HashingAlgorithm, PasswordHash, VHostInfo, USER_LIMITS,
    VHOST_LIMITS,
};
use crate::broker::Broker;
use management::{
    Identity, NewPassword, ObjectTotals, OpError, Permission, Principal, Put, TopicPermission,
    User, VHost,
};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// A limit's value as RabbitMQ takes it: an integer, else its words
/// (`max-connections should be a number, actually was <<"x">>`).
fn limit_value(name: &str, value: &Value) -> Result<i64, String> {
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    let shown = match value {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    };
    Err(format!("{name} should be a number, actually was {shown}"))
}

/// Vhost limits' errors carry RabbitMQ's validation wrapper.
fn validation_failed(why: &str) -> OpError {
    OpError::BadRequest(format!("Validation failed\n\n{why}\n"))
}

/// The broker, as the management API sees it.
pub(crate) struct Backend(pub(crate) Arc<Broker>);

fn op_error(e: AdminError) -> OpError {
    match e {
        AdminError::NoSuchUser(_) | AdminError::NoSuchVHost(_) => OpError::NotFound,
        other => OpError::BadRequest(other.to_string()),
    }
}

/// Setting a permission for an unknown user or vhost is RabbitMQ's 400 `vhost_or_user_not_found`.
fn permission_error(e: AdminError) -> OpError {
    match e {
        AdminError::NoSuchUser(_) | AdminError::NoSuchVHost(_) => {
            OpError::BadRequest("vhost_or_user_not_found".into())
        }
        other => OpError::BadRequest(other.to_string()),
    }
}

impl management::Backend for Backend {
    fn authenticate(&self, user: &str, password: &str, peer: IpAddr) -> Option<Principal> {
        let creds = Credentials {
            user: user.into(),
            password: password.into(),
        };
        let access = &self.0.access;
        let name = access.authenticate(&creds, Some(peer)).ok()?;
        let tags = access.users().into_iter().find(|u| u.name == name)?.tags;
        Some(Principal { name, tags })
    }

    fn identity(&self) -> Identity {
        Identity {
            node: self.0.node_name(),
            cluster_name: "warren".into(),
            rabbitmq_version: crate::connection::RABBITMQ_VERSION.into(),
            warren_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn object_totals(&self, vhosts: Option<&[String]>) -> ObjectTotals {
        let wanted = |v: &str| vhosts.is_none_or(|list| list.iter().any(|x| x == v));
        let (connections, channels) = self.0.connection_totals(wanted);
        let mut t = ObjectTotals {
            connections: connections as u64,
            channels: channels as u64,
            ..Default::default()
        };
        for vhost in self.0.vhosts().into_iter().filter(|v| wanted(&v.name)) {
            t.exchanges += vhost.exchange_count() as u64;
            for q in vhost.queues() {
                t.queues += 1;
                t.consumers += q.consumer_count() as u64;
            }
        }
        t
    }

    fn vhosts(&self) -> Vec<VHost> {
        self.0
            .access
            .vhosts()
            .into_iter()
            .map(|v| VHost {
                name: v.name,
                description: v.description,
                tags: v.tags,
            })
            .collect()
    }

    fn put_vhost(&self, vhost: VHost) -> Result<Put, OpError> {
        if vhost.name.is_empty() {
            return Err(OpError::BadRequest(
                "vhost cannot be an empty string".into(),
            ));
        }
        let (_, created) = self.0.add_vhost(VHostInfo {
            name: vhost.name,
            description: vhost.description,
            tags: vhost.tags,
        });
        Ok(if created { Put::Created } else { Put::Updated })
    }

    fn delete_vhost(&self, name: &str) -> Result<(), OpError> {
        self.0.delete_vhost(name).map_err(op_error)
    }

    fn users(&self) -> Vec<User> {
        self.0
            .access
            .users()
            .into_iter()
            .map(|u| User {
                limits: self.0.access.user_limits(&u.name),
                password_hash: u.hash.to_base64(),
                hashing_algorithm: u.hash.algorithm.name().into(),
                name: u.name,
                tags: u.tags,
            })
            .collect()
    }

    fn put_user(
        &self,
        name: &str,
        password: NewPassword,
        tags: Vec<String>,
    ) -> Result<Put, OpError> {
        let hash = match password {
            NewPassword::Clear(p) => Some(PasswordHash::new(&p)),
            NewPassword::None => Some(PasswordHash::none()),
            NewPassword::Keep => None,
            NewPassword::Hash(text, algorithm) => {
                let algorithm = match algorithm.as_deref() {
                    None => HashingAlgorithm::Sha256,
                    Some(a) => HashingAlgorithm::from_name(a).ok_or_else(|| {
                        OpError::BadRequest(format!("unknown hashing algorithm {a}"))
                    })?,
                };
                Some(PasswordHash::from_base64(algorithm, &text).map_err(OpError::BadRequest)?)
            }
        };
        let access = &self.0.access;
        if access.has_user(name) {
            if let Some(hash) = hash {
                access.set_password(name, hash).map_err(op_error)?;
            }
            access.set_tags(name, tags).map_err(op_error)?;
            Ok(Put::Updated)
        } else {
            let hash = hash.unwrap_or_else(PasswordHash::none);
            access.add_user(name, hash, tags).map_err(op_error)?;
            Ok(Put::Created)
        }
    }

    fn delete_user(&self, name: &str) -> Result<(), OpError> {
        self.0.delete_user(name).map_err(op_error)
    }

    fn permissions(&self) -> Vec<Permission> {
        self.0
            .access
            .permissions(None, None)
            .into_iter()
            .map(|(user, vhost, p)| Permission {
                user,
                vhost,
                configure: p.configure.as_str().into(),
                write: p.write.as_str().into(),
                read: p.read.as_str().into(),
            })
            .collect()
    }

    fn set_permission(&self, p: Permission) -> Result<Put, OpError> {
        let access = &self.0.access;
        let existed = !access.permissions(Some(&p.vhost), Some(&p.user)).is_empty();
        access
            .set_permissions(&p.user, &p.vhost, &p.configure, &p.write, &p.read)
            .map_err(permission_error)?;
        Ok(if existed { Put::Updated } else { Put::Created })
    }

    fn clear_permission(&self, vhost: &str, user: &str) -> Result<(), OpError> {
        self.0
            .access
            .clear_permissions(user, vhost)
            .map_err(op_error)
    }

    fn topic_permissions(&self) -> Vec<TopicPermission> {
        self.0
            .access
            .topic_permissions(None, None)
            .into_iter()
            .map(|(user, vhost, p)| TopicPermission {
                user,
                vhost,
                exchange: p.exchange.clone(),
                write: p.write.as_str().into(),
                read: p.read.as_str().into(),
            })
            .collect()
    }

    fn set_topic_permission(&self, p: TopicPermission) -> Result<Put, OpError> {
        let access = &self.0.access;
        // RabbitMQ answers 201 only for the user's first topic permission in the vhost.
        let existed = !access
            .topic_permissions(Some(&p.vhost), Some(&p.user))
            .is_empty();
        access
            .set_topic_permissions(&p.user, &p.vhost, &p.exchange, &p.write, &p.read)
            .map_err(permission_error)?;
        Ok(if existed { Put::Updated } else { Put::Created })
    }

    fn clear_topic_permission(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> Result<(), OpError> {
        self.0
            .access
            .clear_topic_permissions(user, vhost, exchange)
            .map_err(op_error)
    }

    fn vhost_limits(&self) -> Vec<(String, management::Limits)> {
        let access = &self.0.access;
        access
            .vhosts()
            .into_iter()
            .map(|v| {
                let limits = access.vhost_limits(&v.name);
                (v.name, limits)
            })
            .filter(|(_, l)| !l.is_empty())
            .collect()
    }

    fn set_vhost_limit(&self, vhost: &str, name: &str, value: &Value) -> Result<(), OpError> {
        let n = limit_value(name, value).map_err(|e| validation_failed(&e))?;
        let mut limits = self.0.access.vhost_limits(vhost);
        limits.insert(name.into(), n);
        let checked = limits_from(&json!(limits), &VHOST_LIMITS, "limits")
            .map_err(|e| validation_failed(&e.to_string()))?;
        self.0.set_vhost_limits(vhost, checked).map_err(op_error)
    }

    fn clear_vhost_limit(&self, vhost: &str, name: &str) -> Result<(), OpError> {
        if !self.0.access.has_vhost(vhost) {
            return Err(OpError::Internal(format!("no vhost '{vhost}'")));
        }
        let mut limits = self.0.access.vhost_limits(vhost);
        limits.remove(name);
        self.0.set_vhost_limits(vhost, limits).map_err(op_error)
    }

    fn set_user_limit(&self, user: &str, name: &str, value: &Value) -> Result<(), OpError> {
        let access = &self.0.access;
        if !access.has_user(user) {
            return Err(OpError::Reason(json!(["no_such_user", user])));
        }
        let n = limit_value(name, value).map_err(OpError::BadRequest)?;
        let limits = limits_from(&json!({ name: n }), &USER_LIMITS, "user-limits")
            .map_err(|e| OpError::BadRequest(e.to_string()))?;
        access.set_user_limits(user, limits).map_err(op_error)
    }

    fn clear_user_limit(&self, user: &str, name: &str) -> Result<(), OpError> {
        if !self.0.access.has_user(user) {
            return Err(OpError::Internal(format!("no user '{user}'")));
        }
        self.0
            .access
            .clear_user_limits(user, name)
            .map_err(op_error)
    }

    fn listeners(&self) -> Vec<(String, IpAddr, u16)> {
        self.0
            .listeners
            .get()
            .map(|l| {
                l.iter()
                    .map(|(p, a)| (p.to_string(), a.ip(), a.port()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn alarms(&self) -> Vec<String> {
        self.0
            .alarms
            .in_effect()
            .into_iter()
            .map(str::to_string)
            .collect()
    }
}
