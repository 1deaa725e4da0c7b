//! A virtual host: its exchanges, queues and bindings, and routing between them.
//!
//! `queues.rs` holds the queue operations with their rules (declare, use, delete);
//! `exchanges.rs` the exchange and binding operations; `publish.rs` routing and the one publish
//! pipeline.

use crate::delayed::Delayed;
use crate::direct_reply::ReplyTargets;
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Destination, Exchange, ExchangeKind};
use crate::message::Message;
use crate::persist::DefinitionWrites;
use crate::queue::{Budget, DeadLetter, Queue, QueueOwner};
use crate::reply_text;
use amqp_codec::types::FieldTable;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use storage::Store;

mod exchanges;
mod policies;
mod publish;
mod queues;
pub(crate) use exchanges::{BindingSpec, ExchangeSpec};
pub(crate) use publish::Published;
pub(crate) use queues::{generated_name, DeleteIf};

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
    /// How much of each queue's backlog may stay in memory.
    budget: Budget,
    /// Direct reply-to addresses.
    pub replies: ReplyTargets,
    /// Messages waiting in delayed-message exchanges.
    pub delayed: Arc<Delayed>,
    /// The `max-queues` limit (`u64::MAX`: none).
    max_queues: std::sync::atomic::AtomicU64,
    /// Its policies and operator policies.
    policies: RwLock<policies::PolicySet>,
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
    /// A vhost with the pre-declared exchanges (declared by `creator`), whose queues keep at
    /// most `budget` in memory.
    pub fn new(name: &str, store: Arc<Store>, budget: Budget, creator: &str) -> Self {
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
                )
                .with_declarer(creator);
                (n.to_string(), Arc::new(x))
            })
            .collect();
        VHost {
            name: name.to_string(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(HashMap::new()),
            delayed: Arc::new(Delayed::new(store.clone(), name)),
            store,
            budget,
            replies: ReplyTargets::default(),
            max_queues: std::sync::atomic::AtomicU64::new(u64::MAX),
            policies: RwLock::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Definition changes of this vhost, to fill and then [`VHost::persist`].
    fn definitions(&self) -> DefinitionWrites<'_> {
        DefinitionWrites::new(&self.name)
    }

    fn persist(&self, writes: DefinitionWrites<'_>) {
        writes.submit(&self.store);
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
        reply_text::no_exchange(&self.name, name)
    }

    /// `NOT_FOUND - no queue 'q' in vhost '/'`
    pub fn no_queue(&self, name: &str) -> AmqpError {
        reply_text::no_queue(&self.name, name)
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

    /// Every exchange.
    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// How many exchanges it has.
    pub fn exchange_count(&self) -> usize {
        self.exchanges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// All queues (for listing and shutdown).
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.qs().values().cloned().collect()
    }

    /// Removes every binding that leads to `dest`, then auto-deletes exchanges left without bindings.
    fn unbind_everywhere(&self, dest: &Destination) {
        for name in self.unbind_all(dest) {
            let _ = self.delete_exchange(&name, true);
        }
    }

    /// Removes every binding that leads to `dest` (and their stored copies); returns the
    /// auto-delete exchanges that this left without bindings, for the caller to delete.
    fn unbind_all(&self, dest: &Destination) -> Vec<String> {
        let mut emptied = Vec::new();
        let mut writes = self.definitions();
        for x in self.xs().values() {
            let removed = x.unbind_destination(dest);
            if removed.is_empty() {
                continue;
            }
            if x.durable {
                for (key, args) in &removed {
                    writes.delete_binding(&x.name, dest, key, args);
                }
            }
            if x.auto_delete && x.binding_count() == 0 {
                emptied.push(x.name.clone());
            }
        }
        self.persist(writes);
        emptied
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

    /// Sets the `max-queues` limit (`None`: no limit).
    pub fn set_max_queues(&self, max: Option<u64>) {
        self.max_queues.store(
            max.unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Release,
        );
    }

    /// Starts the task that routes this vhost's delayed messages as they fall due (on the
    /// current runtime; it ends with the vhost).
    pub fn start_delayed(self: &Arc<Self>) {
        let router = Arc::downgrade(self);
        let router: std::sync::Weak<dyn crate::delayed::RouteDue> = router;
        tokio::spawn(self.delayed.clone().run(router));
    }

    /// The vhost was deleted: deletes every queue (with its messages), every exchange (with
    /// its stored definition and bindings) and its delayed messages.
    pub fn delete_everything(&self) {
        self.forget_policies();
        for q in self.queues() {
            self.delete_queue(&q);
        }
        let names: Vec<String> = self.xs().keys().cloned().collect();
        for name in names {
            let _ = self.delete_exchange(&name, false);
        }
        let mut writes = self.definitions();
        writes.drop_store_area(self.delayed.area_id());
        self.persist(writes);
    }

    /// Deletes a queue and its bindings, cancelling its consumers; returns the messages dropped.
    pub fn delete_queue(&self, q: &Arc<Queue>) -> u32 {
        // The vhost's queue lock is held from the removal until the name's definition record and
        // bindings are gone, so that a queue of the same name declared right after keeps its own
        // (both are keyed by name). Lock order: vhost maps, then bindings and queue state.
        let (n, emptied) = {
            let mut qs = self.qs_mut();
            match qs.get(&q.name) {
                Some(cur) if Arc::ptr_eq(cur, q) => {
                    qs.remove(&q.name);
                }
                _ => return 0,
            }
            let n = q.delete();
            let mut writes = self.definitions();
            if q.keeps_definition() {
                writes.delete_queue(&q.name);
            }
            writes.drop_messages(&q.store, q.args.lanes());
            self.persist(writes);
            (n, self.unbind_all(&Destination::Queue(q.name.clone())))
        };
        for name in emptied {
            let _ = self.delete_exchange(&name, true);
        }
        n
    }
}

/// A queue's dead letters are routed, and its `x-expires` deletion made, by its vhost.
impl QueueOwner for VHost {
    fn dead_letters(&self, letters: Vec<DeadLetter>) {
        self.publish_dead_letters(letters);
    }

    fn expire(&self, queue: &Arc<Queue>) {
        self.delete_queue(queue);
    }
}

/// Delayed messages that fell due are routed through their vhost.
impl crate::delayed::RouteDue for VHost {
    fn route_due(&self, exchange: &str, message: Arc<Message>) {
        self.publish_delayed(exchange, message);
    }
}
