//! Dispatch: which ready message goes to which consumer (priority, round-robin, single active
//! consumer, prefetch), through the consumers' sinks; basic.get, answered at once or, when the
//! head is only in the store, once it is read back; consume and cancel.

use super::*;

impl Queue {
    /// Takes the next ready message in priority order, dropping expired ones on the way.
    pub(super) fn next_ready(&self, st: &mut QueueState) -> Next {
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

    /// The message as delivered: with `x-delivery-count` when the queue counts deliveries and this
    /// one was returned before.
    /// (A quorum queue's basic.get says `x-delivery-count: 0` even on a first delivery; a consumer's
    /// first delivery has no header.)
    pub(super) fn as_delivered(&self, r: &Ready, get: bool) -> Arc<Message> {
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
    #[inline]
    pub(super) fn hand_out(&self, st: &mut QueueState, r: Ready, no_ack: bool, get: bool) -> Taken {
        let outgoing = self.as_delivered(&r, get);
        st.counts.handed_out(get, no_ack, r.redelivered);
        if no_ack {
            self.unstore_one(&r);
        } else {
            self.mark_delivered(&r, st.put_hold.hold());
            st.unacked_in(r.message.size() as u64, self.lasting(&r.message));
        }
        Taken {
            outgoing,
            redelivered: r.redelivered,
            // Only basic.get-ok says it: not worth a sum over the lanes per delivery.
            remaining: if get { self.reported_len(st) as u32 } else { 0 },
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
    pub(super) fn offer_to(self: &Arc<Self>, c: &Arc<Consumer>, st: &mut QueueState) -> bool {
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
    pub(super) fn answer_get(
        self: &Arc<Self>,
        st: &mut QueueState,
        sink: &dyn DeliverySink,
        no_ack: bool,
        deferred: bool,
    ) -> bool {
        let mut next = match self.next_ready(st) {
            Next::Ready(r) => Some(r),
            Next::Empty => {
                st.counts.get_empty += 1;
                None
            }
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
    pub(super) fn serve_gets(self: &Arc<Self>, st: &mut QueueState, failed: bool) {
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

    /// Delivers ready messages to consumers with credit.
    pub fn dispatch(self: &Arc<Self>) {
        let dead = {
            let mut st = self.lock();
            self.dispatch_locked(&mut st);
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
    }

    pub(super) fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        let mut delivered = 0;
        if self.args.single_active_consumer {
            // Only the first consumer receives; the others wait their turn.
            while let Some(c) = st.consumers.first().cloned() {
                if !st.has_ready() || !self.offer_to(&c, st) {
                    break;
                }
                delivered += 1;
            }
        } else {
            // Consumers are ordered by priority, and a consumer that takes a message moves behind
            // the others of its priority: the first one able to take a message is the right one.
            // (Nothing ready: no consumer is offered anything, which spares each of them a lock.)
            while !st.consumers.is_empty() && st.has_ready() {
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
    pub(super) fn flow_check(&self, st: &QueueState) {
        let budget = &self.store.budget;
        let below = st.consumers.is_empty()
            || (st.ready_len() <= flow::marks(budget.messages).1 as u64
                && st.ready_bytes() <= flow::marks(budget.bytes).1 as u64);
        if below {
            self.flow.clear();
        }
    }
}
