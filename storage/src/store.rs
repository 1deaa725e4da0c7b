//! Opening, recovering and reading the store.

use crate::cf::{CF_BODIES, CF_COUNTS, CF_DEFS, CF_META, CF_MSGS, CF_TMSGS};
use crate::counts::Counts;
use crate::defs::{BindingDef, ExchangeDef, QueueDef};
use crate::inbox::Inbox;
use crate::keys::{self, tag};
use crate::ops::{Completion, Op};
use crate::slot::{msgs_options, DbSlot, Opener};
use crate::writer;
use crate::{MessageRecord, StoreConfig, StoreError};
use bytes::Bytes;
use rocksdb::{IteratorMode, ReadOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::info;

/// What this version writes in `meta/format` and in the marker file.
const FORMAT: &str = "warren-store-v3";
/// An older format this version opens and upgrades in place (v3 only added the shared body
/// column families and a record version; v2 records are still read as they are).
const UPGRADABLE: &str = "warren-store-v2";
/// A file naming the store's format, checked before RocksDB touches the directory.
const MARKER_FILE: &str = "WARREN_STORE";

/// A durable queue found at start-up, with its counters (no message was read to find them).
#[derive(Debug, Clone)]
pub struct RecoveredQueue {
    /// Its definition.
    pub def: QueueDef,
    /// Messages stored.
    pub count: u64,
    /// Body bytes stored.
    pub bytes: u64,
    /// One past the highest sequence ever delivered (0: none): stored messages below it come back
    /// redelivered.
    pub delivered: u64,
    /// Sequence of the first stored message.
    pub head: Option<u64>,
    /// Sequence of the last stored message.
    pub tail: Option<u64>,
}

/// The stored messages of one queue id: counters and bounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueState {
    /// Messages stored.
    pub count: u64,
    /// Body bytes stored.
    pub bytes: u64,
    /// One past the highest sequence ever delivered (0: none).
    pub delivered: u64,
    /// Sequence of the first stored message.
    pub head: Option<u64>,
    /// Sequence of the last stored message.
    pub tail: Option<u64>,
}

/// Everything durable, as found at start-up.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Vhost names.
    pub vhosts: Vec<String>,
    /// Durable exchanges.
    pub exchanges: Vec<ExchangeDef>,
    /// Durable queues.
    pub queues: Vec<RecoveredQueue>,
    /// Bindings between durable ends.
    pub bindings: Vec<BindingDef>,
    /// Access-control records (values as stored; their format is the broker's).
    pub access: Vec<Vec<u8>>,
}

