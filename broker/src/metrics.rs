//! Node-wide counters (what RabbitMQ's `rabbitmq_global_*` and churn metrics count). The
//! snapshot a Prometheus scrape renders from them is the management backend's
//! (`crate::management`); this module is a leaf, so that any layer may count.
//!
//! The counters are process-wide statics, as a node is a process: the code that counts
//! (channels, queues, the handshake) needs no handle to reach them, and a lower layer (a
//! queue) counts without knowing the broker. Each counter sits on its own cache line, so the
//! publishing core and the delivering core do not fight over one line; an increment is one
//! uncontended atomic add, and nothing is ever read on the hot path. In-process test brokers
//! share them, which no test relies on.

use management::metrics::GlobalCounters;
use std::sync::atomic::{AtomicU64, Ordering};

/// One counter alone on its cache line (128 bytes: adjacent-line prefetching pairs lines).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The total so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every node-wide counter.
#[derive(Debug)]
pub(crate) struct Counters {
    /// Messages received from publishers (AMQP and the management API).
    pub received: Counter,
    /// Of those, on confirm channels.
    pub received_confirm: Counter,
    /// Queue deliveries of routed messages (one per queue).
    pub routed: Counter,
    /// Publisher confirms sent (acks).
    pub confirmed: Counter,
    /// Unroutable, dropped.
    pub unroutable_dropped: Counter,
    /// Unroutable, returned.
    pub unroutable_returned: Counter,
    /// Consumer deliveries, auto-ack.
    pub delivered_consume_auto_ack: Counter,
    /// Consumer deliveries, manual ack.
    pub delivered_consume_manual_ack: Counter,
    /// basic.get answers, auto-ack.
    pub delivered_get_auto_ack: Counter,
    /// basic.get answers, manual ack.
    pub delivered_get_manual_ack: Counter,
    /// Empty basic.get answers.
    pub get_empty: Counter,
    /// Redeliveries.
    pub redelivered: Counter,
    /// Acknowledged deliveries.
    pub acknowledged: Counter,
    /// Dead-lettered, TTL.
    pub dead_lettered_expired: Counter,
    /// Dead-lettered, rejected.
    pub dead_lettered_rejected: Counter,
    /// Dead-lettered, length limit.
    pub dead_lettered_maxlen: Counter,
    /// Dead-lettered, delivery limit.
    pub dead_lettered_delivery_limit: Counter,
    /// Connections opened (handshake done).
    pub connections_opened: Counter,
    /// Connections closed, including those refused at login.
    pub connections_closed: Counter,
    /// Channels opened.
    pub channels_opened: Counter,
    /// Channels closed.
    pub channels_closed: Counter,
    /// Successful queue.declare calls.
    pub queues_declared: Counter,
    /// Queues created.
    pub queues_created: Counter,
    /// Queues deleted.
    pub queues_deleted: Counter,
    /// Logins tried.
    pub auth_attempts: Counter,
    /// Logins that passed.
    pub auth_succeeded: Counter,
    /// Logins refused.
    pub auth_failed: Counter,
}

/// The node's counters.
pub(crate) static COUNTERS: Counters = Counters {
    received: Counter::new(),
    received_confirm: Counter::new(),
    routed: Counter::new(),
    confirmed: Counter::new(),
    unroutable_dropped: Counter::new(),
    unroutable_returned: Counter::new(),
    delivered_consume_auto_ack: Counter::new(),
    delivered_consume_manual_ack: Counter::new(),
    delivered_get_auto_ack: Counter::new(),
    delivered_get_manual_ack: Counter::new(),
    get_empty: Counter::new(),
    redelivered: Counter::new(),
    acknowledged: Counter::new(),
    dead_lettered_expired: Counter::new(),
    dead_lettered_rejected: Counter::new(),
    dead_lettered_maxlen: Counter::new(),
    dead_lettered_delivery_limit: Counter::new(),
    connections_opened: Counter::new(),
    connections_closed: Counter::new(),
    channels_opened: Counter::new(),
    channels_closed: Counter::new(),
    queues_declared: Counter::new(),
    queues_created: Counter::new(),
    queues_deleted: Counter::new(),
    auth_attempts: Counter::new(),
    auth_succeeded: Counter::new(),
    auth_failed: Counter::new(),
};

/// The node-wide message counters now.
pub(crate) fn global() -> GlobalCounters {
    let c = &COUNTERS;
    GlobalCounters {
        received: c.received.get(),
        received_confirm: c.received_confirm.get(),
        routed: c.routed.get(),
        confirmed: c.confirmed.get(),
        unroutable_dropped: c.unroutable_dropped.get(),
        unroutable_returned: c.unroutable_returned.get(),
        delivered_consume_auto_ack: c.delivered_consume_auto_ack.get(),
        delivered_consume_manual_ack: c.delivered_consume_manual_ack.get(),
        delivered_get_auto_ack: c.delivered_get_auto_ack.get(),
        delivered_get_manual_ack: c.delivered_get_manual_ack.get(),
        get_empty: c.get_empty.get(),
        redelivered: c.redelivered.get(),
        acknowledged: c.acknowledged.get(),
        dead_lettered_expired: c.dead_lettered_expired.get(),
        dead_lettered_rejected: c.dead_lettered_rejected.get(),
        dead_lettered_maxlen: c.dead_lettered_maxlen.get(),
        dead_lettered_delivery_limit: c.dead_lettered_delivery_limit.get(),
    }
}
