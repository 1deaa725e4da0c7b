//! The broker's side of durability: which queues store their persistent messages, how a publisher
//! confirm waits for the store, and how definitions become store records.
//!
//! Messages are written by the store's writer thread (group commit). A persistent message routed to
//! durable queues is confirmed once every queue's write is durable: each queue's write carries a
//! completion of one shared [`ConfirmWait`], and the last one to finish tells the publishing
//! connection, through its event mailbox, that the confirm may go out.

use crate::exchange::{encode_table, Destination, Exchange};
use amqp_codec::types::FieldTable;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use storage::{BindingDef, Completion, ExchangeDef, Op, QueueDef, Store};

/// A durable queue's place in the store.
#[derive(Debug, Clone)]
pub struct Persistence {
    /// The store.
    pub store: Arc<Store>,
    /// The queue's id there.
    pub id: u64,
    /// How much of its backlog may stay in memory.
    pub budget: crate::queue::Budget,
}

/// Called once with `true` if every write succeeded.
type OnDone = Box<dyn FnOnce(bool) + Send>;

/// Counts the store writes one publish waits for.
pub struct ConfirmWait {
    remaining: AtomicUsize,
    failed: AtomicBool,
    on_done: Mutex<Option<OnDone>>,
}

impl std::fmt::Debug for ConfirmWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmWait")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl ConfirmWait {
    /// A wait held by its creator (released with [`ConfirmWait::release`]).
    pub fn new(on_done: impl FnOnce(bool) + Send + 'static) -> Arc<Self> {
        Arc::new(ConfirmWait {
            remaining: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
            on_done: Mutex::new(Some(Box::new(on_done))),
        })
    }

    /// A completion for one more store write to wait for.
    pub fn completion(self: &Arc<Self>) -> Completion {
        self.remaining.fetch_add(1, Ordering::AcqRel);
        let me = self.clone();
        Box::new(move |r| {
            if r.is_err() {
                me.failed.store(true, Ordering::Release);
            }
            if me.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                me.fire();
            }
        })
    }

    /// Marks the publish as failed (a queue refused it): its confirm will be a nack.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    fn fire(&self) {
        let f = self
            .on_done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(f) = f {
            f(!self.failed.load(Ordering::Acquire));
        }
    }

    /// Drops the creator's hold. `Some(ok)` if nothing is outstanding any more (the callback is then
    /// not called); `None` if writes are still in flight (the callback will say how they went).
    pub fn release(&self) -> Option<bool> {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.on_done
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            Some(!self.failed.load(Ordering::Acquire))
        } else {
            None
        }
    }
}

/// The store record of a durable exchange.
pub fn exchange_def(vhost: &str, x: &Exchange) -> Op {
    let def = ExchangeDef {
        vhost: vhost.to_string(),
        name: x.name.clone(),
        kind: x.type_name().to_string(),
        auto_delete: x.auto_delete,
        internal: x.internal,
        arguments: encode_table(&x.arguments),
    };
    Op::PutDef {
        key: ExchangeDef::key(vhost, &x.name),
        value: def.encode(),
    }
}

/// The store record of a durable queue.
pub fn queue_def(
    vhost: &str,
    name: &str,
    id: u64,
    auto_delete: bool,
    arguments: &FieldTable,
) -> Op {
    let def = QueueDef {
        vhost: vhost.to_string(),
        name: name.to_string(),
        id,
        auto_delete,
        arguments: encode_table(arguments),
    };
    Op::PutDef {
        key: QueueDef::key(vhost, name),
        value: def.encode(),
    }
}

/// The store record of a binding.
pub fn binding_def(
    vhost: &str,
    source: &str,
    dest: &Destination,
    key: &str,
    args: &FieldTable,
) -> BindingDef {
    let (to_exchange, destination) = match dest {
        Destination::Queue(q) => (false, q.clone()),
        Destination::Exchange(x) => (true, x.clone()),
    };
    BindingDef {
        vhost: vhost.to_string(),
        source: source.to_string(),
        to_exchange,
        destination,
        routing_key: key.to_string(),
        arguments: encode_table(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn confirm_wait_fires_once_after_the_last_write() {
        let (tx, rx) = mpsc::channel();
        let w = ConfirmWait::new(move |ok| tx.send(ok).unwrap());
        let a = w.completion();
        let b = w.completion();
        assert_eq!(w.release(), None);
        a(Ok(()));
        assert!(rx.try_recv().is_err());
        b(Err(storage::StoreError::Closed));
        assert_eq!(rx.try_recv(), Ok(false));
    }

    #[test]
    fn confirm_wait_without_writes_is_done_at_release() {
        let w = ConfirmWait::new(|_| panic!("not called when nothing was written"));
        assert_eq!(w.release(), Some(true));
    }
}
