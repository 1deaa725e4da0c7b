//! queue.declare, queue.bind, queue.unbind, queue.purge, queue.delete: translations of the methods
//! into the vhost's queue operations (`vhost/queues.rs`), which hold the rules.

use super::Channel;
use super::ConnectionContext;
use crate::direct_reply::{REPLY_PREFIX, REPLY_QUEUE};
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Destination;
use crate::queue::QueueSpec;
use crate::vhost::{BindingSpec, DeleteIf};
use amqp_codec::protocol::queue as q;
use amqp_codec::AMQPClass;

impl Channel {
    pub(super) fn handle_queue_method(
        &mut self,
        ctx: &mut ConnectionContext<'_>,
        m: q::AMQPMethod,
    ) -> AmqpResult<()> {
        match m {
            q::AMQPMethod::Declare(d) => self.queue_declare(ctx, d),
            q::AMQPMethod::Bind(bnd) => {
                let name = self.queue_name(bnd.queue.as_str())?;
                // An empty queue name and key bind with the last declared queue's name as key.
                let key = if bnd.routing_key.as_str().is_empty() && bnd.queue.as_str().is_empty() {
                    name.clone()
                } else {
                    bnd.routing_key.as_str().to_string()
                };
                let spec = BindingSpec {
                    source: bnd.exchange.as_str().to_string(),
                    destination: Destination::Queue(name),
                    routing_key: key,
                    arguments: bnd.arguments,
                };
                ctx.vhost.bind(&spec, ctx.caller)?;
                if !bnd.nowait {
                    self.send(AMQPClass::Queue(q::AMQPMethod::BindOk(q::BindOk {})));
                }
                Ok(())
            }
            q::AMQPMethod::Unbind(u) => {
                let spec = BindingSpec {
                    source: u.exchange.as_str().to_string(),
                    destination: Destination::Queue(self.queue_name(u.queue.as_str())?),
                    routing_key: u.routing_key.as_str().to_string(),
                    arguments: u.arguments,
                };
                ctx.vhost.unbind(&spec, ctx.caller)?;
                self.send(AMQPClass::Queue(q::AMQPMethod::UnbindOk(q::UnbindOk {})));
                Ok(())
            }
            q::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                let message_count = ctx.vhost.purge_queue(&name, ctx.caller)?;
                if !p.nowait {
                    self.send(AMQPClass::Queue(q::AMQPMethod::PurgeOk(q::PurgeOk {
                        message_count,
                    })));
                }
                Ok(())
            }
            q::AMQPMethod::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                let only_if = DeleteIf {
                    unused: d.if_unused,
                    empty: d.if_empty,
                };
                let (deleted, message_count) =
                    ctx.vhost.delete_queue_named(&name, ctx.caller, only_if)?;
                if let Some(queue) = deleted {
                    ctx.exclusive_queues
                        .retain(|q| !std::sync::Arc::ptr_eq(q, &queue));
                }
                if !d.nowait {
                    self.send(AMQPClass::Queue(q::AMQPMethod::DeleteOk(q::DeleteOk {
                        message_count,
                    })));
                }
                Ok(())
            }
            other => Err(AmqpError::command_invalid(format!(
                "unexpected queue method {}",
                AMQPClass::Queue(other).get_amqp_method_id()
            ))),
        }
    }

    fn queue_declare(&mut self, ctx: &mut ConnectionContext<'_>, d: q::Declare) -> AmqpResult<()> {
        let requested = d.queue.as_str();
        // Direct reply-to: the pseudo-queue always exists; a live reply address does too.
        if requested == REPLY_QUEUE
            || (d.passive
                && requested.starts_with(REPLY_PREFIX)
                && ctx.vhost.replies.is_live(requested))
        {
            if !d.nowait {
                self.send(AMQPClass::Queue(q::AMQPMethod::DeclareOk(q::DeclareOk {
                    queue: requested.into(),
                    message_count: 0,
                    consumer_count: 1,
                })));
            }
            return Ok(());
        }
        let queue = if d.passive {
            // No empty-name shortcut here: RabbitMQ answers `no queue ''`.
            ctx.vhost.usable_queue(requested, ctx.caller)?
        } else {
            let spec = QueueSpec {
                name: requested.to_string(),
                durable: d.durable,
                exclusive_owner: d.exclusive.then_some(ctx.id),
                auto_delete: d.auto_delete,
                arguments: d.arguments,
            };
            let declared = ctx.vhost.declare_queue(spec, ctx.caller)?;
            if declared.created && d.exclusive {
                ctx.exclusive_queues.push(declared.queue.clone());
            }
            declared.queue
        };
        self.last_queue = queue.name.clone();
        queue.touch();
        if !d.nowait {
            let (message_count, consumer_count) = queue.counts();
            self.send(AMQPClass::Queue(q::AMQPMethod::DeclareOk(q::DeclareOk {
                queue: queue.name.as_str().into(),
                message_count,
                consumer_count,
            })));
        }
        Ok(())
    }
}
