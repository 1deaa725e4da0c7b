//! The inbox: where submissions queue up, in order, until the writer thread takes them, and
//! when a submission wakes that thread.
//!
//! A message that leaves its queue while its put still waits here costs nothing: the delete
//! cancels the put (and the put's delivered mark), neither reaches RocksDB, and the put's
//! completion (a publisher confirm) runs at once, on the deleting thread. That is the common case
//! of consumers that keep up, and RabbitMQ's rule too: a message consumed before it was written
//! is confirmed without being written. So that it is, a put whose message was already delivered
//! (its delivered mark came in) is *held*: it does not wake the writer, and a batch taken before
//! the hold is over leaves it here, for its ack to cancel it. A held put that is not acked within
//! that time is written like any other, so its confirm waits at most about the hold plus
//! [`LAZY_DELAY`] and one sync. The queue chooses the hold ([`Inbox::mark_delivered`]: its
//! consumers' ack latency, within bounds); [`HOLD`] is the default. A queue may also hold a put
//! whose message waits for its consumers' credit while they are acking ([`Inbox::hold_put`]);
//! its delivery holds it again, so such a confirm waits at most about twice as long.

use crate::ops::{Completion, Op};
use crate::StoreError;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// A batch is written at once when this many payload bytes are waiting.
const MAX_BATCH_BYTES: usize = 64 << 20;
/// How long a change that nobody waits for may wait for others before it is written.
const LAZY_DELAY: Duration = Duration::from_millis(2);
/// How long a delivered message's put is kept back for its ack to cancel it, when the
/// submission does not say.
pub const HOLD: Duration = LAZY_DELAY;

/// Changes waiting for the writer thread, in submission order (one queue, so the order of all
/// changes is kept), and the completions of the submissions among them.
///
/// A submission with a completion (a publisher confirm, a barrier) wakes the writer. One without
/// (an ack's delete, a delivery mark, a page-out) does not, unless the writer is idle: it is
/// written with whatever comes next, at most [`LAZY_DELAY`] later. So a delivery and its ack cost
/// no wakeup of the writer, and batches are larger. A message put with [`Inbox::put`] wakes the
/// writer only at [`Inbox::nudge`], once its queue knows whether it was delivered at once.
pub(crate) struct Inbox {
    state: Mutex<InboxState>,
    cv: Condvar,
    /// [`LAZY_DELAY`] and [`HOLD`] (tests change them; a mark filed with
    /// [`Inbox::mark_delivered`] brings its own hold).
    lazy_delay: Duration,
    hold: Duration,
}

/// One submitted change as it waits.
struct Slot {
    /// `None` once cancelled.
    op: Option<Op>,
    /// A put's own completion (from [`Inbox::put`]).
    done: Option<Completion>,
    /// Until when this put is held (its message was delivered, or is expected to be).
    held_until: Option<Instant>,
    /// The slot (absolute index) of this put's delivered mark, cancelled with it.
    mark: Option<usize>,
    /// A put whose submission's completion waits for it: never held.
    pinned: bool,
}

impl Slot {
    fn new(op: Op) -> Self {
        Slot {
            op: Some(op),
            done: None,
            held_until: None,
            mark: None,
            pinned: false,
        }
    }
}

/// Slots keep their (absolute) index while they wait, held puts across batches, so that a batch
/// looks only at what came since the last one and at the held puts that are due: with many puts
/// held, moving them all on every batch cost more than their holding saved.
#[derive(Default)]
struct InboxState {
    /// Waiting changes; taken and cancelled ones are empty until they reach the front.
    slots: VecDeque<Slot>,
    /// The absolute index of `slots[0]`.
    base: usize,
    /// The slots the next batch looks at, in order: changes submitted since the last batch, and
    /// puts no longer held.
    pending: Vec<usize>,
    /// Held puts by when they are due, soonest first (holds differ by queue): a record whose
    /// slot was taken, or held again (it has another record) or released since, is stale.
    held: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Slots not cancelled or taken.
    live: usize,
    /// Puts still waiting (not cancelled, not rewritten since), by (queue, seq): their slots.
    puts: FxHashMap<(u64, u64), usize>,
    /// Completions of whole submissions.
    dones: Vec<Completion>,
    /// Completions that want a write soon: `dones`, and the puts' own that are not held.
    waking: usize,
    /// When the oldest change waiting and not held arrived.
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

/// Completions to run once the inbox is unlocked (usually none or one: no allocation then).
#[derive(Default)]
struct Fire {
    one: Option<Completion>,
    more: Vec<Completion>,
}

impl Fire {
    fn push(&mut self, done: Completion) {
        if self.one.is_none() {
            self.one = Some(done);
        } else {
            self.more.push(done);
        }
    }

