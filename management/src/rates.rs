//! Message rates (RabbitMQ's `message_stats` with `*_details.rate`): the overview's from the
//! broker's node-wide counters, and each queue's, channel's and exchange's from its own counts
//! ([`ObjectRates`]). For the overview, each request samples the counters (a handful of atomic loads)
//! and the rate is the difference to a sample at least [`WINDOW`] old, per second. Nothing runs
//! between requests, and the hot path only counts.

use crate::backend::MessageCounts;
use crate::metrics::GlobalCounters;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};
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

/// The kinds of objects with `message_stats`; a kind says which groups of counts it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A queue: `publish`, then the delivery group.
    Queue,
    /// A channel: the publish group, then the delivery group.
    Channel,
    /// An exchange: `publish_in`, `publish_out`.
    Exchange,
}

/// Count names by group, as RabbitMQ shows them: a group appears once one of its counts moved.
fn groups(kind: Kind) -> &'static [&'static [&'static str]] {
    const DELIVER: &[&str] = &[
        "ack",
        "deliver",
        "deliver_get",
        "deliver_no_ack",
        "get",
        "get_empty",
        "get_no_ack",
        "redeliver",
    ];
    match kind {
        Kind::Queue => &[&["publish"], DELIVER],
        Kind::Channel => &[
            &["confirm", "drop_unroutable", "publish", "return_unroutable"],
            DELIVER,
        ],
        Kind::Exchange => &[&["publish_in"], &["publish_out"]],
    }
}

/// The count of `name` in `c`.
fn count(c: &MessageCounts, name: &str) -> u64 {
    match name {
        "publish" => c.publish,
        "confirm" => c.confirm,
        "return_unroutable" => c.return_unroutable,
        "drop_unroutable" => c.drop_unroutable,
        "deliver" => c.deliver,
        "deliver_no_ack" => c.deliver_no_ack,
        "deliver_get" => c.deliver + c.deliver_no_ack + c.get + c.get_no_ack,
        "get" => c.get,
        "get_no_ack" => c.get_no_ack,
        "get_empty" => c.get_empty,
        "ack" => c.ack,
        "redeliver" => c.redeliver,
        "publish_in" => c.publish_in,
        "publish_out" => c.publish_out,
        _ => 0,
    }
}

/// An object's two latest samples: the rate is measured from the older one, which is at least
/// [`WINDOW`] old once the object has been looked at for that long.
#[derive(Debug, Clone, Copy)]
struct Pair {
    older: Option<(Instant, MessageCounts)>,
    newer: (Instant, MessageCounts),
}

/// Samples of every object's counts, taken when the object is listed or fetched (nothing runs
/// between requests). Objects not looked at for [`KEEP`] are forgotten.
#[derive(Debug)]
pub(crate) struct ObjectRates {
    /// The samples by (kind, vhost, name), and when they were last pruned.
    inner: Mutex<(HashMap<ObjectKey, Pair>, Instant)>,
}

/// An object's identity: its kind, vhost and name.
type ObjectKey = (Kind, String, String);

impl Default for ObjectRates {
    fn default() -> Self {
        ObjectRates {
            inner: Mutex::new((HashMap::new(), Instant::now())),
        }
    }
}

