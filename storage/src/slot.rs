//! The open database, shared by the writer thread and readers, and reopened after write failures;
//! how it is opened (its options and column families).
//!
//! After a failed write (a full disk, an I/O error) RocksDB keeps refusing writes: it stops on
//! a "background error" that only `DB::Resume` clears, and the C API that the `rocksdb` crate
//! wraps has no `Resume`. Closing and opening the database again does the same: the write-ahead
//! log is replayed, nothing that was written is lost, and writes succeed once there is space.
//! Only the writer thread reopens (at most once a second); readers take a clone of the handle for
//! the length of one read, so the reopen waits for them briefly.

use crate::cf::{CF_BODIES, CF_COUNTS, CF_DEFS, CF_META, CF_MSGS, CF_QREFS, CF_REFS, CF_TMSGS};
use crate::counts::merge_counts;
use crate::{StoreConfig, StoreError};
use rocksdb::{ColumnFamilyDescriptor, DBCompressionType, Options, DB};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Fewest time between two reopen attempts.
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for readers to let go of the old handle.
const READERS_WAIT: Duration = Duration::from_secs(2);

/// How to open the database: directory, settings, block cache.
pub(crate) struct Opener {
    pub dir: PathBuf,
    pub config: StoreConfig,
    pub cache: rocksdb::Cache,
    pub format: &'static str,
}

impl Opener {
    /// Opens the database with every column family (`create`: a new store).
    pub(crate) fn open(&self, create: bool) -> Result<DB, StoreError> {
        let (config, cache) = (&self.config, &self.cache);
        let mut db_opts = Options::default();
        db_opts.create_if_missing(create);
        // Also adds the column families an older format lacks (the marker was checked before).
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        // RocksDB's own log (LOG): warnings only, and bounded, so it does not outgrow the data.
        db_opts.set_log_level(rocksdb::LogLevel::Warn);
        db_opts.set_max_log_file_size(1 << 20);
        db_opts.set_keep_log_file_num(4);
        // Flush memtables once the WAL holds this much, so consumed messages' WAL goes away.
        // Every batch merges into the counts column family, whose small memtable keeps each log
        // file alive until this limit flushes it: at 64 MiB eight 8 MiB files were alive at once,
        // more than are recycled (below), so most logs were new files again.
        db_opts.set_max_total_wal_size(16 << 20);
        // Synced appends are what confirms wait for. Appending to a new log file changes its size
        // and allocates blocks, so each fdatasync also commits the file system's journal (433 us
        // median here for 50 KiB, against 163 us for the same write over existing blocks).
        // Recycled log files are overwritten in place; RocksDB's recyclable record format tells a
        // recycled file's stale tail from new records on recovery. The kept files take at most
        // about `max_total_wal_size` of disk.
        db_opts.set_recycle_log_file_num(RECYCLED_LOGS);
        // Flushes and compactions write their files out as they go (sync_file_range every MiB)
        // instead of all at once when the file is finished: a burst of tens of MiB queued
        // ahead of a log sync held confirms for milliseconds (p99 of a synced batch 3.5 ms -> 2.1 ms).
        db_opts.set_bytes_per_sync(1 << 20);
        // All memtables together stay under this (flushing the largest first).
        db_opts.set_db_write_buffer_size(config.write_buffer_bytes * 4);
        let mut counts = cf_options(config, cache);
        counts.set_merge_operator_associative("warren-counts", merge_counts);
        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_META, cf_options(config, cache)),
            ColumnFamilyDescriptor::new(CF_DEFS, cf_options(config, cache)),
            ColumnFamilyDescriptor::new(CF_MSGS, msgs_options(config, cache)),
            ColumnFamilyDescriptor::new(CF_TMSGS, msgs_options(config, cache)),
            ColumnFamilyDescriptor::new(CF_COUNTS, counts),
            ColumnFamilyDescriptor::new(CF_BODIES, msgs_options(config, cache)),
            ColumnFamilyDescriptor::new(CF_REFS, cf_options(config, cache)),
            ColumnFamilyDescriptor::new(CF_QREFS, msgs_options(config, cache)),
        ];
        let dir = &self.dir;
        DB::open_cf_descriptors(&db_opts, dir, cfs).map_err(|e| {
            let text = e.into_string();
            if text.contains("lock")
                && (text.contains("LOCK") || text.contains("Resource temporarily unavailable"))
            {
                StoreError::Locked(dir.clone())
            } else if text.contains("Column family not found") || text.contains("Invalid argument")
            {
                StoreError::Incompatible {
                    path: dir.clone(),
                    found: text,
                    expected: self.format.to_string(),
                }
            } else {
                StoreError::Db(format!("cannot open {}: {text}", dir.display()))
            }
        })
    }
}

