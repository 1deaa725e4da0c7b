//! The part of a channel that queues touch when they deliver: delivery-tag counter, unacked deliveries,
//! the channel-wide prefetch limit, and the consumer registry. Shared as `Arc<ChannelShared>` between the
//! channel (in its connection's task) and the consumers it has on queues.
//!
//! Lock order: a queue's lock may be held while taking a channel's `deliveries` lock, never the reverse.

use crate::connection::writer::Outbox;
use crate::message::Message;
use crate::queue::{Consumer, Queue};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A delivery awaiting ack, nack or reject.
#[derive(Debug)]
pub struct Unacked {
    /// The channel's delivery tag.
    pub tag: u64,
    /// The queue it came from.
    pub queue: Arc<Queue>,
    /// Its position in that queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// A copy is in the store.
    pub stored: bool,
    /// The consumer it went to; `None` for basic.get.
    pub consumer: Option<Arc<Consumer>>,
    /// When it expires if returned (ms since the epoch; `queue::NEVER` if it does not).
    pub expires_at: u64,
    /// Times it was returned before this delivery.
    pub delivery_count: u32,
    /// When it was delivered (ms since the epoch), for the consumer timeout.
    pub delivered_at: u64,
}

/// Mutable delivery state of a channel.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// The last delivery tag used (tags start at 1).
    pub last_tag: u64,
    /// Unacked deliveries in tag order.
    pub unacked: VecDeque<Unacked>,
    /// basic.qos global=true: limit of unacked deliveries on the whole channel (0: none).
    pub channel_prefetch: u32,
    /// Consumers on this channel, by tag.
    pub consumers: HashMap<Arc<str>, Arc<Consumer>>,
    /// Set when the channel closes: queues must not deliver here any more.
    pub closed: bool,
}

impl Deliveries {
    /// Next delivery tag.
    pub fn next_tag(&mut self) -> u64 {
        self.last_tag += 1;
        self.last_tag
    }

    /// True if the channel-wide prefetch limit allows one more unacked delivery.
    pub fn has_channel_credit(&self) -> bool {
        self.channel_prefetch == 0 || (self.unacked.len() as u32) < self.channel_prefetch
    }
}

/// A channel as seen by the queues it consumes from.
#[derive(Debug)]
pub struct ChannelShared {
    /// Channel number.
    pub id: u16,
    /// Id of the owning connection.
    pub connection_id: u64,
    /// The connection's outbox.
    pub outbox: Arc<Outbox>,
    /// channel.flow: false stops deliveries.
    pub active: AtomicBool,
    /// The client asked for basic.cancel notifications (capability consumer_cancel_notify).
    pub cancel_notify: bool,
    deliveries: Mutex<Deliveries>,
}

impl ChannelShared {
    /// A new open channel.
    pub fn new(id: u16, connection_id: u64, outbox: Arc<Outbox>, cancel_notify: bool) -> Self {
        ChannelShared {
            id,
            connection_id,
            outbox,
            active: AtomicBool::new(true),
            cancel_notify,
            deliveries: Mutex::new(Deliveries::default()),
        }
    }

    /// Locks the delivery state (short critical sections only; never across an await).
    pub fn deliveries(&self) -> MutexGuard<'_, Deliveries> {
        self.deliveries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when flow is on.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }
}
