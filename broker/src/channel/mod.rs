//! A channel: its frames, dispatched to one handler per method class.
//!
//! * `exchange.rs`: exchange.declare/delete/bind/unbind
//! * `queue.rs`: queue.declare/bind/unbind/purge/delete
//! * `basic.rs`: basic.qos/consume/cancel/publish/get/ack/nack/reject/recover
//! * `tx.rs`: tx.select/commit/rollback
//! * `confirm.rs`: confirm.select and publisher confirms
//!
//! The channel's private state lives here, owned by the connection's task; what queues need when they
//! deliver (tags, unacked deliveries, consumers) is in [`shared::ChannelShared`].

mod basic;
mod confirm;
mod context;
mod exchange;
mod queue;
pub(crate) mod shared;
mod tx;

use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Exchange;
use crate::message::Message;
use crate::queue::{Consumer, Queue};
use amqp_codec::protocol::{basic as b, channel as chan};
use amqp_codec::{AMQPClass, ContentAssembler, ContentError, Frame};
pub(crate) use context::{ClientCapabilities, ConnectionContext};
pub use context::{ConnEvent, EventSender};
use shared::{ChannelLink, ChannelShared, Unacked};
use std::sync::Arc;
use tracing::debug;

/// What the connection does with the channel after a frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// Keep it open.
    Keep,
    /// It is closed: forget it.
    Remove,
}

/// A publish held back by a transaction until tx.commit.
#[derive(Debug)]
struct HeldPublish {
    mandatory: bool,
    exchange: Arc<Exchange>,
    message: Arc<Message>,
}

/// An ack, nack or reject held back by a transaction.
#[derive(Debug)]
struct HeldSettle {
    entries: Vec<Unacked>,
    outcome: Outcome,
}

/// What happens to settled deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Acked: gone.
    Ack,
    /// Back to the queue, at its original place.
    Requeue,
    /// Rejected without requeue: dropped (dead-lettered once that lands).
    Discard,
}

/// Transaction state (tx.select was seen).
#[derive(Debug, Default)]
struct Tx {
    publishes: Vec<HeldPublish>,
    settles: Vec<HeldSettle>,
}

/// A channel's private state.
#[derive(Debug)]
pub(crate) struct Channel {
    shared: Arc<ChannelShared>,
    closing: bool,
    assembler: ContentAssembler<b::Publish>,
    max_message_size: u64,
    /// basic.qos global=false: prefetch for consumers created from now on.
    consumer_prefetch: u32,
    /// Publisher confirms, once confirm.select was seen.
    confirm: Option<confirm::Confirms>,
    /// Tells this channel instance apart from an earlier one with the same number (events from the
    /// store for a closed channel must not confirm a newer channel's publishes).
    instance: u64,
    tx: Option<Tx>,
    /// The last exchange a publish on this channel was allowed to (permission checks).
    publish_cache: crate::auth::PublishCache,
    /// Most recently declared queue, for the empty-name shortcut.
    last_queue: String,
    route_buf: Vec<Arc<Queue>>,
    /// A tx.commit waits for the store.
    commit_pending: bool,
    /// A basic.get waits for the queue to read its head from the store.
    get_pending: bool,
    /// Frames that arrived meanwhile.
    held_frames: Vec<Frame>,
    /// The direct reply-to consumer: (consumer tag, reply address).
    reply: Option<(Arc<str>, String)>,
}

fn content_error(e: ContentError) -> AmqpError {
    match e {
        ContentError::MessageTooLarge { .. } => AmqpError::precondition_failed(e.to_string()),
        ContentError::BodyTooLong { .. } => AmqpError::frame_error(e.to_string()),
        ContentError::Properties(_) => {
            AmqpError::new(amqp_codec::ReplyCode::SyntaxError, e.to_string())
        }
        _ => AmqpError::unexpected_frame(e.to_string()),
    }
}

impl Channel {
    /// A newly opened channel.
    pub(crate) fn new(link: ChannelLink, max_message_size: u64) -> Self {
        crate::metrics::COUNTERS.channels_opened.inc();
        let instance = confirm::next_instance();
        Channel {
            shared: Arc::new(ChannelShared::new(link, instance)),
            closing: false,
            assembler: ContentAssembler::default(),
            max_message_size,
            consumer_prefetch: 0,
            confirm: None,
            instance,
            tx: None,
            publish_cache: Default::default(),
            last_queue: String::new(),
            route_buf: Vec::new(),
            reply: None,
            commit_pending: false,
            get_pending: false,
            held_frames: Vec::new(),
        }
    }

