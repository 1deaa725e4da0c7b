//! What the management plane needs from a broker: [`Backend`], and the plain data it exchanges.
//! The broker implements it; this crate knows nothing else of the broker.

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Limits by RabbitMQ's names (`max-connections`, ...).
pub type Limits = BTreeMap<String, i64>;

/// A user logged in to the API (HTTP basic auth), with the tags that decide what it may see and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name.
    pub name: String,
    /// Its tags (`administrator`, `monitoring`, `policymaker`, `management`, others).
    pub tags: Vec<String>,
}

impl Principal {
    /// Whether it carries `tag`.
    pub fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// `administrator`.
    pub fn is_admin(&self) -> bool {
        self.has("administrator")
    }

    /// `monitoring` or `administrator`: may see every vhost's objects.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.has("monitoring")
    }

    /// `policymaker` or `administrator`: may set policies in its vhosts.
    pub fn is_policymaker(&self) -> bool {
        self.is_admin() || self.has("policymaker")
    }

    /// Any of the tags that give access to the management API.
    pub fn is_management(&self) -> bool {
        self.is_monitor() || self.is_policymaker() || self.has("management")
    }
}

/// Why an operation failed; `error` maps it to RabbitMQ's status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// The object does not exist (404 `Object Not Found`).
    #[error("Not Found")]
    NotFound,
    /// Not found, with RabbitMQ's words (404 `{"error":"not_found","reason":...}`).
    #[error("{0}")]
    NotFoundReason(String),
    /// Bad input (400), with RabbitMQ's reason text.
    #[error("{0}")]
    BadRequest(String),
    /// Bad input whose reason RabbitMQ gives as a JSON value (`["no_such_user", "u"]`).
    #[error("{0}")]
    Reason(serde_json::Value),
    /// Not allowed: 401 `not_authorised` with the reason (RabbitMQ never answers 403).
    #[error("{0}")]
    Forbidden(String),
    /// An AMQP-level refusal (a precondition failed, access refused): RabbitMQ answers 400 with
    /// the AMQP reply text as the reason.
    #[error("{0}")]
    Amqp(String),
    /// Something went wrong inside (500).
    #[error("{0}")]
    Internal(String),
}

/// Whether a PUT made something new (201) or changed what was there (204).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// 201 Created.
    Created,
    /// 204 No Content.
    Updated,
}

/// A vhost as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VHost {
    /// Its name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// RabbitMQ's tracing flag.
    pub tracing: bool,
    /// The default queue type, if set.
    pub default_queue_type: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// Its name.
    pub name: String,
    /// base64 of salt and digest (empty: no password).
    pub password_hash: String,
    /// `rabbit_password_hashing_sha256` and friends.
    pub hashing_algorithm: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Its limits (`max-connections`, `max-channels`).
    pub limits: Limits,
}

/// How a PUT /api/users/U sets the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewPassword {
    /// A clear-text password, hashed by the broker.
    Clear(String),
    /// A hash as exported, with its algorithm (None: the broker's default).
    Hash(String, Option<String>),
    /// No password: the user can log in only by other means.
    None,
    /// Keep the current one (an update without password fields).
    Keep,
}

/// A user's permissions in a vhost.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Permission {
    /// User.
    pub user: String,
    /// Vhost.
    pub vhost: String,
    /// Configure pattern.
    pub configure: String,
    /// Write pattern.
    pub write: String,
    /// Read pattern.
    pub read: String,
}

/// A user's topic permissions on an exchange of a vhost.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicPermission {
    /// User.
    pub user: String,
    /// Vhost.
    pub vhost: String,
    /// Topic exchange.
    pub exchange: String,
    /// Write pattern on routing keys.
    pub write: String,
    /// Read pattern on routing keys.
    pub read: String,
}

/// What the overview's identity part says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The node's name (`rabbit@host` in RabbitMQ).
    pub node: String,
    /// The cluster name.
    pub cluster_name: String,
    /// The RabbitMQ version whose behaviour the broker follows.
    pub rabbitmq_version: String,
    /// The broker's own version.
    pub warren_version: String,
}

/// Counts of objects, for the overview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectTotals {
    /// Open connections.
    pub connections: u64,
    /// Open channels.
    pub channels: u64,
    /// Exchanges.
    pub exchanges: u64,
    /// Queues.
    pub queues: u64,
    /// Consumers.
    pub consumers: u64,
}