    fn run(self) {
        for done in self.one.into_iter().chain(self.more) {
            done(Ok(()));
        }
    }
}

impl InboxState {
    fn push(&mut self, op: Op) -> usize {
        if self.first_at.is_none() {
            self.first_at = Some(Instant::now());
        }
        self.bytes += op_bytes(&op);
        self.live += 1;
        self.slots.push_back(Slot::new(op));
        let i = self.base + self.slots.len() - 1;
        self.pending.push(i);
        i
    }

    /// The slot at absolute index `i`, if it is still here.
    fn slot(&mut self, i: usize) -> Option<&mut Slot> {
        i.checked_sub(self.base).and_then(|k| self.slots.get_mut(k))
    }

    /// Takes the op (and completion) out of slot `i`, if it holds one.
    fn take_slot(&mut self, i: usize, ops: &mut Vec<Op>, dones: &mut Vec<Completion>) {
        let Some(slot) = self.slot(i) else { return };
        let Some(op) = slot.op.take() else { return };
        if let Some(done) = slot.done.take() {
            dones.push(done);
        }
        slot.held_until = None;
        if let Op::PutMessage { queue, seq, .. } = &op {
            if self.puts.get(&(*queue, *seq)) == Some(&i) {
                self.puts.remove(&(*queue, *seq));
            }
        }
        self.bytes = self.bytes.saturating_sub(op_bytes(&op));
        self.live -= 1;
        ops.push(op);
    }

    /// Nothing waits any more: start afresh.
    fn reset(&mut self) {
        debug_assert!(self.puts.is_empty());
        self.base += self.slots.len();
        self.slots.clear();
        self.pending.clear();
        self.held.clear();
        self.first_at = None;
        self.bytes = 0;
    }

    /// Files one change (the submission's completion is the caller's; `pin`: it waits for this
    /// change): a delete cancels its put, a delivered mark holds it for `hold`, and a rewrite or
    /// a range delete ends holding.
    fn file(&mut self, op: Op, pin: bool, hold: Duration, fire: &mut Fire) {
        match op {
            Op::PutMessage { queue, seq, .. } => {
                let i = self.push(op);
                if let Some(slot) = self.slot(i) {
                    slot.pinned = pin;
                }
                if let Some(old) = self.puts.insert((queue, seq), i) {
                    self.release(old);
                }
            }
            Op::DeleteMessage { queue, seq, .. } => match self.puts.remove(&(queue, seq)) {
                Some(i) => self.cancel(i, fire),
                None => {
                    self.push(op);
                }
            },
            Op::MarkDelivered { queue, seq } => {
                let put = self.puts.get(&(queue, seq)).copied();
                let j = self.push(op);
                if let Some(i) = put {
                    if let Some(slot) = self.slot(i) {
                        slot.mark = Some(j);
                    }
                    self.hold(i, hold);
                }
            }
            Op::UpdateMessage { queue, seq, .. } => {
                // The record changes after its put: the batch code must see them together (it
                // cancels all of them against a delete in the same batch).
                if let Some(i) = self.puts.remove(&(queue, seq)) {
                    self.release(i);
                }
                self.push(op);
            }
            Op::DeleteRange { .. } | Op::DropQueueMessages { .. } => {
                // Written after everything before it: nothing may stay behind.
                self.release_all();
                self.push(op);
            }
            _ => {
                self.push(op);
            }
        }
    }

    /// Holds the put in slot `i` for `hold` from now on (again, if it was held already: its
    /// message was expected, and is delivered now).
    fn hold(&mut self, i: usize, hold: Duration) {
        let Some(slot) = self.slot(i) else { return };
        // A record pointing at a shared body is never held: written after the body's own ops,
        // it could find the body gone (put and released unwritten).
        let shared = matches!(
            slot.op,
            Some(Op::PutMessage {
                shared: Some(_),
                ..
            })
        );
        if slot.pinned || shared {
            return;
        }
        let due = Instant::now() + hold;
        if slot.held_until.replace(due).is_none() && slot.done.is_some() {
            self.waking -= 1;
        }
        self.held.push(Reverse((due, i)));
    }

