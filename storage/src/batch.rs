//! Turning ops into a RocksDB `WriteBatch`: a put and a delete of the same message cancel out,
//! each queue's counters change by one merge per batch, shared bodies are reference counted, and
//! a range delete (purge, queue deletion) releases the bodies that its records pointed at. Pure
//! but for reads: nothing here writes to the database.
//!
//! Shared bodies: a message routed to several queues keeps its properties and body once, in the
//! `bodies` column family, with a reference count in `refs` and, per queue record that points at it,
//! an entry in `qrefs` (so a range delete finds the bodies it releases without reading messages).
//! The count is read, changed and written back here, on the only thread that writes, in the same
//! batch as the records that changed it: a body goes away in the batch that drops its last
//! reference, so a crash can leave neither a dangling reference nor an orphan body. A range delete
//! must see what is already written to find its references, so the writer writes the ops before
//! it first.

use crate::cf::{CF_BODIES, CF_COUNTS, CF_DEFS, CF_MSGS, CF_QREFS, CF_REFS, CF_TMSGS};
use crate::counts::{count_delta, Counts};
use crate::keys;
use crate::ops::{Op, Record};
use crate::StoreError;
use bytes::Bytes;
use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, DB};
use rustc_hash::FxHashMap;
use std::collections::HashMap;
use tracing::debug;

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
        let bodies = db.cf_handle(CF_BODIES).expect("bodies cf");
        let refs = db.cf_handle(CF_REFS).expect("refs cf");
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
pub(crate) fn range_delete(db: &DB, op: &Op, batch: &mut WriteBatch) -> Result<(), StoreError> {
    let msgs = db.cf_handle(CF_MSGS).expect("msgs cf");
    let tmsgs = db.cf_handle(CF_TMSGS).expect("tmsgs cf");
    let counts = db.cf_handle(CF_COUNTS).expect("counts cf");
    let qrefs = db.cf_handle(CF_QREFS).expect("qrefs cf");
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

/// A WriteBatch's own header (sequence number and count).
const BATCH_HEADER: usize = 12;

/// About what `op` adds to a WriteBatch: its value and key, and each entry's tag, column family
/// and two length prefixes.
fn op_bytes(op: &Op) -> usize {
    const ENTRY: usize = 16 + 16;
    match op {
        Op::PutMessage { record, shared, .. } => {
            ENTRY + record.len() + if shared.is_some() { ENTRY + 8 } else { 0 }
        }
        Op::UpdateMessage { record, .. } => ENTRY + record.len(),
        Op::PutDef { key, value } => ENTRY + key.len() + value.len(),
        _ => ENTRY,
    }
}

/// Puts a message record, encoding a deferred one into `scratch` first.
fn put_record(
    batch: &mut WriteBatch,
    cf: &impl rocksdb::AsColumnFamilyRef,
    key: impl AsRef<[u8]>,
    record: &Record,
    scratch: &mut Vec<u8>,
) {
    match record {
        Record::Encoded(b) => batch.put_cf(cf, key, b),
        Record::Deferred(e) => {
            scratch.clear();
            e.encode_into(scratch);
            batch.put_cf(cf, key, &scratch);
        }
    }
}

/// Folds ops (with no range delete among them) into one batch.
pub(crate) fn segment(db: &DB, ops: &[Op]) -> Result<WriteBatch, StoreError> {
    let msgs = db.cf_handle(CF_MSGS).expect("msgs cf");
    let tmsgs = db.cf_handle(CF_TMSGS).expect("tmsgs cf");
    let counts = db.cf_handle(CF_COUNTS).expect("counts cf");
    let defs = db.cf_handle(CF_DEFS).expect("defs cf");
    let qrefs = db.cf_handle(CF_QREFS).expect("qrefs cf");
    // Puts and deletes of the same message within this batch cancel out (with any rewrite of the
    // record between them, which would otherwise bring it back).
    // Keys are the broker's own ids: a cheap hash will do (SipHash was a tenth of the writer's
    // work per message in the issue 14 profile).
    let mut put_at: FxHashMap<(u64, u64), usize> = FxHashMap::default();
    let mut updated_at: FxHashMap<(u64, u64), Vec<usize>> = FxHashMap::default();
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
    // Sized for what goes in, so that it does not grow by doubling (copying every record again).
    let bytes: usize = ops
        .iter()
        .zip(&cancelled)
        .filter(|(_, c)| !**c)
        .map(|(op, _)| op_bytes(op))
        .sum();
    let mut batch = WriteBatch::with_capacity_bytes(BATCH_HEADER + bytes);
    // Where deferred records are encoded, one after the other.
    let mut scratch = Vec::new();
    let mut refs = BodyRefs::default();
    let mut deltas: FxHashMap<u64, Counts> = FxHashMap::default();
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
                put_record(
                    &mut batch,
                    &tmsgs,
                    keys::message(*queue, *seq),
                    record,
                    &mut scratch,
                );
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
                put_record(&mut batch, &msgs, key, record, &mut scratch);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::Opener;
    use crate::StoreConfig;

    /// A fresh database with every column family (the directory goes after it).
    fn open() -> (DB, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let opener = Opener {
            dir: dir.path().to_path_buf(),
            config: StoreConfig::default(),
            cache: rocksdb::Cache::new_lru_cache(1 << 20),
            format: "test",
        };
        (opener.open(true).expect("open"), dir)
    }

    fn put(queue: u64, seq: u64, shared: Option<u64>) -> Op {
        Op::PutMessage {
            queue,
            seq,
            record: Bytes::from_static(b"record").into(),
            size: 10,
            shared,
            transient: false,
        }
    }

    fn delete(queue: u64, seq: u64, shared: Option<u64>) -> Op {
        Op::DeleteMessage {
            queue,
            seq,
            size: 10,
            shared,
            transient: false,
        }
    }

    fn put_body(id: u64) -> Op {
        Op::PutBody {
            id,
            value: Bytes::from_static(b"body"),
        }
    }

    fn counts(db: &DB, queue: u64) -> Counts {
        let cf = db.cf_handle(CF_COUNTS).expect("counts cf");
        let v = db.get_cf(&cf, keys::counts(queue)).expect("read");
        v.map(|v| Counts::decode(&v)).unwrap_or_default()
    }

    fn refs(db: &DB, id: u64) -> Option<i64> {
        let cf = db.cf_handle(CF_REFS).expect("refs cf");
        let v = db.get_cf(&cf, keys::body(id)).expect("read");
        v.map(|v| decode_refs(&v))
    }

    #[test]
    fn a_put_and_its_delete_cancel_out() {
        let (db, _dir) = open();
        let update = Op::UpdateMessage {
            queue: 1,
            seq: 5,
            record: Bytes::from_static(b"redelivered"),
            transient: false,
        };
        let batch = segment(&db, &[put(1, 5, None), update, delete(1, 5, None)]).expect("segment");
        assert!(batch.is_empty());
    }

    #[test]
    fn counters_change_once_per_queue() {
        let (db, _dir) = open();
        let ops = [
            put(1, 0, None),
            put(1, 1, None),
            put(2, 0, None),
            Op::MarkDelivered { queue: 1, seq: 0 },
        ];
        let batch = segment(&db, &ops).expect("segment");
        // Three records and one merge per queue.
        assert_eq!(batch.len(), 5);
        db.write(batch).expect("write");
        let one = counts(&db, 1);
        assert_eq!((one.count, one.bytes, one.delivered), (2, 20, 1));
        assert_eq!(counts(&db, 2).count, 1);
    }

    #[test]
    fn a_shared_body_goes_with_its_last_reference() {
        let (db, _dir) = open();
        let ops = [
            put_body(7),
            put(1, 0, Some(7)),
            put(2, 0, Some(7)),
            Op::ReleaseBody { id: 7 },
        ];
        db.write(segment(&db, &ops).expect("segment"))
            .expect("write");
        assert_eq!(refs(&db, 7), Some(2));
        db.write(segment(&db, &[delete(1, 0, Some(7))]).expect("segment"))
            .expect("write");
        assert_eq!(refs(&db, 7), Some(1));
        // Dropping the other queue finds its reference in `qrefs`.
        let mut batch = WriteBatch::default();
        range_delete(&db, &Op::DropQueueMessages { queue: 2 }, &mut batch).expect("range");
        db.write(batch).expect("write");
        assert_eq!(refs(&db, 7), None);
        let bodies = db.cf_handle(CF_BODIES).expect("bodies cf");
        assert!(db.get_cf(&bodies, keys::body(7)).expect("read").is_none());
        assert_eq!(counts(&db, 2), Counts::default());
    }

    #[test]
    fn a_body_released_in_the_batch_that_put_it_is_never_written() {
        let (db, _dir) = open();
        let ops = [put_body(3), Op::ReleaseBody { id: 3 }];
        assert!(segment(&db, &ops).expect("segment").is_empty());
    }
}
