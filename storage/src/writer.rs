//! The writer thread: group commit.
//!
//! Every change to the store is an [`Op`] sent here with an optional [`Completion`]. The thread blocks
//! only while nothing is waiting; then it takes everything queued (up to a bound), folds it into one
//! `WriteBatch`, writes it with one WAL sync, and runs the completions. One fsync thus covers every
//! publisher, channel and queue that wrote meanwhile. A message put and deleted within one batch (acked
//! before it reached the disk) is dropped from the batch entirely.
//!
//! Shared bodies: a message routed to several queues keeps its properties and body once, in the
//! `bodies` column family, with a reference count in `refs` and, per queue record that points at it,
//! an entry in `qrefs` (so a range delete finds the bodies it releases without reading messages).
//! The count is read, changed and written back here, on the only thread that writes, in the same
//! batch as the records that changed it: a body goes away in the batch that drops its last
//! reference, so a crash can leave neither a dangling reference nor an orphan body. A range delete
//! (purge, queue deletion) must see what is already written to find its references, so the ops
//! before it are written first (without a sync; the last write of the group syncs the WAL).

use crate::keys;
use crate::StoreError;
use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions, DB};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, error, info};

/// A batch is written at once when this many payload bytes are waiting.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// How long a change that nobody waits for may wait for others before it is written.
const LAZY_DELAY: Duration = Duration::from_millis(2);
/// A queue's deleted range is compacted after this many deletes...
const COMPACT_AFTER_DELETES: u64 = 64 * 1024;
/// ... or once the writer has been idle this long, if it has at least this many (fewer are left to
/// RocksDB's own compactions: a compaction per short-lived queue would cost more than it frees).
const COMPACT_WHEN_IDLE: Duration = Duration::from_secs(2);
const COMPACT_WHEN_IDLE_MIN: u64 = 1024;

/// One change.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store a message (encoded [`crate::MessageRecord`]) at (queue, seq).
    PutMessage {
        /// Queue id.
        queue: u64,
        /// Sequence in the queue.
        seq: u64,
        /// Encoded record.
        record: Bytes,
        /// Body size, for the queue's byte counter.
        size: u64,
        /// The shared body the record points at (it holds a reference).
        shared: Option<u64>,
        /// Written only to page it out of memory (a transient message, or any message of a
        /// non-durable queue): kept in `tmsgs`, which start-up empties, and left out of the
        /// queue's counters. Such a record never points at a shared body.
        transient: bool,
    },
    /// Delete the message at (queue, seq).
    DeleteMessage {
        /// Queue id.
        queue: u64,
        /// Sequence.
        seq: u64,
        /// Body size, for the queue's byte counter.
        size: u64,
        /// The shared body the record pointed at (its reference is dropped).
        shared: Option<u64>,
        /// The record was put as transient.
        transient: bool,
    },
    /// Store a shared body (encoded with [`crate::MessageRecord::encode_body`]) with one reference
    /// held by whoever routes the message, dropped with [`Op::ReleaseBody`] once every queue's
    /// record (which hold their own references) has been submitted.
    PutBody {
        /// Body id ([`crate::Store::allocate_body_id`]).
        id: u64,
        /// Properties and body.
        value: Bytes,
    },
    /// Drops the router's reference to a shared body.
    ReleaseBody {
        /// Body id.
        id: u64,
    },
    /// Delete the messages `from..=to` of a queue (a purge of its paged range).
    DeleteRange {
        /// Queue id.
        queue: u64,
        /// First sequence.
        from: u64,
        /// Last sequence.
        to: u64,
        /// Messages in the range, for the counter.
        count: u64,
        /// Their body bytes, for the counter.
        bytes: u64,
    },
    /// Replace the message at (queue, seq) without changing counters (delivery count update).
    UpdateMessage {
        /// Queue id.
        queue: u64,
        /// Sequence.
        seq: u64,
        /// Encoded record.
        record: Bytes,
        /// The record was put as transient.
        transient: bool,
    },
    /// Record that messages up to `seq` were delivered at least once (they come back as redelivered
    /// after a restart, as in RabbitMQ).
    MarkDelivered {
        /// Queue id.
        queue: u64,
        /// Highest delivered sequence.
        seq: u64,
    },
    /// Delete every message of a queue and its counters.
    DropQueueMessages {
        /// Queue id.
        queue: u64,
    },
    /// Put a definition.
    PutDef {
        /// Key in `defs`.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete a definition.
    DeleteDef {
        /// Key in `defs`.
        key: Vec<u8>,
    },
}

