//! A consumer: a subscription of a sink (a channel) to a queue.

use super::sink::DeliverySink;
use super::Queue;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

/// One basic.consume.
#[derive(Debug)]
pub struct Consumer {
    /// Consumer tag (unique on its channel).
    pub tag: Arc<str>,
    /// Where its deliveries go.
    pub sink: Arc<dyn DeliverySink>,
    /// The queue it consumes from.
    pub queue: Arc<Queue>,
    /// Deliveries need no ack.
    pub no_ack: bool,
    /// Sole consumer of its queue.
    pub exclusive: bool,
    /// basic.qos global=false in force when it was created: max unacked (0: none).
    pub prefetch: u32,
    /// The `x-priority` consume argument: higher priorities are served first.
    pub priority: i64,
    /// Unacked deliveries of this consumer (the queue counts them up, the settling channel
    /// down).
    pub unacked: AtomicU32,
}

impl Consumer {
    /// True if its own prefetch limit allows one more delivery.
    pub(super) fn has_credit(&self) -> bool {
        self.no_ack
            || self.prefetch == 0
            || self.unacked.load(std::sync::atomic::Ordering::Relaxed) < self.prefetch
    }
}
