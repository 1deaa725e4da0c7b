//! Queues: ready messages in FIFO order, consumers in round-robin order, dispatch under prefetch.
//!
//! A queue's state sits behind one `std::sync::Mutex`, taken for short, non-async critical sections by
//! whoever has work for it: the publishing connection's task (enqueue, then dispatch inline), the
//! consuming connection's task (ack, requeue, consume, cancel), or a writer that drained (resume
//! dispatch). There is no task per queue: on two cores the hand-off to another task would cost more
//! than the work. Messages carry a per-queue sequence number; requeued ones go back to their original
//! place, and the (queue, sequence) pair is the message's identity for the store.

mod args;
mod backlog;
mod consumer;
mod deadletter;
mod dispatch;
mod expiry;
pub(crate) mod flow;
mod hold;
mod paging;
mod settings;
mod settle;
pub(crate) mod sink;
#[cfg(test)]
mod tests;

pub(crate) use crate::persist::Budget;
pub(crate) use args::equivalence_args;
pub use args::{Overflow, QueueArgs, QueueType};
pub(crate) use backlog::Paged;
pub(crate) use consumer::Consumer;
pub(crate) use deadletter::is_cycle;
pub use deadletter::{DeadLetter, Reason};
pub(crate) use settings::{PolicySettings, Settings};
pub(crate) use sink::Take;
pub use sink::{Delivery, DeliverySink, QueueOwner, Taken};

use crate::message::{now_ms, Message};
use crate::message_stats::DeliverCounts;
use crate::persist::{ConfirmWait, QueueStore, StaleRecord};
use amqp_codec::types::FieldTable;
use backlog::Backlog;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use storage::MessageRecord;
use tracing::{debug, error, info, warn};

/// `expires_at` of a message that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

/// A confirmed message that finds at most this many ready before it, in a queue whose consumers
/// settled a delivery in the last [`SETTLING_MS`], is expected to be delivered soon: its put
/// waits for the ack like a delivered one's. Consumers that keep up (prefetch 100) leave about one
/// publisher's window of messages waiting for credit; a longer backlog means they are behind, and
/// the put goes to disk at once.
const EXPECT_DELIVERY_READY: u64 = 256;
/// See [`EXPECT_DELIVERY_READY`] (the store holds a put for at least 2 ms).
const SETTLING_MS: u64 = 2;

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    /// Position in the queue.
    pub seq: u64,
    /// The message.
    pub message: Arc<Message>,
    /// Delivered before and requeued.
    pub redelivered: bool,
    /// A copy is in the store (to delete once the message leaves the queue).
    pub stored: bool,
    /// When it expires (ms since the Unix epoch; [`NEVER`] if it does not).
    pub expires_at: u64,
    /// Times it was returned to the queue (`x-delivery-count`).
    pub delivery_count: u32,
}

/// A queue as it is declared: what queue.declare, a definitions file or the HTTP API give.
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    /// Name (never empty: a server-generated name is chosen before).
    pub name: String,
    /// Survives a restart.
    pub durable: bool,
    /// The connection that owns it, if exclusive.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
}

/// What became of a published message at one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Taken (and maybe delivered at once).
    Accepted,
    /// Refused by a length limit (`x-overflow` reject-publish or reject-publish-dlx).
    Rejected,
}