/// A queue as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted with its last consumer.
    pub auto_delete: bool,
    /// Owned by a connection.
    pub exclusive: bool,
    /// Declared arguments, as JSON.
    pub arguments: serde_json::Value,
    /// Ready messages.
    pub messages_ready: u64,
    /// Delivered, not yet acknowledged.
    pub messages_unacknowledged: u64,
    /// Consumers.
    pub consumers: u64,
    /// The policy that applies, if any.
    pub policy: Option<String>,
    /// The name of the connection that owns it (exclusive queues).
    pub owner: Option<String>,
    /// The operator policy that applies, if any.
    pub operator_policy: Option<String>,
    /// Their definitions merged (RabbitMQ's `effective_policy_definition`).
    pub effective_policy_definition: serde_json::Value,
    /// Where its messages are and their sizes.
    pub sizes: QueueSizes,
    /// Its message counts (`publish` and the delivery group).
    pub counts: MessageCounts,
}

/// A queue's messages by where they are (RabbitMQ's `message_bytes*` and `messages_*` figures);
/// sizes are body bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueSizes {
    /// Body bytes of the ready messages.
    pub ready_bytes: u64,
    /// Ready messages in memory.
    pub ready_ram: u64,
    /// Their body bytes.
    pub ready_ram_bytes: u64,
    /// Ready messages only in the store.
    pub paged: u64,
    /// Their body bytes.
    pub paged_bytes: u64,
    /// Body bytes of the unacknowledged messages (all in memory).
    pub unacked_bytes: u64,
    /// Persistent messages (kept across restarts), ready or not.
    pub persistent: u64,
    /// Their body bytes.
    pub persistent_bytes: u64,
}

/// An object's message counts, by RabbitMQ's `message_stats` names; what a kind of object does
/// not count stays 0 (a queue has no `confirm`, an exchange only `publish_in`/`publish_out`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Messages published (to a queue: routed to it; on a channel: sent on it).
    pub publish: u64,
    /// Publisher confirms sent.
    pub confirm: u64,
    /// Unroutable mandatory messages returned.
    pub return_unroutable: u64,
    /// Unroutable messages dropped.
    pub drop_unroutable: u64,
    /// Deliveries to consumers that acknowledge.
    pub deliver: u64,
    /// Deliveries to consumers that do not.
    pub deliver_no_ack: u64,
    /// basic.get answers to acknowledge.
    pub get: u64,
    /// basic.get answers without ack.
    pub get_no_ack: u64,
    /// basic.get answered empty.
    pub get_empty: u64,
    /// Acknowledgements.
    pub ack: u64,
    /// Redeliveries.
    pub redeliver: u64,
    /// Messages published to an exchange.
    pub publish_in: u64,
    /// Queue deliveries those made.
    pub publish_out: u64,
}

/// The properties of a message published through the API (`/api/exchanges/V/E/publish`),
/// already checked for their types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageProperties {
    /// `content_type`.
    pub content_type: Option<String>,
    /// `content_encoding`.
    pub content_encoding: Option<String>,
    /// `headers`, as JSON (no `null` anywhere in it).
    pub headers: Option<serde_json::Value>,
    /// `delivery_mode` (2: persistent).
    pub delivery_mode: Option<u8>,
    /// `priority`.
    pub priority: Option<u8>,
    /// `correlation_id`.
    pub correlation_id: Option<String>,
    /// `reply_to`.
    pub reply_to: Option<String>,
    /// `expiration`.
    pub expiration: Option<String>,
    /// `message_id`.
    pub message_id: Option<String>,
    /// `timestamp` (seconds).
    pub timestamp: Option<u64>,
    /// `type`.
    pub kind: Option<String>,
    /// `user_id`.
    pub user_id: Option<String>,
    /// `app_id`.
    pub app_id: Option<String>,
}

/// A message published through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// Its vhost.
    pub vhost: String,
    /// The exchange (`amq.default` is the default exchange).
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its properties.
    pub properties: MessageProperties,
    /// Its body.
    pub payload: Vec<u8>,
}

/// What `/api/queues/V/Q/get` does with the messages it took (RabbitMQ's `ackmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Put back, redelivered (`ack_requeue_true`).
    AckRequeueTrue,
    /// Acknowledged: gone (`ack_requeue_false`).
    AckRequeueFalse,
    /// Rejected and put back (`reject_requeue_true`).
    RejectRequeueTrue,
    /// Rejected: dead-lettered if the queue has a dead-letter exchange (`reject_requeue_false`).
    RejectRequeueFalse,
}

/// One message `/api/queues/V/Q/get` took.
#[derive(Debug, Clone, PartialEq)]
pub struct GotMessage {
    /// The body.
    pub payload: axum::body::Bytes,
    /// Delivered before.
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Ready messages left after it was taken.
    pub message_count: u32,
    /// Its properties as RabbitMQ shows them: an object of the ones set (in RabbitMQ's order),
    /// or `[]` when none is.
    pub properties: serde_json::Value,
}

