//! A queue's ready messages: the front in memory, the rest possibly only in the store.
//!
//! The ready messages, in order, are `memory` followed by the `paged` range. A queue (durable or
//! not) whose in-memory part exceeds its budget stops keeping new messages in memory: they are
//! written to the store (transient ones too, flagged so that a restart drops them) and only the range's bounds and
//! totals stay in RAM, so memory does not grow with the backlog. Messages are read back ahead of
//! consumers, a chunk at a time, on a blocking thread. After a restart every stored message starts
//! out paged: start-up reads no message.

use super::Ready;
use crate::persist::Budget;
use std::collections::VecDeque;

/// Messages read back from the store per chunk.
pub(super) const LOAD_CHUNK: usize = 2048;
/// Bytes read back per chunk (at least one message).
pub(super) const LOAD_CHUNK_BYTES: usize = 4 << 20;
/// Below this many in-memory ready messages (and [`LOAD_LOW_WATER_BYTES`] of bodies), the next
/// chunk is loaded. A chunk of 2,048 1 KiB messages takes ~5 ms to read: at 512 a consumer
/// draining at 170k msg/s emptied the front before it arrived (1M drain, raw client: 193-205k ->
/// 226-251k msg/s at 2,048).
pub(super) const LOAD_LOW_WATER: usize = 2048;
/// Bodies in memory below which the next chunk is loaded: with large messages, memory stays where
/// 512 of 16 KiB put it.
pub(super) const LOAD_LOW_WATER_BYTES: usize = 4 << 20;

/// The stored, not loaded part of the ready messages: sequences `next..=end` (with holes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paged {
    /// First sequence not loaded yet.
    pub next: u64,
    /// Last sequence in the range.
    pub end: u64,
    /// Messages in the range.
    pub count: u64,
    /// Their body bytes.
    pub bytes: u64,
    /// How many of them have lasting records (the store counts those, not transient ones).
    pub lasting: u64,
    /// Their body bytes.
    pub lasting_bytes: u64,
}

impl Paged {
    /// Takes one message out of the range's totals.
    fn take(&mut self, size: u64, lasting: bool) {
        self.count = self.count.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
        if lasting {
            self.lasting = self.lasting.saturating_sub(1);
            self.lasting_bytes = self.lasting_bytes.saturating_sub(size);
        }
    }
}

/// Ready messages of a queue.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    memory: VecDeque<Ready>,
    memory_bytes: usize,
    /// Persistent messages among the in-memory ones, and their body bytes.
    memory_persistent: (u64, u64),
    paged: Option<Paged>,
    /// A chunk is being read from the store.
    pub loading: bool,
    /// Bumped when the paged range is dropped (purge), so a load in flight is discarded.
    pub generation: u64,
}

impl Backlog {
    /// All ready messages, in memory or not.
    pub(super) fn len(&self) -> u64 {
        self.memory.len() as u64 + self.paged.map_or(0, |p| p.count)
    }

    /// Ready messages in memory.
    pub(super) fn in_memory(&self) -> usize {
        self.memory.len()
    }

    /// Body bytes of the in-memory ready messages.
    pub(super) fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Body bytes of all ready messages, in memory or not.
    pub(super) fn bytes(&self) -> u64 {
        self.memory_bytes as u64 + self.paged.map_or(0, |p| p.bytes)
    }

    /// Persistent messages among the in-memory ones, and their body bytes.
    pub(super) fn memory_persistent(&self) -> (u64, u64) {
        self.memory_persistent
    }

    /// A message joins the in-memory part.
    #[inline]
    fn memory_in(&mut self, r: &Ready) {
        let size = r.message.size();
        self.memory_bytes += size;
        if r.message.is_persistent() {
            self.memory_persistent.0 += 1;
            self.memory_persistent.1 += size as u64;
        }
    }

    /// A message leaves the in-memory part.
    #[inline]
    fn memory_out(&mut self, r: &Ready) {
        let size = r.message.size();
        self.memory_bytes -= size;
        if r.message.is_persistent() {
            self.memory_persistent.0 -= 1;
            self.memory_persistent.1 -= size as u64;
        }
    }

    /// The first in-memory message.
    pub(super) fn front(&self) -> Option<&Ready> {
        self.memory.front()
    }

