//! The compactor: which consumed key ranges to compact and when (its thresholds), and the
//! thread (`warren-store-compactor`) that compacts them and flushes memtables once the writer is
//! idle, off the write path.

use crate::cf::{ALL_CFS, CF_BODIES, CF_MSGS, CF_QREFS, CF_REFS, CF_TMSGS};
use crate::keys;
use crate::ops::Op;
use crate::slot::DbSlot;
use rustc_hash::FxHashMap;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::debug;

/// A queue's deleted range is compacted after this many deletes...
const COMPACT_AFTER_DELETES: u64 = 64 * 1024;
/// ... or once the writer has been idle this long, if it has at least this many (fewer are left to
/// RocksDB's own compactions: a compaction per short-lived queue would cost more than it frees).
pub(crate) const COMPACT_WHEN_IDLE: Duration = Duration::from_secs(2);
const COMPACT_WHEN_IDLE_MIN: u64 = 1024;

/// The writer's handle on the compactor thread: it notes what each written batch deleted and
/// hands the ranges over.
pub(crate) struct Compactor {
    /// None if the thread could not be started.
    tx: Option<Sender<Compaction>>,
    thread: Option<JoinHandle<()>>,
    deleted: Deleted,
}

impl Compactor {
    /// Starts the compactor thread (without one, nothing is compacted but by RocksDB itself).
    pub(crate) fn start(slot: Arc<DbSlot>) -> Self {
        let (tx, crx) = std::sync::mpsc::channel();
        let (tx, thread) = match std::thread::Builder::new()
            .name("warren-store-compactor".into())
            .spawn(move || compact(slot, crx))
        {
            Ok(handle) => (Some(tx), Some(handle)),
            Err(_) => (None, None),
        };
        Compactor {
            tx,
            thread,
            deleted: Deleted::default(),
        }
    }

    /// After `ops` were written: notes their deletes, and compacts the ranges that have many.
    pub(crate) fn written(&mut self, ops: &[Op]) {
        self.deleted.note(ops);
        self.deleted
            .send(self.tx.as_ref(), COMPACT_AFTER_DELETES, false);
    }

    /// The writer has been idle for [`COMPACT_WHEN_IDLE`]: compacts the ranges with enough deletes
    /// and, if anything was deleted since the last time, flushes the memtables.
    pub(crate) fn idle(&mut self) {
        self.deleted
            .send(self.tx.as_ref(), COMPACT_WHEN_IDLE_MIN, true);
        if std::mem::take(&mut self.deleted.since_flush) {
            if let Some(tx) = &self.tx {
                let _ = tx.send(Compaction::Flush);
            }
        }
    }

    /// Stops the thread after the work handed over so far (it holds the database too).
    pub(crate) fn stop(self) {
        drop(self.tx);
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}

/// Key ranges with many deletes, to compact so that disk space comes back soon after messages are
/// consumed (RocksDB would get to them eventually; a queue's consumed prefix is one range, so
/// compacting it is cheap, and a message left unacked at its head does not hold anything back).
#[derive(Default)]
struct Deleted {
    /// Per queue id: deletes since its last compaction, and the highest sequence deleted.
    queues: FxHashMap<u64, (u64, u64)>,
    /// Per queue id: records written in this run (a dropped queue is compacted only if it had
    /// some, so deleting the many queues that never stored anything costs nothing).
    stored: FxHashMap<u64, u64>,
    /// Shared bodies deleted since the last compaction: count, lowest and highest id.
    bodies: (u64, u64, u64),
    /// Something was deleted since the last idle flush.
    since_flush: bool,
}

/// Work for the compactor: one queue id's messages up to a sequence, shared bodies, or a flush of
/// every memtable (once idle after deletes: the write-ahead log files they pin can then go).
enum Compaction {
    /// `idle`: the writer was idle; the compaction also moves live bodies out of every blob file
    /// it meets (see [`compact_collecting_blobs`]).
    Queue {
        queue: u64,
        upto: u64,
        idle: bool,
    },
    Bodies {
        from: u64,
        to: u64,
    },
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
    fn send(&mut self, to: Option<&Sender<Compaction>>, min: u64, idle: bool) {
        let Some(tx) = to else {
            return;
        };
        self.queues.retain(|&queue, &mut (n, upto)| {
            if n < min {
                return true;
            }
            let _ = tx.send(Compaction::Queue { queue, upto, idle });
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
fn compact(slot: Arc<DbSlot>, rx: Receiver<Compaction>) {
    while let Ok(c) = rx.recv() {
        let Ok(db) = slot.get() else {
            continue;
        };
        let started = Instant::now();
        let collect_blobs = matches!(c, Compaction::Queue { idle: true, .. });
        let (cfs, from, to): (&[&str], Vec<u8>, Vec<u8>) = match c {
            Compaction::Queue { queue, upto, .. } => (
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
                let cfs: Vec<_> = ALL_CFS.iter().filter_map(|n| db.cf_handle(n)).collect();
                let refs: Vec<_> = cfs.iter().collect();
                if let Err(e) = db.flush_cfs_opt(&refs, &rocksdb::FlushOptions::default()) {
                    debug!("idle flush failed: {e}");
                }
                continue;
            }
        };
        for name in cfs {
            if let Some(cf) = db.cf_handle(name) {
                if collect_blobs && *name != CF_QREFS {
                    compact_collecting_blobs(&db, &cf, &from, &to);
                } else {
                    db.compact_range_cf(&cf, Some(&from), Some(&to));
                }
            }
        }
        debug!(
            micros = started.elapsed().as_micros() as u64,
            "compacted a consumed range"
        );
    }
}

/// Compacts a consumed range once the writer is idle, moving the live bodies out of every blob file
/// the compaction meets.
///
/// Background compactions do not collect blob files (see `slot::msgs_options`): a file is deleted
/// once every body in it is consumed. After a queue is consumed but for an old message at its
/// head, that message's file (a memtable's worth of bodies) would stay; this compaction moves the
/// message's body out of it. Collection is turned on for this compaction only (a mutable option;
/// background compactions running meanwhile collect too, which only costs them moves), with an
/// age cutoff of 1.0 (every file, not RocksDB's oldest quarter rounded down, which is none with
/// fewer than four files), and the bottommost level is rewritten, since that is where the old key
/// usually is.
fn compact_collecting_blobs(
    db: &rocksdb::DB,
    cf: &impl rocksdb::AsColumnFamilyRef,
    from: &[u8],
    to: &[u8],
) {
    if let Err(e) = db.set_options_cf(cf, &[("enable_blob_garbage_collection", "true")]) {
        debug!("cannot turn blob garbage collection on: {e}");
    }
    let mut opts = rocksdb::CompactOptions::default();
    opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    db.compact_range_cf_opt(cf, Some(from), Some(to), &opts);
    if let Err(e) = db.set_options_cf(cf, &[("enable_blob_garbage_collection", "false")]) {
        debug!("cannot turn blob garbage collection off: {e}");
    }
}