/// An open connection, as `/api/connections` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    /// RabbitMQ's name: `peer_host:peer_port -> host:port`.
    pub name: String,
    /// The logged-in user.
    pub user: String,
    /// Its vhost.
    pub vhost: String,
    /// The client's address.
    pub peer: std::net::SocketAddr,
    /// The listener's address.
    pub local: std::net::SocketAddr,
    /// Over TLS.
    pub tls: bool,
    /// The SASL mechanism.
    pub auth_mechanism: String,
    /// The client's properties, as JSON.
    pub client_properties: serde_json::Value,
    /// When it connected (ms since the Unix epoch).
    pub connected_at: u64,
    /// Negotiated frame_max.
    pub frame_max: u32,
    /// Negotiated channel_max.
    pub channel_max: u16,
    /// Negotiated heartbeat (s).
    pub heartbeat: u16,
    /// Open channels.
    pub channels: u64,
    /// Bytes read from the client, and reads.
    pub recv: (u64, u64),
    /// Bytes sent to it, and writes.
    pub send: (u64, u64),
}

/// A consumer, as `/api/consumers` and a channel's `consumer_details` list it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerRow {
    /// Its tag.
    pub tag: String,
    /// Its queue.
    pub queue: String,
    /// The queue's vhost.
    pub vhost: String,
    /// Manual acknowledgement.
    pub ack_required: bool,
    /// Exclusive consumer.
    pub exclusive: bool,
    /// Its prefetch.
    pub prefetch_count: u32,
    /// Its arguments, as JSON.
    pub arguments: serde_json::Value,
}

/// An open channel, as `/api/channels` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRow {
    /// Its connection's name.
    pub connection: String,
    /// The connection's client address.
    pub peer: std::net::SocketAddr,
    /// Its number.
    pub number: u16,
    /// The connection's user.
    pub user: String,
    /// The connection's vhost.
    pub vhost: String,
    /// basic.qos global=false.
    pub prefetch_count: u32,
    /// basic.qos global=true.
    pub global_prefetch_count: u32,
    /// In confirm mode.
    pub confirm: bool,
    /// In a transaction.
    pub transactional: bool,
    /// Deliveries not yet acknowledged.
    pub messages_unacknowledged: u64,
    /// Its consumers.
    pub consumers: Vec<ConsumerRow>,
    /// Its message counts.
    pub counts: MessageCounts,
}

/// A queue.declare asked through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDeclare {
    /// Vhost.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Durable.
    pub durable: bool,
    /// Auto-delete.
    pub auto_delete: bool,
    /// Arguments (a JSON object).
    pub arguments: serde_json::Value,
    /// Only check that it exists.
    pub passive: bool,
}

/// An exchange as the API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeInfo {
    /// Its vhost.
    pub vhost: String,
    /// Its name (`""` for the default exchange).
    pub name: String,
    /// Its declared type.
    pub kind: String,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Not for publishers.
    pub internal: bool,
    /// Declared arguments, as JSON.
    pub arguments: serde_json::Value,
    /// The policy that applies, if any.
    pub policy: Option<String>,
    /// Its message counts (`publish_in`, `publish_out`).
    pub counts: MessageCounts,
    /// Who declared it (`rmq-internal` for the broker).
    pub declared_by: String,
}

/// An exchange.declare asked through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDeclare {
    /// Vhost.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Type.
    pub kind: String,
    /// Durable.
    pub durable: bool,
    /// Auto-delete.
    pub auto_delete: bool,
    /// Internal.
    pub internal: bool,
    /// Arguments (a JSON object).
    pub arguments: serde_json::Value,
    /// Only check that it exists.
    pub passive: bool,
}

/// A binding as the API lists it (the default exchange's implicit ones included).
#[derive(Debug, Clone, PartialEq)]
pub struct BindingInfo {
    /// Its vhost.
    pub vhost: String,
    /// The source exchange (`""`: the default exchange).
    pub source: String,
    /// The destination's name.
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    /// The routing key.
    pub routing_key: String,
    /// Its arguments, as JSON.
    pub arguments: serde_json::Value,
}

