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
pub mod flow;
pub mod sink;
#[cfg(test)]
mod tests;

pub use crate::persist::Budget;
pub use args::{Overflow, QueueArgs, QueueType};
pub use backlog::Paged;
pub use consumer::Consumer;
pub use deadletter::{is_cycle, DeadLetter, Reason};
pub use sink::{Delivery, DeliverySink, QueueOwner, Taken};

use crate::message::{now_ms, Message};
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
pub const NEVER: u64 = u64::MAX;

/// A message waiting in a queue.
#[derive(Debug, Clone)]
pub struct Ready {
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
pub struct QueueState {
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
    had_consumers: bool,
    /// Per lane: stored messages below this sequence had been delivered before the last restart.
    delivered_before_restart: Vec<u64>,
    /// Stored transient records below this sequence are from before the last restart (dropped).
    first_seq_of_run: u64,
    /// Last use (ms since the epoch), for `x-expires`.
    last_used: u64,
    /// An `x-expires` timer is pending.
    expires_timer: bool,
    /// Dead letters made under the lock, routed once it is released.
    dead: Vec<DeadLetter>,
    /// The message being published, during the dispatch that follows its arrival: it counts as
    /// not yet expired there even if the millisecond clock ticked since it was stamped (a TTL-0
    /// message goes to a consumer that can take it at once, as in RabbitMQ).
    arriving: Option<u64>,
    /// basic.gets waiting for the head of the queue to be read from the store, in arrival
    /// order: (who asked, no-ack).
    pending_gets: VecDeque<(Arc<dyn DeliverySink>, bool)>,
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
            had_consumers: false,
            delivered_before_restart: vec![0; lanes],
            first_seq_of_run: 0,
            last_used: now_ms(),
            expires_timer: false,
            dead: Vec::new(),
            arriving: None,
            pending_gets: VecDeque::new(),
        }
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
    state: Mutex<QueueState>,
}

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
        state.may_expire = args.message_ttl.is_some();
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
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
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
    fn reported_len(&self, st: &QueueState) -> u64 {
        let n = st.ready_len();
        match self.args.max_length {
            Some(max) if self.args.overflow == Overflow::DropHead => n.min(max),
            _ => n,
        }
    }

    /// Number of consumers.
    pub fn consumer_count(&self) -> usize {
        self.lock().consumers.len()
    }

    /// The priority lane of a message: its priority, capped at the queue's maximum.
    fn lane_of(&self, m: &Message) -> usize {
        match self.args.max_priority {
            None => 0,
            Some(max) => m.properties.priority().unwrap_or(0).min(max) as usize,
        }
    }

    /// True if `m`'s record in this queue survives a restart (a persistent message in a durable,
    /// non-exclusive queue); other records only page messages out of memory.
    fn lasting(&self, m: &Message) -> bool {
        m.is_persistent() && self.keeps_definition()
    }

    /// When a message entering this queue now expires: the smaller of the queue's TTL and the
    /// message's own, counted from its publication.
    fn expiry_for(&self, m: &Message) -> u64 {
        let own = if m.properties.expiration().is_some() {
            m.expiration_ms()
        } else {
            None
        };
        match (self.args.message_ttl, own) {
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
        let (outcome, dead) = self.enqueue_inner(message, wait);
        self.route_dead(dead);
        outcome
    }

    /// [`Queue::enqueue`], handing back the dead letters it made instead of routing them.
    pub(crate) fn enqueue_inner(
        self: &Arc<Self>,
        message: Arc<Message>,
        wait: Option<&Arc<ConfirmWait>>,
    ) -> (Enqueued, Vec<DeadLetter>) {
        let lane = self.lane_of(&message);
        let expires_at = self.expiry_for(&message);
        let mut st = self.lock();
        if self.args.is_bounded()
            && self.args.overflow != Overflow::DropHead
            && self.would_overflow(&st, &message)
        {
            if self.args.overflow == Overflow::RejectPublishDlx {
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
        if page || stored {
            let done = wait.filter(|_| stored).map(|w| w.completion());
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
        (Enqueued::Accepted, std::mem::take(&mut st.dead))
    }

    /// After messages arrived (published or requeued): deliver what can be delivered, expire what
    /// is due (a TTL-0 message only once no consumer could take it), and drop from the head down to
    /// a drop-head length limit (requeues may take it over, as in RabbitMQ; reject-publish queues
    /// are allowed to stay over).
    fn after_arrival(self: &Arc<Self>, st: &mut QueueState) {
        self.dispatch_locked(st);
        if st.may_expire {
            self.expire_locked(st);
            self.schedule_expiry(st);
        }
        if self.args.is_bounded() && self.args.overflow == Overflow::DropHead {
            self.drop_head_locked(st);
        }
    }

    /// True if one more message would break the length limit (as RabbitMQ's `would_overflow`).
    fn would_overflow(&self, st: &QueueState, m: &Message) -> bool {
        self.args
            .max_length
            .is_some_and(|max| st.ready_len() + 1 > max)
            || self
                .args
                .max_length_bytes
                .is_some_and(|max| st.ready_bytes() + m.size() as u64 > max)
    }

    /// Drops messages from the head while the queue is over its length limit (dead-lettering them
    /// with reason `maxlen`).
    fn drop_head_locked(self: &Arc<Self>, st: &mut QueueState) {
        let over = |st: &QueueState| {
            self.args.max_length.is_some_and(|m| st.ready_len() > m)
                || self
                    .args
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
    fn push_ready(st: &mut QueueState, lane: usize, r: Ready) {
        if st.lanes[lane].in_memory() == 0 {
            st.lane_expiry_max[lane] = 0;
        }
        Self::note_expiry(st, lane, &r);
        st.lanes[lane].push(r);
    }

    /// Notes the expiry of a message joining the back of a lane's memory: one that expires before
    /// a message ahead of it goes into the heap, so it leaves on time from the middle.
    fn note_expiry(st: &mut QueueState, lane: usize, r: &Ready) {
        if r.expires_at != NEVER && r.expires_at < st.lane_expiry_max[lane] {
            st.expiry_heap
                .push(Reverse((r.expires_at, r.seq, lane as u8)));
        }
        st.lane_expiry_max[lane] = st.lane_expiry_max[lane].max(r.expires_at);
    }

    /// Takes the next ready message in priority order, dropping expired ones on the way.
    fn next_ready(&self, st: &mut QueueState) -> Next {
        loop {
            let mut found = None;
            for lane in (0..st.lanes.len()).rev() {
                let b = &st.lanes[lane];
                if b.in_memory() > 0 {
                    found = Some(lane);
                    break;
                }
                if b.paged().is_some() {
                    return Next::Load(lane);
                }
            }
            let Some(lane) = found else {
                return Next::Empty;
            };
            let r = st.lanes[lane].pop().expect("non-empty lane");
            // Strictly past: a message with TTL 0 still goes to a consumer that can take it at
            // once (RabbitMQ's rule); `expire_locked` drops it right after if none could.
            if r.expires_at != NEVER && r.expires_at < now_ms() && st.arriving != Some(r.seq) {
                self.dead_letter(st, &r.message, Reason::Expired);
                self.unstore_one(&r);
                continue;
            }
            return Next::Ready(r);
        }
    }

    /// Takes the next message to deliver, starting a load from the store if that is where it is
    /// (called locked, by consumers).
    pub(crate) fn pop_for_delivery(self: &Arc<Self>, st: &mut QueueState) -> Option<Ready> {
        match self.next_ready(st) {
            Next::Ready(r) => Some(r),
            Next::Load(lane) => {
                if !st.lanes[lane].loading {
                    self.start_load(st, lane);
                }
                None
            }
            Next::Empty => None,
        }
    }

    /// Removes every in-memory message whose time has come (dead-lettering them), wherever it is
    /// in the queue.
    fn expire_locked(&self, st: &mut QueueState) {
        let now = now_ms();
        for lane in 0..st.lanes.len() {
            while st.lanes[lane]
                .front()
                .is_some_and(|r| r.expires_at != NEVER && r.expires_at <= now)
            {
                let r = st.lanes[lane].pop().expect("front");
                self.dead_letter(st, &r.message, Reason::Expired);
                self.unstore_one(&r);
            }
        }
        while let Some(Reverse((at, seq, lane))) = st.expiry_heap.peek().copied() {
            if at > now {
                break;
            }
            st.expiry_heap.pop();
            let lane = lane as usize;
            if let Some(r) = st.lanes[lane].remove_seq(seq) {
                if r.expires_at <= now {
                    self.dead_letter(st, &r.message, Reason::Expired);
                    self.unstore_one(&r);
                } else {
                    st.lanes[lane].requeue(r);
                }
            }
        }
    }

    /// Makes sure a timer fires when the next in-memory message expires.
    fn schedule_expiry(self: &Arc<Self>, st: &mut QueueState) {
        let heads = st
            .lanes
            .iter()
            .filter_map(|l| l.front())
            .map(|r| r.expires_at);
        let heap = st.expiry_heap.peek().map(|Reverse((at, _, _))| *at);
        let Some(next) = heads.chain(heap).min().filter(|&t| t != NEVER) else {
            return;
        };
        if st.timer_at.is_some_and(|t| t <= next) {
            return;
        }
        st.timer_at = Some(next);
        let q = Arc::downgrade(self);
        at_time(next, move || {
            if let Some(q) = q.upgrade() {
                q.on_expiry_timer();
            }
        });
    }

    fn on_expiry_timer(self: &Arc<Self>) {
        if self.is_deleted() {
            return;
        }
        let dead = {
            let mut st = self.lock();
            st.timer_at = None;
            self.expire_locked(&mut st);
            self.read_ahead(&mut st, false);
            self.schedule_expiry(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
    }

    /// Notes a use of the queue (declare, consume, get) for `x-expires`, and makes sure its timer
    /// runs.
    pub fn touch(self: &Arc<Self>) {
        let Some(expires) = self.args.expires else {
            return;
        };
        let mut st = self.lock();
        st.last_used = now_ms();
        if !st.expires_timer {
            st.expires_timer = true;
            let at = st.last_used + expires;
            drop(st);
            self.expires_timer_at(at);
        }
    }

    /// Runs the `x-expires` check at `at` (holding only a weak reference to the queue).
    fn expires_timer_at(self: &Arc<Self>, at: u64) {
        let q = Arc::downgrade(self);
        at_time(at, move || {
            if let Some(q) = q.upgrade() {
                q.on_expires_timer();
            }
        });
    }

    fn on_expires_timer(self: &Arc<Self>) {
        let Some(expires) = self.args.expires else {
            return;
        };
        if self.is_deleted() {
            return;
        }
        let mut st = self.lock();
        st.expires_timer = false;
        if !st.consumers.is_empty() {
            // The last consumer to leave touches the queue again.
            return;
        }
        let due = st.last_used + expires;
        if now_ms() < due {
            st.expires_timer = true;
            drop(st);
            self.expires_timer_at(due);
            return;
        }
        drop(st);
        if let Some(owner) = self.owner.upgrade() {
            info!(queue = %self.name, vhost = %self.vhost, "deleting queue unused for {expires} ms (x-expires)");
            owner.expire(self);
        }
    }

    /// Makes the dead letter of a message that leaves this queue for `reason`, if the queue has a
    /// dead-letter exchange (called locked; routed once the lock is released).
    fn dead_letter(&self, st: &mut QueueState, m: &Message, reason: Reason) {
        if let Some(dlx) = &self.args.dlx {
            st.dead.push(deadletter::dead_letter(
                m,
                &self.name,
                reason,
                dlx,
                self.args.dlrk.as_deref(),
                now_ms() / 1000,
            ));
        }
    }

    /// Routes dead letters through the vhost (never called with the queue locked).
    fn route_dead(&self, dead: Vec<DeadLetter>) {
        if dead.is_empty() {
            return;
        }
        if let Some(owner) = self.owner.upgrade() {
            owner.dead_letters(dead);
        }
    }

    /// Puts returned messages back at their original places, marked redelivered, and delivers.
    /// A message returned more often than `x-delivery-limit` allows is dead-lettered instead.
    pub fn requeue<D: AsRef<Delivery>>(self: &Arc<Self>, returned: &[D]) {
        if self.is_deleted() {
            return;
        }
        let dead = {
            let mut st = self.lock();
            let counts = self.args.counts_deliveries();
            for u in returned {
                let u = u.as_ref();
                st.unacked = st.unacked.saturating_sub(1);
                let count = if counts {
                    u.delivery_count.saturating_add(1)
                } else {
                    u.delivery_count
                };
                let r = Ready {
                    seq: u.seq,
                    message: u.message.clone(),
                    redelivered: true,
                    stored: u.stored,
                    expires_at: u.expires_at,
                    delivery_count: count,
                };
                if self
                    .args
                    .delivery_limit
                    .is_some_and(|limit| count as u64 > limit)
                {
                    self.dead_letter(&mut st, &r.message, Reason::DeliveryLimit);
                    self.unstore_one(&r);
                    continue;
                }
                let lane = self.lane_of(&r.message);
                if counts && r.stored {
                    let lasting = self.lasting(&r.message);
                    self.store
                        .update_count(lane, r.seq, &r.message, count, lasting);
                }
                if r.expires_at != NEVER {
                    st.expiry_heap
                        .push(Reverse((r.expires_at, r.seq, lane as u8)));
                }
                st.lanes[lane].requeue(r);
            }
            self.after_arrival(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
    }

    /// Forgets acknowledged deliveries, deleting stored ones.
    pub fn acked<D: AsRef<Delivery>>(&self, settled: &[D]) {
        {
            let mut st = self.lock();
            st.unacked = st.unacked.saturating_sub(settled.len());
        }
        self.unstore(
            settled
                .iter()
                .map(AsRef::as_ref)
                .filter(|u| u.stored)
                .map(|u| (u.seq, &u.message)),
        );
    }

    /// basic.reject or basic.nack without requeue: the deliveries are dead-lettered (reason
    /// `rejected`) if the queue has a dead-letter exchange, and forgotten.
    pub fn discarded<D: AsRef<Delivery>>(&self, settled: &[D]) {
        let dead = {
            let mut st = self.lock();
            st.unacked = st.unacked.saturating_sub(settled.len());
            for u in settled {
                self.dead_letter(&mut st, &u.as_ref().message, Reason::Rejected);
            }
            std::mem::take(&mut st.dead)
        };
        self.unstore(
            settled
                .iter()
                .map(AsRef::as_ref)
                .filter(|u| u.stored)
                .map(|u| (u.seq, &u.message)),
        );
        self.route_dead(dead);
    }

    fn unstore_one(&self, r: &Ready) {
        if r.stored {
            self.unstore(std::iter::once((r.seq, &r.message)));
        }
    }

    /// Deletes the stored copies of messages that left the queue for good (callers pass stored
    /// messages only).
    fn unstore<'a>(&self, gone: impl Iterator<Item = (u64, &'a Arc<Message>)>) {
        if self.is_deleted() {
            // Its whole range was dropped with the queue.
            return;
        }
        self.store
            .delete(gone.map(|(seq, m)| (self.lane_of(m), seq, m.as_ref(), self.lasting(m))));
    }

    /// Notes a first delivery of a stored message, so that it comes back redelivered after a
    /// restart (called with the queue locked).
    pub(crate) fn mark_delivered(&self, r: &Ready) {
        if !r.stored || r.redelivered || !self.lasting(&r.message) {
            return;
        }
        self.store.mark_delivered(self.lane_of(&r.message), r.seq);
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
    fn start_load(self: &Arc<Self>, st: &mut QueueState, lane: usize) {
        let Some(range) = st.lanes[lane].paged() else {
            return;
        };
        st.lanes[lane].loading = true;
        let generation = st.lanes[lane].generation;
        let q = self.clone();
        blocking(move || q.load_chunk(lane, generation, range.next));
    }

    /// Reads a chunk of a lane from the store (blocking).
    fn read_chunk(&self, lane: usize, from: u64) -> Option<Vec<(u64, MessageRecord)>> {
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
    fn load_chunk(self: Arc<Self>, lane: usize, generation: u64, from: u64) {
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
                        self.serve_gets(&mut st, false);
                    }
                }
                Some(records) => {
                    self.take_in(&mut st, lane, generation, records);
                    if self.args.is_bounded() && self.args.overflow == Overflow::DropHead {
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
    fn take_in(
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
                let expires_at = self.expiry_for(&message);
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

    /// The message as delivered: with `x-delivery-count` when the queue counts deliveries and this
    /// one was returned before.
    /// (A quorum queue's basic.get says `x-delivery-count: 0` even on a first delivery; a consumer's
    /// first delivery has no header.)
    fn as_delivered(&self, r: &Ready, get: bool) -> Arc<Message> {
        if (r.delivery_count > 0 || get) && self.args.counts_deliveries() {
            Arc::new(r.message.with_header(
                "x-delivery-count",
                &amqp_codec::rawtable::long(r.delivery_count as i64),
            ))
        } else {
            r.message.clone()
        }
    }

    /// A ready message leaves for a consumer or a basic.get (called locked): the store learns
    /// it was delivered (or, without ack, that it is gone).
    fn hand_out(&self, st: &mut QueueState, r: Ready, no_ack: bool, get: bool) -> Taken {
        let outgoing = self.as_delivered(&r, get);
        if no_ack {
            self.unstore_one(&r);
        } else {
            self.mark_delivered(&r);
            st.unacked += 1;
        }
        Taken {
            outgoing,
            redelivered: r.redelivered,
            remaining: self.reported_len(st) as u32,
            delivery: Delivery {
                seq: r.seq,
                message: r.message,
                stored: r.stored,
                expires_at: r.expires_at,
                delivery_count: r.delivery_count,
            },
        }
    }

    /// Offers the next message to a consumer (called locked).
    fn offer_to(self: &Arc<Self>, c: &Arc<Consumer>, st: &mut QueueState) -> bool {
        if !c.has_credit() {
            return false;
        }
        let mut take = || {
            let r = self.pop_for_delivery(st)?;
            if !c.no_ack {
                c.unacked.fetch_add(1, Ordering::Relaxed);
            }
            Some(self.hand_out(st, r, c.no_ack, false))
        };
        c.sink.offer(c, &mut take)
    }

    /// basic.get: answers `sink` with the head message, or get-empty. If the head is only in the
    /// store, it is read on a blocking thread and the get is answered from there (never a
    /// RocksDB read under the queue lock on a runtime worker): returns false then, and the sink's
    /// answer comes `deferred`. Later gets wait behind a deferred one.
    pub fn get(self: &Arc<Self>, sink: &Arc<dyn DeliverySink>, no_ack: bool) -> bool {
        self.touch();
        let mut st = self.lock();
        let answered =
            st.pending_gets.is_empty() && self.answer_get(&mut st, sink.as_ref(), no_ack, false);
        if !answered {
            st.pending_gets.push_back((sink.clone(), no_ack));
        }
        // A queue read by basic.get keeps some messages in memory ahead of the next gets, as it
        // does ahead of consumers.
        self.read_ahead(&mut st, true);
        let dead = std::mem::take(&mut st.dead);
        drop(st);
        self.route_dead(dead);
        answered
    }

    /// Answers a get if the queue can tell now (called locked): false if the head is only in the
    /// store (a read is then under way).
    fn answer_get(
        self: &Arc<Self>,
        st: &mut QueueState,
        sink: &dyn DeliverySink,
        no_ack: bool,
        deferred: bool,
    ) -> bool {
        let mut next = match self.next_ready(st) {
            Next::Ready(r) => Some(r),
            Next::Empty => None,
            Next::Load(lane) => {
                if !st.lanes[lane].loading {
                    self.start_load(st, lane);
                }
                return false;
            }
        };
        {
            let mut take = || next.take().map(|r| self.hand_out(st, r, no_ack, true));
            sink.answer_get(self, no_ack, &mut take, deferred);
        }
        if let Some(r) = next {
            // The asker is gone: the message stays where it was.
            let lane = self.lane_of(&r.message);
            st.lanes[lane].requeue(r);
        }
        true
    }

    /// Answers the gets that waited for the store, in order, as far as memory allows (called
    /// locked). `failed`: the store could not be read; they are answered empty.
    fn serve_gets(self: &Arc<Self>, st: &mut QueueState, failed: bool) {
        while let Some((sink, no_ack)) = st.pending_gets.front().cloned() {
            if failed {
                sink.answer_get(self, no_ack, &mut || None, true);
            } else if !self.answer_get(st, sink.as_ref(), no_ack, true) {
                return;
            }
            st.pending_gets.pop_front();
        }
    }

    /// Adds a consumer, after its sink announced it (if `announce`: consume-ok precedes the
    /// first delivery), then delivers.
    pub fn consume(self: &Arc<Self>, consumer: Arc<Consumer>, announce: bool) -> ConsumeCheck {
        self.touch();
        let dead = {
            let mut st = self.lock();
            if self.is_deleted() {
                return ConsumeCheck::Deleted;
            }
            // (An exclusive consumer is never allowed on a single-active-consumer queue.)
            if st.consumers.iter().any(|c| c.exclusive)
                || (consumer.exclusive
                    && (!st.consumers.is_empty() || self.args.single_active_consumer))
            {
                return ConsumeCheck::ExclusiveInUse;
            }
            consumer.sink.attached(&consumer, announce);
            let at = if self.args.single_active_consumer {
                // In order of arrival: the first is the active one.
                st.consumers.len()
            } else {
                st.consumers
                    .partition_point(|c| c.priority >= consumer.priority)
            };
            st.consumers.insert(at, consumer);
            st.had_consumers = true;
            self.dispatch_locked(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
        ConsumeCheck::Ok
    }

    /// Removes a consumer. Returns true if the queue should now be auto-deleted.
    pub fn cancel(self: &Arc<Self>, consumer: &Arc<Consumer>) -> bool {
        let (auto_delete, dead, idle) = {
            let mut st = self.lock();
            st.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
            if st.consumers.is_empty() {
                // Publishers no longer wait for anyone.
                self.flow.clear();
            }
            let auto_delete = self.auto_delete
                && st.had_consumers
                && st.consumers.is_empty()
                && !self.is_deleted();
            // With a single active consumer, the next one in line takes over.
            if self.args.single_active_consumer && !auto_delete {
                self.dispatch_locked(&mut st);
            }
            (
                auto_delete,
                std::mem::take(&mut st.dead),
                st.consumers.is_empty(),
            )
        };
        self.route_dead(dead);
        if idle {
            self.touch();
        }
        auto_delete
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
        self.deleted.store(true, Ordering::Relaxed);
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

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(self: &Arc<Self>) {
        let dead = {
            let mut st = self.lock();
            self.dispatch_locked(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        let mut delivered = 0;
        if self.args.single_active_consumer {
            // Only the first consumer receives; the others wait their turn.
            while let Some(c) = st.consumers.first().cloned() {
                if !self.offer_to(&c, st) {
                    break;
                }
                delivered += 1;
            }
        } else {
            // Consumers are ordered by priority, and a consumer that takes a message moves behind
            // the others of its priority: the first one able to take a message is the right one.
            while !st.consumers.is_empty() {
                let mut taken = None;
                for i in 0..st.consumers.len() {
                    let c = st.consumers[i].clone();
                    if self.offer_to(&c, st) {
                        taken = Some(i);
                        break;
                    }
                }
                let Some(i) = taken else {
                    break;
                };
                delivered += 1;
                let priority = st.consumers[i].priority;
                let end = i + st.consumers[i..].partition_point(|c| c.priority == priority);
                st.consumers[i..end].rotate_left(1);
            }
        }
        if self.flow.active() {
            self.flow.delivered(delivered);
            self.flow_check(st);
        }
        self.read_ahead(st, false);
    }

    /// Ends a flow-control episode once the ready backlog is down to the low-water mark
    /// (called locked, only during an episode).
    fn flow_check(&self, st: &QueueState) {
        let budget = &self.store.budget;
        let below = st.consumers.is_empty()
            || (st.ready_len() <= flow::marks(budget.messages).1 as u64
                && st.ready_bytes() <= flow::marks(budget.bytes).1 as u64);
        if below {
            self.flow.clear();
        }
    }

    /// Keeps some messages in memory while more are stored, in priority order, until enough are
    /// in memory: ahead of consumers or basic.gets (`for_get`), and, in a queue where messages
    /// expire, so that stored ones reach the expiry timers even with no consumer (a retry queue
    /// with a long backlog).
    fn read_ahead(self: &Arc<Self>, st: &mut QueueState, for_get: bool) {
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

/// Logs a dead letter that was dropped because it would cycle.
pub(crate) fn log_cycle(letter: &DeadLetter, queue: &str) {
    debug!(
        queue,
        reason = letter.reason.name(),
        "dead-lettering cycle detected: message dropped"
    );
}