/// Mutable state of a queue.
#[derive(Debug)]
pub(crate) struct QueueState {
    /// Ready messages by priority level (one lane without priorities).
    lanes: Vec<Backlog>,
    /// Per lane: the latest expiry among the in-memory messages (NEVER once one does not expire).
    lane_expiry_max: Vec<u64>,
    /// In-memory messages that expire before one ahead of them in their lane, so that they are
    /// expired where they are rather than at the head: (expires_at, seq, lane). Entries whose
    /// message left are skipped when they come up.
    expiry_heap: BinaryHeap<Reverse<(u64, u64, u8)>>,
    /// Some message may expire (the queue has a TTL, or a message came with one).
    may_expire: bool,
    /// When the pending expiry timer fires.
    timer_at: Option<u64>,
    next_seq: u64,
    /// Highest priority first; within a priority, the next to serve first (round-robin by rotation).
    /// With single active consumer: in order of arrival, the first one active.
    consumers: Vec<Arc<Consumer>>,
    unacked: usize,
    /// When a delivery of a lasting message was last settled (ms since the epoch): consumers
    /// that settle now free credit for a message that waits for it.
    lasting_settled_at: u64,
    /// How long the store keeps a delivered lasting message's put back for its ack.
    put_hold: hold::PutHold,
    had_consumers: bool,
    /// Per lane: stored messages below this sequence had been delivered before the last restart.
    delivered_before_restart: Vec<u64>,
    /// Stored transient records below this sequence are from before the last restart (dropped).
    first_seq_of_run: u64,
    /// Last use (ms since the epoch), for `x-expires`.
    last_used: u64,
    /// When the pending `x-expires` timer fires (None: no timer pending).
    expires_timer: Option<u64>,
    /// Dead letters made under the lock, routed once it is released.
    dead: Vec<DeadLetter>,
    /// The message being published, during the dispatch that follows its arrival: it counts as
    /// not yet expired there even if the millisecond clock ticked since it was stamped (a TTL-0
    /// message goes to a consumer that can take it at once, as in RabbitMQ).
    arriving: Option<u64>,
    /// basic.gets waiting for the head of the queue to be read from the store, in arrival
    /// order: (who asked, no-ack).
    pending_gets: VecDeque<(Arc<dyn DeliverySink>, bool)>,
    /// The settings in force (arguments and policies: `settings.rs`).
    settings: Settings,
    /// Body bytes of the unacknowledged deliveries.
    unacked_bytes: u64,
    /// Unacknowledged deliveries with lasting records (persistent in a durable queue), and
    /// their body bytes.
    unacked_lasting: (u64, u64),
    /// Messages clients published to this queue (dead letters and delayed messages are not
    /// counted, as in RabbitMQ).
    published: u64,
    /// Messages handed out and acknowledged.
    counts: DeliverCounts,
}

impl QueueState {
    fn new(lanes: usize) -> Self {
        QueueState {
            lanes: (0..lanes).map(|_| Backlog::default()).collect(),
            lane_expiry_max: vec![0; lanes],
            expiry_heap: BinaryHeap::new(),
            may_expire: false,
            timer_at: None,
            next_seq: 0,
            consumers: Vec::new(),
            unacked: 0,
            lasting_settled_at: 0,
            put_hold: hold::PutHold::default(),
            had_consumers: false,
            delivered_before_restart: vec![0; lanes],
            first_seq_of_run: 0,
            last_used: now_ms(),
            expires_timer: None,
            dead: Vec::new(),
            arriving: None,
            pending_gets: VecDeque::new(),
            settings: Settings::default(),
            unacked_bytes: 0,
            unacked_lasting: (0, 0),
            published: 0,
            counts: DeliverCounts::default(),
        }
    }

    /// True if some message is ready, in memory or not.
    fn has_ready(&self) -> bool {
        self.lanes.iter().any(|l| l.len() > 0)
    }

    /// Ready messages, in memory or not.
    fn ready_len(&self) -> u64 {
        self.lanes.iter().map(Backlog::len).sum()
    }

    /// Ready message body bytes.
    fn ready_bytes(&self) -> u64 {
        self.lanes.iter().map(Backlog::bytes).sum()
    }

    /// (messages, bytes) held in memory.
    fn in_memory(&self) -> (usize, usize) {
        self.lanes.iter().fold((0, 0), |(n, b), l| {
            (n + l.in_memory(), b + l.memory_bytes())
        })
    }

    /// A delivery that will be acknowledged left the ready list.
    fn unacked_in(&mut self, size: u64, lasting: bool) {
        self.unacked += 1;
        self.unacked_bytes += size;
        if lasting {
            self.unacked_lasting.0 += 1;
            self.unacked_lasting.1 += size;
        }
    }

    /// `n` deliveries of lasting messages were settled just now (once per batch of settles: the
    /// clock is read once, not per delivery).
    fn lasting_settled(&mut self, n: u64) {
        let now = now_ms();
        self.lasting_settled_at = now;
        self.put_hold.settled(n, self.unacked_lasting.0, now);
    }

    /// An unacknowledged delivery was settled (acked, rejected or returned).
    fn unacked_out(&mut self, size: u64, lasting: bool) {
        self.unacked = self.unacked.saturating_sub(1);
        self.unacked_bytes = self.unacked_bytes.saturating_sub(size);
        if lasting {
            self.unacked_lasting.0 = self.unacked_lasting.0.saturating_sub(1);
            self.unacked_lasting.1 = self.unacked_lasting.1.saturating_sub(size);
        }
    }
}

