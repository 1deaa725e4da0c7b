//! A queue's messages in the store.

use crate::message::Message;
use std::sync::Arc;
use std::time::Duration;
use storage::{Completion, MessageRecord, Op, Store};

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

    /// Stores a message at `seq` of `lane`; `done` runs once it is written (durably, if lasting),
    /// or once the message is deleted if that comes first. The caller delivers what it can, then
    /// calls [`QueueStore::nudge`].
    pub fn put(
        &self,
        lane: usize,
        seq: u64,
        message: &Arc<Message>,
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
        self.store.put_message(op, done);
    }

    /// Wakes the store's writer for puts that wait for a write (after [`QueueStore::put`] and the
    /// deliveries that followed it).
    pub fn nudge(&self) {
        self.store.nudge();
    }

    /// Deletes messages that left the queue for good: (lane, seq, message, lasting).
    pub fn delete<'a>(&self, gone: impl Iterator<Item = (usize, u64, &'a Message, bool)>) {
        // Handed over as they are made (no Vec per ack).
        let mut ops = gone
            .map(|(lane, seq, m, lasting)| Op::DeleteMessage {
                queue: self.lane_id(lane),
                seq,
                size: m.size() as u64,
                shared: m.shared_id().filter(|_| lasting),
                transient: !lasting,
            })
            .peekable();
        if ops.peek().is_some() {
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

    /// The message just stored at `seq` of `lane` is expected to be delivered and acked soon:
    /// its put waits `hold` for that, as a delivered one does (before [`QueueStore::nudge`]).
    pub fn expect_delivery(&self, lane: usize, seq: u64, hold: Duration) {
        self.store.hold_put(self.lane_id(lane), seq, hold);
    }

    /// Notes that a lasting message was delivered (it comes back redelivered after a restart);
    /// its put, if not written yet, waits `hold` for the ack.
    pub fn mark_delivered(&self, lane: usize, seq: u64, hold: Duration) {
        self.store.mark_delivered(self.lane_id(lane), seq, hold);
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
}
