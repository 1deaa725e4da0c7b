//! Settling deliveries: acks, rejects (dead-lettered), and requeues (back at their places,
//! redelivered; past `x-delivery-limit` dead-lettered instead).

use super::*;

impl Queue {
    /// Puts returned messages back at their original places, marked redelivered, and delivers.
    /// A message returned more often than `x-delivery-limit` allows is dead-lettered instead.
    pub fn requeue<D: AsRef<Delivery>>(self: &Arc<Self>, returned: &[D]) {
        if self.is_deleted() {
            return;
        }
        let dead = {
            let mut st = self.lock();
            let counts = self.args.counts_deliveries();
            let mut lasting_n = 0;
            for u in returned {
                let u = u.as_ref();
                let lasting = self.lasting(&u.message);
                lasting_n += lasting as u64;
                st.unacked_out(u.message.size() as u64, lasting);
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
                if st
                    .settings
                    .delivery_limit
                    .is_some_and(|limit| count as u64 > limit)
                {
                    self.dead_letter(&mut st, &r.message, Reason::DeliveryLimit);
                    self.unstore_one(&r);
                    continue;
                }
                let lane = self.lane_of(&r.message);
                if counts && r.stored {
                    self.store
                        .update_count(lane, r.seq, &r.message, count, lasting);
                }
                if r.expires_at != NEVER {
                    st.expiry_heap
                        .push(Reverse((r.expires_at, r.seq, lane as u8)));
                }
                st.lanes[lane].requeue(r);
            }
            if lasting_n > 0 {
                st.lasting_settled(lasting_n);
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
            st.counts.ack += settled.len() as u64;
            self.settled_out(&mut st, settled);
        }
        self.unstore_settled(settled);
    }

    /// basic.reject or basic.nack without requeue: the deliveries are dead-lettered (reason
    /// `rejected`) if the queue has a dead-letter exchange, and forgotten.
    pub fn discarded<D: AsRef<Delivery>>(&self, settled: &[D]) {
        let dead = {
            let mut st = self.lock();
            self.settled_out(&mut st, settled);
            for u in settled {
                self.dead_letter(&mut st, &u.as_ref().message, Reason::Rejected);
            }
            std::mem::take(&mut st.dead)
        };
        self.unstore_settled(settled);
        self.route_dead(dead);
    }

    /// Takes settled deliveries out of the unacknowledged figures (called locked).
    fn settled_out<D: AsRef<Delivery>>(&self, st: &mut QueueState, settled: &[D]) {
        let mut lasting_n = 0;
        for u in settled {
            let m = &u.as_ref().message;
            let lasting = self.lasting(m);
            lasting_n += lasting as u64;
            st.unacked_out(m.size() as u64, lasting);
        }
        if lasting_n > 0 {
            st.lasting_settled(lasting_n);
        }
    }

    /// Deletes the stored copies of settled deliveries that leave the queue for good.
    fn unstore_settled<D: AsRef<Delivery>>(&self, settled: &[D]) {
        self.unstore(
            settled
                .iter()
                .map(AsRef::as_ref)
                .filter(|u| u.stored)
                .map(|u| (u.seq, &u.message)),
        );
    }
}
