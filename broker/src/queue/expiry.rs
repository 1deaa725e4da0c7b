//! Expiry: per-message and queue TTLs (lane heads and a heap for messages that expire before one
//! ahead of them), the timer that fires at the next expiry, and `x-expires` (the queue's own).

use super::*;

impl Queue {
    /// Notes the expiry of a message joining the back of a lane's memory: one that expires before
    /// a message ahead of it goes into the heap, so it leaves on time from the middle.
    pub(super) fn note_expiry(st: &mut QueueState, lane: usize, r: &Ready) {
        if r.expires_at != NEVER && r.expires_at < st.lane_expiry_max[lane] {
            st.expiry_heap
                .push(Reverse((r.expires_at, r.seq, lane as u8)));
        }
        st.lane_expiry_max[lane] = st.lane_expiry_max[lane].max(r.expires_at);
    }

    /// Removes every in-memory message whose time has come (dead-lettering them), wherever it is
    /// in the queue.
    pub(super) fn expire_locked(&self, st: &mut QueueState) {
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
    pub(super) fn schedule_expiry(self: &Arc<Self>, st: &mut QueueState) {
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

    pub(super) fn on_expiry_timer(self: &Arc<Self>) {
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
        let mut st = self.lock();
        let Some(expires) = st.settings.expires else {
            return;
        };
        st.last_used = now_ms();
        let due = st.last_used + expires;
        // A timer due later than this (a policy just lowered `expires`) is replaced.
        if st.expires_timer.is_none_or(|armed| armed > due) {
            st.expires_timer = Some(due);
            drop(st);
            self.expires_timer_at(due);
        }
    }

    /// Runs the `x-expires` check at `at` (holding only a weak reference to the queue).
    pub(super) fn expires_timer_at(self: &Arc<Self>, at: u64) {
        let q = Arc::downgrade(self);
        at_time(at, move || {
            if let Some(q) = q.upgrade() {
                q.on_expires_timer(at);
            }
        });
    }

    pub(super) fn on_expires_timer(self: &Arc<Self>, at: u64) {
        if self.is_deleted() {
            return;
        }
        let mut st = self.lock();
        if st.expires_timer != Some(at) {
            // Replaced by an earlier timer.
            return;
        }
        st.expires_timer = None;
        // A policy may have lifted `expires` since the timer was set.
        let Some(expires) = st.settings.expires else {
            return;
        };
        if !st.consumers.is_empty() {
            // The last consumer to leave touches the queue again.
            return;
        }
        let due = st.last_used + expires;
        if now_ms() < due {
            st.expires_timer = Some(due);
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
}
