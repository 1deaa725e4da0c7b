//! Publisher flow control: a queue whose consumers fall behind its publishers slows the
//! publishers down to the consumers' pace instead of paging the surplus to the store.
//!
//! RabbitMQ's credit flow does the same job (a publishing connection shows as `flow` and is not
//! read for a while when its queues lag). Here a queue with consumers raises `congested` when its
//! in-memory backlog passes 3/4 of its memory budget; a connection that published to it stops
//! reading its socket after the current read (TCP then slows the publisher) until the backlog is
//! down to half the budget. The pause only lasts while the queue makes progress: if nothing was
//! delivered for [`STALL`] (consumers stuck on prefetch, a consumer on the paused connection
//! itself), the connection gives up for this episode and the queue pages as before, so flow
//! control never blocks a publisher for good.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a paused publisher waits without any delivery from the queue before giving up.
pub const STALL: Duration = Duration::from_millis(100);

/// A queue's flow-control state (lock-free: publishers read it after enqueueing).
#[derive(Debug, Default)]
pub struct Flow {
    congested: AtomicBool,
    /// A paused publisher saw no progress; no pauses until the backlog is down again.
    given_up: AtomicBool,
    /// Deliveries made, to tell progress from a stall.
    progress: AtomicU64,
    cleared: Notify,
}

impl Flow {
    /// True while publishers should pause.
    pub fn congested(&self) -> bool {
        self.congested.load(Ordering::Acquire)
    }

    /// Called under the queue lock after an arrival: `over` if the in-memory backlog is past the
    /// high-water mark and some consumer is attached.
    pub(super) fn arrived(&self, over: bool) {
        if over && !self.congested.load(Ordering::Relaxed) && !self.given_up.load(Ordering::Relaxed)
        {
            self.congested.store(true, Ordering::Release);
        }
    }

    /// Called under the queue lock after deliveries: `below` if the backlog is down to the
    /// low-water mark (or no consumer is left).
    pub(super) fn delivered(&self, n: u64, below: bool) {
        if n > 0 {
            self.progress.fetch_add(n, Ordering::Relaxed);
        }
        if below {
            self.clear();
        }
    }

    /// Ends an episode: paused publishers resume.
    pub(super) fn clear(&self) {
        self.given_up.store(false, Ordering::Relaxed);
        if self.congested.swap(false, Ordering::AcqRel) {
            self.cleared.notify_waiters();
        }
    }

    /// Deliveries so far.
    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// A paused publisher saw no progress for [`STALL`]: stop pausing publishers until the
    /// backlog is down again.
    pub fn give_up(&self) {
        self.given_up.store(true, Ordering::Relaxed);
        if self.congested.swap(false, Ordering::AcqRel) {
            self.cleared.notify_waiters();
        }
    }

    /// Resolves when the episode ends (register before checking [`Flow::congested`]).
    pub fn cleared(&self) -> tokio::sync::futures::Notified<'_> {
        self.cleared.notified()
    }
}

/// (high, low) water marks for a memory budget of `limit`.
pub(super) fn marks(limit: usize) -> (usize, usize) {
    (limit / 4 * 3, limit / 2)
}