/// Runs once the request's batch is durable (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Changes waiting for the writer thread, in submission order (one queue, so the order of all
/// changes is kept), and the completions of the submissions among them.
///
/// A submission with a completion (a publisher confirm, a barrier) wakes the writer. One without
/// (an ack's delete, a delivery mark, a page-out) does not, unless the writer is idle: it is
/// written with whatever comes next, at most [`LAZY_DELAY`] later. So a delivery and its ack cost
/// no wakeup of the writer, and batches are larger.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    cv: Condvar,
}

#[derive(Default)]
struct InboxState {
    ops: Vec<Op>,
    dones: Vec<Completion>,
    /// When the oldest change waiting arrived.
    first_at: Option<Instant>,
    bytes: usize,
    closed: bool,
    waiting: Waiting,
}

/// What the writer thread is doing, so that submitters wake it only when needed.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Writing (it looks at the inbox again before it sleeps).
    #[default]
    No,
    /// Asleep with nothing to do.
    Idle,
    /// Asleep until the oldest change without a completion is due.
    Lazy,
}

/// What the writer got from the inbox.
enum Taken {
    Work,
    Idle,
    Closed,
}

impl Inbox {
    pub fn new() -> Self {
        Inbox {
            state: Mutex::new(InboxState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues changes; `done` runs on the writer thread once they are durable (or failed).
    pub fn submit(&self, ops: Vec<Op>, done: Option<Completion>) {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            if let Some(done) = done {
                done(Err(StoreError::Closed));
            }
            return;
        }
        if st.first_at.is_none() {
            st.first_at = Some(Instant::now());
        }
        st.bytes += ops.iter().map(op_bytes).sum::<usize>();
        st.ops.extend(ops);
        let wake = match done {
            Some(done) => {
                st.dones.push(done);
                st.waiting != Waiting::No
            }
            None => {
                st.waiting == Waiting::Idle
                    || (st.waiting == Waiting::Lazy && st.bytes >= MAX_BATCH_BYTES)
            }
        };
        if wake {
            st.waiting = Waiting::No;
            drop(st);
            self.cv.notify_one();
        }
    }

    /// No more submissions: the writer writes what is left and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_one();
    }

    /// Waits for work and swaps it into `ops` and `dones` (which must be empty).
    fn take(&self, ops: &mut Vec<Op>, dones: &mut Vec<Completion>) -> Taken {
        let mut st = self.lock();
        loop {
            if !st.dones.is_empty()
                || st.bytes >= MAX_BATCH_BYTES
                || (st.closed && !st.ops.is_empty())
            {
                break;
            }
            if !st.ops.is_empty() {
                let due = st.first_at.unwrap_or_else(Instant::now) + LAZY_DELAY;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                st.waiting = Waiting::Lazy;
                st = self
                    .cv
                    .wait_timeout(st, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                st.waiting = Waiting::No;
                continue;
            }
            if st.closed {
                return Taken::Closed;
            }
            st.waiting = Waiting::Idle;
            let (guard, timeout) = self
                .cv
                .wait_timeout(st, COMPACT_WHEN_IDLE)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.waiting = Waiting::No;
            if timeout.timed_out() && st.ops.is_empty() && st.dones.is_empty() {
                return Taken::Idle;
            }
        }
        std::mem::swap(ops, &mut st.ops);
        std::mem::swap(dones, &mut st.dones);
        st.bytes = 0;
        st.first_at = None;
        Taken::Work
    }
}

/// A queue's counters: message count and body bytes (summed), and the highest sequence ever
/// delivered (maximum). Kept by a merge operator, so updates never read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub count: i64,
    pub bytes: i64,
    pub delivered: u64,
}

impl Counts {
    pub fn encode(self) -> [u8; 24] {
        let mut v = [0u8; 24];
        v[..8].copy_from_slice(&self.count.to_be_bytes());
        v[8..16].copy_from_slice(&self.bytes.to_be_bytes());
        v[16..].copy_from_slice(&self.delivered.to_be_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Counts {
        if v.len() != 24 {
            return Counts::default();
        }
        Counts {
            count: i64::from_be_bytes(v[..8].try_into().expect("8")),
            bytes: i64::from_be_bytes(v[8..16].try_into().expect("8")),
            delivered: u64::from_be_bytes(v[16..].try_into().expect("8")),
        }
    }
}

fn count_delta(count: i64, bytes: i64) -> [u8; 24] {
    Counts {
        count,
        bytes,
        delivered: 0,
    }
    .encode()
}

/// The `counts` merge operator: sums counts and bytes, keeps the highest delivered mark.
pub(crate) fn merge_counts(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &rocksdb::MergeOperands,
) -> Option<Vec<u8>> {
    let mut acc = existing.map(Counts::decode).unwrap_or_default();
    for op in operands {
        let d = Counts::decode(op);
        acc.count += d.count;
        acc.bytes += d.bytes;
        acc.delivered = acc.delivered.max(d.delivered);
    }
    Some(acc.encode().to_vec())
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::PutMessage { record, .. } | Op::UpdateMessage { record, .. } => record.len(),
        Op::PutBody { value, .. } => value.len(),
        Op::PutDef { value, .. } => value.len(),
        _ => 16,
    }
}

pub(crate) fn run(
    slot: Arc<crate::slot::DbSlot>,
    inbox: Arc<Inbox>,
    sync: bool,
    failures: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut wo = WriteOptions::default();
    wo.set_sync(sync);
    let mut ops: Vec<Op> = Vec::new();
    let mut dones: Vec<Completion> = Vec::new();
    let mut broken = false;
    let mut deleted = Deleted::default();
    let (compactor, compactor_thread) = {
        let (tx, crx) = std::sync::mpsc::channel();
        let slot = slot.clone();
        match std::thread::Builder::new()
            .name("warren-store-compactor".into())
            .spawn(move || compact(slot, crx))
        {
            Ok(handle) => (Some(tx), Some(handle)),
            Err(_) => (None, None),
        }
    };
    loop {
        match inbox.take(&mut ops, &mut dones) {
            Taken::Work => {}
            Taken::Idle => {
                deleted.send(compactor.as_ref(), COMPACT_WHEN_IDLE_MIN);
                if std::mem::take(&mut deleted.since_flush) {
                    if let Some(tx) = &compactor {
                        let _ = tx.send(Compaction::Flush);
                    }
                }
                continue;
            }
            Taken::Closed => break,
        }
        let started = Instant::now();
        // After a failure RocksDB refuses every write until it is reopened.
        let reopened = if broken { slot.reopen() } else { Ok(()) };
        let result = reopened
            .and_then(|()| slot.get())
            .and_then(|db| write_batch(&db, &wo, &ops));
        match &result {
            Err(e) => {
                if !broken {
                    error!("store write failed: {e}");
                } else {
                    debug!("store write failed again: {e}");
                }
                broken = true;
                failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(()) if broken => {
                info!("store writes succeed again");
                broken = false;
            }
            Ok(()) => {}
        }
        if result.is_ok() {
            deleted.note(&ops);
            deleted.send(compactor.as_ref(), COMPACT_AFTER_DELETES);
        }
        debug!(
            ops = ops.len(),
            completions = dones.len(),
            micros = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        for done in dones.drain(..) {
            done(result.clone());
        }
        ops.clear();
        if ops.capacity() > 1 << 16 {
            // Give back what a burst took; the usual batch is far smaller.
            ops = Vec::new();
        }
    }
    // The compactor holds the database too: it must be gone before the store is closed.
    drop(compactor);
    if let Some(t) = compactor_thread {
        let _ = t.join();
    }
    debug!("store writer stopped");
}

/// Key ranges with many deletes, to compact so that disk space comes back soon after messages are
/// consumed (RocksDB would get to them eventually; a queue's consumed prefix is one range, so
/// compacting it is cheap, and a message left unacked at its head does not hold anything back).
#[derive(Default)]
struct Deleted {
    /// Per queue id: deletes since its last compaction, and the highest sequence deleted.
    queues: HashMap<u64, (u64, u64)>,
    /// Per queue id: records written in this run (a dropped queue is compacted only if it had
    /// some, so deleting the many queues that never stored anything costs nothing).
    stored: HashMap<u64, u64>,
    /// Shared bodies deleted since the last compaction: count, lowest and highest id.
    bodies: (u64, u64, u64),
    /// Something was deleted since the last idle flush.
    since_flush: bool,
}

/// Work for the compactor: one queue id's messages up to a sequence, shared bodies, or a flush of
/// every memtable (once idle after deletes: the write-ahead log files they pin can then go).
enum Compaction {
    Queue { queue: u64, upto: u64 },
    Bodies { from: u64, to: u64 },
    Flush,
}

impl Deleted {
    fn note(&mut self, ops: &[Op]) {
        for op in ops {
            let (queue, n, upto) = match op {
                Op::DeleteMessage { queue, seq, .. } => (*queue, 1, *seq),
                Op::DeleteRange {
                    queue, to, count, ..
                } => (*queue, (*count).max(1), *to),
                Op::PutMessage { queue, .. } => {
                    *self.stored.entry(*queue).or_default() += 1;
                    continue;
                }
                Op::DropQueueMessages { queue } => {
                    let written = self.stored.remove(queue).unwrap_or(0);
                    let pending = self.queues.remove(queue).map_or(0, |(n, _)| n);
                    if written + pending < COMPACT_WHEN_IDLE_MIN {
                        continue;
                    }
                    (*queue, written + pending, u64::MAX)
                }
                Op::ReleaseBody { id } => {
                    self.since_flush = true;
                    let b = &mut self.bodies;
                    *b = if b.0 == 0 {
                        (1, *id, *id)
                    } else {
                        (b.0 + 1, b.1.min(*id), b.2.max(*id))
                    };
                    continue;
                }
                _ => continue,
            };
            self.since_flush = true;
            let e = self.queues.entry(queue).or_default();
            e.0 += n;
            e.1 = e.1.max(upto);
        }
    }

    /// Hands the ranges with at least `min` deletes to the compactor.
    fn send(&mut self, to: Option<&Sender<Compaction>>, min: u64) {
        let Some(tx) = to else {
            return;
        };
        self.queues.retain(|&queue, &mut (n, upto)| {
            if n < min {
                return true;
            }
            let _ = tx.send(Compaction::Queue { queue, upto });
            false
        });
        if self.bodies.0 >= min {
            let _ = tx.send(Compaction::Bodies {
                from: self.bodies.1,
                to: self.bodies.2,
            });
            self.bodies = (0, 0, 0);
        }
    }
}

/// The compactor thread: compacts the ranges the writer hands over, off the write path.
fn compact(slot: Arc<crate::slot::DbSlot>, rx: Receiver<Compaction>) {
    use crate::store::{CF_BODIES, CF_MSGS, CF_QREFS, CF_REFS, CF_TMSGS};
    while let Ok(c) = rx.recv() {
        let Ok(db) = slot.get() else {
            continue;
        };
        let started = Instant::now();
        let (cfs, from, to): (&[&str], Vec<u8>, Vec<u8>) = match c {
            Compaction::Queue { queue, upto } => (
                &[CF_MSGS, CF_TMSGS, CF_QREFS],
                keys::message(queue, 0).to_vec(),
                match upto.checked_add(1) {
                    Some(end) => keys::message(queue, end).to_vec(),
                    None => keys::message(queue.saturating_add(1), 0).to_vec(),
                },
            ),
            Compaction::Bodies { from, to } => (
                &[CF_BODIES, CF_REFS],
                keys::body(from).to_vec(),
                keys::body(to.saturating_add(1)).to_vec(),
            ),
            Compaction::Flush => {
                let cfs: Vec<_> = crate::store::ALL_CFS
                    .iter()
                    .filter_map(|n| db.cf_handle(n))
                    .collect();
                let refs: Vec<_> = cfs.iter().collect();
                if let Err(e) = db.flush_cfs_opt(&refs, &rocksdb::FlushOptions::default()) {
                    debug!("idle flush failed: {e}");
                }
                continue;
            }
        };
        for name in cfs {
            if let Some(cf) = db.cf_handle(name) {
                db.compact_range_cf(&cf, Some(&from), Some(&to));
            }
        }
        debug!(
            micros = started.elapsed().as_micros() as u64,
            "compacted a consumed range"
        );
    }
}

fn write_batch(db: &DB, wo: &WriteOptions, ops: &[Op]) -> Result<(), StoreError> {
    let mut unsynced = false;
    let mut start = 0;
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::DeleteRange { .. } | Op::DropQueueMessages { .. }) {
            let mut batch = segment(db, &ops[start..i])?;
            range_delete(db, op, &mut batch)?;
            db.write_opt(batch, &WriteOptions::default())?;
            unsynced = true;
            start = i + 1;
        }
    }
    let batch = segment(db, &ops[start..])?;
    if !batch.is_empty() {
        db.write_opt(batch, wo)?;
    } else if unsynced {
        db.flush_wal(true)?;
    }
    Ok(())
}

/// Reference count changes of shared bodies within one write.
#[derive(Default)]
struct BodyRefs {
    delta: HashMap<u64, i64>,
    new: HashMap<u64, Bytes>,
}

impl BodyRefs {
    fn add(&mut self, id: u64, d: i64) {
        *self.delta.entry(id).or_default() += d;
    }

