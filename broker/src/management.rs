//! The broker's side of the management plane: [`management::Backend`] over the broker's own
//! operations (the same `AccessControl` and `Broker` calls that `warren ctl`, definitions import
//! and AMQP use), so every rule lives in one place. The HTTP server itself is the `management`
//! crate's.

use crate::auth::{
    limits_from, AdminError, Credentials, HashingAlgorithm, PasswordHash, VHostInfo, USER_LIMITS,
    VHOST_LIMITS,
};
use crate::auth::{Caller, PublishCache};
use crate::broker::Broker;
use crate::message::Message;
use crate::message_stats::DeliverCounts;
use crate::queue::{Consumer, DeliverySink, Queue, QueueSpec, Take, Taken};
use crate::vhost::VHost as VHostRef;
use management::metrics::{
    ChannelFigures, Churn, ConnectionFigures, ExchangeFigures, MetricsSnapshot, NodeFigures,
    QueueFigures,
};
use management::{
    AckMode, BindingInfo, ChannelRow, ConnectionRow, ConsumerRow, ExchangeDeclare, ExchangeInfo,
    GotMessage, Identity, MessageCounts, MessageProperties, NewPassword, NodeStats, ObjectTotals,
    OpError, Permission, Principal, Publish, Put, QueueDeclare, QueueInfo, QueueSizes,
    TopicPermission, User, VHost,
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

/// The sink of one basic.get made by the API: hands what the queue gives it to a waiting thread.
#[derive(Debug)]
struct OneGet(std::sync::Mutex<Option<std::sync::mpsc::Sender<Option<Taken>>>>);

impl DeliverySink for OneGet {
    fn attached(&self, _consumer: &Arc<Consumer>, _announce: bool) {}

    fn offer(&self, _consumer: &Arc<Consumer>, _take: &mut Take<'_>) -> bool {
        false
    }

    fn answer_get(&self, _queue: &Arc<Queue>, _no_ack: bool, take: &mut Take<'_>, _: bool) {
        let tx = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(take());
        }
    }

    fn cancelled(&self, _consumer: &Arc<Consumer>) {}
}

/// The broker, as the management API sees it.
pub(crate) struct Backend(pub(crate) Arc<Broker>);

impl Backend {
    /// One vhost (`NotFound` if there is none), or all of them.
    fn vhosts_in(&self, vhost: Option<&str>) -> Result<Vec<Arc<VHostRef>>, OpError> {
        match vhost {
            Some(name) => Ok(vec![self.0.vhost(name).ok_or(OpError::NotFound)?]),
            None => Ok(self.0.vhosts()),
        }
    }

    /// A vhost and the user's standing in it, to run vhost operations as that user.
    fn as_user(&self, user: &str, vhost: &str) -> Result<(Arc<VHostRef>, Caller), OpError> {
        let Some(v) = self.0.vhost(vhost) else {
            return Err(OpError::NotFound);
        };
        let grant = self
            .0
            .access
            .grant(user, vhost)
            .map_err(|_| OpError::Forbidden("Access refused.".into()))?;
        Ok((
            v,
            Caller {
                // RabbitMQ's API works through a connection of its own: another connection's
                // exclusive queue is locked to it.
                connection: Some(API_CONNECTION),
                grant: Some(grant),
            },
        ))
    }
}

/// The connection id the API acts as: no client connection has it (ids count up from 1).
const API_CONNECTION: u64 = u64::MAX;

/// An AMQP refusal as RabbitMQ's API reports it: access refused is a 401 with the AMQP text, a
/// missing object a 404 with its words, anything else a 400 with the text without its code.
fn amqp_error(e: crate::error::AmqpError) -> OpError {
    match e.code.code() {
        403 => OpError::Forbidden(e.reply_text()),
        404 => OpError::NotFoundReason(e.explanation),
        _ => OpError::BadRequest(e.explanation),
    }
}

/// An AMQP refusal of an API publish: RabbitMQ answers 400 with the reply code and text
/// (`404 NOT_FOUND - no exchange 'x' in vhost '/'`).
fn publish_error(e: crate::error::AmqpError) -> OpError {
    OpError::Amqp(format!("{} {}", e.code.code(), e.reply_text()))
}