    /// Removes the in-memory message with sequence `seq`, if present.
    pub(super) fn remove_seq(&mut self, seq: u64) -> Option<Ready> {
        let i = self.memory.binary_search_by_key(&seq, |r| r.seq).ok()?;
        let r = self.memory.remove(i)?;
        self.memory_out(&r);
        Some(r)
    }

    /// The paged range, if any.
    pub(super) fn paged(&self) -> Option<Paged> {
        self.paged
    }

    /// True if a new message must go to the store rather than memory (keeps order: once paging
    /// started, everything after it is paged until the range is loaded). `messages` and `bytes` are
    /// what the whole queue (all priority lanes) holds in memory.
    pub(super) fn must_page(&self, budget: &Budget, messages: usize, bytes: usize) -> bool {
        self.paged.is_some() || messages >= budget.messages || bytes >= budget.bytes
    }

    /// Appends a message kept in memory.
    pub(super) fn push(&mut self, r: Ready) {
        debug_assert!(
            self.paged.is_none(),
            "a message after the paged range must be paged too"
        );
        self.memory_in(&r);
        self.memory.push_back(r);
    }

    /// Appends a stored message to the paged range (not kept in memory); `lasting` if its record
    /// survives a restart.
    pub(super) fn page(&mut self, seq: u64, size: u64, lasting: bool) {
        let p = self.paged.get_or_insert(Paged {
            next: seq,
            end: seq,
            count: 0,
            bytes: 0,
            lasting: 0,
            lasting_bytes: 0,
        });
        p.end = seq;
        p.count += 1;
        p.bytes += size;
        if lasting {
            p.lasting += 1;
            p.lasting_bytes += size;
        }
    }

    /// Sets the paged range wholesale (start-up).
    pub(super) fn set_paged(&mut self, paged: Option<Paged>) {
        self.paged = paged.filter(|p| p.count > 0);
    }

    /// Puts a returned message back at its place (always in memory: it was delivered, so it had
    /// been loaded).
    pub(super) fn requeue(&mut self, r: Ready) {
        let at = self.memory.partition_point(|m| m.seq < r.seq);
        self.memory_in(&r);
        self.memory.insert(at, r);
    }

    /// Takes the first in-memory message.
    pub(super) fn pop(&mut self) -> Option<Ready> {
        let r = self.memory.pop_front()?;
        self.memory_out(&r);
        Some(r)
    }

    /// True if the in-memory part ran low and more is stored: time to load the next chunk.
    pub(super) fn wants_load(&self) -> bool {
        self.paged.is_some()
            && !self.loading
            && self.memory.len() < LOAD_LOW_WATER
            && self.memory_bytes < LOAD_LOW_WATER_BYTES
    }

    /// Takes in a chunk read from the store: messages from `from` on, in order, each with its
    /// stored size and whether its record is lasting. Returns false if the chunk is stale (the
    /// range was purged meanwhile). Messages past the range's end are ignored.
    pub(super) fn absorb(
        &mut self,
        generation: u64,
        loaded: Vec<Ready>,
        sizes: &[(u64, bool)],
    ) -> bool {
        if generation != self.generation {
            return false;
        }
        let Some(p) = self.paged.as_mut() else {
            return false;
        };
        for (r, &(size, lasting)) in loaded.into_iter().zip(sizes) {
            if r.seq < p.next || r.seq > p.end {
                continue;
            }
            p.next = r.seq + 1;
            p.take(size, lasting);
            let size = r.message.size();
            self.memory_bytes += size;
            if r.message.is_persistent() {
                self.memory_persistent.0 += 1;
                self.memory_persistent.1 += size as u64;
            }
            self.memory.push_back(r);
        }
        if p.next > p.end || p.count == 0 {
            self.paged = None;
        }
        true
    }

    /// Skips stored records that are not messages of this run (stale transient ones) without
    /// loading them.
    pub(super) fn skip(&mut self, seq: u64, size: u64, lasting: bool) {
        if let Some(p) = self.paged.as_mut() {
            if seq >= p.next && seq <= p.end {
                p.next = seq + 1;
                p.take(size, lasting);
                if p.next > p.end || p.count == 0 {
                    self.paged = None;
                }
            }
        }
    }

    /// Removes every ready message: the in-memory ones are returned, the paged range too.
    pub(super) fn clear(&mut self) -> (VecDeque<Ready>, Option<Paged>) {
        self.memory_bytes = 0;
        self.memory_persistent = (0, 0);
        self.generation += 1;
        (std::mem::take(&mut self.memory), self.paged.take())
    }
}
