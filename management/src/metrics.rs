//! The figures behind the Prometheus endpoint: one snapshot the broker takes per scrape
//! ([`crate::Backend::metrics`]). Counters are monotonic totals kept by the broker from start;
//! the endpoint only renders them (no rates, no history here).

/// Node-wide message counters (RabbitMQ's `rabbitmq_global_*`, protocol `amqp091`, classic
/// queues).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalCounters {
    /// Messages received from publishers.
    pub received: u64,
    /// Of those, on channels in confirm mode.
    pub received_confirm: u64,
    /// Messages routed to queues, counted once per queue.
    pub routed: u64,
    /// Messages confirmed to publishers.
    pub confirmed: u64,
    /// Unroutable messages published without `mandatory`: dropped.
    pub unroutable_dropped: u64,
    /// Unroutable messages published with `mandatory`: returned.
    pub unroutable_returned: u64,
    /// Deliveries to consumers with automatic acknowledgement.
    pub delivered_consume_auto_ack: u64,
    /// Deliveries to consumers with manual acknowledgement.
    pub delivered_consume_manual_ack: u64,
    /// basic.get answers with automatic acknowledgement.
    pub delivered_get_auto_ack: u64,
    /// basic.get answers with manual acknowledgement.
    pub delivered_get_manual_ack: u64,
    /// basic.get that found no message.
    pub get_empty: u64,
    /// Deliveries (consume or get) of messages delivered before.
    pub redelivered: u64,
    /// Messages acknowledged by consumers.
    pub acknowledged: u64,
    /// Messages dead-lettered because their TTL ran out.
    pub dead_lettered_expired: u64,
    /// Messages dead-lettered by basic.reject or basic.nack.
    pub dead_lettered_rejected: u64,
    /// Messages dead-lettered by a length limit (drop-head, reject-publish-dlx).
    pub dead_lettered_maxlen: u64,
    /// Messages dead-lettered past their delivery limit.
    pub dead_lettered_delivery_limit: u64,
}

/// Object churn since start (`rabbitmq_*_opened_total` and friends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Churn {
    /// Connections that completed their handshake.
    pub connections_opened: u64,
    /// Connections that ended (including those refused at login).
    pub connections_closed: u64,
    /// Channels opened.
    pub channels_opened: u64,
    /// Channels closed.
    pub channels_closed: u64,
    /// queue.declare calls (passive or not) that succeeded.
    pub queues_declared: u64,
    /// Queues created.
    pub queues_created: u64,
    /// Queues deleted (explicitly, auto-deleted, expired or with their connection).
    pub queues_deleted: u64,
    /// Login attempts.
    pub auth_attempts: u64,
    /// Logins that succeeded.
    pub auth_succeeded: u64,
    /// Logins that failed.
    pub auth_failed: u64,
}

/// The node's process and resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFigures {
    /// Open file descriptors.
    pub open_fds: u64,
    /// The descriptor limit.
    pub max_fds: u64,
    /// Open AMQP sockets.
    pub open_sockets: u64,
    /// The connection limit (`connection_max`, or the descriptor limit).
    pub max_sockets: u64,
    /// Resident memory (bytes).
    pub resident_memory: u64,
    /// The memory high watermark (bytes).
    pub memory_limit: u64,
    /// Free disk space where the data directory is (bytes).
    pub disk_free: u64,
    /// The free disk space low watermark (bytes).
    pub disk_free_limit: u64,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Seconds since the Unix epoch when the node started.
    pub start_time_seconds: f64,
    /// The memory alarm is in effect.
    pub memory_alarm: bool,
    /// The disk alarm is in effect.
    pub disk_alarm: bool,
}

/// One queue's figures (per-object `{vhost, queue}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Ready messages.
    pub messages_ready: u64,
    /// Delivered, not yet acknowledged.
    pub messages_unacked: u64,
    /// Consumers.
    pub consumers: u64,
    /// Messages clients published to it.
    pub published: u64,
}

/// One channel's figures (per-object `{channel}`; counters are the channel's own totals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelFigures {
    /// A stable name for the channel (the management API's channel name).
    pub id: String,
    /// Its vhost.
    pub vhost: String,
    /// Consumers on it.
    pub consumers: u64,
    /// Deliveries not yet acknowledged.
    pub messages_unacked: u64,
    /// Publishes not yet confirmed.
    pub messages_unconfirmed: u64,
    /// Messages published in an uncommitted transaction.
    pub messages_uncommitted: u64,
    /// Acknowledgements in an uncommitted transaction.
    pub acks_uncommitted: u64,
    /// The per-consumer prefetch (basic.qos without `global`).
    pub consumer_prefetch: u64,
    /// The channel-wide prefetch (basic.qos with `global`).
    pub channel_prefetch: u64,
    /// Messages published on it.
    pub published: u64,
    /// Of those, confirmed.
    pub confirmed: u64,
    /// Unroutable and returned.
    pub unroutable_returned: u64,
    /// Unroutable and dropped.
    pub unroutable_dropped: u64,
    /// basic.get answers, manual acknowledgement.
    pub get_ack: u64,
    /// basic.get answers, automatic acknowledgement.
    pub get: u64,
    /// Deliveries to consumers, manual acknowledgement.
    pub delivered_ack: u64,
    /// Deliveries to consumers, automatic acknowledgement.
    pub delivered: u64,
    /// Redeliveries.
    pub redelivered: u64,
    /// Acknowledgements.
    pub acked: u64,
    /// Empty basic.get answers.
    pub get_empty: u64,
}

/// One connection's figures (per-object; RabbitMQ labels them `channel`, with the
/// connection's id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFigures {
    /// A stable name for the connection (the management API's connection name).
    pub id: String,
    /// Bytes received.
    pub incoming_bytes: u64,
    /// Bytes sent.
    pub outgoing_bytes: u64,
    /// Frames received.
    pub incoming_packets: u64,
    /// Frames sent.
    pub outgoing_packets: u64,
    /// Open channels.
    pub channels: u64,
}

/// One exchange (for `/metrics/detailed`'s `exchange_names` and `exchange_bindings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeFigures {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// Its type (`direct`, `topic`, ...).
    pub kind: String,
    /// Bindings with it as the source.
    pub bindings: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// The node's name (`warren@host`).
    pub node: String,
    /// The cluster's name.
    pub cluster: String,
    /// The RabbitMQ version Warren presents itself as.
    pub rabbitmq_version: String,
    /// Warren's own version.
    pub warren_version: String,
    /// Node-wide counters.
    pub global: GlobalCounters,
    /// Churn counters.
    pub churn: Churn,
    /// The node.
    pub node_figures: NodeFigures,
    /// Connections open now (after their handshake).
    pub open_connections: u64,
    /// Channels open now.
    pub open_channels: u64,
    /// Consumers now.
    pub consumers: u64,
    /// Channels that have published, now.
    pub publishers: u64,
    /// Every vhost's name.
    pub vhosts: Vec<String>,
    /// Every queue.
    pub queues: Vec<QueueFigures>,
    /// Every open channel whose figures the broker keeps (may be fewer than `open_channels`).
    pub channels: Vec<ChannelFigures>,
    /// Every open connection whose figures the broker keeps (may be fewer than
    /// `open_connections`).
    pub connections: Vec<ConnectionFigures>,
    /// Every exchange.
    pub exchanges: Vec<ExchangeFigures>,
}
