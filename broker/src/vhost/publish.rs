//! Publishing in a vhost: routing through exchanges (exchange-to-exchange bindings, alternate
//! exchanges, sender-selected keys), then handing the message to every matching queue with its
//! body shared while they take it. One pipeline for publishes from clients, dead letters and
//! delayed messages that fell due.

use super::VHost;
use crate::auth::Caller;
use crate::direct_reply::REPLY_PREFIX;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Destination, Exchange};
use crate::message::Message;
use crate::persist::ConfirmWait;
use crate::queue::{DeadLetter, Enqueued, Queue};
use amqp_codec::types::FieldTable;
use amqp_codec::Properties;
use std::collections::VecDeque;
use std::sync::Arc;
use tracing::debug;

/// What became of a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// It reached this many queues (at least one; or 0 for a reply consumer or the delayed
    /// store).
    Routed(usize),
    /// Nothing took it (a mandatory publish is returned).
    Unroutable,
}

impl VHost {
    /// The checks a message passes before it is routed, whoever publishes it (a channel, the
    /// management API): not to an internal exchange (403), a `user_id` that is the publisher's
    /// own unless it may impersonate (406), an `expiration` that parses (406).
    pub fn check_message(
        &self,
        exchange: &Exchange,
        properties: &Properties,
        user: &str,
        caller: &Caller,
    ) -> AmqpResult<()> {
        if exchange.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                exchange.name, self.name
            )));
        }
        if let Some(uid) = properties.user_id() {
            // RabbitMQ lets a user tagged `impersonator` publish as anyone.
            if uid != user && !caller.may_impersonate() {
                return Err(AmqpError::precondition_failed(format!(
                    "user_id property set to '{uid}' but authenticated user was '{user}'"
                )));
            }
        }
        if let Some(e) = properties.expiration() {
            if let Err(reason) = crate::message::parse_expiration(e) {
                return Err(AmqpError::precondition_failed(format!(
                    "invalid expiration '{e}': {reason}"
                )));
            }
        }
        Ok(())
    }

    /// Publishes `message` to `exchange`: a direct reply goes straight to its requester, a
    /// message for a delayed exchange is kept until due, anything else is routed and enqueued
    /// (with a completion of `wait` for every store write a confirm waits for; a queue that
    /// refuses it makes the confirm a nack). Queues that asked publishers to slow down are added
    /// to `congested`; `buf` is scratch space kept by the caller between publishes.
    pub fn publish(
        &self,
        exchange: &Exchange,
        message: Arc<Message>,
        wait: Option<&Arc<ConfirmWait>>,
        buf: &mut Vec<Arc<Queue>>,
        congested: &mut Vec<Arc<Queue>>,
    ) -> Published {
        if exchange.is_default() && message.routing_key.starts_with(REPLY_PREFIX) {
            let address = message.routing_key.clone();
            return if self.replies.deliver(&address, message) {
                Published::Routed(0)
            } else {
                Published::Unroutable
            };
        }
        if exchange.delayed {
            if let Some(delay) = crate::delayed::delay_of(&message) {
                // Kept in the store until due; routed then (no return: the plugin does not
                // support mandatory).
                self.delayed.schedule(&exchange.name, &message, delay, wait);
                return Published::Routed(0);
            }
        }
        buf.clear();
        self.route(exchange, &message, buf);
        if buf.is_empty() {
            return Published::Unroutable;
        }
        let queues = buf.len();
        let mut dead = Vec::new();
        self.enqueue_all(&message, buf, wait, true, |q, outcome, letters| {
            if outcome == Enqueued::Rejected {
                // A full queue with x-overflow reject-publish: the publisher's confirm is a nack.
                if let Some(w) = wait {
                    w.fail();
                }
            }
            if q.flow.congested() && !congested.iter().any(|c| Arc::ptr_eq(c, q)) {
                congested.push(q.clone());
            }
            dead.extend(letters);
        });
        if !dead.is_empty() {
            self.publish_dead_letters(dead);
        }
        Published::Routed(queues)
    }

    /// Counts a client's publish in `exchange`'s `message_stats`: `publish_in` once, and
    /// `publish_out` per queue it reached. RabbitMQ's default exchange routes to the queue each
    /// key names whether or not it exists, and counts those as `publish_out` too.
    pub fn count_publish(&self, exchange: &Exchange, message: &Message, published: Published) {
        let out = if exchange.is_default() {
            // The distinct keys (CC and BCC ones included), without allocating.
            let more = &message.extra_keys;
            1 + (0..more.len())
                .filter(|&i| more[i] != message.routing_key && !more[..i].contains(&more[i]))
                .count()
        } else {
            match published {
                Published::Routed(queues) => queues,
                Published::Unroutable => 0,
            }
        };
        exchange.counts.published(out as u64);
    }

    /// Hands a routed message to its queues (draining `queues`), its body shared by them while
    /// they take it (stored once: see `Message::begin_sharing`). `each` learns what every queue
    /// did with it and the dead letters that made (routed by the caller). `published`: a client
    /// published it (queues count it in their `message_stats`, as RabbitMQ's channels do; dead
    /// letters and delayed messages are not counted there).
    fn enqueue_all(
        &self,
        message: &Arc<Message>,
        queues: &mut Vec<Arc<Queue>>,
        wait: Option<&Arc<ConfirmWait>>,
        published: bool,
        mut each: impl FnMut(&Arc<Queue>, Enqueued, Vec<DeadLetter>),
    ) {
        message.begin_sharing(queues.len());
        for q in queues.drain(..) {
            let (outcome, dead) = q.enqueue_inner(message.clone(), wait, published);
            each(&q, outcome, dead);
        }
        message.end_sharing(&self.store);
    }

    /// The queues a message published to `exchange` with `routing_key` goes to: follows
    /// exchange-to-exchange bindings (each exchange visited once) and alternate exchanges (used by an
    /// exchange that matched nothing).
    pub fn route(&self, exchange: &Exchange, message: &Message, out: &mut Vec<Arc<Queue>>) {
        self.route_keys(
            exchange,
            &message.routing_key,
            &message.extra_keys,
            message,
            out,
        );
    }

    /// [`VHost::route`] with explicit routing keys: `first`, then `more` (the CC and BCC keys of
    /// sender-selected distribution, or a dead letter's keys). As in RabbitMQ, every exchange on
    /// the way matches the whole set of keys, and an alternate exchange is used only if none of
    /// them matched. Each queue is reported once.
    pub fn route_keys(
        &self,
        exchange: &Exchange,
        first: &str,
        more: &[String],
        message: &Message,
        out: &mut Vec<Arc<Queue>>,
    ) {
        let keys = || std::iter::once(first).chain(more.iter().map(String::as_str));
        if exchange.is_default() {
            for key in keys() {
                if let Some(q) = self.queue(key) {
                    if !out.iter().any(|o| Arc::ptr_eq(o, &q)) {
                        out.push(q);
                    }
                }
            }
            return;
        }
        let xs = self.xs();
        let mut headers_cache: Option<Option<FieldTable>> = None;
        let mut headers = || {
            headers_cache
                .get_or_insert_with(|| message.properties.headers())
                .clone()
        };
        let mut visited: Vec<&str> = vec![exchange.name.as_str()];
        let mut stack: Vec<&Exchange> = vec![exchange];
        let mut queue_names: Vec<String> = Vec::new();
        while let Some(x) = stack.pop() {
            let mut matched = false;
            for key in keys() {
                x.route(key, &mut headers, &mut |d| {
                    matched = true;
                    match d {
                        Destination::Queue(n) => {
                            if !queue_names.contains(n) {
                                queue_names.push(n.clone())
                            }
                        }
                        Destination::Exchange(n) => {
                            if let Some((name, next)) = xs.get_key_value(n.as_str()) {
                                if !visited.contains(&name.as_str()) {
                                    visited.push(name.as_str());
                                    stack.push(next);
                                }
                            }
                        }
                    }
                });
            }
            if !matched {
                let ae_name = x.alternate_exchange();
                if let Some((name, ae)) = ae_name.as_deref().and_then(|a| xs.get_key_value(a)) {
                    if !visited.contains(&name.as_str()) {
                        visited.push(name.as_str());
                        stack.push(ae);
                    }
                }
            }
        }
        drop(xs);
        if queue_names.is_empty() {
            return;
        }
        let qs = self.qs();
        let was_empty = out.is_empty();
        for n in &queue_names {
            if let Some(q) = qs.get(n) {
                if was_empty || !out.iter().any(|o| Arc::ptr_eq(o, q)) {
                    out.push(q.clone());
                }
            }
        }
    }

    /// Publishes dead letters to their exchanges, and whatever those publishes dead-letter in turn
    /// (a work list, not recursion). A letter is not delivered to a queue it would cycle through
    /// (RabbitMQ's rule, see `queue::is_cycle`), and one whose exchange does not exist is dropped.
    pub fn publish_dead_letters(&self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        let mut work: VecDeque<DeadLetter> = letters.into();
        let mut queues: Vec<Arc<Queue>> = Vec::new();
        while let Some(letter) = work.pop_front() {
            let Some(x) = self.exchange(&letter.exchange) else {
                debug!(
                    exchange = %letter.exchange,
                    "dead-letter exchange does not exist: message dropped"
                );
                continue;
            };
            queues.clear();
            if let Some((first, more)) = letter.routing_keys.split_first() {
                self.route_keys(&x, first, more, &letter.message, &mut queues);
            }
            queues.retain(|q| {
                let cycle = crate::queue::is_cycle(&letter, &q.name);
                if cycle {
                    crate::queue::log_cycle(&letter, &q.name);
                }
                !cycle
            });
            self.enqueue_all(&letter.message, &mut queues, None, false, |_, _, more| {
                work.extend(more)
            });
        }
    }

    /// Routes a delayed message that fell due through its exchange (dropped if the exchange is
    /// gone; no confirm, no return).
    pub fn publish_delayed(&self, exchange: &str, message: Arc<Message>) {
        let Some(x) = self.exchange(exchange) else {
            debug!(exchange, "delayed message for a deleted exchange: dropped");
            return;
        };
        let mut queues = Vec::new();
        self.route(&x, &message, &mut queues);
        let mut dead = Vec::new();
        self.enqueue_all(&message, &mut queues, None, false, |_, _, letters| {
            dead.extend(letters)
        });
        self.publish_dead_letters(dead);
    }
}
