//! The part of a channel that queues touch when they deliver: delivery-tag counter, unacked
//! deliveries, the channel-wide prefetch limit, and the consumer registry. Shared as
//! `Arc<ChannelShared>` between the channel (in its connection's task) and the consumers it has
//! on queues, to which it is the [`DeliverySink`].
//!
//! Lock order: a queue's lock may be held while taking a channel's `deliveries` lock, never the
//! reverse.

use super::{ConnEvent, EventSender};
use crate::message::now_ms;
use crate::outbox::{Out, Outbox, Resume};
use crate::queue::{Consumer, Delivery, DeliverySink, Queue};
use amqp_codec::protocol::basic;
use amqp_codec::AMQPClass;
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
    /// The consumer it went to; `None` for basic.get.
    pub consumer: Option<Arc<Consumer>>,
    /// When it was delivered (ms since the epoch), for the consumer timeout.
    pub delivered_at: u64,
    /// The queue's record of it.
    pub delivery: Delivery,
}

impl AsRef<Delivery> for Unacked {
    fn as_ref(&self) -> &Delivery {
        &self.delivery
    }
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
    /// Messages handed out here (acks are counted in [`ChannelShared::publishes`]'s `ack`).
    pub counts: crate::message_stats::DeliverCounts,
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
    /// This channel instance (a reopened channel number is another one).
    pub instance: u64,
    /// Id of the owning connection.
    pub connection_id: u64,
    /// The connection's outbox.
    pub outbox: Arc<Outbox>,
    /// The connection's event mailbox (a basic.get answered from the store reports there).
    pub events: EventSender,
    /// channel.flow: false stops deliveries.
    pub active: AtomicBool,
    /// The client asked for basic.cancel notifications (capability consumer_cancel_notify).
    pub cancel_notify: bool,
    deliveries: Mutex<Deliveries>,
    /// What the management API shows of the channel's modes (written by the channel only).
    pub mode: ChannelMode,
    /// The channel's publish, confirm and ack counts (its `message_stats`).
    pub publishes: crate::message_stats::PublishCounts,
}

/// A channel's modes, as listed (`prefetch_count`, `confirm`, `transactional`).
#[derive(Debug, Default)]
pub struct ChannelMode {
    /// basic.qos global=false: the prefetch of consumers created from now on.
    pub prefetch_count: std::sync::atomic::AtomicU32,
    /// confirm.select was sent.
    pub confirm: AtomicBool,
    /// tx.select was sent.
    pub transactional: AtomicBool,
}

/// Who a channel is and where it sends: what [`ChannelShared::new`] needs.
#[derive(Debug, Clone)]
pub struct ChannelLink {
    /// Channel number.
    pub id: u16,
    /// Id of the owning connection.
    pub connection_id: u64,
    /// The connection's outbox.
    pub outbox: Arc<Outbox>,
    /// The connection's event mailbox.
    pub events: EventSender,
    /// The client takes basic.cancel notifications.
    pub cancel_notify: bool,
}

impl ChannelShared {
    /// A new open channel; `instance` tells it apart from earlier channels with its number.
    pub fn new(link: ChannelLink, instance: u64) -> Self {
        ChannelShared {
            id: link.id,
            instance,
            connection_id: link.connection_id,
            outbox: link.outbox,
            events: link.events,
            active: AtomicBool::new(true),
            cancel_notify: link.cancel_notify,
            deliveries: Mutex::new(Deliveries::default()),
            mode: ChannelMode::default(),
            publishes: Default::default(),
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

impl DeliverySink for ChannelShared {
    fn attached(&self, consumer: &Arc<Consumer>, announce: bool) {
        if announce {
            self.outbox.method(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: consumer.tag.as_ref().into(),
                })),
            );
        }
        self.deliveries()
            .consumers
            .insert(consumer.tag.clone(), consumer.clone());
    }

