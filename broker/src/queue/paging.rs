//! Paging: a queue's ready messages beyond its memory budget live only in its store; they are
//! read back a chunk at a time on blocking threads, ahead of consumers and gets. Also what the
//! store learns when messages leave (deletes, delivered marks), and start-up's restore.

use super::*;
use std::time::Duration;

impl Queue {
    pub(super) fn unstore_one(&self, r: &Ready) {
        if r.stored {
            self.unstore(std::iter::once((r.seq, &r.message)));
        }
    }

    /// Deletes the stored copies of messages that left the queue for good (callers pass stored
    /// messages only).
    pub(super) fn unstore<'a>(&self, gone: impl Iterator<Item = (u64, &'a Arc<Message>)>) {
        if self.is_deleted() {
            // Its whole range was dropped with the queue.
            return;
        }
        self.store
            .delete(gone.map(|(seq, m)| (self.lane_of(m), seq, m.as_ref(), self.lasting(m))));
    }

    /// Notes a first delivery of a stored message, so that it comes back redelivered after a
    /// restart, and its put (if not written yet) waits `hold` for its ack (called with the queue
    /// locked).
    pub(crate) fn mark_delivered(&self, r: &Ready, hold: Duration) {
        if !r.stored || r.redelivered || !self.lasting(&r.message) {
            return;
        }
        self.store
            .mark_delivered(self.lane_of(&r.message), r.seq, hold);
    }

    /// Start-up: the queue's stored messages, from the store's counters of each lane, all paged
    /// (nothing is read until consumers need it).
    pub fn restore(&self, lanes: &[storage::QueueState]) {
        let mut st = self.lock();
        let mut next_seq = 0;
        for (i, s) in lanes.iter().enumerate().take(st.lanes.len()) {
            // Past every stored message and every sequence ever delivered: after a purge (or
            // once everything was acked) the store holds no tail, and a new message reusing a
            // sequence under the delivered mark would come back flagged redelivered after the
            // next restart.
            next_seq = next_seq.max(s.tail.map_or(0, |t| t + 1)).max(s.delivered);
            let paged = match (s.head, s.tail) {
                (Some(head), Some(tail)) if s.count > 0 => Some(Paged {
                    next: head,
                    end: tail,
                    count: s.count,
                    bytes: s.bytes,
                    lasting: s.count,
                    lasting_bytes: s.bytes,
                }),
                _ => None,
            };
            st.lanes[i].set_paged(paged);
            st.delivered_before_restart[i] = s.delivered;
        }
        st.next_seq = st.next_seq.max(next_seq);
        st.first_seq_of_run = st.next_seq;
    }

    /// Starts reading the next chunk of a lane's paged range on a blocking thread (called locked).
    pub(super) fn start_load(self: &Arc<Self>, st: &mut QueueState, lane: usize) {
        let Some(range) = st.lanes[lane].paged() else {
            return;
        };
        st.lanes[lane].loading = true;
        let generation = st.lanes[lane].generation;
        let q = self.clone();
        blocking(move || q.load_chunk(lane, generation, range.next));
    }

    /// Reads a chunk of a lane from the store (blocking).
    pub(super) fn read_chunk(&self, lane: usize, from: u64) -> Option<Vec<(u64, MessageRecord)>> {
        match self
            .store
            .read(lane, from, backlog::LOAD_CHUNK, backlog::LOAD_CHUNK_BYTES)
        {
            Ok(r) => Some(r),
            Err(e) => {
                error!(queue = %self.name, "cannot read messages back from the store: {e}");
                None
            }
        }
    }

    /// Reads a chunk of a lane's paged range and takes it in (blocking: runs on a blocking
    /// thread).
    pub(super) fn load_chunk(self: Arc<Self>, lane: usize, generation: u64, from: u64) {
        let read = self.read_chunk(lane, from);
        let dead = {
            let mut st = self.lock();
            st.lanes[lane].loading = false;
            match read {
                // Logged: gets that waited for it are answered empty.
                None => self.serve_gets(&mut st, true),
                Some(records) if records.is_empty() => {
                    if st.lanes[lane].paged().is_some() && st.lanes[lane].generation == generation {
                        // The range's writes are still queued in the store: load once they are
                        // written (waiting gets keep waiting).
                        st.lanes[lane].loading = true;
                        let q = self.clone();
                        self.store.after_writes(move || {
                            blocking(move || q.load_chunk(lane, generation, from))
                        });
                    } else {
                        // A stale read (the range was purged meanwhile) that found nothing: the
                        // lane may have a new paged range that a consumer waits for, and no load
                        // under way for it, since this one held the lane's `loading`.
                        self.serve_gets(&mut st, false);
                        self.dispatch_locked(&mut st);
                    }
                }
                Some(records) => {
                    self.take_in(&mut st, lane, generation, records);
                    if st.settings.is_bounded() && st.settings.overflow == Overflow::DropHead {
                        self.drop_head_locked(&mut st);
                    }
                    // Gets asked first: they are answered before consumers take more.
                    self.serve_gets(&mut st, false);
                    self.dispatch_locked(&mut st);
                    if st.may_expire {
                        self.schedule_expiry(&mut st);
                    }
                }
            }
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
    }

    /// Takes in records read from a lane of the store (called locked).
    pub(super) fn take_in(
        &self,
        st: &mut QueueState,
        lane: usize,
        generation: u64,
        records: Vec<(u64, MessageRecord)>,
    ) {
        let now = now_ms();
        let mut loaded = Vec::with_capacity(records.len());
        let mut sizes = Vec::with_capacity(records.len());
        let mut stale = Vec::new();
        for (seq, record) in records {
            let size = record.body.len() as u64;
            let delivery_count = record.delivery_count;
            let shared = record.shared;
            let lasting = !record.in_transient_area;
            let drop = if record.transient && seq < st.first_seq_of_run {
                true
            } else if let Some(message) = Message::from_record(record) {
                let expires_at = self.expiry_for(st, &message);
                if expires_at != NEVER && expires_at <= now {
                    self.dead_letter(st, &message, Reason::Expired);
                    true
                } else {
                    let redelivered =
                        seq < st.delivered_before_restart[lane] && seq < st.first_seq_of_run;
                    if expires_at != NEVER {
                        st.may_expire = true;
                    }
                    loaded.push(Ready {
                        seq,
                        message: Arc::new(message),
                        redelivered: redelivered || delivery_count > 0,
                        stored: true,
                        expires_at,
                        delivery_count,
                    });
                    sizes.push((size, lasting));
                    false
                }
            } else {
                warn!(queue = %self.name, seq, "dropping a stored message whose properties do not decode");
                true
            };
            if drop {
                st.lanes[lane].skip(seq, size, lasting);
                stale.push(StaleRecord {
                    seq,
                    size,
                    shared,
                    lasting,
                });
            }
        }
        self.store.delete_stale(lane, &stale);
        for r in &loaded {
            Self::note_expiry(st, lane, r);
        }
        st.lanes[lane].absorb(generation, loaded, &sizes);
    }

    /// Keeps some messages in memory while more are stored, in priority order, until enough are
    /// in memory: ahead of consumers or basic.gets (`for_get`), and, in a queue where messages
    /// expire, so that stored ones reach the expiry timers even with no consumer (a retry queue
    /// with a long backlog).
    pub(super) fn read_ahead(self: &Arc<Self>, st: &mut QueueState, for_get: bool) {
        if st.consumers.is_empty() && !st.may_expire && !for_get {
            return;
        }
        let mut in_memory = 0;
        for lane in (0..st.lanes.len()).rev() {
            if in_memory >= backlog::LOAD_LOW_WATER {
                break;
            }
            if st.lanes[lane].wants_load() {
                self.start_load(st, lane);
            }
            in_memory += st.lanes[lane].in_memory();
        }
    }
}