impl ObjectRates {
    /// The `message_stats` of each object (kind, vhost, name, counts), in order: `None` for
    /// one whose counts never moved (RabbitMQ leaves the key out then).
    pub(crate) fn message_stats<'a>(
        &self,
        objects: impl IntoIterator<Item = (Kind, &'a str, &'a str, &'a MessageCounts)>,
    ) -> Vec<Option<Value>> {
        let at = Instant::now();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (samples, pruned) = &mut *guard;
        if at.duration_since(*pruned) > KEEP {
            samples.retain(|_, p| at.duration_since(p.newer.0) <= KEEP);
            *pruned = at;
        }
        let mut out = Vec::new();
        for (kind, vhost, name, counts) in objects {
            let shown: Vec<&[&str]> = groups(kind)
                .iter()
                .copied()
                .filter(|g| g.iter().any(|n| count(counts, n) > 0))
                .collect();
            if shown.is_empty() {
                out.push(None);
                continue;
            }
            let key = (kind, vhost.to_string(), name.to_string());
            let pair = samples.entry(key).or_insert(Pair {
                older: None,
                newer: (at, *counts),
            });
            if at.duration_since(pair.newer.0) >= WINDOW {
                pair.older = Some(pair.newer);
                pair.newer = (at, *counts);
            }
            let base = pair
                .older
                .or(Some(pair.newer))
                .filter(|(t, _)| at.duration_since(*t) >= Duration::from_secs(1));
            let mut m = Map::new();
            for name in shown.into_iter().flatten() {
                let now = count(counts, name);
                let rate = base.map_or(0.0, |(t, b)| {
                    now.saturating_sub(count(&b, name)) as f64 / at.duration_since(t).as_secs_f64()
                });
                m.insert((*name).into(), json!(now));
                m.insert(format!("{name}_details"), json!({ "rate": rate }));
            }
            out.push(Some(Value::Object(m)));
        }
        out
    }
}

impl ObjectRates {
    /// Each object's JSON (with its vhost, name and counts) with its `message_stats` added once
    /// it has counted any.
    pub(crate) fn with_message_stats<'a>(
        &self,
        kind: Kind,
        objects: impl IntoIterator<Item = (&'a str, &'a str, &'a MessageCounts, Value)>,
    ) -> Vec<Value> {
        let objects: Vec<_> = objects.into_iter().collect();
        let stats = self.message_stats(objects.iter().map(|(v, n, c, _)| (kind, *v, *n, *c)));
        objects
            .into_iter()
            .zip(stats)
            .map(|((_, _, _, mut json), s)| {
                if let Some(s) = s {
                    json["message_stats"] = s;
                }
                json
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_stats_show_only_groups_that_moved() {
        let r = ObjectRates::default();
        let q = MessageCounts {
            publish: 2,
            ..Default::default()
        };
        let idle = MessageCounts::default();
        let x = MessageCounts {
            publish_in: 1,
            ..Default::default()
        };
        let got = r.message_stats([
            (Kind::Queue, "/", "q", &q),
            (Kind::Queue, "/", "idle", &idle),
            (Kind::Exchange, "/", "x", &x),
        ]);
        let q = got[0].as_ref().unwrap().as_object().unwrap();
        let keys: Vec<&str> = q.keys().map(String::as_str).collect();
        assert_eq!(keys, ["publish", "publish_details"]);
        assert_eq!(q["publish_details"]["rate"], json!(0.0));
        assert!(got[1].is_none());
        let x = got[2].as_ref().unwrap().as_object().unwrap();
        assert_eq!(x.len(), 2, "{x:?}");
        assert_eq!(x["publish_in"], json!(1));
    }

    #[test]
    fn object_rate_is_measured_from_an_older_sample() {
        let r = ObjectRates::default();
        let old = Instant::now() - Duration::from_secs(10);
        let before = MessageCounts {
            deliver: 100,
            ..Default::default()
        };
        r.inner.lock().unwrap().0.insert(
            (Kind::Channel, "/".into(), "c (1)".into()),
            Pair {
                older: None,
                newer: (old, before),
            },
        );
        let now = MessageCounts {
            deliver: 600,
            ..Default::default()
        };
        let got = r.message_stats([(Kind::Channel, "/", "c (1)", &now)]);
        let m = got[0].as_ref().unwrap();
        let rate = m["deliver_details"]["rate"].as_f64().unwrap();
        assert!((45.0..=55.0).contains(&rate), "{rate}");
        assert_eq!(m["deliver_get"], json!(600));
        assert!(m.get("publish").is_none());
    }

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
