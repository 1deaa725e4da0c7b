//! Queues: ready messages in FIFO order, consumers in round-robin order, dispatch under prefetch.
//!
//! A queue's state sits behind one `std::sync::Mutex`, taken for short, non-async critical sections by
//! whoever has work for it: the publishing connection's task (enqueue, then dispatch inline), the
//! consuming connection's task (ack, requeue, consume, cancel), or a writer that drained (resume
//! dispatch). There is no task per queue: on two cores the hand-off to another task would cost more
//! than the work. Messages carry a per-queue sequence number; requeued ones go back to their original
//! place, and the (queue, sequence) pair is the message's identity for the store.

mod backlog;
mod consumer;

pub use backlog::{Budget, Paged};
pub use consumer::Consumer;

use crate::channel::shared::{ChannelShared, Unacked};
use crate::connection::writer::Out;
use crate::message::Message;
use crate::persist::{ConfirmWait, Persistence};
use amqp_codec::protocol::basic;
use amqp_codec::types::FieldTable;
use amqp_codec::AMQPClass;
use backlog::Backlog;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use storage::Op;
use tracing::{error, warn};

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Position in the queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// Delivered before and requeued.
    pub redelivered: bool,
    /// A copy is in the store (to delete once the message leaves the queue).
    pub stored: bool,
}

/// Mutable state of a queue.
#[derive(Debug, Default)]
pub struct QueueState {
    backlog: Backlog,
    next_seq: u64,
    /// Highest priority first; within a priority, the next to serve first (round-robin by rotation).
    consumers: Vec<Arc<Consumer>>,
    unacked: usize,
    had_consumers: bool,
    /// Stored messages below this sequence had been delivered before the last restart.
    delivered_before_restart: u64,
    /// Stored transient records below this sequence are from before the last restart (dropped).
    first_seq_of_run: u64,
}

/// A queue.
#[derive(Debug)]
pub struct Queue {
    /// Name.
    pub name: String,
    /// Name of its vhost (for reply texts).
    pub vhost: String,
    /// Survives a restart.
    pub durable: bool,
    /// The connection that owns it, if exclusive.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
    /// Where persistent messages are stored (durable queues only).
    pub persist: Option<Persistence>,
    deleted: AtomicBool,
    state: Mutex<QueueState>,
}

/// What a consume attempt needs from the queue's side.
pub enum ConsumeCheck {
    /// Consumer added.
    Ok,
    /// Someone holds exclusive use, or exclusive use was asked while others consume.
    ExclusiveInUse,
    /// The queue was deleted meanwhile.
    Deleted,
}

impl Queue {
    /// A new empty queue.
    pub fn new(
        name: String,
        vhost: String,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
        persist: Option<Persistence>,
    ) -> Self {
        Queue {
            name,
            vhost,
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            persist,
            deleted: AtomicBool::new(false),
            state: Mutex::new(QueueState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Relaxed)
    }

    /// (ready messages, consumers), as queue.declare-ok reports them.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.lock();
        (st.backlog.len() as u32, st.consumers.len() as u32)
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.lock().consumers.len()
    }

    /// Appends a published message and delivers what it can. A persistent message in a durable
    /// queue is handed to the store first, with a completion of `wait` if the publisher waits for a
    /// confirm. The store write is submitted under the queue lock, so it is always ahead of the
    /// delete that an ack of this message will submit. Past its memory budget, a durable queue
    /// stores new messages (transient ones too) without keeping them in memory.
    pub fn enqueue(self: &Arc<Self>, message: Arc<Message>, wait: Option<&Arc<ConfirmWait>>) {
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let (page, stored) = match &self.persist {
            None => (false, false),
            Some(p) => {
                let page = st.backlog.must_page(&p.budget);
                let persistent = message.is_persistent();
                if page || persistent {
                    let op = Op::PutMessage {
                        queue: p.id,
                        seq,
                        record: message.record(),
                        size: message.size() as u64,
                    };
                    let done = wait.filter(|_| persistent).map(|w| w.completion());
                    p.store.submit(vec![op], done);
                }
                (page, persistent)
            }
        };
        if page {
            st.backlog.page(seq, message.size() as u64);
        } else {
            st.backlog.push(Ready {
                seq,
                message,
                redelivered: false,
                stored,
            });
        }
        self.dispatch_locked(&mut st);
    }

    /// Puts returned messages back at their original places, marked redelivered, and delivers.
    pub fn requeue(self: &Arc<Self>, returned: &[Unacked]) {
        if self.is_deleted() {
            return;
        }
        let mut st = self.lock();
        for u in returned {
            st.unacked = st.unacked.saturating_sub(1);
            st.backlog.requeue(Ready {
                seq: u.seq,
                message: u.message.clone(),
                redelivered: true,
                stored: u.stored,
            });
        }
        self.dispatch_locked(&mut st);
    }