/// The vhost is unknown or the user may not use it: the API's 401 `Access refused.`.
fn refused(e: OpError) -> OpError {
    match e {
        OpError::NotFound => OpError::Forbidden("Access refused.".into()),
        other => other,
    }
}

/// Typed properties for a message published through the API.
fn basic_properties(p: &MessageProperties) -> amqp_codec::Properties {
    use amqp_codec::protocol::basic::AMQPProperties;
    use amqp_codec::types::ShortString;
    let short = |s: &String| ShortString::from(s.clone());
    let mut b = AMQPProperties::default();
    if let Some(v) = &p.content_type {
        b = b.with_content_type(short(v));
    }
    if let Some(v) = &p.content_encoding {
        b = b.with_content_encoding(short(v));
    }
    if let Some(h) = &p.headers {
        b = b.with_headers(crate::definitions::table(Some(h)));
    }
    if let Some(v) = p.delivery_mode {
        b = b.with_delivery_mode(v);
    }
    if let Some(v) = p.priority {
        b = b.with_priority(v);
    }
    if let Some(v) = &p.correlation_id {
        b = b.with_correlation_id(short(v));
    }
    if let Some(v) = &p.reply_to {
        b = b.with_reply_to(short(v));
    }
    if let Some(v) = &p.expiration {
        b = b.with_expiration(short(v));
    }
    if let Some(v) = &p.message_id {
        b = b.with_message_id(short(v));
    }
    if let Some(v) = p.timestamp {
        b = b.with_timestamp(v);
    }
    if let Some(v) = &p.kind {
        b = b.with_type(short(v));
    }
    if let Some(v) = &p.user_id {
        b = b.with_user_id(short(v));
    }
    if let Some(v) = &p.app_id {
        b = b.with_app_id(short(v));
    }
    amqp_codec::Properties::from_basic(&b)
}

/// A message's properties as the API's `/get` shows them: the ones set, in RabbitMQ's order
/// (the wire order reversed), or `[]` when none is.
fn properties_json(p: &amqp_codec::Properties) -> Value {
    let b = p.to_basic();
    let text = |v: &Option<amqp_codec::types::ShortString>| v.as_ref().map(|v| json!(v.as_str()));
    let fields = [
        ("cluster_id", text(b.cluster_id())),
        ("app_id", text(b.app_id())),
        ("user_id", text(b.user_id())),
        ("type", text(b.kind())),
        ("timestamp", b.timestamp().map(|t| json!(t))),
        ("message_id", text(b.message_id())),
        ("expiration", text(b.expiration())),
        ("reply_to", text(b.reply_to())),
        ("correlation_id", text(b.correlation_id())),
        ("priority", b.priority().map(|v| json!(v))),
        ("delivery_mode", b.delivery_mode().map(|v| json!(v))),
        (
            "headers",
            b.headers().as_ref().map(crate::definitions::json_table),
        ),
        ("content_encoding", text(b.content_encoding())),
        ("content_type", text(b.content_type())),
    ];
    let m: serde_json::Map<String, Value> = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_string(), v?)))
        .collect();
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

/// A binding of the API as the vhost's operations take it.
fn binding_spec(b: &BindingInfo) -> crate::vhost::BindingSpec {
    let destination = match b.destination_type.as_str() {
        "exchange" => crate::exchange::Destination::Exchange(b.destination.clone()),
        _ => crate::exchange::Destination::Queue(b.destination.clone()),
    };
    crate::vhost::BindingSpec {
        source: b.source.clone(),
        destination,
        routing_key: b.routing_key.clone(),
        arguments: crate::definitions::table(Some(&b.arguments)),
    }
}

fn policy_kind(operator: bool) -> crate::policy::Kind {
    if operator {
        crate::policy::Kind::Operator
    } else {
        crate::policy::Kind::Policy
    }
}

fn op_error(e: AdminError) -> OpError {
    match e {
        AdminError::NoSuchUser(_) | AdminError::NoSuchVHost(_) => OpError::NotFound,
        other => OpError::BadRequest(other.to_string()),
    }
}

