//! queue.declare, queue.bind, queue.unbind, queue.purge, queue.delete.

use super::{check_exclusive, Channel};
use crate::connection::ConnectionContext;
use crate::direct_reply::{REPLY_PREFIX, REPLY_QUEUE};
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::Destination;
use crate::queue::{Queue, QueueArgs, QueueType};
use amqp_codec::protocol::queue as q;
use amqp_codec::types::FieldTable;
use amqp_codec::AMQPClass;
use rand::Rng;

/// Queue arguments whose values must match on redeclaration (as RabbitMQ checks them).
const EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-delivery-limit",
];

fn yes_no(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// RabbitMQ takes a missing `x-queue-type` and `classic` as the same on redeclaration: drops a
/// `classic` that only one side states.
fn classic_by_default(current: &FieldTable, new: &FieldTable) -> (FieldTable, FieldTable) {
    let classic = |t: &FieldTable| {
        t.inner()
            .get("x-queue-type")
            .and_then(crate::args::as_str)
            .is_some_and(|s| s == "classic")
    };
    let without = |t: &FieldTable| {
        let mut m = t.inner().clone();
        m.remove("x-queue-type");
        FieldTable::from(m)
    };
    let has = |t: &FieldTable| t.contains_key("x-queue-type");
    match (has(current), has(new)) {
        (true, false) if classic(current) => (without(current), new.clone()),
        (false, true) if classic(new) => (current.clone(), without(new)),
        _ => (current.clone(), new.clone()),
    }
}

/// A server-generated name: `amq.gen-` and 22 URL-safe base64 characters, like RabbitMQ's.
pub(super) fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
        .collect();
    format!("{prefix}-{suffix}")
}

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
                let key = if bnd.routing_key.as_str().is_empty() && bnd.queue.as_str().is_empty() {
                    name.clone()
                } else {
                    bnd.routing_key.as_str().to_string()
                };
                if bnd.exchange.as_str().is_empty() {
                    return Err(AmqpError::access_refused(
                        "operation not permitted on the default exchange",
                    ));
                }
                let queue = self.usable_queue(ctx, &name)?;
                let exchange = ctx.vhost.get_exchange(bnd.exchange.as_str())?;
                let dest = Destination::Queue(queue.name.clone());
                ctx.vhost.bind(&exchange, dest, &key, &bnd.arguments)?;
                if !bnd.nowait {
                    self.send(AMQPClass::Queue(q::AMQPMethod::BindOk(q::BindOk {})));
                }
                Ok(())
            }
            q::AMQPMethod::Unbind(u) => {
                let name = self.queue_name(u.queue.as_str())?;
                if u.exchange.as_str().is_empty() {
                    return Err(AmqpError::access_refused(
                        "operation not permitted on the default exchange",
                    ));
                }
                let queue = self.usable_queue(ctx, &name)?;
                // Unbinding from an exchange that does not exist succeeds in RabbitMQ 3.10.
                if let Some(exchange) = ctx.vhost.exchange(u.exchange.as_str()) {
                    let dest = Destination::Queue(queue.name.clone());
                    ctx.vhost
                        .unbind(&exchange, &dest, u.routing_key.as_str(), &u.arguments);
                }
                self.send(AMQPClass::Queue(q::AMQPMethod::UnbindOk(q::UnbindOk {})));
                Ok(())
            }
            q::AMQPMethod::Purge(p) => {
                let name = self.queue_name(p.queue.as_str())?;
                let queue = self.usable_queue(ctx, &name)?;
                let message_count = queue.purge();
                if !p.nowait {
                    self.send(AMQPClass::Queue(q::AMQPMethod::PurgeOk(q::PurgeOk {
                        message_count,
                    })));
                }
                Ok(())
            }
            q::AMQPMethod::Delete(d) => {
                let name = self.queue_name(d.queue.as_str())?;
                let message_count = match ctx.vhost.queue(&name) {
                    // Deleting a queue that does not exist succeeds, as in RabbitMQ.
                    None => 0,
                    Some(queue) => {
                        check_exclusive(ctx, &queue)?;
                        let (ready, consumers) = queue.counts();
                        if d.if_unused && consumers > 0 {
                            return Err(AmqpError::precondition_failed(format!(
                                "queue '{}' in vhost '{}' in use",
                                queue.name, queue.vhost
                            )));
                        }
                        if d.if_empty && ready > 0 {
                            return Err(AmqpError::precondition_failed(format!(
                                "queue '{}' in vhost '{}' not empty",
                                queue.name, queue.vhost
                            )));
                        }
                        ctx.exclusive_queues
                            .retain(|q| !std::sync::Arc::ptr_eq(q, &queue));
                        ctx.vhost.delete_queue(&queue)
                    }
                };
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
            self.usable_queue(ctx, requested)?
        } else {
            let name = if requested.is_empty() {
                generated_name("amq.gen")
            } else if requested.starts_with("amq.") {
                return Err(AmqpError::access_refused(format!(
                    "queue name '{requested}' contains reserved prefix 'amq.*'"
                )));
            } else {
                requested.to_string()
            };
            let what = format!("queue '{name}' in vhost '{}'", ctx.vhost.name);
            let args = QueueArgs::parse(&d.arguments, &what)?;
            if args.queue_type == QueueType::Quorum {
                // Quorum queues are durable, shared and long-lived (RabbitMQ's checks, in order).
                for (bad, property) in [
                    (d.auto_delete, "auto-delete"),
                    (d.exclusive, "exclusive-owner"),
                    (!d.durable, "non-durable"),
                ] {
                    if bad {
                        return Err(AmqpError::precondition_failed(format!(
                            "invalid property '{property}' for {what}"
                        )));
                    }
                }
            }
            let owner = d.exclusive.then_some(ctx.id);
            // Every queue may page a backlog out to the store; only durable, non-exclusive ones keep
            // their definition and persistent messages there (see `Queue::keeps_definition`).
            let persist = ctx.vhost.queue(&name).is_none().then(|| {
                let store = ctx.vhost.store().clone();
                let id = store.allocate_queue_ids(args.lanes() as u64);
                let budget = ctx.broker.config.queue_budget();
                crate::persist::Persistence { store, id, budget }
            });
            let fresh = Queue::new(
                name.clone(),
                ctx.vhost.name.clone(),
                d.durable,
                owner,
                d.auto_delete,
                d.arguments.clone(),
                args,
                persist,
                std::sync::Arc::downgrade(ctx.vhost),
            );
            match ctx.vhost.insert_queue(fresh) {
                Ok(created) => {
                    if d.exclusive {
                        ctx.exclusive_queues.push(created.clone());
                    }
                    created
                }
                Err(existing) => {
                    check_exclusive(ctx, &existing)?;
                    if existing.exclusive_owner.is_some() != d.exclusive {
                        return Err(AmqpError::resource_locked(format!(
                            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                            existing.name, existing.vhost
                        )));
                    }
                    if existing.durable != d.durable {
                        return Err(AmqpError::precondition_failed(format!(
                            "inequivalent arg 'durable' for queue '{}' in vhost '{}': received '{}' but current is '{}'",
                            existing.name, existing.vhost, yes_no(d.durable), yes_no(existing.durable)
                        )));
                    }
                    if existing.auto_delete != d.auto_delete {
                        return Err(AmqpError::precondition_failed(format!(
                            "inequivalent arg 'auto_delete' for queue '{}' in vhost '{}': received '{}' but current is '{}'",
                            existing.name, existing.vhost, yes_no(d.auto_delete), yes_no(existing.auto_delete)
                        )));
                    }
                    let (current, new) = classic_by_default(&existing.arguments, &d.arguments);
                    crate::args::check_equivalence(
                        &format!("queue '{}' in vhost '{}'", existing.name, existing.vhost),
                        &current,
                        &new,
                        EQUIVALENCE_ARGS,
                    )?;
                    existing
                }
            }
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