/// The store. Cheap to share (`Arc` inside); dropping the last handle stops the writer after it
/// has written everything submitted.
pub struct Store {
    slot: Arc<DbSlot>,
    path: PathBuf,
    inbox: Arc<Inbox>,
    writer: Mutex<Option<JoinHandle<()>>>,
    next_queue_id: AtomicU64,
    next_body_id: AtomicU64,
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`. Refuses a directory in use by another process, or one
    /// that holds another format, without changing anything in it.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?;
        // Decide from our own marker file, before RocksDB creates anything: a directory that is
        // neither empty nor marked as ours is refused untouched.
        let marker = dir.join(MARKER_FILE);
        let empty = std::fs::read_dir(dir)
            .map_err(|e| StoreError::Db(format!("{}: {e}", dir.display())))?
            .next()
            .is_none();
        if empty {
            // The marker goes first, so a crash during creation leaves a directory we still accept.
            std::fs::write(&marker, format!("{FORMAT}\n"))
                .map_err(|e| StoreError::Db(format!("{}: {e}", marker.display())))?;
        } else {
            let found = std::fs::read_to_string(&marker).unwrap_or_default();
            if found.trim() != FORMAT && found.trim() != UPGRADABLE {
                return Err(StoreError::Incompatible {
                    path: dir.to_path_buf(),
                    found: if found.is_empty() {
                        "no Warren store marker".into()
                    } else {
                        found.trim().to_string()
                    },
                    expected: FORMAT.to_string(),
                });
            }
        }
        let fresh = !dir.join("CURRENT").exists();
        let opener = Opener {
            dir: dir.to_path_buf(),
            cache: rocksdb::Cache::new_lru_cache(config.block_cache_bytes),
            config: config.clone(),
            format: FORMAT,
        };
        let mut db = opener.open(fresh)?;
        let meta = db.cf_handle(CF_META).expect("meta cf");
        match db.get_cf(&meta, b"format")? {
            Some(v) if v == FORMAT.as_bytes() => {}
            Some(v) if v == UPGRADABLE.as_bytes() => {
                let mut wo = rocksdb::WriteOptions::default();
                wo.set_sync(true);
                db.put_cf_opt(&meta, b"format", FORMAT.as_bytes(), &wo)?;
                std::fs::write(&marker, format!("{FORMAT}\n"))
                    .map_err(|e| StoreError::Db(format!("{}: {e}", marker.display())))?;
                info!(from = UPGRADABLE, to = FORMAT, "store format upgraded");
            }
            Some(v) => {
                return Err(StoreError::Incompatible {
                    path: dir.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                    expected: FORMAT.to_string(),
                })
            }
            None if fresh => {
                let mut wo = rocksdb::WriteOptions::default();
                wo.set_sync(true);
                db.put_cf_opt(&meta, b"format", FORMAT.as_bytes(), &wo)?;
            }
            None => {
                return Err(StoreError::Incompatible {
                    path: dir.to_path_buf(),
                    found: "no format marker".into(),
                    expected: FORMAT.to_string(),
                })
            }
        }
        // What was paged out only to save memory does not survive: dropping the column family
        // frees its files at once, with no scan and no tombstones.
        db.drop_cf(CF_TMSGS)?;
        db.create_cf(CF_TMSGS, &msgs_options(&config, &opener.cache))?;
        // Body ids are never reused: continue after the highest one stored.
        let next_body_id = {
            let bodies = db.cf_handle(CF_BODIES).expect("bodies cf");
            let mut it = db.raw_iterator_cf(&bodies);
            it.seek_to_last();
            let last = it
                .key()
                .and_then(|k| <[u8; 8]>::try_from(k).ok())
                .map_or(0, u64::from_be_bytes);
            it.status()?;
            last + 1
        };
        let slot = Arc::new(DbSlot::new(db, opener));
        let inbox = Arc::new(Inbox::new());
        let writer_inbox = inbox.clone();
        let writer_db = slot.clone();
        let sync = config.sync;
        let failures = Arc::new(AtomicU64::new(0));
        let writer_failures = failures.clone();
        let writer = std::thread::Builder::new()
            .name("warren-store-writer".into())
            .spawn(move || writer::run(writer_db, writer_inbox, sync, writer_failures))
            .map_err(|e| StoreError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            slot,
            path: dir.to_path_buf(),
            inbox,
            writer: Mutex::new(Some(writer)),
            next_queue_id: AtomicU64::new(1),
            next_body_id: AtomicU64::new(next_body_id),
            failures,
        })
    }

    /// Every queue id that has counters (stored messages now or before): start-up drops those
    /// that belong to no durable queue (pages of non-durable queues from the last run).
    pub fn stored_queue_ids(&self) -> Result<Vec<u64>, StoreError> {
        let db = self.slot.get()?;
        let counts = db.cf_handle(CF_COUNTS).expect("counts cf");
        let mut ids = Vec::new();
        for item in db.iterator_cf(&counts, IteratorMode::Start) {
            let (k, _) = item?;
            if let Ok(b) = <[u8; 8]>::try_from(&k[..]) {
                ids.push(u64::from_be_bytes(b));
            }
        }
        Ok(ids)
    }

    /// Batches whose write failed so far (a full disk, an I/O error).
    pub fn failed_writes(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Writes a small record and waits for it: true if the store accepts writes again.
    pub fn probe(&self) -> bool {
        self.commit_blocking(vec![Op::PutDef {
            key: b"\xffprobe".to_vec(),
            value: crate::message_time_now().to_be_bytes().to_vec(),
        }])
        .is_ok()
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues changes; `done` runs on the writer thread once they are durable (or failed).
    ///
    /// Changes are written in the order submitted. A submission without `done` may wait a
    /// little (see `inbox::Inbox`) to be written with others.
    pub fn submit(&self, ops: impl IntoIterator<Item = Op>, done: Option<Completion>) {
        self.inbox.submit(ops, done);
    }

    /// Queues a message's put ([`Op::PutMessage`]); `done` runs once it is durable, or at once if
    /// the message is deleted before the put was written (it was consumed: nothing is owed to the
    /// disk, and nothing is written). Call [`Store::nudge`] after delivering what could be
    /// delivered: a put whose message went to a consumer is kept back a moment for its ack, and
    /// one that did not is written with the next group commit.
    pub fn put_message(&self, op: Op, done: Option<Completion>) {
        self.inbox.put(op, done);
    }

    /// Notes that a message was delivered ([`Op::MarkDelivered`]); if its put was not written
    /// yet, the put is kept back for `hold` from now, for the message's ack to cancel it (see
    /// [`Store::put_message`]). The queue chooses `hold` from how soon its consumers ack;
    /// [`crate::DEFAULT_HOLD`] is what a mark submitted with [`Store::submit`] gets.
    pub fn mark_delivered(&self, queue: u64, seq: u64, hold: Duration) {
        self.inbox.mark_delivered(queue, seq, hold);
    }

    /// Keeps a put back for `hold` as if its message had been delivered (see
    /// [`Store::mark_delivered`]), for a message that was not delivered at once but whose queue
    /// has consumers and only a short backlog: it is likely delivered and acked within the hold,
    /// and then nothing is written. Call it before [`Store::nudge`].
    pub fn hold_put(&self, queue: u64, seq: u64, hold: Duration) {
        self.inbox.hold_put(queue, seq, hold);
    }

    /// Wakes the writer for the completions that wait for a write (see [`Store::put_message`]).
    pub fn nudge(&self) {
        self.inbox.nudge();
    }

    /// Queues changes and waits until they are durable (for async callers: the wait is a oneshot).
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(
            ops,
            Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        );
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Queues changes and blocks until durable (for threads that may block).
    pub fn commit_blocking(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::channel();
        self.submit(
            ops,
            Some(Box::new(move |r| {
                let _ = tx.send(r);
            })),
        );
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// A fresh queue id (ids are never reused).
    pub fn allocate_queue_id(&self) -> u64 {
        self.allocate_queue_ids(1)
    }

    /// `n` consecutive fresh ids (a priority queue keeps each priority level under its own id);
    /// returns the first.
    pub fn allocate_queue_ids(&self, n: u64) -> u64 {
        self.next_queue_id.fetch_add(n.max(1), Ordering::Relaxed)
    }

    /// Makes sure ids up to `last` are never handed out again (ids recovered beyond a queue's own).
    pub fn reserve_queue_ids(&self, last: u64) {
        self.next_queue_id.fetch_max(last + 1, Ordering::Relaxed);
    }

    /// A fresh shared body id (for [`Op::PutBody`]).
    pub fn allocate_body_id(&self) -> u64 {
        self.next_body_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores a body that several queues' records will point at, under a fresh id, holding one
    /// reference of its own until [`Store::release_body`]; returns the id. Submitted before any
    /// record that points at it, the writer sees them in order.
    pub fn put_shared_body(&self, properties: &[u8], body: &[u8]) -> u64 {
        let id = self.allocate_body_id();
        let value = Bytes::from(MessageRecord::encode_body(properties, body));
        self.submit(vec![Op::PutBody { id, value }], None);
        id
    }

    /// Drops the reference that [`Store::put_shared_body`] held.
    pub fn release_body(&self, id: u64) {
        self.submit(vec![Op::ReleaseBody { id }], None);
    }

    /// Shared bodies stored now (a scan: for tests and diagnostics).
    pub fn stored_bodies(&self) -> Result<u64, StoreError> {
        let db = self.slot.get()?;
        let bodies = db.cf_handle(CF_BODIES).expect("bodies cf");
        let mut n = 0;
        for item in db.iterator_cf(&bodies, IteratorMode::Start) {
            item?;
            n += 1;
        }
        Ok(n)
    }

    /// Counters and bounds of the messages stored under one queue id (no scan).
    pub fn queue_state(&self, id: u64) -> Result<QueueState, StoreError> {
        let db = self.slot.get()?;
        let counts = db.cf_handle(CF_COUNTS).expect("counts cf");
        let c = match db.get_cf(&counts, keys::counts(id))? {
            Some(v) => Counts::decode(&v),
            None => Counts::default(),
        };
        let (head, tail) = self.bounds(id)?;
        Ok(QueueState {
            count: c.count.max(0) as u64,
            bytes: c.bytes.max(0) as u64,
            delivered: c.delivered,
            head,
            tail,
        })
    }

    /// Reads every definition and each queue's counters and bounds. Reads no message.
    pub fn recover(&self) -> Result<Recovered, StoreError> {
        let db = self.slot.get()?;
        let defs = db.cf_handle(CF_DEFS).expect("defs cf");
        let mut r = Recovered::default();
        let mut max_id = 0;
        for item in db.iterator_cf(&defs, IteratorMode::Start) {
            let (k, v) = item?;
            match k.first() {
                Some(&tag::EXCHANGE) => r.exchanges.push(ExchangeDef::decode(&v)?),
                Some(&tag::BINDING) => r.bindings.push(BindingDef::decode(&v)?),
                Some(&tag::VHOST) => r.vhosts.push(String::from_utf8_lossy(&v).into_owned()),
                Some(&tag::ACCESS) => r.access.push(v.to_vec()),
                Some(&tag::QUEUE) => {
                    let def = QueueDef::decode(&v)?;
                    max_id = max_id.max(def.id);
                    let s = self.queue_state(def.id)?;
                    r.queues.push(RecoveredQueue {
                        def,
                        count: s.count,
                        bytes: s.bytes,
                        delivered: s.delivered,
                        head: s.head,
                        tail: s.tail,
                    });
                }
                _ => {}
            }
        }
        self.next_queue_id.fetch_max(max_id + 1, Ordering::Relaxed);
        Ok(r)
    }

    /// First and last sequence stored for a queue (two seeks, no scan).
    fn bounds(&self, queue: u64) -> Result<(Option<u64>, Option<u64>), StoreError> {
        let db = self.slot.get()?;
        let msgs = db.cf_handle(CF_MSGS).expect("msgs cf");
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(keys::message(queue, 0).to_vec());
        ro.set_iterate_upper_bound(keys::message(queue.saturating_add(1), 0).to_vec());
        let mut it = db.raw_iterator_cf_opt(&msgs, ro);
        it.seek_to_first();
        let head = it.key().and_then(keys::parse_message).map(|(_, s)| s);
        it.seek_to_last();
        let tail = it.key().and_then(keys::parse_message).map(|(_, s)| s);
        it.status()?;
        Ok((head, tail))
    }

    /// Reads up to `limit` messages of a queue from sequence `from` on (or up to `max_bytes` of
    /// bodies, whichever comes first; at least one), lasting and transient records merged in
    /// sequence order. Blocking: call from a blocking thread.
    pub fn read_messages(
        &self,
        queue: u64,
        from: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<(u64, MessageRecord)>, StoreError> {
        let db = self.slot.get()?;
        let bodies = db.cf_handle(CF_BODIES).expect("bodies cf");
        let open = |cf: &str| {
            let cf = db.cf_handle(cf).expect("message cf");
            let mut ro = ReadOptions::default();
            ro.set_iterate_upper_bound(keys::message(queue.saturating_add(1), 0).to_vec());
            let mut it = db.raw_iterator_cf_opt(&cf, ro);
            it.seek(keys::message(queue, from));
            it
        };
        let mut lasting = open(CF_MSGS);
        let mut transient = open(CF_TMSGS);
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < limit && (bytes < max_bytes || out.is_empty()) {
            // The smaller key of the two iterators comes next.
            let take_lasting = match (lasting.key(), transient.key()) {
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let it = if take_lasting {
                &mut lasting
            } else {
                &mut transient
            };
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let Some((q, seq)) = keys::parse_message(k) else {
                return Err(StoreError::Corrupt("bad message key".into()));
            };
            if q != queue {
                break;
            }
            let mut record = MessageRecord::decode(Bytes::copy_from_slice(v))?;
            record.in_transient_area = !take_lasting;
            it.next();
            if let Some(id) = record.shared {
                let Some(value) = db.get_cf(&bodies, keys::body(id))? else {
                    return Err(StoreError::Corrupt(format!(
                        "message {seq} of queue {queue} points at missing body {id}"
                    )));
                };
                record.attach_body(Bytes::from(value))?;
            }
            bytes += record.body.len();
            out.push((seq, record));
        }
        lasting.status()?;
        transient.status()?;
        Ok(out)
    }

    /// Stops the writer after everything submitted so far is written, and flushes memtables.
    pub fn close(&self) {
        self.inbox.close();
        let Some(w) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return; // closed already
        };
        let _ = w.join();
        if let Ok(db) = self.slot.get() {
            let _ = db.flush();
        }
        info!("store closed");
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}