/// A queue's figures at one moment (see [`Queue::figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueFigures {
    /// Ready messages.
    pub ready: u64,
    /// Their body bytes.
    pub ready_bytes: u64,
    /// Ready messages held in memory.
    pub ready_ram: u64,
    /// Their body bytes.
    pub ready_ram_bytes: u64,
    /// Ready messages only in the store (paged out).
    pub paged: u64,
    /// Their body bytes.
    pub paged_bytes: u64,
    /// Delivered, not yet acknowledged (always in memory).
    pub unacked: u64,
    /// Their body bytes.
    pub unacked_bytes: u64,
    /// Messages with lasting records (persistent, in a durable queue), ready or not.
    pub persistent: u64,
    /// Their body bytes.
    pub persistent_bytes: u64,
    /// Consumers.
    pub consumers: u64,
    /// Messages clients published to the queue.
    pub published: u64,
    /// Messages handed out and acknowledged.
    pub counts: DeliverCounts,
}

/// A queue.
#[derive(Debug)]
pub struct Queue {
    /// Name.
    pub name: String,
    /// Name of its vhost (for reply texts).
    pub vhost: String,
    /// Survives a restart.
    pub durable: bool,
    /// The connection that owns it, if exclusive.
    pub exclusive_owner: Option<u64>,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
    /// The arguments, parsed.
    pub args: QueueArgs,
    /// Its place in the store: persistent messages of a durable queue, and any queue's paged
    /// backlog.
    pub store: QueueStore,
    /// Its vhost, for dead-lettering and `x-expires`.
    owner: Weak<dyn QueueOwner>,
    deleted: AtomicBool,
    /// Publisher flow control (`flow.rs`).
    pub flow: flow::Flow,
    /// The consumer timeout of `state.settings` (ms; `NO_TIMEOUT` for none), mirrored so that
    /// a channel reads it without the queue lock: it asks while holding its deliveries lock,
    /// and queues take that lock under theirs (the other order would deadlock).
    consumer_timeout: std::sync::atomic::AtomicU64,
    state: Mutex<QueueState>,
}

/// `Queue::consumer_timeout`'s "none".
const NO_TIMEOUT: u64 = u64::MAX;

/// What a consume attempt needs from the queue's side.
pub enum ConsumeCheck {
    /// Consumer added.
    Ok,
    /// Someone holds exclusive use, or exclusive use was asked while others consume.
    ExclusiveInUse,
    /// The queue was deleted meanwhile.
    Deleted,
}

/// The next ready message, as far as memory tells.
enum Next {
    /// Taken off the queue.
    Ready(Ready),
    /// The next message in priority order is only in the store: lane to load.
    Load(usize),
    /// Nothing ready.
    Empty,
}

/// Runs `f` on a blocking thread (of the runtime, if there is one).
fn blocking(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(f)),
        Err(_) => drop(std::thread::spawn(f)),
    }
}

/// Calls `f` at `at` (ms since the epoch), on the runtime if there is one.
fn at_time(at: u64, f: impl FnOnce() + Send + 'static) {
    let wait = std::time::Duration::from_millis(at.saturating_sub(now_ms()));
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn(async move {
            tokio::time::sleep(wait).await;
            f();
        })),
        Err(_) => drop(std::thread::spawn(move || {
            std::thread::sleep(wait);
            f();
        })),
    }
}

impl Queue {
    /// A new empty queue of vhost `vhost`, as `spec` declares it (`args` parsed from its
    /// arguments), storing in `store`, handing dead letters and expiry to `owner`.
    pub fn new(
        spec: QueueSpec,
        vhost: String,
        args: QueueArgs,
        store: QueueStore,
        owner: Weak<dyn QueueOwner>,
    ) -> Self {
        let lanes = args.lanes();
        let mut state = QueueState::new(lanes);
        state.settings = Settings::from_args(&args);
        state.may_expire = state.settings.message_ttl.is_some();
        let consumer_timeout = state.settings.consumer_timeout.unwrap_or(NO_TIMEOUT);
        Queue {
            name: spec.name,
            vhost,
            durable: spec.durable,
            exclusive_owner: spec.exclusive_owner,
            auto_delete: spec.auto_delete,
            arguments: spec.arguments,
            args,
            store,
            owner,
            deleted: AtomicBool::new(false),
            flow: flow::Flow::default(),
            consumer_timeout: consumer_timeout.into(),
            state: Mutex::new(state),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if the queue's definition and persistent messages survive a restart (durable and not
    /// exclusive). Other queues use the store only to page out a backlog.
    pub fn keeps_definition(&self) -> bool {
        self.durable && self.exclusive_owner.is_none()
    }

    /// True once deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Relaxed)
    }

    /// (ready messages, consumers), as queue.declare-ok reports them.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.lock();
        (self.reported_len(&st) as u32, st.consumers.len() as u32)
    }