/// A column family's options: compression, memtable size, the shared block cache.
fn cf_options(config: &StoreConfig, cache: &rocksdb::Cache) -> Options {
    let mut o = Options::default();
    if config.compression {
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_bottommost_compression_type(DBCompressionType::Zstd);
    } else {
        o.set_compression_type(DBCompressionType::None);
    }
    o.set_write_buffer_size(config.write_buffer_bytes);
    let mut t = rocksdb::BlockBasedOptions::default();
    t.set_block_cache(cache);
    o.set_block_based_table_factory(&t);
    o
}

/// Write-ahead log files kept for reuse once obsolete (see [`Opener::open`]).
const RECYCLED_LOGS: usize = 2;

/// Records at least this long (a body of a few hundred bytes) go to blob files when flushed.
const MIN_BLOB_BYTES: u64 = 512;
/// Target size of a message column family's SST files.
const MSGS_SST_BYTES: u64 = 1 << 20;

/// Messages are deleted soon after they are written: files full of tombstones are compacted
/// early, so disk space comes back after consumption (even with an old message left at the head).
///
/// Bodies live in blob files: a record of [`MIN_BLOB_BYTES`] or more is written once, when its
/// memtable is flushed, into a blob file, and the SST keeps only its key and a reference. A
/// compaction then moves keys and references, not bodies (on a 1M-message backlog it had been
/// rewriting and recompressing every body once per level). A blob file is deleted once no SST
/// refers to it; garbage collection during compactions moves the few live bodies out of the
/// oldest files (one old message left at a queue's head), so their space comes back too: only in
/// the compactor's idle compactions (see `compactor::compact_collecting_blobs`), not in RocksDB's
/// background ones.
pub(crate) fn msgs_options(config: &StoreConfig, cache: &rocksdb::Cache) -> Options {
    let mut o = cf_options(config, cache);
    if config.compression {
        // SSTs hold keys and blob references only: ZSTD at the bottommost level saved little
        // there, and cost 3 % of a backlog drain's CPU to compress (and more to read back).
        o.set_bottommost_compression_type(DBCompressionType::Lz4);
    }
    o.add_compact_on_deletion_collector_factory(128, 64, 0.5);
    o.set_enable_blob_files(true);
    o.set_min_blob_size(MIN_BLOB_BYTES);
    o.set_blob_compression_type(if config.compression {
        DBCompressionType::Lz4
    } else {
        DBCompressionType::None
    });
    // No garbage collection in background compactions. In a drain they meet the keys just past
    // the consumed prefix, whose bodies sit in the oldest blob files and are about to be consumed
    // anyway: collecting moved them into new blob files first (8 % of a 300k drain's CPU, in
    // `GarbageCollectBlobIfNeeded`). A file whose bodies are all consumed goes without it.
    o.set_enable_blob_gc(false);
    // What the idle compactions collect when they turn collection on: every file they meet.
    o.set_blob_gc_age_cutoff(1.0);
    // Small SSTs: with bodies in blob files an SST holds keys only, and 64 MiB of them (the
    // default) is a whole million-message backlog in one file, rewritten entire by every
    // compaction of its consumed prefix. Each such compaction still rewrites the live keys of the
    // file that the consumed prefix ends in, at every level: 4 MiB (about 100k keys) -> 1 MiB
    // halved a 1M drain's compaction CPU (2.0 s -> 1.2 s).
    o.set_target_file_size_base(MSGS_SST_BYTES);
    o
}

/// The current database handle (none while a reopen has not succeeded yet).
pub(crate) struct DbSlot {
    db: RwLock<Option<Arc<DB>>>,
    opener: Opener,
    last_reopen: Mutex<Option<Instant>>,
}

impl DbSlot {
    pub(crate) fn new(db: DB, opener: Opener) -> Self {
        DbSlot {
            db: RwLock::new(Some(Arc::new(db))),
            opener,
            last_reopen: Mutex::new(None),
        }
    }

    /// The handle, for one read or write.
    pub(crate) fn get(&self) -> Result<Arc<DB>, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Db("the store is being reopened after a failure".into()))
    }

    /// Closes the database and opens it again (writer thread only). Does nothing if the last
    /// attempt was less than a second ago.
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        {
            let mut last = self.last_reopen.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
                return Err(StoreError::Db("waiting to reopen the store".into()));
            }
            *last = Some(Instant::now());
        }
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(mut db) = slot.take() {
            // Readers hold clones only while they read: wait for them, then close.
            let deadline = Instant::now() + READERS_WAIT;
            loop {
                match Arc::try_unwrap(db) {
                    Ok(closing) => {
                        drop(closing);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        db = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(shared) => {
                        *slot = Some(shared);
                        return Err(StoreError::Db("store busy: not reopened".into()));
                    }
                }
            }
        }
        match self.opener.open(false) {
            Ok(db) => {
                info!(
                    "store reopened after failed writes ({})",
                    self.opener.dir.display()
                );
                *slot = Some(Arc::new(db));
                Ok(())
            }
            Err(e) => {
                warn!("store cannot be reopened yet: {e}");
                Err(e)
            }
        }
    }
}
