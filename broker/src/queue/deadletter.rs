//! Dead-lettering: the message a queue republishes to its `x-dead-letter-exchange` when one of its
//! messages is rejected, expires, overflows or exceeds its delivery limit, with the `x-death` and
//! `x-first-death-*` headers written as RabbitMQ writes them.

use crate::message::Message;
use amqp_codec::rawtable;
use std::sync::Arc;

/// Why a message was dead-lettered (the `reason` of its `x-death` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// basic.reject or basic.nack with requeue=false.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped or refused by a length limit.
    Maxlen,
    /// Returned more often than `x-delivery-limit` allows.
    DeliveryLimit,
}

impl Reason {
    /// The name in `x-death`.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message on its way to a dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    /// The dead-letter exchange.
    pub exchange: String,
    /// Routing keys to publish with (the dead-letter routing key, or the original keys).
    pub routing_keys: Vec<String>,
    /// The message with its new headers (exchange and routing key already rewritten).
    pub message: Arc<Message>,
    /// Why.
    pub reason: Reason,
}

/// Builds the dead-lettered copy of `message`, which died in `queue` for `reason`, bound for
/// `dlx` (with `dlrk` if set).
///
/// Headers as RabbitMQ writes them: the `x-death` entry for (queue, reason) is created (keys in
/// RabbitMQ's fixed order) or counted up and moved to the front (keys then sorted, other fields as
/// first written); `x-first-death-*` are set at the first death; the whole table is sorted by key;
/// `expiration` is removed (kept in `x-death` as `original-expiration`).
pub(super) fn dead_letter(
    message: &Message,
    queue: &str,
    reason: Reason,
    dlx: &str,
    dlrk: Option<&str>,
    now_secs: u64,
) -> DeadLetter {
    let headers = message
        .properties
        .headers_raw()
        .map(rawtable::entries)
        .unwrap_or_default();
    let get = |k: &str| headers.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    // The keys it was published with: its routing key, then the CC header's.
    let mut original = vec![message.routing_key.clone()];
    if let Some(cc) = get("CC") {
        original.extend(
            rawtable::array_items(cc)
                .into_iter()
                .filter_map(rawtable::str_of)
                .map(str::to_string),
        );
    }
    let deaths = get("x-death")
        .map(rawtable::array_items)
        .unwrap_or_default();
    let same = |item: &[u8]| {
        rawtable::table_of(item).is_some_and(|t| {
            let e = rawtable::entries(t);
            let field = |k: &str| {
                e.iter()
                    .find(|(key, _)| *key == k)
                    .and_then(|(_, v)| rawtable::str_of(v))
            };
            field("queue") == Some(queue) && field("reason") == Some(reason.name())
        })
    };
    let matched = deaths.iter().position(|d| same(d));
    let entry = match matched {
        Some(i) => {
            let t = rawtable::table_of(deaths[i]).expect("a table");
            let mut e = rawtable::entries(t);
            let count = e
                .iter()
                .find(|(k, _)| *k == "count")
                .and_then(|(_, v)| rawtable::int_of(v))
                .unwrap_or(0);
            let count = rawtable::long(count + 1);
            e.retain(|(k, _)| *k != "count");
            e.push(("count", &count));
            e.sort_by(|a, b| a.0.cmp(b.0));
            rawtable::table_value(e)
        }
        None => {
            let count = rawtable::long(1);
            let reason_v = rawtable::long_str(reason.name());
            let queue_v = rawtable::long_str(queue);
            let time = rawtable::timestamp(now_secs);
            let exchange = rawtable::long_str(&message.exchange);
            let keys: Vec<Vec<u8>> = original.iter().map(|k| rawtable::long_str(k)).collect();
            let keys = rawtable::array(keys.iter().map(Vec::as_slice));
            let expiration = message.properties.expiration().map(rawtable::long_str);
            let mut e: Vec<(&str, &[u8])> = vec![
                ("count", &count),
                ("reason", &reason_v),
                ("queue", &queue_v),
                ("time", &time),
                ("exchange", &exchange),
                ("routing-keys", &keys),
            ];
            if let Some(x) = &expiration {
                e.push(("original-expiration", x));
            }
            // Only the very first entry keeps this order; RabbitMQ sorts those written later.
            if !deaths.is_empty() {
                e.sort_by(|a, b| a.0.cmp(b.0));
            }
            rawtable::table_value(e)
        }
    };
    let new_deaths = rawtable::array(
        std::iter::once(&entry[..]).chain(
            deaths
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != matched)
                .map(|(_, d)| *d),
        ),
    );
    let first = [
        ("x-first-death-reason", rawtable::long_str(reason.name())),
        ("x-first-death-queue", rawtable::long_str(queue)),
        (
            "x-first-death-exchange",
            rawtable::long_str(&message.exchange),
        ),
    ];
    let first_death = deaths.is_empty();
    let mut out: Vec<(&str, &[u8])> = headers
        .iter()
        .copied()
        .filter(|(k, _)| {
            *k != "x-death"
                && !(first_death && first.iter().any(|(f, _)| f == k))
                && !(dlrk.is_some() && *k == "CC")
        })
        .collect();
    out.push(("x-death", &new_deaths));
    if first_death {
        out.extend(first.iter().map(|(k, v)| (*k, &v[..])));
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    let table = rawtable::table(out);
    let routing_keys = match dlrk {
        Some(k) => vec![k.to_string()],
        // The original keys, BCC ones included (they are no longer in the headers).
        None => std::iter::once(message.routing_key.clone())
            .chain(message.extra_keys.iter().cloned())
            .collect(),
    };
    let message = Message::new(
        dlx.to_string(),
        routing_keys[0].clone(),
        message.properties.with_raw_headers(Some(&table), true),
        message.body.clone(),
    );
    DeadLetter {
        exchange: dlx.to_string(),
        routing_keys,
        message: Arc::new(message),
        reason,
    }
}

/// RabbitMQ's cycle rule: a dead letter is not delivered to `queue` if that queue already appears in
/// its `x-death` and no death since then (including that one) was a rejection. Rejections never
/// count as cycles.
pub(crate) fn is_cycle(letter: &DeadLetter, queue: &str) -> bool {
    if letter.reason == Reason::Rejected {
        return false;
    }
    let Some(headers) = letter.message.properties.headers_raw() else {
        return false;
    };
    let entries = rawtable::entries(headers);
    let Some((_, deaths)) = entries.iter().find(|(k, _)| *k == "x-death") else {
        return false;
    };
    for d in rawtable::array_items(deaths) {
        let Some(t) = rawtable::table_of(d) else {
            return false;
        };
        let e = rawtable::entries(t);
        let field = |k: &str| {
            e.iter()
                .find(|(key, _)| *key == k)
                .and_then(|(_, v)| rawtable::str_of(v))
        };
        if field("reason") == Some("rejected") {
            return false;
        }
        if field("queue") == Some(queue) {
            return true;
        }
    }
    false
}
