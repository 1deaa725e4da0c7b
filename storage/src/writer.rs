//! The writer thread: group commit.
//!
//! Every change to the store is an [`Op`] submitted to the [`Inbox`] with an optional
//! [`Completion`]. The thread blocks only while nothing is waiting; then it takes everything
//! queued (up to a bound), folds it into one `WriteBatch` ([`crate::batch`]), writes it with one
//! WAL sync, and runs the completions. One fsync thus covers every publisher, channel and queue
//! that wrote meanwhile. After a failed write it reopens the database before the next batch
//! ([`crate::slot`]); after a good one it tells the [`Compactor`] what was deleted.
//!
//! A range delete (purge, queue deletion) must see what is already written, so the ops before it
//! are written first (without a sync; the last write of the group syncs the WAL).
//!
//! A batch that no completion waits for (acks' deletes of written messages, delivered marks,
//! page-outs) is written without a sync: the next synced write, or the one at close, syncs it
//! along, since the WAL is one sequential log. A crash of the process keeps it (it is in the
//! kernel's page cache); only a power loss could take it, and what it holds is then redelivered.

use crate::batch::{range_delete, segment};
use crate::compactor::{Compactor, COMPACT_WHEN_IDLE};
use crate::inbox::{Inbox, Taken};
use crate::ops::{Completion, Op};
use crate::slot::DbSlot;
use crate::StoreError;
use rocksdb::{WriteOptions, DB};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, error, info};

/// The writer thread's body: runs until the inbox is closed and everything in it is written.
pub(crate) fn run(slot: Arc<DbSlot>, inbox: Arc<Inbox>, sync: bool, failures: Arc<AtomicU64>) {
    let mut synced = WriteOptions::default();
    synced.set_sync(sync);
    let unsynced = WriteOptions::default();
    // Written since the last sync (a barrier or the close must sync it).
    let mut owed = false;
    let mut ops: Vec<Op> = Vec::new();
    let mut dones: Vec<Completion> = Vec::new();
    let mut broken = false;
    let mut compactor = Compactor::start(slot.clone());
    loop {
        match inbox.take(&mut ops, &mut dones, COMPACT_WHEN_IDLE) {
            Taken::Work => {}
            Taken::Idle => {
                compactor.idle();
                continue;
            }
            Taken::Closed => break,
        }
        let started = Instant::now();
        // After a failure RocksDB refuses every write until it is reopened.
        let reopened = if broken { slot.reopen() } else { Ok(()) };
        // Only a batch that someone waits for pays for a sync.
        let want_sync = sync && !dones.is_empty();
        let wo = if want_sync { &synced } else { &unsynced };
        let result = reopened.and_then(|()| slot.get()).and_then(|db| {
            let wrote = write_batch(&db, wo, want_sync, &ops)?;
            if want_sync {
                if !wrote && owed {
                    db.flush_wal(true)?;
                }
                owed = false;
            } else {
                owed |= wrote;
            }
            Ok(())
        });
        match &result {
            Err(e) => {
                if !broken {
                    error!("store write failed: {e}");
                } else {
                    debug!("store write failed again: {e}");
                }
                broken = true;
                failures.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) if broken => {
                info!("store writes succeed again");
                broken = false;
            }
            Ok(()) => {}
        }
        if result.is_ok() {
            compactor.written(&ops);
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
    if owed && sync {
        if let Err(e) = slot.get().and_then(|db| Ok(db.flush_wal(true)?)) {
            error!("store sync at close failed: {e}");
        }
    }
    // The compactor holds the database too: it must be gone before the store is closed.
    compactor.stop();
    debug!("store writer stopped");
}

/// Writes what was taken: each range delete together with the ops before it (no sync), then the
/// rest with `wo` (the sync), or only a WAL flush with `wo`'s sync if nothing is left. True if
/// anything was written.
fn write_batch(db: &DB, wo: &WriteOptions, sync: bool, ops: &[Op]) -> Result<bool, StoreError> {
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
        return Ok(true);
    }
    if unsynced && sync {
        db.flush_wal(true)?;
    }
    Ok(unsynced)
}