    /// The part of the channel queues deliver to (and listings read).
    pub(crate) fn shared(&self) -> &Arc<ChannelShared> {
        &self.shared
    }

    fn id(&self) -> u16 {
        self.shared.id
    }

    fn send(&self, m: AMQPClass) {
        self.shared.outbox.method(self.shared.id, m);
    }

    /// True while the channel waits for a tx.commit's store writes or for a basic.get's read
    /// from the store: its later frames must be held, so that replies keep their order.
    pub(crate) fn is_waiting(&self) -> bool {
        self.commit_pending || self.get_pending
    }

    /// Keeps a frame that arrived while the channel waits.
    pub(crate) fn hold(&mut self, frame: Frame) {
        self.held_frames.push(frame);
    }

    /// A basic.get that waited for the store was answered: returns the frames held meanwhile, to
    /// be handled now in order.
    pub(crate) fn get_answered(&mut self, instance: u64) -> Vec<Frame> {
        if instance != self.instance || !self.get_pending {
            return Vec::new();
        }
        self.get_pending = false;
        std::mem::take(&mut self.held_frames)
    }

    /// Handles one frame for this channel.
    pub(crate) fn handle_frame(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        frame: Frame,
    ) -> AmqpResult<After> {
        if self.closing {
            // After we sent channel.close, everything but close-ok (or a crossing close) is ignored.
            return Ok(match frame {
                Frame::Method(_, AMQPClass::Channel(chan::AMQPMethod::CloseOk(_))) => After::Remove,
                Frame::Method(_, AMQPClass::Channel(chan::AMQPMethod::Close(_))) => {
                    self.send(AMQPClass::Channel(chan::AMQPMethod::CloseOk(
                        chan::CloseOk {},
                    )));
                    After::Remove
                }
                _ => After::Keep,
            });
        }
        // Errors in the content sequence name the publish that started it, as RabbitMQ's do.
        let in_content = !self.assembler.is_idle();
        let content_error = |e: ContentError| {
            let e = content_error(e);
            if in_content {
                e.on_method(60, 40)
            } else {
                e
            }
        };
        match frame {
            Frame::Method(_, AMQPClass::Basic(b::AMQPMethod::Publish(p))) => {
                self.assembler
                    .start(p)
                    .map_err(content_error)
                    .map_err(|e| e.on_method(60, 40))?;
                Ok(After::Keep)
            }
            Frame::Method(_, m) => {
                let (class_id, method_id) = (m.get_amqp_class_id(), m.get_amqp_method_id());
                self.assembler.check_method().map_err(content_error)?;
                self.handle_method(ctx, m)
                    .map_err(|e| e.on_method(class_id, method_id))
            }
            Frame::Header(_, h) => {
                let header = self.assembler.header(h, self.max_message_size);
                if let Some(done) = header.map_err(content_error)? {
                    self.publish(ctx, done).map_err(|e| e.on_method(60, 40))?;
                }
                Ok(After::Keep)
            }
            Frame::Body(_, body) => {
                if let Some(done) = self.assembler.body(body).map_err(content_error)? {
                    self.publish(ctx, done).map_err(|e| e.on_method(60, 40))?;
                }
                Ok(After::Keep)
            }
            Frame::Heartbeat(_) => Ok(After::Keep),
        }
    }

