//! The broker's side of durability: which queues store their persistent messages, how a publisher
//! confirm waits for the store, and how definitions become store records.
//!
//! Messages are written by the store's writer thread (group commit). A persistent message routed to
//! durable queues is confirmed once every queue's write is durable: each queue's write carries a
//! completion of one shared [`ConfirmWait`], and the last one to finish tells the publishing
//! connection, through its event mailbox, that the confirm may go out.

use crate::exchange::{encode_table, Destination, Exchange};
use crate::message::Message;
use amqp_codec::types::FieldTable;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use storage::{BindingDef, Completion, ExchangeDef, MessageRecord, Op, QueueDef, Store};

/// How much of a queue's backlog may be kept in memory.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Ready messages in memory.
    pub messages: usize,
    /// Ready message body bytes in memory.
    pub bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            messages: 16_384,
            bytes: 16 << 20,
        }
    }
}

/// A record read back that is to be deleted unread by anyone (see [`QueueStore::delete_stale`]).
#[derive(Debug, Clone, Copy)]
pub struct StaleRecord {
    /// Its sequence.
    pub seq: u64,
    /// Its body size.
    pub size: u64,
    /// The shared body it points at.
    pub shared: Option<u64>,
    /// It is in the lasting area.
    pub lasting: bool,
}

/// A queue's place in the store: every write and read of its messages goes through here, so no
/// other part of the queue builds a store operation.
///
/// Priority lane `i` is stored under id `id + i` (ids are allocated in a block), so each lane
/// pages and recovers on its own. A record is *lasting* (it survives a restart and is counted by
/// the store) for a persistent message in a durable, non-exclusive queue; any other record only
/// pages a message out of memory and goes to the store's transient area.
///
/// Writes are submitted to the store's writer thread and never wait; reads are blocking and are
/// made only from blocking threads (see `queue::Queue::start_load`).
#[derive(Debug, Clone)]
pub struct QueueStore {
    /// The store.
    pub store: Arc<Store>,
    /// The id of lane 0.
    pub id: u64,
    /// How much of the queue's backlog may stay in memory.
    pub budget: Budget,
}

impl QueueStore {
    /// The store id of a lane.
    pub fn lane_id(&self, lane: usize) -> u64 {
        self.id + lane as u64
    }

    /// Stores a message at `seq` of `lane`; `done` runs once it is written (durably, if lasting).
    pub fn put(
        &self,
        lane: usize,
        seq: u64,
        message: &Message,
        lasting: bool,
        done: Option<Completion>,
    ) {
        let (record, shared) = message.store_form(&self.store, lasting);
        let op = Op::PutMessage {
            queue: self.lane_id(lane),
            seq,
            record,
            size: message.size() as u64,
            shared,
            transient: !lasting,
        };
        self.store.submit(vec![op], done);
    }

    /// Deletes messages that left the queue for good: (lane, seq, message, lasting).
    pub fn delete<'a>(&self, gone: impl Iterator<Item = (usize, u64, &'a Message, bool)>) {
        let ops: Vec<Op> = gone
            .map(|(lane, seq, m, lasting)| Op::DeleteMessage {
                queue: self.lane_id(lane),
                seq,
                size: m.size() as u64,
                shared: m.shared_id().filter(|_| lasting),
                transient: !lasting,
            })
            .collect();
        if !ops.is_empty() {
            self.store.submit(ops, None);
        }
    }

    /// Deletes records read back that are no message of this run (stale transient records, or
    /// ones that expired or do not decode), as they were stored.
    pub fn delete_stale(&self, lane: usize, stale: &[StaleRecord]) {
        let ops: Vec<Op> = stale
            .iter()
            .map(|r| Op::DeleteMessage {
                queue: self.lane_id(lane),
                seq: r.seq,
                size: r.size,
                shared: r.shared,
                transient: !r.lasting,
            })
            .collect();
        if !ops.is_empty() {
            self.store.submit(ops, None);
        }
    }

    /// Deletes the sequences `from..=to` of a lane (a purge of its paged range): `lasting` and
    /// `lasting_bytes` are what the store counted of them.
    pub fn delete_range(&self, lane: usize, from: u64, to: u64, lasting: u64, lasting_bytes: u64) {
        self.store.submit(
            vec![Op::DeleteRange {
                queue: self.lane_id(lane),
                from,
                to,
                count: lasting,
                bytes: lasting_bytes,
            }],
            None,
        );
    }

    /// Rewrites a stored message with its new delivery count (a requeue in a queue that counts
    /// deliveries).
    pub fn update_count(
        &self,
        lane: usize,
        seq: u64,
        message: &Message,
        count: u32,
        lasting: bool,
    ) {
        self.store.submit(
            vec![Op::UpdateMessage {
                queue: self.lane_id(lane),
                seq,
                record: message.record_with_count(count, lasting),
                transient: !lasting,
            }],
            None,
        );
    }

    /// Notes that a lasting message was delivered (it comes back redelivered after a restart).
    pub fn mark_delivered(&self, lane: usize, seq: u64) {
        self.store.submit(
            vec![Op::MarkDelivered {
                queue: self.lane_id(lane),
                seq,
            }],
            None,
        );
    }

    /// Reads up to a chunk of a lane from `from` on (blocking: never call it from an async task
    /// or with a queue locked on a runtime worker).
    pub fn read(
        &self,
        lane: usize,
        from: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, MessageRecord)>, storage::StoreError> {
        self.store
            .read_messages(self.lane_id(lane), from, max, max_bytes)
    }

    /// Runs `f` once every write submitted so far is done (a barrier through the writer).
    pub fn after_writes(&self, f: impl FnOnce() + Send + 'static) {
        self.store.submit(vec![], Some(Box::new(move |_| f())));
    }

    /// The operations that drop all of the queue's `lanes` lanes (with the queue).
    pub fn drop_all(&self, lanes: usize) -> impl Iterator<Item = Op> + '_ {
        (0..lanes).map(|lane| Op::DropQueueMessages {
            queue: self.lane_id(lane),
        })
    }
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
