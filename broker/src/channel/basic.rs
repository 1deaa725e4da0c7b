//! basic.qos, consume, cancel, publish (after content assembly), get, ack, nack, reject, recover.

use super::ConnectionContext;
use super::{Channel, HeldPublish, HeldSettle, Outcome};
use crate::direct_reply::REPLY_QUEUE;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Exchange;
use crate::message::Message;
use crate::outbox::Out;
use crate::persist::ConfirmWait;
use crate::queue::{ConsumeCheck, Consumer, DeliverySink};
use crate::vhost::generated_name;
use crate::vhost::Published;
use amqp_codec::protocol::basic as b;
use amqp_codec::{AMQPClass, Assembled};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

impl Channel {
    pub(super) fn handle_basic_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: b::AMQPMethod,
    ) -> AmqpResult<()> {
        match m {
            b::AMQPMethod::Qos(qos) => {
                // A non-zero prefetch_size is refused by the codec (FrameError::PrefetchSize).
                if qos.global {
                    self.shared.deliveries().channel_prefetch = qos.prefetch_count as u32;
                    // A raised limit may let consumers on this channel take more now.
                    self.dispatch_consumed_queues();
                } else {
                    // As RabbitMQ 3.10: a per-consumer limit also lifts the channel-wide one.
                    self.consumer_prefetch = qos.prefetch_count as u32;
                    self.shared
                        .mode
                        .prefetch_count
                        .store(self.consumer_prefetch, std::sync::atomic::Ordering::Relaxed);
                    self.shared.deliveries().channel_prefetch = 0;
                    self.dispatch_consumed_queues();
                }
                self.send(AMQPClass::Basic(b::AMQPMethod::QosOk(b::QosOk {})));
            }
            b::AMQPMethod::Consume(c) => self.consume(ctx, c)?,
            b::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.as_str();
                if self.reply.as_ref().is_some_and(|(t, _)| t.as_ref() == tag) {
                    let (_, address) = self.reply.take().expect("reply consumer");
                    ctx.vhost.replies.unregister(&address);
                }
                let consumer = self.shared.deliveries().consumers.remove(tag);
                // Cancelling an unknown tag is not an error in RabbitMQ.
                if let Some(consumer) = consumer {
                    if consumer.queue.cancel(&consumer) {
                        ctx.vhost.delete_queue(&consumer.queue);
                    }
                }
                if !c.nowait {
                    self.send(AMQPClass::Basic(b::AMQPMethod::CancelOk(b::CancelOk {
                        consumer_tag: c.consumer_tag,
                    })));
                }
            }
            b::AMQPMethod::Get(g) => {
                let name = self.queue_name(g.queue.as_str())?;
                let queue = self.readable_queue(ctx, &name)?;
                let sink: Arc<dyn DeliverySink> = self.shared.clone();
                if !queue.get(&sink, g.no_ack) {
                    // Answered once the queue read its head from the store.
                    self.get_pending = true;
                }
            }
            b::AMQPMethod::Ack(a) => {
                let entries = self.take_unacked(a.delivery_tag, a.multiple)?;
                self.settle_or_hold(entries, Outcome::Ack);
            }
            b::AMQPMethod::Nack(n) => {
                let entries = self.take_unacked(n.delivery_tag, n.multiple)?;
                let outcome = if n.requeue {
                    Outcome::Requeue
                } else {
                    Outcome::Discard
                };
                self.settle_or_hold(entries, outcome);
            }
            b::AMQPMethod::Reject(r) => {
                let entries = self.take_unacked(r.delivery_tag, false)?;
                let outcome = if r.requeue {
                    Outcome::Requeue
                } else {
                    Outcome::Discard
                };
                self.settle_or_hold(entries, outcome);
            }
            b::AMQPMethod::Recover(r) => {
                // recover-ok goes out before the redeliveries, as RabbitMQ does (lapin drops
                // deliveries that arrive between recover and recover-ok).
                self.recover(r.requeue, true)?;
            }
            b::AMQPMethod::RecoverAsync(r) => self.recover(r.requeue, false)?,
            other => {
                return Err(AmqpError::command_invalid(format!(
                    "unexpected basic method {}",
                    AMQPClass::Basic(other).get_amqp_method_id()
                )))
            }
        }
        Ok(())
    }

    fn recover(&mut self, requeue: bool, reply: bool) -> AmqpResult<()> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        if reply {
            self.send(AMQPClass::Basic(b::AMQPMethod::RecoverOk(b::RecoverOk {})));
        }
        let entries: Vec<_> = std::mem::take(&mut self.shared.deliveries().unacked).into();
        self.settle(entries, Outcome::Requeue);
        Ok(())
    }

    fn consume(&mut self, ctx: &mut ConnectionContext<'_>, c: b::Consume) -> AmqpResult<()> {
        let name = self.queue_name(c.queue.as_str())?;
        if name == REPLY_QUEUE {
            return self.consume_replies(ctx, c);
        }
        let queue = self.readable_queue(ctx, &name)?;
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            generated_name("amq.ctag").into()
        } else {
            c.consumer_tag.as_str().into()
        };
        if self.shared.deliveries().consumers.contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let consumer = Arc::new(Consumer {
            tag: tag.clone(),
            sink: self.shared.clone(),
            queue: queue.clone(),
            no_ack: c.no_ack,
            exclusive: c.exclusive,
            prefetch: self.consumer_prefetch,
            priority: c
                .arguments
                .inner()
                .get("x-priority")
                .and_then(crate::args::as_int)
                .unwrap_or(0) as i64,
            unacked: AtomicU32::new(0),
        });
        match queue.consume(consumer, !c.nowait) {
            ConsumeCheck::Ok => Ok(()),
            ConsumeCheck::ExclusiveInUse => Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                queue.name, queue.vhost
            ))),
            ConsumeCheck::Deleted => Err(ctx.vhost.no_queue(&queue.name)),
        }
    }

    /// basic.consume of `amq.rabbitmq.reply-to`: this channel's direct reply-to consumer.
    fn consume_replies(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        c: b::Consume,
    ) -> AmqpResult<()> {
        if !c.no_ack {
            return Err(AmqpError::precondition_failed(
                "reply consumer cannot acknowledge",
            ));
        }
        if self.reply.is_some() {
            return Err(AmqpError::precondition_failed("reply consumer already set"));
        }
        let tag: Arc<str> = if c.consumer_tag.as_str().is_empty() {
            generated_name("amq.ctag").into()
        } else {
            c.consumer_tag.as_str().into()
        };
        let sink = Arc::downgrade(&self.shared);
        let sink: std::sync::Weak<dyn crate::direct_reply::ReplySink> = sink;
        let address = ctx.vhost.replies.register(sink, tag.clone());
        if !c.nowait {
            self.send(AMQPClass::Basic(b::AMQPMethod::ConsumeOk(b::ConsumeOk {
                consumer_tag: tag.as_ref().into(),
            })));
        }
        self.reply = Some((tag, address));
        Ok(())
    }

    /// Removes the deliveries an ack/nack/reject names, with RabbitMQ's rules: `multiple` with tag 0
    /// means all; otherwise the tag itself must be outstanding (406 `unknown delivery tag N`).
    fn take_unacked(&mut self, tag: u64, multiple: bool) -> AmqpResult<Vec<super::Unacked>> {
        let mut d = self.shared.deliveries();
        if multiple && tag == 0 {
            return Ok(d.unacked.drain(..).collect());
        }
        match d.unacked.binary_search_by_key(&tag, |u| u.tag) {
            Ok(i) if multiple => Ok(d.unacked.drain(..=i).collect()),
            Ok(i) => Ok(vec![d.unacked.remove(i).expect("index found")]),
            Err(_) => Err(AmqpError::precondition_failed(format!(
                "unknown delivery tag {tag}"
            ))),
        }
    }

    fn settle_or_hold(&mut self, entries: Vec<super::Unacked>, outcome: Outcome) {
        match &mut self.tx {
            Some(tx) => tx.settles.push(HeldSettle { entries, outcome }),
            None => self.settle(entries, outcome),
        }
    }

    /// A whole message arrived: check it, then route it (or hold it in a transaction).
    pub(super) fn publish(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        a: Assembled<b::Publish>,
    ) -> AmqpResult<()> {
        let p = a.method;
        let exchange = ctx.vhost.publish_target(
            p.exchange.as_str(),
            p.routing_key.as_str(),
            ctx.caller,
            &mut self.publish_cache,
        )?;
        ctx.vhost
            .check_message(&exchange, &a.properties, ctx.user, ctx.caller)?;
        if p.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        let mut message = Message::new(
            p.exchange.as_str().to_string(),
            p.routing_key.as_str().to_string(),
            a.properties,
            a.body,
        );
        if message.properties.has_headers() {
            message = message.with_sender_selected_keys().map_err(|reason| {
                AmqpError::precondition_failed(format!("invalid message: {reason}"))
            })?;
        }
        if message.properties.reply_to() == Some(REPLY_QUEUE) {
            // A direct reply-to request: the reply goes to this channel's reply consumer.
            let Some((_, address)) = &self.reply else {
                return Err(AmqpError::precondition_failed(
                    "fast reply consumer does not exist",
                ));
            };
            message.properties = message.properties.with_reply_to(address);
        }
        let message = Arc::new(message);
        if let Some(tx) = &mut self.tx {
            tx.publishes.push(HeldPublish {
                mandatory: p.mandatory,
                exchange,
                message,
            });
            return Ok(());
        }
        let confirm = self.start_confirm(ctx.events);
        crate::metrics::COUNTERS.received.inc();
        if confirm.is_some() {
            crate::metrics::COUNTERS.received_confirm.inc();
        }
        let wait = confirm.as_ref().map(|(_, w)| w);
        self.route_and_enqueue(ctx, &exchange, message, p.mandatory, wait);
        if let Some((seq, wait)) = confirm {
            self.finish_confirm(seq, wait);
        }
        Ok(())
    }

    /// Publishes a message through the vhost; returns it to the publisher if it was mandatory
    /// and nothing took it.
    pub(super) fn route_and_enqueue(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        exchange: &Exchange,
        message: Arc<Message>,
        mandatory: bool,
        wait: Option<&Arc<ConfirmWait>>,
    ) {
        let published = ctx.vhost.publish(
            exchange,
            message.clone(),
            wait,
            &mut self.route_buf,
            ctx.congested,
        );
        ctx.vhost.count_publish(exchange, &message, published);
        let c = &crate::metrics::COUNTERS;
        let mine = &self.shared.publishes;
        mine.publish.add(1);
        match published {
            Published::Routed(_) => c.routed.inc(),
            Published::Unroutable if mandatory => {
                c.unroutable_returned.inc();
                mine.return_unroutable.add(1);
            }
            Published::Unroutable => {
                c.unroutable_dropped.inc();
                mine.drop_unroutable.add(1);
            }
        }
        if published == Published::Unroutable && mandatory {
            self.shared.outbox.send(Out::Return {
                channel: self.shared.id,
                reply_code: 312,
                reply_text: "NO_ROUTE",
                message,
            });
        }
    }
}
