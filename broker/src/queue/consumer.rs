//! A consumer: a subscription of a channel to a queue.

use super::{Queue, QueueState};
use crate::channel::shared::{ChannelShared, Unacked};
use crate::connection::writer::Out;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// One basic.consume.
#[derive(Debug)]
pub struct Consumer {
    /// Consumer tag (unique on its channel).
    pub tag: Arc<str>,
    /// The channel it delivers to.
    pub channel: Arc<ChannelShared>,
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
    /// Unacked deliveries of this consumer.
    pub unacked: AtomicU32,
}

impl Consumer {
    /// Called with the queue locked: delivers the head message if this consumer may take it.
    pub(super) fn try_deliver(self: &Arc<Self>, queue: &Arc<Queue>, st: &mut QueueState) -> bool {
        let ch = &self.channel;
        if !ch.is_active() {
            return false;
        }
        if ch.outbox.is_congested() {
            ch.outbox.wait_for_drain(queue);
            return false;
        }
        if !self.no_ack
            && self.prefetch != 0
            && self.unacked.load(Ordering::Relaxed) >= self.prefetch
        {
            return false;
        }
        let mut d = ch.deliveries();
        if d.closed || (!self.no_ack && !d.has_channel_credit()) {
            return false;
        }
        let Some(r) = queue.pop_for_delivery(st) else {
            return false;
        };
        let tag = d.next_tag();
        let delivered = queue.as_delivered(&r, false);
        if self.no_ack {
            queue.unstore_one(&r);
        } else {
            queue.mark_delivered(&r);
            self.unacked.fetch_add(1, Ordering::Relaxed);
            st.unacked += 1;
            d.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                seq: r.seq,
                message: r.message.clone(),
                stored: r.stored,
                consumer: Some(self.clone()),
                expires_at: r.expires_at,
                delivery_count: r.delivery_count,
                delivered_at: crate::message::now_ms(),
            });
        }
        // Sent with the channel lock held so that tags reach the socket in order.
        ch.outbox.send(Out::Deliver {
            channel: ch.id,
            consumer_tag: self.tag.clone(),
            delivery_tag: tag,
            redelivered: r.redelivered,
            message: delivered,
        });
        true
    }
}
