//! The inbox: where submissions queue up, in order, until the writer thread takes them, and
//! when a submission wakes that thread.

use crate::ops::{Completion, Op};
use crate::StoreError;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A batch is written at once when this many payload bytes are waiting.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// How long a change that nobody waits for may wait for others before it is written.
const LAZY_DELAY: Duration = Duration::from_millis(2);

/// Changes waiting for the writer thread, in submission order (one queue, so the order of all
/// changes is kept), and the completions of the submissions among them.
///
/// A submission with a completion (a publisher confirm, a barrier) wakes the writer. One without
/// (an ack's delete, a delivery mark, a page-out) does not, unless the writer is idle: it is
/// written with whatever comes next, at most [`LAZY_DELAY`] later. So a delivery and its ack cost
/// no wakeup of the writer, and batches are larger.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    cv: Condvar,
}

#[derive(Default)]
struct InboxState {
    ops: Vec<Op>,
    dones: Vec<Completion>,
    /// When the oldest change waiting arrived.
    first_at: Option<Instant>,
    bytes: usize,
    closed: bool,
    waiting: Waiting,
}

/// What the writer thread is doing, so that submitters wake it only when needed.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Writing (it looks at the inbox again before it sleeps).
    #[default]
    No,
    /// Asleep with nothing to do.
    Idle,
    /// Asleep until the oldest change without a completion is due.
    Lazy,
}

/// What the writer got from the inbox.
pub(crate) enum Taken {
    /// Changes to write (and the completions to run after).
    Work,
    /// Nothing came for the idle period.
    Idle,
    /// Closed, and nothing is left to write.
    Closed,
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Inbox {
            state: Mutex::new(InboxState::default()),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues changes; `done` runs on the writer thread once they are durable (or failed).
    pub(crate) fn submit(&self, ops: impl IntoIterator<Item = Op>, done: Option<Completion>) {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            if let Some(done) = done {
                done(Err(StoreError::Closed));
            }
            return;
        }
        if st.first_at.is_none() {
            st.first_at = Some(Instant::now());
        }
        for op in ops {
            st.bytes += op_bytes(&op);
            st.ops.push(op);
        }
        let wake = match done {
            Some(done) => {
                st.dones.push(done);
                st.waiting != Waiting::No
            }
            None => {
                st.waiting == Waiting::Idle
                    || (st.waiting == Waiting::Lazy && st.bytes >= MAX_BATCH_BYTES)
            }
        };
        if wake {
            st.waiting = Waiting::No;
            drop(st);
            self.cv.notify_one();
        }
    }

    /// No more submissions: the writer writes what is left and stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_one();
    }

    /// Waits for work and swaps it into `ops` and `dones` (which must be empty); [`Taken::Idle`]
    /// once nothing has come for `idle`.
    pub(crate) fn take(
        &self,
        ops: &mut Vec<Op>,
        dones: &mut Vec<Completion>,
        idle: Duration,
    ) -> Taken {
        let mut st = self.lock();
        loop {
            if !st.dones.is_empty()
                || st.bytes >= MAX_BATCH_BYTES
                || (st.closed && !st.ops.is_empty())
            {
                break;
            }
            if !st.ops.is_empty() {
                let due = st.first_at.unwrap_or_else(Instant::now) + LAZY_DELAY;
                let now = Instant::now();
                if now >= due {
                    break;
                }
                st.waiting = Waiting::Lazy;
                st = self
                    .cv
                    .wait_timeout(st, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                st.waiting = Waiting::No;
                continue;
            }
            if st.closed {
                return Taken::Closed;
            }
            st.waiting = Waiting::Idle;
            let (guard, timeout) = self
                .cv
                .wait_timeout(st, idle)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.waiting = Waiting::No;
            if timeout.timed_out() && st.ops.is_empty() && st.dones.is_empty() {
                return Taken::Idle;
            }
        }
        std::mem::swap(ops, &mut st.ops);
        std::mem::swap(dones, &mut st.dones);
        st.bytes = 0;
        st.first_at = None;
        Taken::Work
    }
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::PutMessage { record, .. } | Op::UpdateMessage { record, .. } => record.len(),
        Op::PutBody { value, .. } => value.len(),
        Op::PutDef { value, .. } => value.len(),
        _ => 16,
    }
}
