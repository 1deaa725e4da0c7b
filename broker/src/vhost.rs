//! A virtual host: its exchanges, queues and bindings, and routing between them.

use crate::delayed::Delayed;
use crate::direct_reply::ReplyTargets;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Destination, Exchange, ExchangeKind};
use crate::message::Message;
use crate::persist;
use crate::queue::{DeadLetter, Queue};
use amqp_codec::types::FieldTable;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use storage::{ExchangeDef, Op, QueueDef, Store};
use tracing::debug;

/// A virtual host.
///
/// Changes to durable entities are handed to the store as they are made (without waiting: the store
/// writes in order, so a definition is durable before any message that a later confirm covers).
#[derive(Debug)]
pub struct VHost {
    /// Name.
    pub name: String,
    exchanges: RwLock<HashMap<String, Arc<Exchange>>>,
    queues: RwLock<HashMap<String, Arc<Queue>>>,
    store: Arc<Store>,
    /// Direct reply-to addresses.
    pub replies: ReplyTargets,
    /// Messages waiting in delayed-message exchanges.
    pub delayed: Arc<Delayed>,
}

/// The exchanges every vhost has from the start.
const PREDECLARED: &[(&str, ExchangeKind, bool)] = &[
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

fn yes_no(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl VHost {
    /// A vhost with the pre-declared exchanges.
    pub fn new(name: &str, store: Arc<Store>) -> Self {
        let exchanges = PREDECLARED
            .iter()
            .map(|(n, kind, internal)| {
                let x = Exchange::new(
                    n.to_string(),
                    *kind,
                    true,
                    false,
                    *internal,
                    FieldTable::default(),
                );
                (n.to_string(), Arc::new(x))
            })
            .collect();
        VHost {
            name: name.to_string(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(HashMap::new()),
            delayed: Arc::new(Delayed::new(store.clone())),
            store,
            replies: ReplyTargets::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn persist(&self, ops: Vec<Op>) {
        if !ops.is_empty() {
            self.store.submit(ops, None);
        }
    }

    /// True if `dest` survives a restart (so a binding to it from a durable exchange is stored).
    fn is_durable(&self, dest: &Destination) -> bool {
        match dest {
            Destination::Queue(q) => self.queue(q).is_some_and(|q| q.keeps_definition()),
            Destination::Exchange(x) => self.exchange(x).is_some_and(|x| x.durable),
        }
    }

    /// Adds a binding, storing it when both ends are durable.
    pub fn bind(
        &self,
        source: &Exchange,
        dest: Destination,
        key: &str,
        args: &FieldTable,
    ) -> AmqpResult<()> {
        let durable = source.durable && self.is_durable(&dest);
        source.bind(dest.clone(), key, args)?;
        if durable {
            let def = persist::binding_def(&self.name, &source.name, &dest, key, args);
            self.persist(vec![Op::PutDef {
                key: def.key(),
                value: def.encode(),
            }]);
        }
        Ok(())
    }

    /// Removes a binding (and its stored copy); auto-deletes the source if it was its last.
    pub fn unbind(&self, source: &Exchange, dest: &Destination, key: &str, args: &FieldTable) {
        if source.unbind(dest, key, args) {
            if source.durable {
                let def = persist::binding_def(&self.name, &source.name, dest, key, args);
                self.persist(vec![Op::DeleteDef { key: def.key() }]);
            }
            self.auto_delete_exchange_if_unused(source);
        }
    }

    fn xs(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.exchanges.read().unwrap_or_else(|e| e.into_inner())
    }
    fn xs_mut(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Exchange>>> {
        self.exchanges.write().unwrap_or_else(|e| e.into_inner())
    }
    fn qs(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<Queue>>> {
        self.queues.read().unwrap_or_else(|e| e.into_inner())
    }
    fn qs_mut(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<Queue>>> {
        self.queues.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `NOT_FOUND - no exchange 'x' in vhost '/'`
    pub fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{}' in vhost '{}'", name, self.name))
    }

    /// `NOT_FOUND - no queue 'q' in vhost '/'`
    pub fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{}' in vhost '{}'", name, self.name))
    }

    /// Looks an exchange up.
    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.xs().get(name).cloned()
    }

    /// Looks an exchange up or fails with 404.
    pub fn get_exchange(&self, name: &str) -> AmqpResult<Arc<Exchange>> {
        self.exchange(name).ok_or_else(|| self.no_exchange(name))
    }

    /// Looks a queue up.
    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.qs().get(name).cloned()
    }

    /// All queues (for listing and shutdown).
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.qs().values().cloned().collect()
    }

    /// exchange.declare (non-passive): creates, or checks equivalence with the existing one. `kind`
    /// is (routing kind, declared as x-delayed-message).
    pub fn declare_exchange(
        &self,
        name: &str,
        (kind, delayed): (ExchangeKind, bool),
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: &FieldTable,
    ) -> AmqpResult<Arc<Exchange>> {
        let mut xs = self.xs_mut();
        if let Some(x) = xs.get(name) {
            let mismatch = |arg: &str, got: &str, cur: &str| {
                AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for exchange '{name}' in vhost '{}': received '{got}' but current is '{cur}'",
                    self.name
                ))
            };
            if x.kind != kind || x.delayed != delayed {
                let declared = if delayed {
                    crate::exchange::DELAYED_TYPE
                } else {
                    kind.name()
                };
                return Err(mismatch("type", declared, x.type_name()));
            }
            if x.durable != durable {
                return Err(mismatch("durable", yes_no(durable), yes_no(x.durable)));
            }
            if x.auto_delete != auto_delete {
                return Err(mismatch(
                    "auto_delete",
                    yes_no(auto_delete),
                    yes_no(x.auto_delete),
                ));
            }
            if x.internal != internal {
                return Err(mismatch("internal", yes_no(internal), yes_no(x.internal)));
            }
            crate::args::check_equivalence(
                &format!("exchange '{name}' in vhost '{}'", self.name),
                &x.arguments,
                arguments,
                &["alternate-exchange"],
            )?;
            return Ok(x.clone());
        }
        let mut x = Exchange::new(
            name.to_string(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments.clone(),
        );
        if delayed {
            x = x.with_delay();
        }
        let x = Arc::new(x);
        xs.insert(name.to_string(), x.clone());
        if durable {
            self.persist(vec![persist::exchange_def(&self.name, &x)]);
        }
        Ok(x)
    }

    /// exchange.delete.
    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> AmqpResult<()> {
        let x = {
            let mut xs = self.xs_mut();
            let Some(x) = xs.get(name) else {
                // RabbitMQ answers delete-ok for an exchange that does not exist.
                return Ok(());
            };
            if if_unused && x.binding_count() > 0 {
                return Err(AmqpError::precondition_failed(format!(
                    "exchange '{}' in vhost '{}' in use",
                    name, self.name
                )));
            }
            xs.remove(name).expect("present")
        };
        if x.durable {
            let mut ops = vec![Op::DeleteDef {
                key: ExchangeDef::key(&self.name, &x.name),
            }];
            for (dest, key, args) in x.bindings() {
                let def = persist::binding_def(&self.name, &x.name, &dest, &key, &args);
                ops.push(Op::DeleteDef { key: def.key() });
            }
            self.persist(ops);
        }
        self.unbind_everywhere(&Destination::Exchange(x.name.clone()));
        Ok(())
    }

    /// Removes every binding that leads to `dest`, then auto-deletes exchanges left without bindings.
    fn unbind_everywhere(&self, dest: &Destination) {
        let mut emptied = Vec::new();
        let mut ops = Vec::new();
        for x in self.xs().values() {
            let removed = x.unbind_destination(dest);
            if removed.is_empty() {
                continue;
            }
            if x.durable {
                for (key, args) in &removed {
                    let def = persist::binding_def(&self.name, &x.name, dest, key, args);
                    ops.push(Op::DeleteDef { key: def.key() });
                }
            }
            if x.auto_delete && x.binding_count() == 0 {
                emptied.push(x.name.clone());
            }
        }
        self.persist(ops);
        for name in emptied {
            let _ = self.delete_exchange(&name, true);
        }
    }

    /// Deletes an auto-delete exchange whose last binding went.
    pub fn auto_delete_exchange_if_unused(&self, x: &Exchange) {
        if x.auto_delete && x.binding_count() == 0 {
            let _ = self.delete_exchange(&x.name, true);
        }
    }

    /// Puts back an exchange recovered from the store (not written again).
    pub fn restore_exchange(&self, x: Exchange) {
        self.xs_mut().insert(x.name.clone(), Arc::new(x));
    }

    /// Puts back a queue recovered from the store (not written again).
    pub fn restore_queue(&self, q: Queue) -> Arc<Queue> {
        let q = Arc::new(q);
        self.qs_mut().insert(q.name.clone(), q.clone());
        q
    }

    /// Adds a queue created by the caller, unless one of that name exists (then returns it).
    pub fn insert_queue(&self, q: Queue) -> Result<Arc<Queue>, Arc<Queue>> {
        let mut qs = self.qs_mut();
        if let Some(existing) = qs.get(&q.name) {
            return Err(existing.clone());
        }
        let q = Arc::new(q);
        qs.insert(q.name.clone(), q.clone());
        if let Some(p) = q.persist.as_ref().filter(|_| q.keeps_definition()) {
            self.persist(vec![persist::queue_def(
                &self.name,
                &q.name,
                p.id,
                q.auto_delete,
                &q.arguments,
            )]);
        }
        Ok(q)
    }

    /// Deletes a queue and its bindings, cancelling its consumers; returns the messages dropped.
    pub fn delete_queue(&self, q: &Arc<Queue>) -> u32 {
        {
            let mut qs = self.qs_mut();
            match qs.get(&q.name) {
                Some(cur) if Arc::ptr_eq(cur, q) => {
                    qs.remove(&q.name);
                }
                _ => return 0,
            }
        }
        let n = q.delete();
        if q.persist.is_some() {
            let mut ops = Vec::new();
            if q.keeps_definition() {
                ops.push(Op::DeleteDef {
                    key: QueueDef::key(&self.name, &q.name),
                });
            }
            ops.extend(
                q.store_ids()
                    .into_iter()
                    .map(|id| Op::DropQueueMessages { queue: id }),
            );
            self.persist(ops);
        }
        self.unbind_everywhere(&Destination::Queue(q.name.clone()));
        n
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
                if let Some((name, ae)) = x.alternate.as_deref().and_then(|a| xs.get_key_value(a)) {
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
            letter.message.begin_sharing(queues.len());
            for q in queues.drain(..) {
                if crate::queue::is_cycle(&letter, &q.name) {
                    crate::queue::log_cycle(&letter, &q.name);
                    continue;
                }
                let (_, more) = q.enqueue_inner(letter.message.clone(), None);
                work.extend(more);
            }
            letter.message.end_sharing(&self.store);
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
        message.begin_sharing(queues.len());
        for q in queues {
            q.enqueue(message.clone(), None);
        }
        message.end_sharing(&self.store);
    }
}
