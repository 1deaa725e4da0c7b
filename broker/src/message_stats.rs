//! Per-object message counts: what RabbitMQ's management API shows as a queue's, a channel's and
//! an exchange's `message_stats` (the management plane turns samples of them into rates). The
//! node-wide counters are `metrics.rs`'s. A leaf: queues, channels and exchanges count here
//! without knowing who reads.
//!
//! Each count has one writing discipline, chosen so that the hot path pays no locked add where
//! it need not:
//! * a queue's counts live in its locked state and are plain numbers ([`DeliverCounts`]);
//! * a channel's deliveries are counted under its deliveries lock (plain numbers too), its
//!   publishes and acks by its own task ([`OwnedCounter`]: a load and a store);
//! * an exchange is published to by any channel at once ([`ExchangeCounts`]: atomic adds).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Messages handed out and settled, counted by whoever hands them out, under its own lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverCounts {
    /// To consumers that acknowledge.
    pub deliver: u64,
    /// To consumers that do not.
    pub deliver_no_ack: u64,
    /// basic.get answers that will be acknowledged.
    pub get: u64,
    /// basic.get answers without ack.
    pub get_no_ack: u64,
    /// basic.get answered empty.
    pub get_empty: u64,
    /// Of those handed out, delivered before.
    pub redeliver: u64,
    /// Acknowledged (basic.ack; rejects and nacks are not counted).
    pub ack: u64,
}

impl DeliverCounts {
    /// Counts one message handed out.
    #[inline]
    pub fn handed_out(&mut self, get: bool, no_ack: bool, redelivered: bool) {
        match (get, no_ack) {
            (false, false) => self.deliver += 1,
            (false, true) => self.deliver_no_ack += 1,
            (true, false) => self.get += 1,
            (true, true) => self.get_no_ack += 1,
        }
        if redelivered {
            self.redeliver += 1;
        }
    }
}

/// A count written by one party at a time (its owning task) and read by anyone: its increment
/// is a relaxed load and store, not a locked add.
#[derive(Debug, Default)]
pub struct OwnedCounter(AtomicU64);

impl OwnedCounter {
    /// Adds `n`. Only the owner calls this; a concurrent second writer would lose counts.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Bytes and socket operations one way of a connection (RabbitMQ's `recv_oct`/`recv_cnt`,
/// `send_oct`/`send_cnt`), counted by the task that reads or writes the socket.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes.
    pub octets: OwnedCounter,
    /// Reads or writes.
    pub operations: OwnedCounter,
}

impl Traffic {
    /// One read or write of `n` bytes.
    #[inline]
    pub fn add(&self, n: usize) {
        self.octets.add(n as u64);
        self.operations.add(1);
    }
}

/// What a channel counts of its publishes, confirms and acks (its own task writes them all).
#[derive(Debug, Default)]
pub struct PublishCounts {
    /// Messages published on the channel (routed or not).
    pub publish: OwnedCounter,
    /// Unroutable mandatory messages returned.
    pub return_unroutable: OwnedCounter,
    /// Unroutable messages dropped.
    pub drop_unroutable: OwnedCounter,
    /// Deliveries acknowledged by the client.
    pub ack: OwnedCounter,
    /// Publisher confirms sent (acks, not nacks).
    pub confirm: OwnedCounter,
}

/// What an exchange counts: messages published to it and the queue deliveries they made.
#[derive(Debug, Default)]
pub struct ExchangeCounts {
    publish_in: AtomicU64,
    publish_out: AtomicU64,
}

impl ExchangeCounts {
    /// One message published to the exchange, routed to `queues` queues.
    #[inline]
    pub fn published(&self, queues: u64) {
        self.publish_in.fetch_add(1, Relaxed);
        if queues > 0 {
            self.publish_out.fetch_add(queues, Relaxed);
        }
    }

    /// (publish_in, publish_out) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.publish_in.load(Relaxed),
            self.publish_out.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_out_counts_by_kind() {
        let mut c = DeliverCounts::default();
        c.handed_out(false, false, false);
        c.handed_out(false, true, true);
        c.handed_out(true, false, false);
        c.handed_out(true, true, true);
        assert_eq!(
            (
                c.deliver,
                c.deliver_no_ack,
                c.get,
                c.get_no_ack,
                c.redeliver
            ),
            (1, 1, 1, 1, 2)
        );
    }

    #[test]
    fn exchange_counts_in_and_out() {
        let x = ExchangeCounts::default();
        x.published(3);
        x.published(0);
        assert_eq!(x.get(), (2, 3));
        let o = OwnedCounter::default();
        o.add(2);
        o.add(5);
        assert_eq!(o.get(), 7);
    }
}
