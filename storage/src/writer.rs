//! The writer thread: group commit.
//!
//! Every change to the store is an [`Op`] sent here with an optional [`Completion`]. The thread blocks
//! only while nothing is waiting; then it takes everything queued (up to a bound), folds it into one
//! `WriteBatch`, writes it with one WAL sync, and runs the completions. One fsync thus covers every
//! publisher, channel and queue that wrote meanwhile. A message put and deleted within one batch (acked
//! before it reached the disk) is dropped from the batch entirely.

use crate::keys;
use crate::StoreError;
use bytes::Bytes;
use rocksdb::{WriteBatch, WriteOptions, DB};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, error};

/// Most requests folded into one batch.
const MAX_BATCH_REQUESTS: usize = 4096;
/// Most payload bytes folded into one batch.
const MAX_BATCH_BYTES: usize = 64 << 20;

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
    },
    /// Delete the message at (queue, seq).
    DeleteMessage {
        /// Queue id.
        queue: u64,
        /// Sequence.
        seq: u64,
        /// Body size, for the queue's byte counter.
        size: u64,
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

pub(crate) struct Request {
    pub ops: Vec<Op>,
    pub done: Option<Completion>,
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
        Op::PutDef { value, .. } => value.len(),
        _ => 16,
    }
}

pub(crate) fn run(
    db: Arc<DB>,
    rx: Receiver<Request>,
    sync: bool,
    failures: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut wo = WriteOptions::default();
    wo.set_sync(sync);
    let mut requests: Vec<Request> = Vec::new();
    loop {
        match rx.recv() {
            Ok(r) => requests.push(r),
            Err(_) => break,
        }
        let mut bytes: usize = requests[0].ops.iter().map(op_bytes).sum();
        while requests.len() < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.ops.iter().map(op_bytes).sum::<usize>();
                    requests.push(r);
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
            }
        }
        let started = Instant::now();
        let result = write_batch(&db, &wo, &requests);
        if let Err(e) = &result {
            error!("store write failed: {e}");
            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        debug!(
            requests = requests.len(),
            bytes,
            micros = started.elapsed().as_micros() as u64,
            "batch committed"
        );
        for r in requests.drain(..) {
            if let Some(done) = r.done {
                done(result.clone());
            }
        }
    }
    debug!("store writer stopped");
}

fn write_batch(db: &DB, wo: &WriteOptions, requests: &[Request]) -> Result<(), StoreError> {
    let msgs = db.cf_handle(crate::store::CF_MSGS).expect("msgs cf");
    let counts = db.cf_handle(crate::store::CF_COUNTS).expect("counts cf");
    let defs = db.cf_handle(crate::store::CF_DEFS).expect("defs cf");
    // Puts and deletes of the same message within this batch cancel out (with any rewrite of the
    // record between them, which would otherwise bring it back).
    let mut put_at: HashMap<(u64, u64), (usize, usize)> = HashMap::new();
    let mut updated_at: HashMap<(u64, u64), Vec<(usize, usize)>> = HashMap::new();
    let mut cancelled: Vec<Vec<bool>> = requests.iter().map(|r| vec![false; r.ops.len()]).collect();
    for (ri, r) in requests.iter().enumerate() {
        for (oi, op) in r.ops.iter().enumerate() {
            match op {
                Op::PutMessage { queue, seq, .. } => {
                    put_at.insert((*queue, *seq), (ri, oi));
                }
                Op::UpdateMessage { queue, seq, .. } if put_at.contains_key(&(*queue, *seq)) => {
                    updated_at.entry((*queue, *seq)).or_default().push((ri, oi));
                }
                Op::DeleteMessage { queue, seq, .. } => {
                    if let Some((pr, po)) = put_at.remove(&(*queue, *seq)) {
                        cancelled[pr][po] = true;
                        cancelled[ri][oi] = true;
                        for (ur, uo) in updated_at.remove(&(*queue, *seq)).unwrap_or_default() {
                            cancelled[ur][uo] = true;
                        }
                    }
                }
                Op::DropQueueMessages { queue } => put_at.retain(|(q, _), _| q != queue),
                _ => {}
            }
        }
    }
    let mut batch = WriteBatch::default();
    for (ri, r) in requests.iter().enumerate() {
        for (oi, op) in r.ops.iter().enumerate() {
            if cancelled[ri][oi] {
                continue;
            }
            match op {
                Op::PutMessage {
                    queue,
                    seq,
                    record,
                    size,
                } => {
                    batch.put_cf(&msgs, keys::message(*queue, *seq), record);
                    batch.merge_cf(&counts, keys::counts(*queue), count_delta(1, *size as i64));
                }
                Op::DeleteMessage { queue, seq, size } => {
                    batch.delete_cf(&msgs, keys::message(*queue, *seq));
                    batch.merge_cf(
                        &counts,
                        keys::counts(*queue),
                        count_delta(-1, -(*size as i64)),
                    );
                }
                Op::UpdateMessage { queue, seq, record } => {
                    batch.put_cf(&msgs, keys::message(*queue, *seq), record);
                }
                Op::DeleteRange {
                    queue,
                    from,
                    to,
                    count,
                    bytes,
                } => {
                    let end = keys::message(*queue, to.saturating_add(1));
                    batch.delete_range_cf(&msgs, keys::message(*queue, *from), end);
                    batch.merge_cf(
                        &counts,
                        keys::counts(*queue),
                        count_delta(-(*count as i64), -(*bytes as i64)),
                    );
                }
                Op::MarkDelivered { queue, seq } => {
                    let mark = Counts {
                        count: 0,
                        bytes: 0,
                        delivered: seq + 1,
                    };
                    batch.merge_cf(&counts, keys::counts(*queue), mark.encode());
                }
                Op::DropQueueMessages { queue } => {
                    batch.delete_range_cf(
                        &msgs,
                        keys::message(*queue, 0),
                        keys::message(queue.saturating_add(1), 0),
                    );
                    batch.delete_cf(&counts, keys::counts(*queue));
                }
                Op::PutDef { key, value } => batch.put_cf(&defs, key, value),
                Op::DeleteDef { key } => batch.delete_cf(&defs, key),
            }
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    db.write_opt(batch, wo).map_err(StoreError::from)
}