    /// The ready messages as clients are told: a drop-head queue whose head is still being read
    /// from the store to be dropped counts as already down to its length limit.
    pub(super) fn reported_len(&self, st: &QueueState) -> u64 {
        let n = st.ready_len();
        match st.settings.max_length {
            Some(max) if st.settings.overflow == Overflow::DropHead => n.min(max),
            _ => n,
        }
    }

    /// What the management API and Prometheus show of the queue: its messages by where they
    /// are, and its message counts.
    pub fn figures(&self) -> QueueFigures {
        let st = self.lock();
        let (ram, ram_bytes) = st.in_memory();
        let (mut paged, mut paged_bytes, mut lasting, mut lasting_bytes) = (0, 0, 0, 0);
        for l in &st.lanes {
            if let Some(p) = l.paged() {
                paged += p.count;
                paged_bytes += p.bytes;
                lasting += p.lasting;
                lasting_bytes += p.lasting_bytes;
            }
            let (n, b) = l.memory_persistent();
            lasting += n;
            lasting_bytes += b;
        }
        if !self.keeps_definition() {
            // Persistent messages in a transient queue are not kept: not persistent here.
            (lasting, lasting_bytes) = (0, 0);
        }
        QueueFigures {
            ready: self.reported_len(&st),
            ready_bytes: st.ready_bytes(),
            ready_ram: ram as u64,
            ready_ram_bytes: ram_bytes as u64,
            paged,
            paged_bytes,
            unacked: st.unacked as u64,
            unacked_bytes: st.unacked_bytes,
            persistent: lasting + st.unacked_lasting.0,
            persistent_bytes: lasting_bytes + st.unacked_lasting.1,
            consumers: st.consumers.len() as u64,
            published: st.published,
            counts: st.counts,
        }
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.lock().consumers.len()
    }

    /// The priority lane of a message: its priority, capped at the queue's maximum.
    pub(super) fn lane_of(&self, m: &Message) -> usize {
        match self.args.max_priority {
            None => 0,
            Some(max) => m.properties.priority().unwrap_or(0).min(max) as usize,
        }
    }

    /// True if `m`'s record in this queue survives a restart (a persistent message in a durable,
    /// non-exclusive queue); other records only page messages out of memory.
    pub(super) fn lasting(&self, m: &Message) -> bool {
        m.is_persistent() && self.keeps_definition()
    }

    /// When a message entering this queue now expires: the smaller of the queue's TTL and the
    /// message's own, counted from its publication (called locked).
    pub(super) fn expiry_for(&self, st: &QueueState, m: &Message) -> u64 {
        let own = if m.properties.expiration().is_some() {
            m.expiration_ms()
        } else {
            None
        };
        match (st.settings.message_ttl, own) {
            (None, None) => NEVER,
            (a, b) => {
                let ttl = a.unwrap_or(u64::MAX).min(b.unwrap_or(u64::MAX));
                m.published_at.saturating_add(ttl)
            }
        }
    }

    /// Appends a published message and delivers what it can. A persistent message in a durable
    /// queue is handed to the store first, with a completion of `wait` if the publisher waits for a
    /// confirm. The store write is submitted under the queue lock, so it is always ahead of the
    /// delete that an ack of this message will submit. Past its memory budget, a durable queue
    /// stores new messages (transient ones too) without keeping them in memory.
    pub fn enqueue(
        self: &Arc<Self>,
        message: Arc<Message>,
        wait: Option<&Arc<ConfirmWait>>,
    ) -> Enqueued {
        let (outcome, dead) = self.enqueue_inner(message, wait, true);
        self.route_dead(dead);
        outcome
    }