/// A pattern that does not compile: RabbitMQ's `["invalid_regexp", pattern, [message, offset]]`,
/// Erlang strings shown as lists of character codes (the pattern too, for plain permissions).
/// The message is Warren's regex engine's, not PCRE's.
fn check_pattern(pattern: &str, pattern_as_codes: bool) -> Result<(), OpError> {
    let Err(e) = crate::auth::Pattern::new(pattern) else {
        return Ok(());
    };
    let codes = |s: &str| Value::from(s.chars().map(|c| c as u32).collect::<Vec<_>>());
    let shown = if pattern_as_codes {
        codes(pattern)
    } else {
        Value::from(pattern)
    };
    let first_line = e.lines().last().unwrap_or_default().trim().to_string();
    Err(OpError::Reason(json!([
        "invalid_regexp",
        shown,
        [codes(&first_line), 0]
    ])))
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
                tracing: v.tracing,
                default_queue_type: v.default_queue_type,
            })
            .collect()
    }

    fn put_vhost(&self, user: &str, vhost: VHost) -> Result<Put, OpError> {
        if vhost.name.is_empty() {
            return Err(OpError::BadRequest(
                "vhost cannot be an empty string".into(),
            ));
        }
        let (_, created) = self.0.add_vhost(VHostInfo {
            name: vhost.name,
            description: vhost.description,
            tags: vhost.tags,
            tracing: vhost.tracing,
            default_queue_type: vhost.default_queue_type,
            created_by: user.to_string(),
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
        for pattern in [&p.configure, &p.write, &p.read] {
            check_pattern(pattern, true)?;
        }
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
        for pattern in [&p.write, &p.read] {
            check_pattern(pattern, false)?;
        }
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

    fn aliveness_test(&self, vhost: &str, user: &str) -> Result<bool, OpError> {
        const QUEUE: &str = "aliveness-test";
        let Some(v) = self.0.vhost(vhost) else {
            return Err(OpError::NotFound);
        };
        let grant = self
            .0
            .access
            .grant(user, vhost)
            .map_err(|_| OpError::Forbidden("Access refused.".into()))?;
        // As the user, through the same operations as its AMQP connection would use.
        let caller = Caller {
            connection: None,
            grant: Some(grant),
        };
        let refused = |e: crate::error::AmqpError| OpError::Forbidden(e.reply_text());
        let spec = QueueSpec {
            name: QUEUE.into(),
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: Default::default(),
        };
        v.declare_queue(spec, &caller).map_err(refused)?;
        let mut cache = PublishCache::default();
        let x = v
            .publish_target("", QUEUE, &caller, &mut cache)
            .map_err(refused)?;
        let message = Message::new(
            String::new(),
            QUEUE.into(),
            Default::default(),
            bytes::Bytes::from_static(b"test_message"),
        );
        v.publish(
            &x,
            Arc::new(message),
            None,
            &mut Vec::new(),
            &mut Vec::new(),
        );
        let q = v.readable_queue(QUEUE, &caller).map_err(refused)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let sink: Arc<dyn DeliverySink> = Arc::new(OneGet(std::sync::Mutex::new(Some(tx))));
        q.get(&sink, true);
        // A get answered from the store comes back from another thread, soon.
        Ok(matches!(
            rx.recv_timeout(std::time::Duration::from_secs(10)),
            Ok(Some(_))
        ))
    }

    fn get_messages(
        &self,
        user: &str,
        vhost: &str,
        queue: &str,
        count: usize,
        mode: AckMode,
    ) -> Result<Vec<GotMessage>, OpError> {
        let (v, caller) = self.as_user(user, vhost).map_err(refused)?;
        let q = v
            .readable_queue(queue, &caller)
            .map_err(|e| match e.code.code() {
                404 => OpError::NotFoundReason(e.reply_text()),
                _ => publish_error(e),
            })?;
        let sink_of =
            |tx| -> Arc<dyn DeliverySink> { Arc::new(OneGet(std::sync::Mutex::new(Some(tx)))) };
        let mut got = Vec::new();
        let mut taken = Vec::new();
        // basic.get without auto-ack, `count` times; the messages are settled together at the
        // end, so that each get sees the ones before it gone (RabbitMQ's `message_count`).
        for _ in 0..count {
            let (tx, rx) = std::sync::mpsc::channel();
            q.get(&sink_of(tx), false);
            // A get answered from the store comes back from another thread, soon.
            let Ok(Some(t)) = rx.recv_timeout(std::time::Duration::from_secs(10)) else {
                break;
            };
            got.push(GotMessage {
                payload: t.outgoing.body.clone(),
                redelivered: t.redelivered,
                exchange: t.outgoing.exchange.clone(),
                routing_key: t.outgoing.routing_key.clone(),
                message_count: t.remaining,
                properties: properties_json(&t.outgoing.properties),
            });
            taken.push(t.delivery);
        }
        match mode {
            AckMode::AckRequeueTrue | AckMode::RejectRequeueTrue => q.requeue(&taken),
            AckMode::AckRequeueFalse => q.acked(&taken),
            AckMode::RejectRequeueFalse => q.discarded(&taken),
        }
        Ok(got)
    }

    fn publish(&self, user: &str, p: Publish) -> Result<bool, OpError> {
        let (v, caller) = self.as_user(user, &p.vhost).map_err(refused)?;
        let name = if p.exchange == "amq.default" {
            ""
        } else {
            p.exchange.as_str()
        };
        let mut cache = PublishCache::default();
        let x = v
            .publish_target(name, &p.routing_key, &caller, &mut cache)
            .map_err(publish_error)?;
        let properties = basic_properties(&p.properties);
        v.check_message(&x, &properties, user, &caller)
            .map_err(publish_error)?;
        let mut message = Message::new(
            name.to_string(),
            p.routing_key,
            properties,
            bytes::Bytes::from(p.payload),
        );
        if message.properties.has_headers() {
            message = message.with_sender_selected_keys().map_err(|reason| {
                OpError::Amqp(format!(
                    "406 PRECONDITION_FAILED - invalid message: {reason}"
                ))
            })?;
        }
        // As RabbitMQ's API publishes: on a confirm channel, waiting for the confirm.
        let (tx, rx) = std::sync::mpsc::channel();
        let wait = crate::persist::ConfirmWait::new(move |ok| {
            let _ = tx.send(ok);
        });
        let mut routed_to = Vec::new();
        let message = Arc::new(message);
        let published = v.publish(
            &x,
            message.clone(),
            Some(&wait),
            &mut routed_to,
            &mut Vec::new(),
        );
        v.count_publish(&x, &message, published);
        // Counted as RabbitMQ counts its API's publishes: on a confirm channel.
        let c = &crate::metrics::COUNTERS;
        c.received.inc();
        c.received_confirm.inc();
        match published {
            crate::vhost::Published::Routed(_) => c.routed.inc(),
            crate::vhost::Published::Unroutable => c.unroutable_dropped.inc(),
        }
        let confirmed = match wait.release() {
            Some(ok) => ok,
            None => rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or(false),
        };
        if !confirmed {
            return Err(OpError::Amqp(
                "rejected Unable to publish message. Check queue limits.".into(),
            ));
        }
        Ok(matches!(published, crate::vhost::Published::Routed(_)))
    }

    fn certificate_expiry(&self) -> Option<(String, Vec<i64>)> {
        let certs = self.0.tls.get()?;
        match certs.not_after() {
            Ok((path, ends)) => Some((path.display().to_string(), ends)),
            Err(e) => {
                tracing::warn!("certificate expiration check: {e}");
                Some((String::new(), vec![0]))
            }
        }
    }

    fn connections(&self) -> Vec<ConnectionRow> {
        connection_rows(&self.0)
    }

    fn channels(&self) -> Vec<ChannelRow> {
        channel_rows(&self.0)
    }

    fn close_connection(&self, name: &str, reason: &str) -> Result<(), OpError> {
        if self.0.close_connection(name, reason) {
            Ok(())
        } else {
            Err(OpError::NotFound)
        }
    }

    fn global_counters(&self) -> management::metrics::GlobalCounters {
        crate::metrics::global()
    }

    fn metrics(&self) -> management::metrics::MetricsSnapshot {
        metrics_snapshot(&self.0)
    }

    fn queues(&self, vhost: Option<&str>) -> Result<Vec<QueueInfo>, OpError> {
        let owners = self.0.connections();
        let vhosts = self.vhosts_in(vhost)?;
        let mut out = Vec::new();
        for v in vhosts {
            for q in v.queues() {
                let f = q.figures();
                let (policy, operator) = v.policies_for(&q.name, true);
                out.push(QueueInfo {
                    vhost: v.name.clone(),
                    name: q.name.clone(),
                    durable: q.durable,
                    auto_delete: q.auto_delete,
                    exclusive: q.exclusive_owner.is_some(),
                    arguments: crate::definitions::json_table(&q.arguments),
                    messages_ready: f.ready,
                    messages_unacknowledged: f.unacked,
                    consumers: f.consumers,
                    sizes: QueueSizes {
                        ready_bytes: f.ready_bytes,
                        ready_ram: f.ready_ram,
                        ready_ram_bytes: f.ready_ram_bytes,
                        paged: f.paged,
                        paged_bytes: f.paged_bytes,
                        unacked_bytes: f.unacked_bytes,
                        persistent: f.persistent,
                        persistent_bytes: f.persistent_bytes,
                    },
                    counts: deliver_counts(
                        MessageCounts {
                            publish: f.published,
                            ..Default::default()
                        },
                        &f.counts,
                        f.counts.ack,
                    ),
                    effective_policy_definition: crate::policy::effective_definition(
                        policy.as_ref(),
                        operator.as_ref(),
                    ),
                    policy: policy.map(|p| p.name),
                    owner: q
                        .exclusive_owner
                        .and_then(|id| owners.iter().find(|c| c.id == id).map(|c| c.name.clone())),
                    operator_policy: operator.map(|p| p.name),
                });
            }
        }
        Ok(out)
    }

    fn declare_queue(&self, user: &str, d: QueueDeclare) -> Result<Put, OpError> {
        let (v, caller) = self.as_user(user, &d.vhost)?;
        if d.passive {
            v.usable_queue(&d.name, &caller).map_err(amqp_error)?;
            return Ok(Put::Updated);
        }
        let spec = QueueSpec {
            name: d.name,
            durable: d.durable,
            exclusive_owner: None,
            auto_delete: d.auto_delete,
            arguments: crate::definitions::table(Some(&d.arguments)),
        };
        let declared = v.declare_queue(spec, &caller).map_err(amqp_error)?;
        Ok(if declared.created {
            Put::Created
        } else {
            Put::Updated
        })
    }

    fn delete_queue(
        &self,
        user: &str,
        vhost: &str,
        name: &str,
        if_empty: bool,
        if_unused: bool,
    ) -> Result<(), OpError> {
        let (v, caller) = self.as_user(user, vhost)?;
        let only_if = crate::vhost::DeleteIf {
            unused: if_unused,
            empty: if_empty,
        };
        match v.delete_queue_named(name, &caller, only_if) {
            Ok((Some(_), _)) => Ok(()),
            Ok((None, _)) => Err(OpError::NotFound),
            Err(e) => Err(amqp_error(e)),
        }
    }

    fn purge_queue(&self, user: &str, vhost: &str, name: &str) -> Result<(), OpError> {
        let (v, caller) = self.as_user(user, vhost)?;
        if v.queue(name).is_none() {
            return Err(OpError::NotFound);
        }
        v.purge_queue(name, &caller).map(|_| ()).map_err(amqp_error)
    }

    fn exchanges(&self, vhost: Option<&str>) -> Result<Vec<ExchangeInfo>, OpError> {
        let vhosts = self.vhosts_in(vhost)?;
        let mut out = Vec::new();
        for v in vhosts {
            for x in v.exchanges() {
                let kind = x.declared_type();
                out.push(ExchangeInfo {
                    vhost: v.name.clone(),
                    name: x.name.clone(),
                    kind: kind.into(),
                    declared_by: if x.declared_by.is_empty() {
                        crate::auth::INTERNAL_USER.into()
                    } else {
                        x.declared_by.clone()
                    },
                    durable: x.durable,
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: crate::definitions::json_table(&x.arguments),
                    policy: v.policies_for(&x.name, false).0.map(|p| p.name),
                    counts: {
                        let (publish_in, publish_out) = x.counts.get();
                        MessageCounts {
                            publish_in,
                            publish_out,
                            ..Default::default()
                        }
                    },
                });
            }
        }
        Ok(out)
    }

    fn declare_exchange(&self, user: &str, d: ExchangeDeclare) -> Result<Put, OpError> {
        let (v, caller) = self.as_user(user, &d.vhost)?;
        if d.passive {
            v.check_exchange(&d.name).map_err(amqp_error)?;
            return Ok(Put::Updated);
        }
        let existed = v.exchange(&d.name).is_some();
        let spec = crate::vhost::ExchangeSpec {
            name: d.name,
            kind: d.kind,
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
            arguments: crate::definitions::table(Some(&d.arguments)),
            declared_by: user.to_string(),
        };
        v.declare_exchange(&spec, &caller).map_err(amqp_error)?;
        Ok(if existed { Put::Updated } else { Put::Created })
    }

    fn delete_exchange(
        &self,
        user: &str,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<(), OpError> {
        let (v, caller) = self.as_user(user, vhost)?;
        if v.exchange(name).is_none() {
            return Err(OpError::NotFound);
        }
        v.delete_exchange_named(name, if_unused, &caller)
            .map_err(amqp_error)
    }

    fn policies(&self, operator: bool) -> Vec<Value> {
        let kind = policy_kind(operator);
        self.0
            .vhosts()
            .iter()
            .flat_map(|v| v.policies(kind))
            .map(|p| p.to_json())
            .collect()
    }

    fn put_policy(
        &self,
        operator: bool,
        vhost: &str,
        name: &str,
        body: &serde_json::Map<String, Value>,
    ) -> Result<Put, OpError> {
        let Some(v) = self.0.vhost(vhost) else {
            return Err(OpError::NotFoundReason("vhost_not_found".into()));
        };
        let policy = crate::policy::Policy::new(
            policy_kind(operator),
            vhost,
            name,
            body.get("pattern").unwrap_or(&Value::Null),
            body.get("definition").unwrap_or(&Value::Null),
            body.get("apply-to"),
            body.get("priority"),
        )
        .map_err(|why| OpError::BadRequest(format!("Validation failed\n\n{why}\n")))?;
        Ok(if v.set_policy(policy_kind(operator), policy) {
            Put::Created
        } else {
            Put::Updated
        })
    }

    fn delete_policy(&self, operator: bool, vhost: &str, name: &str) -> Result<(), OpError> {
        let v = self.0.vhost(vhost).ok_or(OpError::NotFound)?;
        if v.clear_policy(policy_kind(operator), name) {
            Ok(())
        } else {
            Err(OpError::NotFound)
        }
    }

    fn bind(&self, user: &str, b: &BindingInfo) -> Result<(), OpError> {
        let (v, caller) = self.as_user(user, &b.vhost)?;
        v.bind(&binding_spec(b), &caller).map_err(amqp_error)
    }

    fn unbind(&self, user: &str, b: &BindingInfo) -> Result<(), OpError> {
        let (v, caller) = self.as_user(user, &b.vhost)?;
        v.unbind(&binding_spec(b), &caller).map_err(amqp_error)
    }

    fn bindings(&self, vhost: Option<&str>) -> Result<Vec<BindingInfo>, OpError> {
        let vhosts = self.vhosts_in(vhost)?;
        let mut out = Vec::new();
        for v in vhosts {
            // The default exchange's implicit binding of every queue, as RabbitMQ lists it.
            for q in v.queues() {
                out.push(BindingInfo {
                    vhost: v.name.clone(),
                    source: String::new(),
                    destination: q.name.clone(),
                    destination_type: "queue".into(),
                    routing_key: q.name.clone(),
                    arguments: json!({}),
                });
            }
            for x in v.exchanges().iter().filter(|x| !x.name.is_empty()) {
                for (dest, key, args) in x.bindings() {
                    let (destination, kind) = match dest {
                        crate::exchange::Destination::Queue(q) => (q, "queue"),
                        crate::exchange::Destination::Exchange(e) => (e, "exchange"),
                    };
                    out.push(BindingInfo {
                        vhost: v.name.clone(),
                        source: x.name.clone(),
                        destination,
                        destination_type: kind.into(),
                        routing_key: key,
                        arguments: crate::definitions::json_table(&args),
                    });
                }
            }
        }
        Ok(out)
    }

    fn import_definitions(&self, vhost: Option<&str>, defs: &Value) -> Result<(), OpError> {
        if let Some(v) = vhost {
            if self.0.vhost(v).is_none() {
                return Err(OpError::NotFoundReason("vhost_not_found".into()));
            }
        }
        crate::definitions::import(&self.0, defs, vhost)
            .map(|_| ())
            .map_err(OpError::Reason)
    }

    fn export_definitions(&self, vhost: Option<&str>) -> Result<Value, OpError> {
        crate::definitions::export(&self.0, vhost, crate::definitions::Layout::Http)
            .map_err(OpError::BadRequest)
    }

    fn node_stats(&self) -> NodeStats {
        let b = &self.0;
        let alarms = b.alarms.in_effect();
        let fd_used = crate::alarm::open_fds();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let threads = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let fd_total = crate::alarm::max_fds();
        NodeStats {
            os_pid: std::process::id(),
            mem_used: crate::alarm::resident_memory().unwrap_or(0),
            mem_limit: b.alarms.memory_limit(),
            mem_alarm: alarms.contains(&"memory"),
            disk_free: crate::alarm::free_bytes(&b.config.data_dir).unwrap_or(0),
            disk_free_limit: b.config.disk_free_limit,
            disk_free_alarm: alarms.contains(&"disk"),
            fd_used,
            fd_total,
            sockets_used: b.connection_totals(|_| true).0 as u64,
            threads,
            uptime_ms: b.started.elapsed().as_millis() as u64,
            processors: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            db_dir: b.config.data_dir.display().to_string(),
            config_files: Vec::new(),
            auth_mechanisms: b.config.auth_mechanisms.clone(),
        }
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

/// Everything a scrape shows. Reads /proc: called off the runtime's workers.
fn metrics_snapshot(broker: &Broker) -> MetricsSnapshot {
    let c = &crate::metrics::COUNTERS;
    let global = crate::metrics::global();
    let churn = Churn {
        connections_opened: c.connections_opened.get(),
        connections_closed: c.connections_closed.get(),
        channels_opened: c.channels_opened.get(),
        channels_closed: c.channels_closed.get(),
        queues_declared: c.queues_declared.get(),
        queues_created: c.queues_created.get(),
        queues_deleted: c.queues_deleted.get(),
        auth_attempts: c.auth_attempts.get(),
        auth_succeeded: c.auth_succeeded.get(),
        auth_failed: c.auth_failed.get(),
    };
    let alarms = broker.alarms.in_effect();
    let max_fds = crate::alarm::max_fds();
    let (connections, channels) = broker.connection_totals(|_| true);
    let uptime = broker.started.elapsed().as_secs_f64();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let node_figures = NodeFigures {
        open_fds: crate::alarm::open_fds(),
        max_fds,
        open_sockets: connections as u64,
        max_sockets: broker.config.connection_max.map_or(max_fds, |m| m as u64),
        resident_memory: crate::alarm::resident_memory().unwrap_or(0),
        memory_limit: broker.alarms.memory_limit(),
        disk_free: crate::alarm::free_bytes(&broker.config.data_dir).unwrap_or(0),
        disk_free_limit: broker.config.disk_free_limit,
        uptime_seconds: uptime,
        start_time_seconds: now - uptime,
        memory_alarm: alarms.contains(&"memory"),
        disk_alarm: alarms.contains(&"disk"),
    };
    let mut queues = Vec::new();
    let mut exchanges = Vec::new();
    let mut vhosts = Vec::new();
    let mut consumers = 0;
    for v in broker.vhosts() {
        vhosts.push(v.name.clone());
        for q in v.queues() {
            let f = q.figures();
            consumers += f.consumers;
            queues.push(QueueFigures {
                vhost: v.name.clone(),
                name: q.name.clone(),
                messages_ready: f.ready,
                messages_unacked: f.unacked,
                consumers: f.consumers,
                published: f.published,
            });
        }
        for x in v.exchanges() {
            exchanges.push(ExchangeFigures {
                vhost: v.name.clone(),
                name: x.name.clone(),
                kind: x.declared_type().to_string(),
                bindings: x.bindings().len() as u64,
            });
        }
    }
    let channel_figures: Vec<ChannelFigures> = channel_rows(broker)
        .into_iter()
        .map(|c| ChannelFigures {
            id: format!("{} ({})", c.connection, c.number),
            vhost: c.vhost,
            consumers: c.consumers.len() as u64,
            messages_unacked: c.messages_unacknowledged,
            consumer_prefetch: c.prefetch_count as u64,
            channel_prefetch: c.global_prefetch_count as u64,
            published: c.counts.publish,
            confirmed: c.counts.confirm,
            unroutable_returned: c.counts.return_unroutable,
            unroutable_dropped: c.counts.drop_unroutable,
            get_ack: c.counts.get,
            get: c.counts.get_no_ack,
            delivered_ack: c.counts.deliver,
            delivered: c.counts.deliver_no_ack,
            redelivered: c.counts.redeliver,
            acked: c.counts.ack,
            get_empty: c.counts.get_empty,
            ..Default::default()
        })
        .collect();
    MetricsSnapshot {
        node: broker.node_name(),
        cluster: "warren".into(),
        rabbitmq_version: crate::connection::RABBITMQ_VERSION.into(),
        warren_version: env!("CARGO_PKG_VERSION").into(),
        global,
        churn,
        node_figures,
        open_connections: connections as u64,
        open_channels: channels as u64,
        consumers,
        publishers: channel_figures.iter().filter(|c| c.published > 0).count() as u64,
        vhosts,
        queues,
        channels: channel_figures,
        connections: connection_rows(broker)
            .into_iter()
            .map(|c| ConnectionFigures {
                id: c.name,
                incoming_bytes: c.recv.0,
                incoming_packets: c.recv.1,
                outgoing_bytes: c.send.0,
                outgoing_packets: c.send.1,
                channels: c.channels,
            })
            .collect(),
        exchanges,
    }
}

/// Every open connection, as the API and `warren ctl list_connections` show them.
pub(crate) fn connection_rows(broker: &Broker) -> Vec<ConnectionRow> {
    broker
        .connections()
        .iter()
        .map(|c| ConnectionRow {
            name: c.name.clone(),
            user: c.user.clone(),
            vhost: c.vhost.clone(),
            peer: c.peer,
            local: c.local,
            tls: c.tls,
            auth_mechanism: c.auth_mechanism.clone(),
            client_properties: crate::definitions::json_table(&c.client_properties),
            connected_at: c.connected_at,
            frame_max: c.frame_max,
            channel_max: c.channel_max,
            heartbeat: c.heartbeat,
            channels: c.channels().len() as u64,
            recv: (c.received.octets.get(), c.received.operations.get()),
            send: (c.outbox.sent.octets.get(), c.outbox.sent.operations.get()),
        })
        .collect()
}

/// `base` with the delivery group of `counts` and `ack` acknowledgements.
fn deliver_counts(base: MessageCounts, counts: &DeliverCounts, ack: u64) -> MessageCounts {
    MessageCounts {
        deliver: counts.deliver,
        deliver_no_ack: counts.deliver_no_ack,
        get: counts.get,
        get_no_ack: counts.get_no_ack,
        get_empty: counts.get_empty,
        redeliver: counts.redeliver,
        ack,
        ..base
    }
}

/// Every open channel with its consumers, as the API and `warren ctl list_channels` and
/// `list_consumers` show them.
pub(crate) fn channel_rows(broker: &Broker) -> Vec<ChannelRow> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = Vec::new();
    for c in broker.connections() {
        for ch in c.channels() {
            let d = ch.deliveries();
            let mut consumers: Vec<ConsumerRow> = d
                .consumers
                .values()
                .map(|k| ConsumerRow {
                    tag: k.tag.to_string(),
                    queue: k.queue.name.clone(),
                    vhost: k.queue.vhost.clone(),
                    ack_required: !k.no_ack,
                    exclusive: k.exclusive,
                    prefetch_count: k.prefetch,
                    // The one consumer argument a queue keeps.
                    arguments: if k.priority != 0 {
                        json!({ "x-priority": k.priority })
                    } else {
                        json!({})
                    },
                })
                .collect();
            consumers.sort_by(|a, b| a.tag.cmp(&b.tag));
            out.push(ChannelRow {
                connection: c.name.clone(),
                peer: c.peer,
                number: ch.id,
                user: c.user.clone(),
                vhost: c.vhost.clone(),
                prefetch_count: ch.mode.prefetch_count.load(Relaxed),
                global_prefetch_count: d.channel_prefetch,
                confirm: ch.mode.confirm.load(Relaxed),
                transactional: ch.mode.transactional.load(Relaxed),
                messages_unacknowledged: d.unacked.len() as u64,
                consumers,
                counts: {
                    let p = &ch.publishes;
                    deliver_counts(
                        MessageCounts {
                            publish: p.publish.get(),
                            confirm: p.confirm.get(),
                            return_unroutable: p.return_unroutable.get(),
                            drop_unroutable: p.drop_unroutable.get(),
                            ..Default::default()
                        },
                        &d.counts,
                        p.ack.get(),
                    )
                },
            });
        }
    }
    out
}
