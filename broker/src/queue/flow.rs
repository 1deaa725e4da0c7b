//! Publisher flow control: a queue whose consumers fall a little behind its publishers slows the
//! publishers down to the consumers' pace, instead of paging the surplus to the store and reading
//! it back.
//!
//! RabbitMQ's credit flow does this job (a publishing connection shows as `flow` and is not read
//! for a while when its queues lag). Here a queue with consumers turns `Congested` when its ready
//! backlog (in memory or paged) passes 3/4 of its memory budget; a connection that published to
//! it stops reading its socket after the current read (TCP then slows the publisher) until the
//! backlog is down to half the budget. The pause is given up after [`STALL`] without a delivery
//! (consumers stuck on prefetch) or after [`MAX_PAUSE`] in all (consumers that deliver, but too
//! slowly to drain a quarter of the budget in that time: a task queue whose workers take a while
//! per task): a publisher is never held to slow consumers' pace, as in RabbitMQ, where such a
//! queue simply grows. The queue then turns `GivenUp` (no pauses; the backlog pages to the store
//! as before) until its backlog is down to half the budget again.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// A pause ends (given up) when the queue delivered nothing for this long.
pub(crate) const STALL: Duration = Duration::from_millis(100);

/// The longest a publishing connection waits for congested queues before giving up on them.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(1);

const FREE: u8 = 0;
const CONGESTED: u8 = 1;
const GIVEN_UP: u8 = 2;

/// A queue's flow-control state (lock-free: publishers read it after enqueueing).
#[derive(Debug, Default)]
pub struct Flow {
    state: AtomicU8,
    /// Deliveries made during episodes, to tell progress from a stall.
    progress: AtomicU64,
    cleared: Notify,
}

impl Flow {
    /// True while publishers should pause.
    pub fn congested(&self) -> bool {
        self.state.load(Ordering::Acquire) == CONGESTED
    }

    /// True unless the queue is in neither episode state (then dispatch need not check marks).
    pub(super) fn active(&self) -> bool {
        self.state.load(Ordering::Relaxed) != FREE
    }

    /// Called under the queue lock after an arrival: `over` if the in-memory backlog is past the
    /// high-water mark and some consumer is attached.
    pub(super) fn arrived(&self, over: bool) {
        if over && self.state.load(Ordering::Relaxed) == FREE {
            self.state.store(CONGESTED, Ordering::Release);
        }
    }

    /// Deliveries counted so far.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Called under the queue lock during an episode, after `n` deliveries.
    pub(super) fn delivered(&self, n: u64) {
        if n > 0 {
            self.progress.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Ends an episode (the backlog is down to the low-water mark, the consumers are gone, the
    /// queue was purged or deleted): paused publishers resume, pauses may start again.
    pub(super) fn clear(&self) {
        if self.state.swap(FREE, Ordering::AcqRel) == CONGESTED {
            self.cleared.notify_waiters();
        }
    }

    /// A publisher's pause stalled or lasted too long: no more pauses until the backlog is down.
    pub fn give_up(&self) {
        if self
            .state
            .compare_exchange(CONGESTED, GIVEN_UP, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.cleared.notify_waiters();
        }
    }

    /// Resolves when the episode ends or is given up (enable it before checking
    /// [`Flow::congested`]).
    pub fn cleared(&self) -> tokio::sync::futures::Notified<'_> {
        self.cleared.notified()
    }
}

/// (high, low) water marks for a memory budget of `limit`.
pub(super) fn marks(limit: usize) -> (usize, usize) {
    (limit / 4 * 3, limit / 2)
}
