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
use rocksdb::{ColumnFamily, Direction, IteratorMode, ReadOptions, WriteBatch, DB};
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

/// Deletes of at least this many consecutive records of a queue are written as one range delete.
/// Shorter runs stay point deletes: a range tombstone costs a little on reads until compacted.
const MIN_DELETE_RUN: u64 = 16;

/// Consecutive sequences of one queue's records (lasting or transient) deleted within one batch.
///
/// Consumers ack in order, so a drain's deletes come in runs: one range delete instead of a
/// tombstone per message saves its WAL record, its memtable entry, and the flush and compaction
/// of the tombstone (a point tombstone sorts just before its key, so it stays until a compaction
/// brings the two together).
#[derive(Clone, Copy)]
struct DeleteRun {
    from: u64,
    to: u64,
}

/// The runs under way in a batch, per queue id and area (transient or not), with the column
/// families they are written to: the lasting and the transient records'.
struct DeleteRuns<'a> {
    cfs: [&'a ColumnFamily; 2],
    runs: FxHashMap<(u64, bool), DeleteRun>,
}

impl<'a> DeleteRuns<'a> {
    fn new(cfs: [&'a ColumnFamily; 2]) -> Self {
        DeleteRuns {
            cfs,
            runs: FxHashMap::default(),
        }
    }

    /// Takes in a delete of a record that points at no shared body; a delete that does not extend
    /// its queue's run ends it (written) and starts the next.
    fn delete(&mut self, batch: &mut WriteBatch, at: (u64, bool), seq: u64) {
        if seq == u64::MAX {
            // No key past it to end a range at.
            self.write(batch, at, DeleteRun { from: seq, to: seq });
            return;
        }
        match self.runs.get_mut(&at) {
            Some(run) if run.to + 1 == seq => run.to = seq,
            Some(run) => {
                let done = std::mem::replace(run, DeleteRun { from: seq, to: seq });
                self.write(batch, at, done);
            }
            None => {
                self.runs.insert(at, DeleteRun { from: seq, to: seq });
            }
        }
    }

    /// Before a put or rewrite of a queue's record: a run over its sequence is written first, so
    /// that the batch applies the two in their order. A run cannot grow over a sequence put later
    /// in the batch: that put's delete cancels out with it, and leaves a gap.
    fn before_write(&mut self, batch: &mut WriteBatch, at: (u64, bool), seq: u64) {
        if let Some(run) = self.runs.get(&at).copied() {
            if (run.from..=run.to).contains(&seq) {
                self.runs.remove(&at);
                self.write(batch, at, run);
            }
        }
    }

    /// Writes every run left.
    fn finish(mut self, batch: &mut WriteBatch) {
        for (at, run) in std::mem::take(&mut self.runs) {
            self.write(batch, at, run);
        }
    }

    /// One range delete for a long run, point deletes for a short one.
    fn write(&self, batch: &mut WriteBatch, (queue, transient): (u64, bool), run: DeleteRun) {
        let cf = self.cfs[usize::from(transient)];
        if run.to - run.from + 1 >= MIN_DELETE_RUN {
            batch.delete_range_cf(
                cf,
                keys::message(queue, run.from),
                keys::message(queue, run.to + 1),
            );
        } else {
            for seq in run.from..=run.to {
                batch.delete_cf(cf, keys::message(queue, seq));
            }
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
    let mut runs = DeleteRuns::new([msgs, tmsgs]);
    for (op, _) in ops.iter().zip(&cancelled).filter(|(_, c)| !**c) {
        match op {
            Op::PutMessage {
                queue,
                seq,
                transient,
                ..
            }
            | Op::UpdateMessage {
                queue,
                seq,
                transient,
                ..
            } => runs.before_write(&mut batch, (*queue, *transient), *seq),
            _ => {}
        }
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
            } => runs.delete(&mut batch, (*queue, true), *seq),
            Op::DeleteMessage {
                queue,
                seq,
                size,
                shared,
                transient: false,
            } => {
                let c = deltas.entry(*queue).or_default();
                c.count -= 1;
                c.bytes -= *size as i64;
                if let Some(id) = shared {
                    runs.before_write(&mut batch, (*queue, false), *seq);
                    let key = keys::message(*queue, *seq);
                    batch.delete_cf(&msgs, key);
                    batch.delete_cf(&qrefs, key);
                    refs.add(*id, -1);
                } else {
                    runs.delete(&mut batch, (*queue, false), *seq);
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
    runs.finish(&mut batch);
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

    /// The sequences of queue `queue`'s lasting records in the database.
    fn stored(db: &DB, queue: u64) -> Vec<u64> {
        let cf = db.cf_handle(CF_MSGS).expect("msgs cf");
        db.iterator_cf(&cf, IteratorMode::Start)
            .map(|item| keys::parse_message(&item.expect("read").0).expect("message key"))
            .filter(|(q, _)| *q == queue)
            .map(|(_, seq)| seq)
            .collect()
    }

    #[test]
    fn a_run_of_deletes_is_one_range_delete_and_a_short_one_point_deletes() {
        let (db, _dir) = open();
        let puts: Vec<Op> = (0..100).map(|seq| put(1, seq, None)).collect();
        db.write(segment(&db, &puts).expect("segment"))
            .expect("write");
        // 0..40 acked in order, with a delivered mark among them: one range delete and the
        // counter's merge.
        let mut acks: Vec<Op> = (0..40).map(|seq| delete(1, seq, None)).collect();
        acks.insert(20, Op::MarkDelivered { queue: 1, seq: 60 });
        let batch = segment(&db, &acks).expect("segment");
        assert_eq!(batch.len(), 2);
        db.write(batch).expect("write");
        assert_eq!(stored(&db, 1), (40..100).collect::<Vec<_>>());
        let c = counts(&db, 1);
        assert_eq!((c.count, c.bytes, c.delivered), (60, 600, 61));
        // Shorter than MIN_DELETE_RUN, and with a gap: point deletes.
        let acks: Vec<Op> = [40, 41, 42, 50].map(|seq| delete(1, seq, None)).into();
        let batch = segment(&db, &acks).expect("segment");
        assert_eq!(batch.len(), 5);
        db.write(batch).expect("write");
        let mut left: Vec<u64> = (43..100).collect();
        left.retain(|s| *s != 50);
        assert_eq!(stored(&db, 1), left);
    }

    #[test]
    fn a_run_of_deletes_keeps_its_order_with_puts_and_rewrites() {
        let (db, _dir) = open();
        let puts: Vec<Op> = (0..64).map(|seq| put(1, seq, None)).collect();
        db.write(segment(&db, &puts).expect("segment"))
            .expect("write");
        // Deletes 0..32 interleaved with new puts past the run (written as they come), and a
        // rewrite of a record inside the run after its delete, which a point delete would have
        // left in place: the run is written before it.
        let mut ops = Vec::new();
        for seq in 0..32 {
            ops.push(delete(1, seq, None));
            ops.push(put(1, 100 + seq, None));
        }
        ops.push(Op::UpdateMessage {
            queue: 1,
            seq: 7,
            record: Bytes::from_static(b"rewritten"),
            transient: false,
        });
        db.write(segment(&db, &ops).expect("segment"))
            .expect("write");
        let mut want = vec![7];
        want.extend(32..64);
        want.extend(100..132);
        assert_eq!(stored(&db, 1), want);
        // Another queue's records are not touched by the first one's range.
        db.write(segment(&db, &[put(2, 0, None)]).expect("segment"))
            .expect("write");
        let acks: Vec<Op> = (32..64).map(|seq| delete(1, seq, None)).collect();
        db.write(segment(&db, &acks).expect("segment"))
            .expect("write");
        assert_eq!(stored(&db, 2), vec![0]);
        assert_eq!(stored(&db, 1)[..2], [7, 100]);
    }

    #[test]
    fn a_body_released_in_the_batch_that_put_it_is_never_written() {
        let (db, _dir) = open();
        let ops = [put_body(3), Op::ReleaseBody { id: 3 }];
        assert!(segment(&db, &ops).expect("segment").is_empty());
    }
}
