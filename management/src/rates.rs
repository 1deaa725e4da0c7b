//! Message rates for `/api/overview` (RabbitMQ's `message_stats` with `*_details.rate`), from the
//! broker's node-wide counters: each request samples the counters (a handful of atomic loads)
//! and the rate is the difference to a sample at least [`WINDOW`] old, per second. Nothing runs
//! between requests, and the hot path only counts.

use crate::metrics::GlobalCounters;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The span a rate is measured over (RabbitMQ's default statistics interval).
const WINDOW: Duration = Duration::from_secs(5);
/// Samples older than this are dropped.
const KEEP: Duration = Duration::from_secs(60);

/// The samples taken so far.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    samples: Mutex<VecDeque<(Instant, GlobalCounters)>>,
}

/// The counters of `message_stats`, by RabbitMQ's names.
fn figures(c: &GlobalCounters) -> [(&'static str, u64); 11] {
    let get = c.delivered_get_auto_ack + c.delivered_get_manual_ack;
    let deliver = c.delivered_consume_auto_ack + c.delivered_consume_manual_ack;
    [
        ("ack", c.acknowledged),
        ("confirm", c.confirmed),
        ("deliver", c.delivered_consume_manual_ack),
        ("deliver_get", deliver + get),
        ("deliver_no_ack", c.delivered_consume_auto_ack),
        ("drop_unroutable", c.unroutable_dropped),
        ("get", c.delivered_get_manual_ack),
        ("get_empty", c.get_empty),
        ("get_no_ack", c.delivered_get_auto_ack),
        ("publish", c.received),
        ("redeliver", c.redelivered),
    ]
}

impl Rates {
    /// `message_stats` now: every counter with its `_details.rate`, and `return_unroutable`.
    pub(crate) fn message_stats(&self, now: GlobalCounters) -> Value {
        let at = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        while samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > KEEP)
        {
            samples.pop_front();
        }
        // The newest sample at least WINDOW old, else the oldest there is.
        let base = samples
            .iter()
            .rev()
            .find(|(t, _)| at.duration_since(*t) >= WINDOW)
            .or(samples.front())
            .cloned();
        if samples
            .back()
            .is_none_or(|(t, _)| at.duration_since(*t) >= Duration::from_secs(1))
        {
            samples.push_back((at, now.clone()));
        }
        drop(samples);
        let mut out = Map::new();
        let mut put = |name: &str, value: u64, before: Option<u64>, secs: f64| {
            let rate = match before {
                Some(b) if secs > 0.0 => value.saturating_sub(b) as f64 / secs,
                _ => 0.0,
            };
            out.insert(name.into(), json!(value));
            out.insert(format!("{name}_details"), json!({ "rate": rate }));
        };
        let secs = base
            .as_ref()
            .map_or(0.0, |(t, _)| at.duration_since(*t).as_secs_f64());
        let before = base.as_ref().map(|(_, c)| figures(c));
        for (i, (name, value)) in figures(&now).into_iter().enumerate() {
            put(name, value, before.as_ref().map(|b| b[i].1), secs);
        }
        put(
            "return_unroutable",
            now.unroutable_returned,
            base.as_ref().map(|(_, c)| c.unroutable_returned),
            secs,
        );
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_has_zero_rates_and_counts() {
        let r = Rates::default();
        let c = GlobalCounters {
            received: 10,
            ..Default::default()
        };
        let s = r.message_stats(c);
        assert_eq!(s["publish"], json!(10));
        assert_eq!(s["publish_details"]["rate"], json!(0.0));
        assert_eq!(s["deliver_get_details"]["rate"], json!(0.0));
    }

    #[test]
    fn rate_is_the_difference_per_second_to_an_older_sample() {
        let r = Rates::default();
        let old = Instant::now() - Duration::from_secs(10);
        r.samples.lock().unwrap().push_back((
            old,
            GlobalCounters {
                received: 100,
                ..Default::default()
            },
        ));
        let s = r.message_stats(GlobalCounters {
            received: 1100,
            ..Default::default()
        });
        let rate = s["publish_details"]["rate"].as_f64().unwrap();
        assert!((95.0..=105.0).contains(&rate), "{rate}");
    }
}