    /// [`Queue::enqueue`], handing back the dead letters it made instead of routing them.
    pub(crate) fn enqueue_inner(
        self: &Arc<Self>,
        message: Arc<Message>,
        wait: Option<&Arc<ConfirmWait>>,
        published: bool,
    ) -> (Enqueued, Vec<DeadLetter>) {
        let lane = self.lane_of(&message);
        let mut st = self.lock();
        if published {
            st.published += 1;
        }
        let expires_at = self.expiry_for(&st, &message);
        if st.settings.is_bounded()
            && st.settings.overflow != Overflow::DropHead
            && self.would_overflow(&st, &message)
        {
            if st.settings.overflow == Overflow::RejectPublishDlx {
                self.dead_letter(&mut st, &message, Reason::Maxlen);
            }
            return (Enqueued::Rejected, std::mem::take(&mut st.dead));
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let budget = &self.store.budget;
        let (n, bytes) = st.in_memory();
        let page = st.lanes[lane].must_page(budget, n, bytes);
        if !st.consumers.is_empty() {
            // The whole ready backlog, paged or not: once paging started, what is in memory
            // says little.
            let over = st.ready_len() >= flow::marks(budget.messages).0 as u64
                || st.ready_bytes() >= flow::marks(budget.bytes).0 as u64;
            self.flow.arrived(over);
        }
        let stored = self.lasting(&message);
        // A confirm waits for this put (unless its message is consumed first): the writer is
        // woken for it once the deliveries below are done, so that a put whose message went to a
        // consumer waits for the ack instead (see `storage::Store::put_message`).
        let mut nudge = false;
        if page || stored {
            let done = wait.filter(|_| stored).map(|w| w.completion());
            nudge = done.is_some();
            self.store.put(lane, seq, &message, stored, done);
        }
        if expires_at != NEVER {
            st.may_expire = true;
        }
        if page {
            st.lanes[lane].page(seq, message.size() as u64, stored);
        } else {
            Self::push_ready(
                &mut st,
                lane,
                Ready {
                    seq,
                    message,
                    redelivered: false,
                    stored,
                    expires_at,
                    delivery_count: 0,
                },
            );
        }
        st.arriving = Some(seq);
        self.after_arrival(&mut st);
        st.arriving = None;
        if nudge {
            // Not delivered at once, but consumers that are settling deliveries free credit for
            // it soon: its put waits for their ack too (a delivered one's already waits). A
            // queue whose consumers are busy (no ack in the last milliseconds) writes it at once,
            // so a publisher that waits for each confirm is not held up.
            if !page
                && !st.consumers.is_empty()
                && st.ready_len() <= EXPECT_DELIVERY_READY
                && now_ms().saturating_sub(st.lasting_settled_at) <= SETTLING_MS
            {
                self.store.expect_delivery(lane, seq, st.put_hold.hold());
            }
            self.store.nudge();
        }
        (Enqueued::Accepted, std::mem::take(&mut st.dead))
    }

    /// After messages arrived (published or requeued): deliver what can be delivered, expire what
    /// is due (a TTL-0 message only once no consumer could take it), and drop from the head down to
    /// a drop-head length limit (requeues may take it over, as in RabbitMQ; reject-publish queues
    /// are allowed to stay over).
    pub(super) fn after_arrival(self: &Arc<Self>, st: &mut QueueState) {
        self.dispatch_locked(st);
        if st.may_expire {
            self.expire_locked(st);
            self.schedule_expiry(st);
        }
        if st.settings.is_bounded() && st.settings.overflow == Overflow::DropHead {
            self.drop_head_locked(st);
        }
    }

    /// True if one more message would break the length limit (as RabbitMQ's `would_overflow`).
    pub(super) fn would_overflow(&self, st: &QueueState, m: &Message) -> bool {
        st.settings
            .max_length
            .is_some_and(|max| st.ready_len() + 1 > max)
            || st
                .settings
                .max_length_bytes
                .is_some_and(|max| st.ready_bytes() + m.size() as u64 > max)
    }

    /// Drops messages from the head while the queue is over its length limit (dead-lettering them
    /// with reason `maxlen`).
    pub(super) fn drop_head_locked(self: &Arc<Self>, st: &mut QueueState) {
        let over = |st: &QueueState| {
            st.settings.max_length.is_some_and(|m| st.ready_len() > m)
                || st
                    .settings
                    .max_length_bytes
                    .is_some_and(|m| st.ready_bytes() > m)
        };
        while over(st) {
            match self.next_ready(st) {
                Next::Ready(r) => {
                    self.dead_letter(st, &r.message, Reason::Maxlen);
                    self.unstore_one(&r);
                }
                Next::Load(lane) => {
                    // The head is only in the store (rare: a queue over its limit with nothing
                    // in memory): it is read on a blocking thread, and the chunk's arrival drops
                    // what is over the limit. Meanwhile the queue reports its length capped at
                    // the limit (`reported_len`), as if the drop had happened.
                    if !st.lanes[lane].loading {
                        self.start_load(st, lane);
                    }
                    return;
                }
                Next::Empty => return,
            }
        }
    }

    /// Adds a message to a lane's in-memory part, noting its expiry.
    pub(super) fn push_ready(st: &mut QueueState, lane: usize, r: Ready) {
        if st.lanes[lane].in_memory() == 0 {
            st.lane_expiry_max[lane] = 0;
        }
        Self::note_expiry(st, lane, &r);
        st.lanes[lane].push(r);
    }

    /// Makes the dead letter of a message that leaves this queue for `reason`, if the queue has a
    /// dead-letter exchange (called locked; routed once the lock is released).
    pub(super) fn dead_letter(&self, st: &mut QueueState, m: &Message, reason: Reason) {
        if let Some(dlx) = &st.settings.dlx {
            let c = &crate::metrics::COUNTERS;
            match reason {
                Reason::Expired => c.dead_lettered_expired.inc(),
                Reason::Rejected => c.dead_lettered_rejected.inc(),
                Reason::Maxlen => c.dead_lettered_maxlen.inc(),
                Reason::DeliveryLimit => c.dead_lettered_delivery_limit.inc(),
            }
            let letter = deadletter::dead_letter(
                m,
                &self.name,
                reason,
                dlx,
                st.settings.dlrk.as_deref(),
                now_ms() / 1000,
            );
            st.dead.push(letter);
        }
    }

    /// Routes dead letters through the vhost (never called with the queue locked).
    pub(super) fn route_dead(&self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        if let Some(owner) = self.owner.upgrade() {
            owner.dead_letters(dead);
        }
    }

    /// Removes all ready messages, stored or not; returns how many (as clients are told).
    pub fn purge(&self) -> u32 {
        let mut st = self.lock();
        let n = self.reported_len(&st);
        for lane in 0..st.lanes.len() {
            let (memory, paged) = st.lanes[lane].clear();
            self.unstore(
                memory
                    .iter()
                    .filter(|r| r.stored)
                    .map(|r| (r.seq, &r.message)),
            );
            if let Some(range) = paged {
                self.store.delete_range(
                    lane,
                    range.next,
                    range.end,
                    range.lasting,
                    range.lasting_bytes,
                );
            }
        }
        st.expiry_heap.clear();
        self.flow.clear();
        n as u32
    }

    /// Marks the queue deleted, drops its messages, answers gets still waiting with get-empty,
    /// and cancels its consumers (their sinks tell clients that asked for
    /// consumer_cancel_notify). Returns the number of ready messages dropped.
    pub fn delete(self: &Arc<Self>) -> u32 {
        if !self.deleted.swap(true, Ordering::Relaxed) {
            crate::metrics::COUNTERS.queues_deleted.inc();
        }
        let (n, consumers) = {
            let mut st = self.lock();
            let n = st.ready_len() as u32;
            for lane in st.lanes.iter_mut() {
                lane.clear();
            }
            st.expiry_heap.clear();
            self.flow.clear();
            self.serve_gets(&mut st, false);
            (n, std::mem::take(&mut st.consumers))
        };
        for c in consumers {
            c.sink.cancelled(&c);
        }
        n
    }

    /// The store ids of all lanes.
    pub fn store_ids(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.args.lanes()).map(|lane| self.store.lane_id(lane))
    }
}

/// Logs a dead letter that was dropped because it would cycle.
pub(crate) fn log_cycle(letter: &DeadLetter, queue: &str) {
    debug!(
        queue,
        reason = letter.reason.name(),
        "dead-lettering cycle detected: message dropped"
    );
}