    /// Forgets acknowledged (or discarded) deliveries, deleting stored ones.
    pub fn acked(&self, settled: &[Unacked]) {
        {
            let mut st = self.lock();
            st.unacked = st.unacked.saturating_sub(settled.len());
        }
        self.unstore(
            settled
                .iter()
                .filter(|u| u.stored)
                .map(|u| (u.seq, &u.message)),
        );
    }

    /// Deletes the stored copies of messages that left the queue for good (callers pass stored
    /// messages only).
    fn unstore<'a>(&self, gone: impl Iterator<Item = (u64, &'a Arc<Message>)>) {
        let Some(p) = &self.persist else {
            return;
        };
        if self.is_deleted() {
            // Its whole range was dropped with the queue.
            return;
        }
        let ops: Vec<Op> = gone
            .map(|(seq, m)| Op::DeleteMessage {
                queue: p.id,
                seq,
                size: m.size() as u64,
            })
            .collect();
        if !ops.is_empty() {
            p.store.submit(ops, None);
        }
    }

    /// Notes a first delivery of a stored message, so that it comes back redelivered after a
    /// restart (called with the queue locked).
    pub(crate) fn mark_delivered(&self, r: &Ready) {
        if let Some(p) = self.persist.as_ref().filter(|_| r.stored && !r.redelivered) {
            let seq = r.seq;
            p.store
                .submit(vec![Op::MarkDelivered { queue: p.id, seq }], None);
        }
    }

    /// Start-up: the queue's stored messages, all paged (nothing is read until consumers need it).
    pub fn restore(&self, paged: Option<Paged>, delivered: u64, next_seq: u64) {
        let mut st = self.lock();
        st.backlog.set_paged(paged);
        st.delivered_before_restart = delivered;
        st.next_seq = st.next_seq.max(next_seq);
        st.first_seq_of_run = st.next_seq;
    }

    /// Starts reading the next chunk of the paged range on a blocking thread (called locked).
    fn start_load(self: &Arc<Self>, st: &mut QueueState) {
        let (Some(_), Some(range)) = (&self.persist, st.backlog.paged()) else {
            return;
        };
        st.backlog.loading = true;
        let generation = st.backlog.generation;
        let q = self.clone();
        let load = move || q.load_chunk(generation, range.next);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(load)),
            Err(_) => drop(std::thread::spawn(load)),
        }
    }

    /// Reads a chunk of the paged range from the store and takes it in (blocking: runs on a
    /// blocking thread, or inline for basic.get).
    fn load_chunk(self: Arc<Self>, generation: u64, from: u64) {
        let Some(p) = &self.persist else {
            return;
        };
        let read =
            p.store
                .read_messages(p.id, from, backlog::LOAD_CHUNK, backlog::LOAD_CHUNK_BYTES);
        let mut st = self.lock();
        st.backlog.loading = false;
        let records = match read {
            Ok(r) => r,
            Err(e) => {
                error!(queue = %self.name, "cannot read messages back from the store: {e}");
                return;
            }
        };
        if records.is_empty() {
            if st.backlog.paged().is_some() && st.backlog.generation == generation {
                // The range's writes are still queued in the store: load once they are written.
                st.backlog.loading = true;
                let q = self.clone();
                let handle = tokio::runtime::Handle::try_current().ok();
                p.store.submit(
                    vec![],
                    Some(Box::new(move |_| {
                        let load = move || q.load_chunk(generation, from);
                        match handle {
                            Some(h) => drop(h.spawn_blocking(load)),
                            None => drop(std::thread::spawn(load)),
                        }
                    })),
                );
            }
            return;
        }
        let mut loaded = Vec::with_capacity(records.len());
        let mut sizes = Vec::with_capacity(records.len());
        let mut stale = Vec::new();
        for (seq, record) in records {
            let size = record.body.len() as u64;
            if record.transient && seq < st.first_seq_of_run {
                st.backlog.skip(seq, size);
                stale.push(Op::DeleteMessage {
                    queue: p.id,
                    seq,
                    size,
                });
                continue;
            }
            let Some(message) = Message::from_record(record) else {
                warn!(queue = %self.name, seq, "dropping a stored message whose properties do not decode");
                st.backlog.skip(seq, size);
                stale.push(Op::DeleteMessage {
                    queue: p.id,
                    seq,
                    size,
                });
                continue;
            };
            let redelivered = seq < st.delivered_before_restart && seq < st.first_seq_of_run;
            loaded.push(Ready {
                seq,
                message: Arc::new(message),
                redelivered,
                stored: true,
            });
            sizes.push(size);
        }
        if !stale.is_empty() {
            p.store.submit(stale, None);
        }
        st.backlog.absorb(generation, loaded, &sizes);
        self.dispatch_locked(&mut st);
    }

    /// basic.get: takes the head message. Records the delivery on `channel` unless `no_ack`.
    pub fn get(self: &Arc<Self>, channel: &ChannelShared, no_ack: bool) -> bool {
        let mut st = self.lock();
        if st.backlog.in_memory() == 0 {
            if let Some(range) = st.backlog.paged() {
                // Nothing in memory but more stored: read it now (basic.get is synchronous), even if
                // a background load is under way (taking in a chunk twice is harmless: `absorb`
                // skips what it already has).
                st.backlog.loading = true;
                let generation = st.backlog.generation;
                drop(st);
                self.clone().load_chunk(generation, range.next);
                st = self.lock();
            }
        }
        let Some(r) = st.backlog.pop() else {
            return false;
        };
        let remaining = st.backlog.len() as u32;
        if no_ack {
            if r.stored {
                self.unstore(std::iter::once((r.seq, &r.message)));
            }
        } else {
            st.unacked += 1;
            self.mark_delivered(&r);
        }
        let mut d = channel.deliveries();
        let tag = d.next_tag();
        if !no_ack {
            d.unacked.push_back(Unacked {
                tag,
                queue: self.clone(),
                seq: r.seq,
                message: r.message.clone(),
                stored: r.stored,
                consumer: None,
            });
        }
        channel.outbox.send(Out::GetOk {
            channel: channel.id,
            delivery_tag: tag,
            redelivered: r.redelivered,
            message_count: remaining,
            message: r.message,
        });
        true
    }

    /// Adds a consumer after sending `consume_ok` on its channel (so consume-ok precedes the first
    /// delivery), then delivers.
    pub fn consume(
        self: &Arc<Self>,
        consumer: Arc<Consumer>,
        consume_ok: Option<AMQPClass>,
    ) -> ConsumeCheck {
        let mut st = self.lock();
        if self.is_deleted() {
            return ConsumeCheck::Deleted;
        }
        if st.consumers.iter().any(|c| c.exclusive)
            || (consumer.exclusive && !st.consumers.is_empty())
        {
            return ConsumeCheck::ExclusiveInUse;
        }
        if let Some(ok) = consume_ok {
            consumer.channel.outbox.method(consumer.channel.id, ok);
        }
        consumer
            .channel
            .deliveries()
            .consumers
            .insert(consumer.tag.clone(), consumer.clone());
        let at = st
            .consumers
            .partition_point(|c| c.priority >= consumer.priority);
        st.consumers.insert(at, consumer);
        st.had_consumers = true;
        self.dispatch_locked(&mut st);
        ConsumeCheck::Ok
    }

    /// Removes a consumer. Returns true if the queue should now be auto-deleted.
    pub fn cancel(&self, consumer: &Arc<Consumer>) -> bool {
        let mut st = self.lock();
        st.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
        self.auto_delete && st.had_consumers && st.consumers.is_empty() && !self.is_deleted()
    }

    /// Removes all ready messages, stored or not; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.lock();
        let (memory, paged) = st.backlog.clear();
        let n = memory.len() as u64 + paged.map_or(0, |p| p.count);
        self.unstore(
            memory
                .iter()
                .filter(|r| r.stored)
                .map(|r| (r.seq, &r.message)),
        );
        if let (Some(p), Some(range)) = (&self.persist, paged) {
            p.store.submit(
                vec![Op::DeleteRange {
                    queue: p.id,
                    from: range.next,
                    to: range.end,
                    count: range.count,
                    bytes: range.bytes,
                }],
                None,
            );
        }
        n as u32
    }

    /// Marks the queue deleted, drops its messages, and cancels its consumers (telling clients that
    /// asked for consumer_cancel_notify). Returns the number of ready messages dropped.
    pub fn delete(&self) -> u32 {
        self.deleted.store(true, Ordering::Relaxed);
        let (n, consumers) = {
            let mut st = self.lock();
            let n = st.backlog.len() as u32;
            st.backlog.clear();
            (n, std::mem::take(&mut st.consumers))
        };
        for c in consumers {
            let removed = c.channel.deliveries().consumers.remove(&c.tag).is_some();
            if removed && c.channel.cancel_notify {
                c.channel.outbox.method(
                    c.channel.id,
                    AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                        consumer_tag: c.tag.as_ref().into(),
                        nowait: true,
                    })),
                );
            }
        }
        n
    }

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.lock();
        self.dispatch_locked(&mut st);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        // Consumers are ordered by priority, and a consumer that takes a message moves behind the
        // others of its priority: the first one able to take a message is the right one.
        while st.backlog.in_memory() > 0 && !st.consumers.is_empty() {
            let mut taken = None;
            for i in 0..st.consumers.len() {
                let c = st.consumers[i].clone();
                if c.try_deliver(self, st) {
                    taken = Some(i);
                    break;
                }
            }
            let Some(i) = taken else {
                break;
            };
            let priority = st.consumers[i].priority;
            let end = i + st.consumers[i..].partition_point(|c| c.priority == priority);
            st.consumers[i..end].rotate_left(1);
        }
        // Read ahead of consumers: keep some messages in memory while more are stored.
        if !st.consumers.is_empty() && st.backlog.wants_load() {
            self.start_load(st);
        }
    }
}

impl QueueState {
    fn pop_ready(&mut self) -> Option<Ready> {
        self.backlog.pop()
    }
}
