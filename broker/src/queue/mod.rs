//! Queues: ready messages in FIFO order, consumers in round-robin order, dispatch under prefetch.
//!
//! A queue's state sits behind one `std::sync::Mutex`, taken for short, non-async critical sections by
//! whoever has work for it: the publishing connection's task (enqueue, then dispatch inline), the
//! consuming connection's task (ack, requeue, consume, cancel), or a writer that drained (resume
//! dispatch). There is no task per queue: on two cores the hand-off to another task would cost more
//! than the work. Messages carry a per-queue sequence number; requeued ones go back to their original
//! place, and the (queue, sequence) pair is the message's identity for the store.

mod consumer;

pub use consumer::Consumer;

use crate::channel::shared::{ChannelShared, Unacked};
use crate::connection::writer::Out;
use crate::message::Message;
use crate::persist::{ConfirmWait, Persistence};
use amqp_codec::protocol::basic;
use amqp_codec::types::FieldTable;
use amqp_codec::AMQPClass;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use storage::Op;

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Position in the queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// Delivered before and requeued.
    pub redelivered: bool,
}

/// Mutable state of a queue.
#[derive(Debug, Default)]
pub struct QueueState {
    ready: VecDeque<Ready>,
    next_seq: u64,
    /// Highest priority first; within a priority, the next to serve first (round-robin by rotation).
    consumers: Vec<Arc<Consumer>>,
    unacked: usize,
    had_consumers: bool,
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
        (st.ready.len() as u32, st.consumers.len() as u32)
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.lock().consumers.len()
    }

    /// Appends a published message and delivers what it can. A persistent message in a durable
    /// queue is handed to the store first, with a completion of `wait` if the publisher waits for a
    /// confirm. The store write is submitted under the queue lock, so it is always ahead of the
    /// delete that an ack of this message will submit.
    pub fn enqueue(self: &Arc<Self>, message: Arc<Message>, wait: Option<&Arc<ConfirmWait>>) {
        let mut st = self.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        if let Some(p) = self.persist.as_ref().filter(|_| message.is_persistent()) {
            let op = Op::PutMessage {
                queue: p.id,
                seq,
                record: message.record(),
                size: message.size() as u64,
            };
            p.store.submit(vec![op], wait.map(|w| w.completion()));
        }
        st.ready.push_back(Ready {
            seq,
            message,
            redelivered: false,
        });
        self.dispatch_locked(&mut st);
    }

    /// Puts returned messages back at their original places, marked redelivered, and delivers.
    pub fn requeue(self: &Arc<Self>, returned: impl IntoIterator<Item = (u64, Arc<Message>)>) {
        if self.is_deleted() {
            return;
        }
        let mut st = self.lock();
        for (seq, message) in returned {
            st.unacked = st.unacked.saturating_sub(1);
            let at = st.ready.partition_point(|r| r.seq < seq);
            st.ready.insert(
                at,
                Ready {
                    seq,
                    message,
                    redelivered: true,
                },
            );
        }
        self.dispatch_locked(&mut st);
    }

    /// Forgets acknowledged (or discarded) deliveries, deleting stored ones.
    pub fn acked(&self, settled: &[Unacked]) {
        {
            let mut st = self.lock();
            st.unacked = st.unacked.saturating_sub(settled.len());
        }
        self.unstore(settled.iter().map(|u| (u.seq, &u.message)));
    }

    /// Deletes stored copies of messages that left the queue for good.
    fn unstore<'a>(&self, gone: impl Iterator<Item = (u64, &'a Arc<Message>)>) {
        let Some(p) = &self.persist else {
            return;
        };
        if self.is_deleted() {
            // Its whole range was dropped with the queue.
            return;
        }
        let ops: Vec<Op> = gone
            .filter(|(_, m)| m.is_persistent())
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
    pub(crate) fn mark_delivered(&self, seq: u64, message: &Message) {
        if let Some(p) = self.persist.as_ref().filter(|_| message.is_persistent()) {
            p.store
                .submit(vec![Op::MarkDelivered { queue: p.id, seq }], None);
        }
    }

    /// Sets the sequence number the next message gets (start-up: after the last stored one).
    pub fn set_next_seq(&self, next: u64) {
        let mut st = self.lock();
        st.next_seq = st.next_seq.max(next);
    }

    /// Puts messages recovered from the store at the front of the queue (start-up only).
    pub fn restore(&self, messages: impl IntoIterator<Item = (u64, Arc<Message>, bool)>) {
        let mut st = self.lock();
        for (seq, message, redelivered) in messages {
            st.next_seq = st.next_seq.max(seq + 1);
            st.ready.push_back(Ready {
                seq,
                message,
                redelivered,
            });
        }
    }

    /// basic.get: takes the head message. Records the delivery on `channel` unless `no_ack`.
    pub fn get(self: &Arc<Self>, channel: &ChannelShared, no_ack: bool) -> bool {
        let mut st = self.lock();
        let Some(r) = st.ready.pop_front() else {
            return false;
        };
        let remaining = st.ready.len() as u32;
        if no_ack {
            self.unstore(std::iter::once((r.seq, &r.message)));
        } else {
            st.unacked += 1;
            if !r.redelivered {
                self.mark_delivered(r.seq, &r.message);
            }
        }
        let mut d = channel.deliveries();
        let tag = d.next_tag();
        if !no_ack {
            d.unacked.push_back(Unacked {
                tag,
                queue: self.clone(),
                seq: r.seq,
                message: r.message.clone(),
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

    /// Removes all ready messages; returns how many.
    pub fn purge(&self) -> u32 {
        let mut st = self.lock();
        let n = st.ready.len() as u32;
        let purged = std::mem::take(&mut st.ready);
        self.unstore(purged.iter().map(|r| (r.seq, &r.message)));
        n
    }

    /// Marks the queue deleted, drops its messages, and cancels its consumers (telling clients that
    /// asked for consumer_cancel_notify). Returns the number of ready messages dropped.
    pub fn delete(&self) -> u32 {
        self.deleted.store(true, Ordering::Relaxed);
        let (n, consumers) = {
            let mut st = self.lock();
            let n = st.ready.len() as u32;
            st.ready.clear();
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
        while !st.ready.is_empty() && !st.consumers.is_empty() {
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
    }
}

impl QueueState {
    fn pop_ready(&mut self) -> Option<Ready> {
        self.ready.pop_front()
    }
}