    /// When the first held put is due, dropping the stale records before it (so that a writer
    /// does not wake for a hold that was renewed or ended).
    fn first_held_due(&mut self) -> Option<Instant> {
        while let Some(&Reverse((due, i))) = self.held.peek() {
            if self
                .slot(i)
                .is_some_and(|slot| slot.op.is_some() && slot.held_until == Some(due))
            {
                return Some(due);
            }
            self.held.pop();
        }
        None
    }

    /// A put and its delivered mark are gone before being written; its completion is due now.
    fn cancel(&mut self, i: usize, fire: &mut Fire) {
        let Some(slot) = self.slot(i) else { return };
        let (done, held, mark) = (
            slot.done.take(),
            slot.held_until.take().is_some(),
            slot.mark,
        );
        if let Some(op) = slot.op.take() {
            self.bytes = self.bytes.saturating_sub(op_bytes(&op));
            self.live -= 1;
        }
        if let Some(m) = mark {
            if let Some(Some(op)) = self.slot(m).map(|mark| mark.op.take()) {
                self.bytes = self.bytes.saturating_sub(op_bytes(&op));
                self.live -= 1;
            }
        }
        if let Some(done) = done {
            if !held {
                self.waking -= 1;
            }
            fire.push(done);
        }
        if self.live == 0 {
            // Everything waiting was cancelled: start afresh (the writer need not wake).
            self.reset();
        }
    }

    /// A held put is no longer held: it goes with the next batch.
    fn release(&mut self, i: usize) {
        let Some(slot) = self.slot(i) else { return };
        if slot.held_until.take().is_some() {
            if slot.done.is_some() {
                self.waking += 1;
            }
            self.pending.push(i);
        }
    }

    fn release_all(&mut self) {
        let held: Vec<usize> = self.puts.values().copied().collect();
        for i in held {
            self.release(i);
        }
    }

    /// After a submission without a completion: wakes an idle writer, or a lazy one once a
    /// batch is full.
    fn wake_without_completion(&mut self) -> bool {
        let wake = self.live > 0
            && (self.waiting == Waiting::Idle
                || (self.waiting == Waiting::Lazy && self.bytes >= MAX_BATCH_BYTES));
        if wake {
            self.waiting = Waiting::No;
        }
        wake
    }

    /// Wakes the writer if something waits for a write and it sleeps.
    fn wake_for_waiting(&mut self) -> bool {
        if self.waking > 0 && self.waiting != Waiting::No {
            self.waiting = Waiting::No;
            true
        } else {
            false
        }
    }
}

impl Inbox {
    pub(crate) fn new() -> Self {
        Self::with_delays(LAZY_DELAY, HOLD)
    }