    /// Writes the new counts; a body whose count reaches zero is deleted (or, if it was put in
    /// this same write, never written).
    fn apply(self, db: &DB, batch: &mut WriteBatch) -> Result<(), StoreError> {
        if self.delta.is_empty() {
            return Ok(());
        }
        let bodies = db.cf_handle(crate::store::CF_BODIES).expect("bodies cf");
        let refs = db.cf_handle(crate::store::CF_REFS).expect("refs cf");
        for (id, d) in self.delta {
            let key = keys::body(id);
            let new = self.new.get(&id);
            let before = if new.is_some() {
                0
            } else {
                match db.get_cf(&refs, key)? {
                    Some(v) => decode_refs(&v),
                    None => {
                        debug!(body = id, "reference change of a body that is not stored");
                        0
                    }
                }
            };
            let after = before + d;
            if after <= 0 {
                if new.is_none() {
                    batch.delete_cf(&bodies, key);
                    batch.delete_cf(&refs, key);
                }
            } else {
                if let Some(value) = new {
                    batch.put_cf(&bodies, key, value);
                }
                batch.put_cf(&refs, key, after.to_be_bytes());
            }
        }
        Ok(())
    }
}

fn decode_refs(v: &[u8]) -> i64 {
    <[u8; 8]>::try_from(v).map_or(0, i64::from_be_bytes)
}

/// A purge of a paged range or a queue's deletion, against what is already written: the shared
/// bodies its records pointed at are found in `qrefs` and released.
fn range_delete(db: &DB, op: &Op, batch: &mut WriteBatch) -> Result<(), StoreError> {
    let msgs = db.cf_handle(crate::store::CF_MSGS).expect("msgs cf");
    let tmsgs = db.cf_handle(crate::store::CF_TMSGS).expect("tmsgs cf");
    let counts = db.cf_handle(crate::store::CF_COUNTS).expect("counts cf");
    let qrefs = db.cf_handle(crate::store::CF_QREFS).expect("qrefs cf");
    let (queue, from, end) = match op {
        Op::DeleteRange {
            queue,
            from,
            to,
            count,
            bytes,
        } => {
            batch.merge_cf(
                &counts,
                keys::counts(*queue),
                count_delta(-(*count as i64), -(*bytes as i64)),
            );
            (
                *queue,
                keys::message(*queue, *from),
                keys::message(*queue, to.saturating_add(1)),
            )
        }
        Op::DropQueueMessages { queue } => {
            batch.delete_cf(&counts, keys::counts(*queue));
            (
                *queue,
                keys::message(*queue, 0),
                keys::message(queue.saturating_add(1), 0),
            )
        }
        _ => return Ok(()),
    };
    let mut refs = BodyRefs::default();
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(end.to_vec());
    for item in db.iterator_cf_opt(&qrefs, ro, IteratorMode::From(&from, Direction::Forward)) {
        let (_, v) = item?;
        refs.add(decode_refs(&v) as u64, -1);
    }
    debug!(queue, bodies = refs.delta.len(), "range delete");
    batch.delete_range_cf(&msgs, from, end);
    batch.delete_range_cf(&tmsgs, from, end);
    batch.delete_range_cf(&qrefs, from, end);
    refs.apply(db, batch)
}

/// Folds ops (with no range delete among them) into one batch.
fn segment(db: &DB, ops: &[Op]) -> Result<WriteBatch, StoreError> {
    let msgs = db.cf_handle(crate::store::CF_MSGS).expect("msgs cf");
    let tmsgs = db.cf_handle(crate::store::CF_TMSGS).expect("tmsgs cf");
    let counts = db.cf_handle(crate::store::CF_COUNTS).expect("counts cf");
    let defs = db.cf_handle(crate::store::CF_DEFS).expect("defs cf");
    let qrefs = db.cf_handle(crate::store::CF_QREFS).expect("qrefs cf");
    // Puts and deletes of the same message within this batch cancel out (with any rewrite of the
    // record between them, which would otherwise bring it back).
    let mut put_at: HashMap<(u64, u64), usize> = HashMap::new();
    let mut updated_at: HashMap<(u64, u64), Vec<usize>> = HashMap::new();
    let mut cancelled = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::PutMessage { queue, seq, .. } => {
                put_at.insert((*queue, *seq), i);
            }
            Op::UpdateMessage { queue, seq, .. } if put_at.contains_key(&(*queue, *seq)) => {
                updated_at.entry((*queue, *seq)).or_default().push(i);
            }
            Op::DeleteMessage { queue, seq, .. } => {
                if let Some(p) = put_at.remove(&(*queue, *seq)) {
                    cancelled[p] = true;
                    cancelled[i] = true;
                    for u in updated_at.remove(&(*queue, *seq)).unwrap_or_default() {
                        cancelled[u] = true;
                    }
                }
            }
            _ => {}
        }
    }
    let mut batch = WriteBatch::default();
    let mut refs = BodyRefs::default();
    let mut deltas: HashMap<u64, Counts> = HashMap::new();
    for (op, _) in ops.iter().zip(&cancelled).filter(|(_, c)| !**c) {
        match op {
            Op::PutMessage {
                queue,
                seq,
                record,
                shared,
                transient: true,
                ..
            } => {
                debug_assert!(shared.is_none(), "a transient record with a shared body");
                batch.put_cf(&tmsgs, keys::message(*queue, *seq), record);
            }
            Op::PutMessage {
                queue,
                seq,
                record,
                size,
                shared,
                transient: false,
            } => {
                let key = keys::message(*queue, *seq);
                batch.put_cf(&msgs, key, record);
                let c = deltas.entry(*queue).or_default();
                c.count += 1;
                c.bytes += *size as i64;
                if let Some(id) = shared {
                    batch.put_cf(&qrefs, key, id.to_be_bytes());
                    refs.add(*id, 1);
                }
            }
            Op::DeleteMessage {
                queue,
                seq,
                transient: true,
                ..
            } => batch.delete_cf(&tmsgs, keys::message(*queue, *seq)),
            Op::DeleteMessage {
                queue,
                seq,
                size,
                shared,
                transient: false,
            } => {
                let key = keys::message(*queue, *seq);
                batch.delete_cf(&msgs, key);
                let c = deltas.entry(*queue).or_default();
                c.count -= 1;
                c.bytes -= *size as i64;
                if let Some(id) = shared {
                    batch.delete_cf(&qrefs, key);
                    refs.add(*id, -1);
                }
            }
            Op::UpdateMessage {
                queue,
                seq,
                record,
                transient,
            } => {
                let cf = if *transient { &tmsgs } else { &msgs };
                batch.put_cf(cf, keys::message(*queue, *seq), record);
            }
            Op::PutBody { id, value } => {
                refs.new.insert(*id, value.clone());
                refs.add(*id, 1);
            }
            Op::ReleaseBody { id } => refs.add(*id, -1),
            Op::MarkDelivered { queue, seq } => {
                let c = deltas.entry(*queue).or_default();
                c.delivered = c.delivered.max(seq + 1);
            }
            Op::PutDef { key, value } => batch.put_cf(&defs, key, value),
            Op::DeleteDef { key } => batch.delete_cf(&defs, key),
            Op::DeleteRange { .. } | Op::DropQueueMessages { .. } => {
                unreachable!("range deletes are written on their own")
            }
        }
    }
    // One counter update per queue per batch, however many messages it touched.
    for (queue, delta) in deltas {
        if delta != Counts::default() {
            batch.merge_cf(&counts, keys::counts(queue), delta.encode());
        }
    }
    refs.apply(db, &mut batch)?;
    Ok(batch)
}