    fn handle_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: AMQPClass,
    ) -> AmqpResult<After> {
        match m {
            AMQPClass::Channel(m) => return self.handle_channel_method(ctx, m),
            AMQPClass::Exchange(m) => self.handle_exchange_method(ctx, m)?,
            AMQPClass::Queue(m) => self.handle_queue_method(ctx, m)?,
            AMQPClass::Basic(m) => self.handle_basic_method(ctx, m)?,
            AMQPClass::Tx(m) => self.handle_tx_method(ctx, m)?,
            AMQPClass::Confirm(m) => self.handle_confirm_method(m)?,
            AMQPClass::Access(_) => {
                // access.request is obsolete; RabbitMQ answers it with a dummy ticket.
                self.send(AMQPClass::Access(
                    amqp_codec::protocol::access::AMQPMethod::RequestOk(
                        amqp_codec::protocol::access::RequestOk {},
                    ),
                ));
            }
            AMQPClass::Connection(_) => {
                return Err(AmqpError::command_invalid(
                    "connection methods are only allowed on channel 0",
                ))
            }
        }
        Ok(After::Keep)
    }

    fn handle_channel_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: chan::AMQPMethod,
    ) -> AmqpResult<After> {
        match m {
            chan::AMQPMethod::Open(_) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            chan::AMQPMethod::Close(_) => {
                self.release(ctx);
                self.send(AMQPClass::Channel(chan::AMQPMethod::CloseOk(
                    chan::CloseOk {},
                )));
                debug!(channel = self.id(), "channel closed by client");
                Ok(After::Remove)
            }
            chan::AMQPMethod::CloseOk(_) => Ok(After::Keep),
            chan::AMQPMethod::Flow(f) => {
                self.shared
                    .active
                    .store(f.active, std::sync::atomic::Ordering::Relaxed);
                self.send(AMQPClass::Channel(chan::AMQPMethod::FlowOk(chan::FlowOk {
                    active: f.active,
                })));
                if f.active {
                    self.dispatch_consumed_queues();
                }
                Ok(After::Keep)
            }
            chan::AMQPMethod::FlowOk(_) => Ok(After::Keep),
            chan::AMQPMethod::OpenOk(_) => {
                Err(AmqpError::command_invalid("unexpected channel.open-ok"))
            }
        }
    }

    /// Closes the channel because of `e`: releases its resources and sends channel.close; frames are
    /// ignored until the client's close-ok.
    pub(crate) fn close_with_error(&mut self, ctx: &mut ConnectionContext<'_>, e: AmqpError) {
        self.release(ctx);
        self.closing = true;
        self.send(AMQPClass::Channel(chan::AMQPMethod::Close(chan::Close {
            reply_code: e.code.code(),
            reply_text: e.reply_text().into(),
            class_id: e.class_id,
            method_id: e.method_id,
        })));
    }

    /// True if a consumer is active on this channel.
    pub(crate) fn has_consumers(&self) -> bool {
        !self.shared.deliveries().consumers.is_empty()
    }

    /// Cancels this channel's consumers and requeues its unacked deliveries (on close).
    pub(crate) fn release(&mut self, ctx: &mut ConnectionContext<'_>) {
        self.assembler.reset();
        if let Some((_, address)) = self.reply.take() {
            ctx.vhost.replies.unregister(&address);
        }
        let (consumers, unacked) = {
            let mut d = self.shared.deliveries();
            d.closed = true;
            let consumers: Vec<_> = d.consumers.drain().map(|(_, c)| c).collect();
            (consumers, std::mem::take(&mut d.unacked))
        };
        for c in consumers {
            if c.queue.cancel(&c) {
                ctx.vhost.delete_queue(&c.queue);
            }
        }
        let mut entries: Vec<Unacked> = unacked.into();
        if let Some(tx) = self.tx.take() {
            for held in tx.settles {
                entries.extend(held.entries);
            }
        }
        entries.sort_by_key(|u| u.tag);
        self.settle(entries, Outcome::Requeue);
    }

    /// Applies an outcome to settled deliveries, then lets queues with freed credit deliver again.
    fn settle(&mut self, entries: Vec<Unacked>, outcome: Outcome) {
        if entries.is_empty() {
            return;
        }
        let mut freed_consumer_queues: Vec<Arc<Queue>> = Vec::new();
        let mut i = 0;
        while i < entries.len() {
            // Batch runs of entries from the same queue.
            let q = entries[i].queue.clone();
            let mut j = i;
            while j < entries.len() && Arc::ptr_eq(&entries[j].queue, &q) {
                if let Some(c) = &entries[j].consumer {
                    c.unacked.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    if !freed_consumer_queues
                        .iter()
                        .any(|f| Arc::ptr_eq(f, &c.queue))
                    {
                        freed_consumer_queues.push(c.queue.clone());
                    }
                }
                j += 1;
            }
            match outcome {
                Outcome::Ack => {
                    crate::metrics::COUNTERS.acknowledged.add((j - i) as u64);
                    self.shared.publishes.ack.add((j - i) as u64);
                    q.acked(&entries[i..j])
                }
                Outcome::Discard => q.discarded(&entries[i..j]),
                Outcome::Requeue => q.requeue(&entries[i..j]),
            }
            i = j;
        }
        if self.shared.deliveries().channel_prefetch > 0 {
            self.dispatch_consumed_queues();
        } else {
            for q in freed_consumer_queues {
                q.dispatch();
            }
        }
    }

    /// Deliveries held unacknowledged past their consumer timeout (`x-consumer-timeout` of their
    /// queue, else `default`). A consumer on a channel whose client takes cancel notifications is
    /// cancelled (basic.cancel) and its deliveries requeued, so only that consumer stops; otherwise,
    /// as RabbitMQ does, the channel is closed with 406 (the error is returned).
    pub(crate) fn check_consumer_timeouts(
        &mut self,
        now: u64,
        default: u64,
        vhost: &crate::vhost::VHost,
    ) -> Option<AmqpError> {
        let timeout_of = |q: &Queue| q.consumer_timeout().unwrap_or(default);
        let mut cancel: Vec<Arc<Consumer>> = Vec::new();
        {
            let d = self.shared.deliveries();
            if d.unacked.is_empty() {
                return None;
            }
            // Deliveries are in time order: stop at the first younger than the shortest timeout.
            let shortest = d
                .consumers
                .values()
                .map(|c| timeout_of(&c.queue))
                .chain(std::iter::once(default))
                .filter(|&t| t > 0)
                .min();
            let shortest = shortest?;
            for u in d.unacked.iter() {
                let age = now.saturating_sub(u.delivered_at);
                if age < shortest {
                    break;
                }
                let t = timeout_of(&u.queue);
                if t == 0 || age < t {
                    continue;
                }
                match &u.consumer {
                    Some(c) if self.shared.cancel_notify => {
                        if !cancel.iter().any(|x| Arc::ptr_eq(x, c)) {
                            cancel.push(c.clone());
                        }
                    }
                    _ => {
                        return Some(AmqpError::precondition_failed(format!(
                            "delivery acknowledgement on channel {} timed out. Timeout value used: {t} ms. This timeout value can be configured, see consumers doc guide to learn more",
                            self.shared.id
                        )))
                    }
                }
            }
        }
        for c in cancel {
            tracing::warn!(
                channel = self.shared.id,
                queue = %c.queue.name,
                "consumer '{}' held a delivery unacknowledged past its timeout of {} ms: cancelling it",
                c.tag,
                timeout_of(&c.queue)
            );
            let returned: Vec<Unacked> = {
                let mut d = self.shared.deliveries();
                d.consumers.remove(&c.tag);
                let (mine, rest): (Vec<Unacked>, Vec<Unacked>) = d
                    .unacked
                    .drain(..)
                    .partition(|u| u.consumer.as_ref().is_some_and(|x| Arc::ptr_eq(x, &c)));
                d.unacked = rest.into();
                mine
            };
            if c.queue.cancel(&c) {
                vhost.delete_queue(&c.queue);
            }
            self.send(AMQPClass::Basic(b::AMQPMethod::Cancel(b::Cancel {
                consumer_tag: c.tag.as_ref().into(),
                nowait: true,
            })));
            self.settle(returned, Outcome::Requeue);
        }
        None
    }

    fn dispatch_consumed_queues(&self) {
        let queues: Vec<Arc<Queue>> = {
            let d = self.shared.deliveries();
            let mut qs: Vec<Arc<Queue>> = Vec::with_capacity(d.consumers.len());
            for c in d.consumers.values() {
                if !qs.iter().any(|q| Arc::ptr_eq(q, &c.queue)) {
                    qs.push(c.queue.clone());
                }
            }
            qs
        };
        for q in queues {
            q.dispatch();
        }
    }

    /// Expands the empty queue name to the channel's most recently declared queue.
    fn queue_name(&self, name: &str) -> AmqpResult<String> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        if self.last_queue.is_empty() {
            return Err(AmqpError::not_found("no previously declared queue"));
        }
        Ok(self.last_queue.clone())
    }

    /// Finds a queue this connection may use (404 if missing, 405 if another connection's exclusive one).
    fn readable_queue(&self, ctx: &ConnectionContext<'_>, name: &str) -> AmqpResult<Arc<Queue>> {
        ctx.vhost.readable_queue(name, ctx.caller)
    }
}

impl Drop for Channel {
    /// A channel ends once, however it ends (closed, failed, or with its connection).
    fn drop(&mut self) {
        crate::metrics::COUNTERS.channels_closed.inc();
    }
}