    fn with_delays(lazy_delay: Duration, hold: Duration) -> Self {
        Inbox {
            state: Mutex::new(InboxState::default()),
            cv: Condvar::new(),
            lazy_delay,
            hold,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues changes; `done` runs on the writer thread once they are durable (or failed).
    pub(crate) fn submit(&self, ops: impl IntoIterator<Item = Op>, done: Option<Completion>) {
        self.submit_holding(ops, done, self.hold);
    }

    /// [`Inbox::submit`], with delivered marks holding their puts for `hold`.
    fn submit_holding(
        &self,
        ops: impl IntoIterator<Item = Op>,
        done: Option<Completion>,
        hold: Duration,
    ) {
        let mut st = self.lock();
        if st.closed {
            drop(st);
            if let Some(done) = done {
                done(Err(StoreError::Closed));
            }
            return;
        }
        let mut fire = Fire::default();
        // Puts that `done` waits for are written before it runs, delivered or not.
        let pin = done.is_some();
        let mut any = false;
        for op in ops {
            any = true;
            st.file(op, pin, hold, &mut fire);
        }
        let wake = match done {
            Some(done) => {
                if !any {
                    // A barrier: everything before it is written first.
                    st.release_all();
                }
                st.dones.push(done);
                st.waking += 1;
                st.wake_for_waiting()
            }
            None => st.wake_without_completion(),
        };
        drop(st);
        if wake {
            self.cv.notify_one();
        }
        fire.run();
    }

    /// Queues a message's put with its own completion, which runs once it is durable, or at once
    /// if the message is deleted before the put is written. A put with a completion never wakes
    /// the writer: [`Inbox::nudge`] does, once the queue has filed the delivered mark of a message
    /// that went to a consumer at once (a writer woken here took the put before its mark came in,
    /// and wrote it). One without a completion wakes an idle writer, as any change without one does.
    pub(crate) fn put(&self, op: Op, done: Option<Completion>) {
        debug_assert!(matches!(op, Op::PutMessage { .. }));
        let mut st = self.lock();
        if st.closed {
            drop(st);
            if let Some(done) = done {
                done(Err(StoreError::Closed));
            }
            return;
        }
        let mut fire = Fire::default();
        st.file(op, false, self.hold, &mut fire);
        let wake = match done {
            Some(done) => {
                if let Some(slot) = st.slots.back_mut() {
                    slot.done = Some(done);
                }
                st.waking += 1;
                false
            }
            None => st.waiting == Waiting::Idle,
        };
        if wake {
            st.waiting = Waiting::No;
        }
        drop(st);
        if wake {
            self.cv.notify_one();
        }
        fire.run();
    }

    /// Files a message's delivered mark ([`Op::MarkDelivered`]), which holds its put for `hold`
    /// if that still waits here (as [`Inbox::submit`] does with the default [`HOLD`]).
    pub(crate) fn mark_delivered(&self, queue: u64, seq: u64, hold: Duration) {
        self.submit_holding([Op::MarkDelivered { queue, seq }], None, hold);
    }

    /// Holds a put still waiting here for `hold`, as a delivered mark does: its message was not
    /// delivered at once, but its queue expects to deliver it soon (see `Store::hold_put`).
    pub(crate) fn hold_put(&self, queue: u64, seq: u64, hold: Duration) {
        let mut st = self.lock();
        if let Some(i) = st.puts.get(&(queue, seq)).copied() {
            st.hold(i, hold);
        }
    }

    /// Wakes the writer if a completion waits for a write (a put's, once its queue has delivered
    /// what it could).
    pub(crate) fn nudge(&self) {
        let mut st = self.lock();
        // An idle writer wakes for held puts too: it then waits only until they are due.
        let wake = st.wake_for_waiting() || (st.live > 0 && st.waiting == Waiting::Idle);
        if wake {
            st.waiting = Waiting::No;
        }
        drop(st);
        if wake {
            self.cv.notify_one();
        }
    }

    /// No more submissions: the writer writes what is left and stops.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_one();
    }

    /// Waits for work and moves it into `ops` and `dones` (which must be empty); [`Taken::Idle`]
    /// once nothing has come for `idle`. Held puts whose hold is not over stay (unless closing).
    pub(crate) fn take(
        &self,
        ops: &mut Vec<Op>,
        dones: &mut Vec<Completion>,
        idle: Duration,
    ) -> Taken {
        let mut st = self.lock();
        loop {
            if st.waking > 0 || st.bytes >= MAX_BATCH_BYTES || (st.closed && st.live > 0) {
                break;
            }
            if st.live > 0 {
                // The oldest change not held is due after the lazy delay, the first held put
                // when its hold is over (a writer that woke before that took nothing, and spun).
                let lazy = st.first_at.map(|t| t + self.lazy_delay);
                let held = st.first_held_due();
                let due = match (lazy, held) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or_else(Instant::now),
                };
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
            if timeout.timed_out() && st.live == 0 && st.waking == 0 {
                return Taken::Idle;
            }
        }
        let st = &mut *st;
        let now = Instant::now();
        let hold = !st.closed && st.bytes < MAX_BATCH_BYTES;
        let held_for = |due: Instant| hold && now < due;
        // What came since the last batch, in order, but the puts held and not yet due.
        let pending = std::mem::take(&mut st.pending);
        for &i in &pending {
            match st.slot(i) {
                Some(slot) if slot.held_until.is_some_and(held_for) => {}
                Some(_) => st.take_slot(i, ops, dones),
                None => {}
            }
        }
        st.pending = pending;
        st.pending.clear();
        // Then the held puts that are due (a mark that came after this put was taken already: a
        // mark without its message changes nothing).
        while let Some(due) = st.first_held_due() {
            if held_for(due) {
                break;
            }
            if let Some(Reverse((_, i))) = st.held.pop() {
                st.take_slot(i, ops, dones);
            }
        }
        while st.slots.front().is_some_and(|slot| slot.op.is_none()) {
            st.slots.pop_front();
            st.base += 1;
        }
        dones.append(&mut st.dones);
        st.waking = 0;
        if st.live == 0 {
            st.reset();
        } else {
            // Only held puts are left.
            st.first_at = None;
        }
        Taken::Work
    }
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::PutMessage { record, .. } => record.len(),
        Op::UpdateMessage { record, .. } => record.len(),
        Op::PutBody { value, .. } => value.len(),
        Op::PutDef { value, .. } => value.len(),
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};