/// A node's figures for `/api/nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Its OS process id.
    pub os_pid: u32,
    /// Resident memory, bytes.
    pub mem_used: u64,
    /// The memory high watermark, bytes.
    pub mem_limit: u64,
    /// Whether the memory alarm is on.
    pub mem_alarm: bool,
    /// Free bytes on the data directory's filesystem.
    pub disk_free: u64,
    /// The free-disk limit, bytes.
    pub disk_free_limit: u64,
    /// Whether the disk alarm is on.
    pub disk_free_alarm: bool,
    /// Open file descriptors.
    pub fd_used: u64,
    /// The process's descriptor limit.
    pub fd_total: u64,
    /// Open AMQP connections.
    pub sockets_used: u64,
    /// OS threads.
    pub threads: u64,
    /// Milliseconds since start.
    pub uptime_ms: u64,
    /// CPUs available.
    pub processors: u64,
    /// The data directory.
    pub db_dir: String,
    /// The configuration file, if any.
    pub config_files: Vec<String>,
    /// SASL mechanisms configured.
    pub auth_mechanisms: Vec<String>,
}

/// The broker as the management API needs it. Every method is quick (no blocking I/O) unless
/// its documentation says otherwise.
pub trait Backend: Send + Sync + 'static {
    /// Checks a login (password and loopback restriction, as for AMQP); its tags if it passes.
    fn authenticate(&self, user: &str, password: &str, peer: IpAddr) -> Option<Principal>;
    /// Who the broker is.
    fn identity(&self) -> Identity;
    /// Object counts, of the given vhosts or of the whole broker.
    fn object_totals(&self, vhosts: Option<&[String]>) -> ObjectTotals;
    /// Every vhost.
    fn vhosts(&self) -> Vec<VHost>;
    /// Creates or updates a vhost.
    fn put_vhost(&self, user: &str, vhost: VHost) -> Result<Put, OpError>;
    /// Deletes a vhost and everything in it (its connections are closed).
    fn delete_vhost(&self, name: &str) -> Result<(), OpError>;
    /// Every user.
    fn users(&self) -> Vec<User>;
    /// Creates or updates a user.
    fn put_user(
        &self,
        name: &str,
        password: NewPassword,
        tags: Vec<String>,
    ) -> Result<Put, OpError>;
    /// Deletes a user (its connections are closed).
    fn delete_user(&self, name: &str) -> Result<(), OpError>;
    /// Every permission entry.
    fn permissions(&self) -> Vec<Permission>;
    /// Sets a user's permissions in a vhost (patterns are checked to compile).
    fn set_permission(&self, permission: Permission) -> Result<Put, OpError>;
    /// Clears them.
    fn clear_permission(&self, vhost: &str, user: &str) -> Result<(), OpError>;
    /// Every topic permission entry.
    fn topic_permissions(&self) -> Vec<TopicPermission>;
    /// Sets a user's topic permissions on an exchange in a vhost.
    fn set_topic_permission(&self, permission: TopicPermission) -> Result<Put, OpError>;
    /// Clears a user's topic permissions in a vhost (on one exchange, or all).
    fn clear_topic_permission(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> Result<(), OpError>;
    /// Resource alarms in effect (`disk`, `memory`), for the health checks.
    fn alarms(&self) -> Vec<String>;
    /// Every vhost's limits (vhosts without any are left out).
    fn vhost_limits(&self) -> Vec<(String, Limits)>;
    /// Sets one limit of a vhost, validated as RabbitMQ does (`value` as the client sent it).
    fn set_vhost_limit(
        &self,
        vhost: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), OpError>;
    /// Clears one limit of a vhost.
    fn clear_vhost_limit(&self, vhost: &str, name: &str) -> Result<(), OpError>;
    /// Sets one limit of a user.
    fn set_user_limit(
        &self,
        user: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), OpError>;
    /// Clears one limit of a user.
    fn clear_user_limit(&self, user: &str, name: &str) -> Result<(), OpError>;
    /// RabbitMQ's aliveness test, as `user`: declares the queue `aliveness-test` in `vhost`
    /// (and leaves it), publishes a message to it and gets it back. `Ok(false)`: the message did
    /// not come back. Blocking: called off the runtime's workers.
    fn aliveness_test(&self, vhost: &str, user: &str) -> Result<bool, OpError>;
    /// The queues of a vhost, or of every vhost (`NotFound` for an unknown vhost), with the
    /// policies that apply to them.
    fn queues(&self, vhost: Option<&str>) -> Result<Vec<QueueInfo>, OpError>;
    /// queue.declare as `user` (its permissions apply).
    fn declare_queue(&self, user: &str, declare: QueueDeclare) -> Result<Put, OpError>;
    /// queue.delete as `user` (`NotFound` if there is no such queue).
    fn delete_queue(
        &self,
        user: &str,
        vhost: &str,
        name: &str,
        if_empty: bool,
        if_unused: bool,
    ) -> Result<(), OpError>;
    /// queue.purge as `user`.
    fn purge_queue(&self, user: &str, vhost: &str, name: &str) -> Result<(), OpError>;
    /// `/api/queues/V/Q/get`: takes up to `count` messages as `user` (basic.get without
    /// auto-ack), then settles them all as `mode` says. Blocking: called off the runtime's
    /// workers.
    fn get_messages(
        &self,
        user: &str,
        vhost: &str,
        queue: &str,
        count: usize,
        mode: AckMode,
    ) -> Result<Vec<GotMessage>, OpError>;
    /// `/api/exchanges/V/E/publish` as `user`, with the checks of an AMQP publish; waits for
    /// the message to be enqueued (and stored, if persistent). True if a queue took it.
    /// Blocking: called off the runtime's workers.
    fn publish(&self, user: &str, publish: Publish) -> Result<bool, OpError>;
    /// The exchanges of a vhost, or of every vhost (`NotFound` for an unknown vhost).
    fn exchanges(&self, vhost: Option<&str>) -> Result<Vec<ExchangeInfo>, OpError>;
    /// exchange.declare as `user`.
    fn declare_exchange(&self, user: &str, declare: ExchangeDeclare) -> Result<Put, OpError>;
    /// exchange.delete as `user` (`NotFound` if there is no such exchange).
    fn delete_exchange(
        &self,
        user: &str,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<(), OpError>;
    /// The bindings of a vhost, or of every vhost (`NotFound` for an unknown vhost).
    fn bindings(&self, vhost: Option<&str>) -> Result<Vec<BindingInfo>, OpError>;
    /// The policies (`operator`: operator policies) of every vhost, as the API shows them
    /// (`vhost`, `name`, `pattern`, `apply-to`, `definition`, `priority`).
    fn policies(&self, operator: bool) -> Vec<serde_json::Value>;
    /// Creates or replaces a policy from the API's body (`pattern` and `definition` present;
    /// `apply-to` and `priority` optional). Validation errors are `BadRequest` with RabbitMQ's
    /// `Validation failed` text; an unknown vhost `NotFoundReason("vhost_not_found")`.
    fn put_policy(
        &self,
        operator: bool,
        vhost: &str,
        name: &str,
        body: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Put, OpError>;
    /// Deletes a policy (`NotFound` if there is none).
    fn delete_policy(&self, operator: bool, vhost: &str, name: &str) -> Result<(), OpError>;
    /// queue.bind or exchange.bind as `user` (`NotFound` for an unknown vhost).
    fn bind(&self, user: &str, binding: &BindingInfo) -> Result<(), OpError>;
    /// queue.unbind or exchange.unbind as `user`.
    fn unbind(&self, user: &str, binding: &BindingInfo) -> Result<(), OpError>;
    /// Imports definitions (RabbitMQ's format) into the broker, or into one vhost; nothing is
    /// applied if an entry is bad (`Reason` with RabbitMQ's reason; an unknown target vhost
    /// `NotFoundReason("vhost_not_found")`). Blocking: called off the runtime's workers.
    fn import_definitions(
        &self,
        vhost: Option<&str>,
        definitions: &serde_json::Value,
    ) -> Result<(), OpError>;
    /// The definitions export (RabbitMQ's format), of the broker or of one vhost.
    fn export_definitions(&self, vhost: Option<&str>) -> Result<serde_json::Value, OpError>;
    /// The node's figures. Blocking (reads /proc and the filesystem): called off the runtime's
    /// workers.
    fn node_stats(&self) -> NodeStats;
    /// The amqps certificate file and when each of its certificates expires (seconds since the
    /// Unix epoch); `None` without TLS. Blocking (reads the file).
    fn certificate_expiry(&self) -> Option<(String, Vec<i64>)>;
    /// Every open connection (after its handshake).
    fn connections(&self) -> Vec<ConnectionRow>;
    /// Every open channel.
    fn channels(&self) -> Vec<ChannelRow>;
    /// Closes a connection with 320 CONNECTION_FORCED and `reason` (`NotFound` if none is
    /// named so).
    fn close_connection(&self, name: &str, reason: &str) -> Result<(), OpError>;
    /// The node-wide message counters (cheap: the overview's rates are computed from them).
    fn global_counters(&self) -> crate::metrics::GlobalCounters;
    /// One snapshot of everything the Prometheus endpoint shows. Blocking (reads /proc):
    /// called off the runtime's workers.
    fn metrics(&self) -> crate::metrics::MetricsSnapshot;
    /// The listeners, as (protocol, ip, port): `amqp`, `amqp/ssl`, `http`.
    fn listeners(&self) -> Vec<(String, IpAddr, u16)>;
}
