//! How long the store keeps back the put of a delivered lasting message for its ack: long
//! enough for consumers that ack within a few milliseconds to cancel it (then nothing is written,
//! and the confirm goes out at the ack), no longer than [`MAX_HOLD_MS`].
//!
//! The queue estimates its consumers' ack latency from what it counts anyway (Little's law: the
//! unacknowledged lasting deliveries over the rate they are settled at, per window of at least
//! [`WINDOW_MS`]). Consumers that keep up ack within about their prefetch's worth of messages: a
//! single consumer within 2 ms, four sharing two cores within ~10 ms. Beyond [`MAX_HOLD_MS`] a
//! hold would only delay confirms, so slow consumers get the store's default.

use std::time::Duration;

/// The longest hold: a delivered message's confirm waits at most about this long plus a sync
/// (RabbitMQ's own message store syncs every 25 ms at most).
pub(crate) const MAX_HOLD_MS: u64 = 10;
/// The shortest window the settle rate is measured over (ms).
pub(crate) const WINDOW_MS: u64 = 20;

/// A queue's estimate of its consumers' ack latency, as the hold it asks of the store.
#[derive(Debug)]
pub(crate) struct PutHold {
    /// When the current window began (ms since the epoch; 0: none yet).
    window_at: u64,
    /// Lasting deliveries settled in the current window.
    settled: u64,
    /// The hold in force.
    hold: Duration,
}

impl Default for PutHold {
    fn default() -> Self {
        PutHold {
            window_at: 0,
            settled: 0,
            hold: storage::DEFAULT_HOLD,
        }
    }
}

impl PutHold {
    /// The hold to ask of the store for a put delivered now.
    pub(crate) fn hold(&self) -> Duration {
        self.hold
    }

    /// `n` lasting deliveries were settled at `now` (ms), `unacked` are still out: at the end
    /// of a window the hold follows the latency this implies.
    pub(crate) fn settled(&mut self, n: u64, unacked: u64, now: u64) {
        if self.window_at == 0 {
            self.window_at = now;
        }
        self.settled += n;
        let elapsed = now.saturating_sub(self.window_at);
        if elapsed < WINDOW_MS {
            return;
        }
        // Latency in µs = unacked / (settled per µs); the settled of this window include `n`.
        let latency_us = unacked.saturating_mul(elapsed * 1000) / self.settled.max(1);
        self.hold = hold_for(latency_us);
        self.window_at = now;
        self.settled = 0;
    }
}

/// The hold for consumers that ack `latency_us` after delivery: a quarter and a millisecond
/// more (latencies vary), within the store's default and [`MAX_HOLD_MS`]; the default if they
/// are slower than that.
fn hold_for(latency_us: u64) -> Duration {
    let max = Duration::from_millis(MAX_HOLD_MS);
    let latency = Duration::from_micros(latency_us);
    if latency > max {
        return storage::DEFAULT_HOLD;
    }
    (latency + latency / 4 + Duration::from_millis(1)).clamp(storage::DEFAULT_HOLD, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window opened at `t0`, then `per_ms` settled each millisecond for 20 ms with
    /// `unacked` out.
    fn measured(per_ms: u64, unacked: u64, t0: u64) -> PutHold {
        let mut h = PutHold::default();
        h.settled(0, unacked, t0);
        for t in 1..=WINDOW_MS {
            assert_eq!(h.hold(), storage::DEFAULT_HOLD, "the window is not over");
            h.settled(per_ms, unacked, t0 + t);
        }
        h
    }

    #[test]
    fn the_hold_follows_the_ack_latency_within_bounds() {
        // 100 out, 25 settled per ms: 4 ms from delivery to ack -> 4 + 1 + 1 = 6 ms.
        assert_eq!(measured(25, 100, 9_000).hold(), Duration::from_millis(6));
        // 100 out, 12 per ms: 8.3 ms -> 11.4, capped.
        assert_eq!(
            measured(12, 100, 1_000).hold(),
            Duration::from_millis(MAX_HOLD_MS)
        );
        // 100 out, 400 per ms: 0.25 ms; the default is longer.
        assert_eq!(measured(400, 100, 5_000).hold(), storage::DEFAULT_HOLD);
    }

    #[test]
    fn slow_consumers_get_the_default_hold() {
        // Fast at first: a long hold.
        let mut h = measured(12, 100, 1_000);
        assert_eq!(h.hold(), Duration::from_millis(MAX_HOLD_MS));
        // Then one ack in 30 ms with 10 out: 300 ms, back to the default.
        h.settled(1, 10, 1_050);
        assert_eq!(h.hold(), storage::DEFAULT_HOLD);
        // An idle spell then a burst is measured over the spell: slow, the default.
        let mut h = PutHold::default();
        h.settled(1, 100, 1_000);
        h.settled(100, 100, 61_000);
        assert_eq!(h.hold(), storage::DEFAULT_HOLD);
    }
}