    fn put(seq: u64) -> Op {
        Op::PutMessage {
            queue: 1,
            seq,
            record: Bytes::from_static(b"record").into(),
            size: 6,
            shared: None,
            transient: false,
        }
    }

    fn delete(seq: u64) -> Op {
        Op::DeleteMessage {
            queue: 1,
            seq,
            size: 6,
            shared: None,
            transient: false,
        }
    }

    /// An inbox that holds delivered puts for an hour, with puts 0 and 1 waiting for confirms
    /// (counted).
    fn two_confirmed_puts() -> (Inbox, Arc<AtomicUsize>) {
        let inbox = Inbox::with_delays(Duration::ZERO, Duration::from_secs(3600));
        let (confirmed, done) = counter();
        inbox.put(put(0), Some(done()));
        inbox.put(put(1), Some(done()));
        (inbox, confirmed)
    }

    /// After put 1 was taken: the ack of put 0, still in the inbox, cancels it and confirms it.
    fn ack_cancels_put_0(inbox: &Inbox, confirmed: &AtomicUsize) {
        inbox.submit([delete(0)], None);
        assert_eq!(confirmed.load(Ordering::SeqCst), 1);
        assert_eq!(inbox.lock().live, 0);
    }

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Completion) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (n, move || {
            let m = m.clone();
            Box::new(move |r: Result<(), StoreError>| {
                assert!(r.is_ok());
                m.fetch_add(1, Ordering::SeqCst);
            }) as Completion
        })
    }

    /// An inbox with hour-long delays, and a writer thread asleep in `take` with nothing to do;
    /// the thread returns what `take` gave it (what was taken, how many ops and completions).
    fn idle_writer() -> (Arc<Inbox>, std::thread::JoinHandle<(Taken, usize, usize)>) {
        let hour = Duration::from_secs(3600);
        let inbox = Arc::new(Inbox::with_delays(hour, hour));
        let writer = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                let (mut ops, mut dones) = (Vec::new(), Vec::new());
                let taken = inbox.take(&mut ops, &mut dones, hour);
                (taken, ops.len(), dones.len())
            })
        };
        while inbox.lock().waiting != Waiting::Idle {
            std::thread::yield_now();
        }
        (inbox, writer)
    }

    /// A writer thread in `take` (idle time an hour) that sends how many ops it took.
    fn writer_in_take(inbox: &Arc<Inbox>) -> (mpsc::Receiver<usize>, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel();
        let inbox = inbox.clone();
        let writer = std::thread::spawn(move || {
            let (mut ops, mut dones) = (Vec::new(), Vec::new());
            inbox.take(&mut ops, &mut dones, Duration::from_secs(3600));
            tx.send(ops.len()).unwrap();
        });
        (rx, writer)
    }

    fn take_now(inbox: &Inbox) -> (Vec<Op>, Vec<Completion>) {
        let (mut ops, mut dones) = (Vec::new(), Vec::new());
        // Whatever waits is due within the lazy delay.
        match inbox.take(&mut ops, &mut dones, Duration::from_millis(50)) {
            Taken::Work | Taken::Idle => (ops, dones),
            Taken::Closed => panic!("closed"),
        }
    }

    #[test]
    fn a_put_deleted_before_it_is_taken_is_confirmed_at_once_and_never_written() {
        let inbox = Inbox::new();
        let (confirmed, done) = counter();
        inbox.put(put(0), Some(done()));
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        assert_eq!(confirmed.load(Ordering::SeqCst), 0);
        inbox.submit([delete(0)], None);
        assert_eq!(confirmed.load(Ordering::SeqCst), 1);
        let st = inbox.lock();
        assert_eq!((st.live, st.waking, st.slots.len()), (0, 0, 0));
    }

    #[test]
    fn a_delivered_put_stays_for_its_ack() {
        let (inbox, confirmed) = two_confirmed_puts();
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        // Put 1 is not delivered: it is taken with the mark; put 0 stays.
        let (ops, dones) = take_now(&inbox);
        assert!(matches!(
            ops[..],
            [Op::PutMessage { seq: 1, .. }, Op::MarkDelivered { .. }]
        ));
        assert_eq!(dones.len(), 1);
        // Its ack cancels it: confirmed, and nothing is left to write.
        ack_cancels_put_0(&inbox, &confirmed);
    }

    #[test]
    fn a_put_does_not_wake_an_idle_writer_before_its_delivered_mark() {
        let (inbox, writer) = idle_writer();
        let (confirmed, done) = counter();
        // The queue puts, delivers at once, then nudges: woken by the put, the writer took the
        // put before the mark came in and wrote it, though its ack came right after.
        inbox.put(put(0), Some(done()));
        assert!(
            inbox.lock().waiting == Waiting::Idle,
            "the put woke the writer"
        );
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        inbox.nudge();
        inbox.submit([delete(0)], None);
        assert_eq!(confirmed.load(Ordering::SeqCst), 1);
        inbox.close();
        let (taken, ops, dones) = writer.join().unwrap();
        assert!(
            matches!(taken, Taken::Closed) && ops == 0 && dones == 0,
            "nothing to write"
        );
    }

    #[test]
    fn an_undelivered_put_is_taken_at_its_nudge() {
        let (inbox, writer) = idle_writer();
        let (_, done) = counter();
        inbox.put(put(0), Some(done()));
        inbox.nudge();
        assert!(
            inbox.lock().waiting == Waiting::No,
            "the nudge woke the writer"
        );
        let (taken, ops, dones) = writer.join().unwrap();
        assert!(matches!(taken, Taken::Work) && ops == 1 && dones == 1);
    }

    #[test]
    fn an_expected_put_is_held_and_its_delivery_holds_it_again() {
        let (inbox, confirmed) = two_confirmed_puts();
        // The queue expects to deliver put 0 soon (its consumers are acking); put 1 is not.
        inbox.hold_put(1, 0, Duration::from_secs(3600));
        let held_at = inbox
            .lock()
            .slot(0)
            .and_then(|s| s.held_until)
            .expect("held");
        assert_eq!(inbox.lock().waking, 1, "only put 1 wakes the writer");
        let (ops, dones) = take_now(&inbox);
        assert!(matches!(ops[..], [Op::PutMessage { seq: 1, .. }]));
        assert_eq!(dones.len(), 1);
        // Delivered later: held from the delivery on, and its ack cancels it.
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        assert!(
            inbox
                .lock()
                .slot(0)
                .and_then(|s| s.held_until)
                .expect("held")
                >= held_at
        );
        ack_cancels_put_0(&inbox, &confirmed);
    }

    #[test]
    fn holds_of_different_lengths_each_end_in_their_own_time() {
        let (inbox, confirmed) = two_confirmed_puts();
        // Put 0 is held for an hour, put 1 (held after it) for nothing: put 1 is due at once,
        // though the longer hold began first (one FIFO of holds would keep it behind put 0).
        inbox.mark_delivered(1, 0, Duration::from_secs(3600));
        inbox.mark_delivered(1, 1, Duration::ZERO);
        let (ops, dones) = take_now(&inbox);
        assert!(
            matches!(
                ops[..],
                [
                    Op::PutMessage { seq: 1, .. },
                    Op::MarkDelivered { seq: 0, .. },
                    Op::MarkDelivered { seq: 1, .. }
                ]
            ),
            "put 0 stays, put 1 is written"
        );
        assert_eq!(dones.len(), 1);
        // Put 0 still waits for its ack, which cancels it.
        ack_cancels_put_0(&inbox, &confirmed);
    }

    #[test]
    fn a_writer_with_only_held_puts_waits_until_they_are_due() {
        let inbox = Arc::new(Inbox::with_delays(
            Duration::ZERO,
            Duration::from_secs(3600),
        ));
        let (_, done) = counter();
        inbox.put(put(0), Some(done()));
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        let (ops, _) = take_now(&inbox);
        assert!(matches!(ops[..], [Op::MarkDelivered { .. }]));
        // Only the held put is left, due in an hour: the next take waits for it (it used to
        // wait only the lazy delay, take nothing and come back at once, spinning).
        let (rx, writer) = writer_in_take(&inbox);
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "the writer came back with nothing due"
        );
        // Closing writes what is held.
        inbox.close();
        assert_eq!(rx.recv().unwrap(), 1);
        writer.join().unwrap();
    }

    #[test]
    fn a_writer_does_not_wake_for_a_renewed_hold() {
        let inbox = Arc::new(Inbox::with_delays(
            Duration::ZERO,
            Duration::from_secs(3600),
        ));
        let (_, done) = counter();
        inbox.put(put(0), Some(done()));
        // Held for 50 ms, then (after a batch took the mark) for an hour: the first hold's
        // record is stale, and the writer waits for the second.
        inbox.mark_delivered(1, 0, Duration::from_millis(50));
        let (ops, _) = take_now(&inbox);
        assert!(matches!(ops[..], [Op::MarkDelivered { .. }]));
        inbox.hold_put(1, 0, Duration::from_secs(3600));
        let (rx, writer) = writer_in_take(&inbox);
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the writer woke for the stale hold and came back with nothing"
        );
        inbox.close();
        assert_eq!(rx.recv().unwrap(), 1);
        writer.join().unwrap();
    }

    #[test]
    fn a_delivered_put_not_acked_within_the_hold_is_written() {
        let inbox = Inbox::with_delays(Duration::ZERO, Duration::ZERO);
        let (confirmed, done) = counter();
        inbox.put(put(2), Some(done()));
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 2 }], None);
        let (ops, dones) = take_now(&inbox);
        assert!(matches!(
            ops[..],
            [Op::PutMessage { seq: 2, .. }, Op::MarkDelivered { .. }]
        ));
        assert_eq!(dones.len(), 1);
        // A later ack is an ordinary delete.
        inbox.submit([delete(2)], None);
        let (ops, _) = take_now(&inbox);
        assert!(matches!(ops[..], [Op::DeleteMessage { seq: 2, .. }]));
        assert_eq!(confirmed.load(Ordering::SeqCst), 0, "the writer runs it");
    }

    #[test]
    fn a_rewrite_or_a_barrier_ends_holding() {
        let inbox = Inbox::with_delays(Duration::ZERO, Duration::from_secs(3600));
        inbox.put(put(0), None);
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        let update = Op::UpdateMessage {
            queue: 1,
            seq: 0,
            record: Bytes::from_static(b"count 1"),
            transient: false,
        };
        inbox.submit([update], None);
        // The delete no longer cancels the put in the inbox (the batch code does, with the
        // rewrite between them).
        inbox.submit([delete(0)], None);
        let (ops, _) = take_now(&inbox);
        assert_eq!(ops.len(), 4);

        inbox.put(put(1), None);
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 1 }], None);
        let (fired, done) = counter();
        inbox.submit([], Some(done()));
        let (ops, dones) = take_now(&inbox);
        assert_eq!(ops.len(), 2, "the barrier takes the held put with it");
        assert_eq!(dones.len(), 1);
        assert_eq!(fired.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_record_of_a_shared_body_is_not_held() {
        let inbox = Inbox::with_delays(Duration::ZERO, Duration::from_secs(3600));
        inbox.submit(
            [Op::PutBody {
                id: 9,
                value: Bytes::from_static(b"body"),
            }],
            None,
        );
        inbox.put(
            Op::PutMessage {
                queue: 1,
                seq: 0,
                record: Bytes::from_static(b"record").into(),
                size: 4,
                shared: Some(9),
                transient: false,
            },
            None,
        );
        inbox.submit([Op::ReleaseBody { id: 9 }], None);
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        let (ops, _) = take_now(&inbox);
        assert_eq!(ops.len(), 4, "the record goes with its body");
    }

    #[test]
    fn closing_takes_held_puts() {
        let inbox = Inbox::with_delays(Duration::ZERO, Duration::from_secs(3600));
        inbox.put(put(0), None);
        inbox.submit([Op::MarkDelivered { queue: 1, seq: 0 }], None);
        inbox.close();
        let (ops, _) = take_now(&inbox);
        assert_eq!(ops.len(), 2);
    }
}