    fn offer(&self, consumer: &Arc<Consumer>, take: &mut crate::queue::sink::Take<'_>) -> bool {
        if !self.is_active() {
            return false;
        }
        if self.outbox.is_congested() {
            self.outbox.wait_for_drain(consumer.queue.clone());
            return false;
        }
        let mut d = self.deliveries();
        if d.closed || (!consumer.no_ack && !d.has_channel_credit()) {
            return false;
        }
        let Some(t) = take() else {
            return false;
        };
        let tag = d.next_tag();
        let c = &crate::metrics::COUNTERS;
        if consumer.no_ack {
            c.delivered_consume_auto_ack.inc();
        } else {
            c.delivered_consume_manual_ack.inc();
        }
        if t.redelivered {
            c.redelivered.inc();
        }
        d.counts.handed_out(false, consumer.no_ack, t.redelivered);
        if !consumer.no_ack {
            d.unacked.push_back(Unacked {
                tag,
                queue: consumer.queue.clone(),
                consumer: Some(consumer.clone()),
                delivered_at: now_ms(),
                delivery: t.delivery,
            });
        }
        // Sent with the channel lock held so that tags reach the socket in order.
        self.outbox.send(Out::Deliver {
            channel: self.id,
            consumer_tag: consumer.tag.clone(),
            delivery_tag: tag,
            redelivered: t.redelivered,
            message: t.outgoing,
        });
        true
    }

    fn answer_get(
        &self,
        queue: &Arc<Queue>,
        no_ack: bool,
        take: &mut crate::queue::sink::Take<'_>,
        deferred: bool,
    ) {
        {
            let mut d = self.deliveries();
            if !d.closed {
                match take() {
                    Some(t) => {
                        let tag = d.next_tag();
                        let c = &crate::metrics::COUNTERS;
                        if no_ack {
                            c.delivered_get_auto_ack.inc();
                        } else {
                            c.delivered_get_manual_ack.inc();
                        }
                        if t.redelivered {
                            c.redelivered.inc();
                        }
                        d.counts.handed_out(true, no_ack, t.redelivered);
                        if !no_ack {
                            d.unacked.push_back(Unacked {
                                tag,
                                queue: queue.clone(),
                                consumer: None,
                                delivered_at: now_ms(),
                                delivery: t.delivery,
                            });
                        }
                        self.outbox.send(Out::GetOk {
                            channel: self.id,
                            delivery_tag: tag,
                            redelivered: t.redelivered,
                            message_count: t.remaining,
                            message: t.outgoing,
                        });
                    }
                    None => {
                        crate::metrics::COUNTERS.get_empty.inc();
                        d.counts.get_empty += 1;
                        self.outbox.method(
                            self.id,
                            AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
                        )
                    }
                }
            }
        }
        if deferred {
            // The channel held its later methods until this answer: let it go on.
            let _ = self.events.send(ConnEvent::GetAnswered {
                channel: self.id,
                instance: self.instance,
            });
        }
    }

    fn cancelled(&self, consumer: &Arc<Consumer>) {
        let removed = self.deliveries().consumers.remove(&consumer.tag).is_some();
        if removed && self.cancel_notify {
            self.outbox.method(
                self.id,
                AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: consumer.tag.as_ref().into(),
                    nowait: true,
                })),
            );
        }
    }
}

impl crate::direct_reply::ReplySink for ChannelShared {
    fn deliver_reply(
        &self,
        consumer_tag: &Arc<str>,
        message: Arc<crate::message::Message>,
    ) -> bool {
        let mut d = self.deliveries();
        if d.closed {
            return false;
        }
        let delivery_tag = d.next_tag();
        self.outbox.send(Out::Deliver {
            channel: self.id,
            consumer_tag: consumer_tag.clone(),
            delivery_tag,
            redelivered: false,
            message,
        });
        true
    }
}

/// A queue that held off delivering to a backed-up connection resumes once it drains.
impl Resume for Queue {
    fn resume(self: Arc<Self>) {
        self.dispatch();
    }
}
