//! The delayed-message exchange (`x-delayed-message`, RabbitMQ's community plugin): a message
//! published with an `x-delay` header of N > 0 ms is routed N ms later, through the exchange's
//! bindings as its `x-delayed-type` would route it, and is delivered with `x-delay` set to -N.
//!
//! Delayed messages live in the store only, in an area of their own whose keys are
//! `(the vhost's delayed area, due time << 20 | counter)`: RocksDB keeps them sorted by due time, so the store
//! itself is the timer queue. Memory does not grow with the number of delayed messages, and a
//! restart needs no scan: one task per vhost reads whatever is due from the front of the area,
//! routes it, deletes it (waiting for the delete before reading again), and sleeps until the next
//! due time or until an earlier message is scheduled. A publish in confirm mode is confirmed once
//! the delayed message is durable.

use crate::message::{now_ms, Message};
use crate::persist::{ConfirmWait, DelayedArea};
use amqp_codec::rawtable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use storage::Store;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Bits of the sequence used for the counter that tells messages due in the same ms apart.
const COUNTER_BITS: u32 = 20;
/// Messages routed per read of the store.
const BATCH: usize = 512;
/// Longest delay accepted (the plugin's limit: 2^32-1 ms).
pub(crate) const MAX_DELAY: i64 = u32::MAX as i64;

/// A vhost's delayed messages.
#[derive(Debug)]
pub struct Delayed {
    area: DelayedArea,
    counter: AtomicU64,
    /// Due time the task sleeps until (u64::MAX: nothing scheduled).
    next_due: AtomicU64,
    wake: Notify,
}

/// The delay a message asks for: its `x-delay` header (an integer, or a string or float that
/// converts to one, as the plugin takes it). `None`: route at once.
pub(crate) fn delay_of(message: &Message) -> Option<i64> {
    let table = message.properties.headers_raw()?;
    let (_, v) = rawtable::iter(table).find(|(k, _)| *k == "x-delay")?;
    let d = rawtable::int_of(v).or_else(|| match v.first() {
        Some(b'S') => rawtable::str_of(v).and_then(|s| s.trim().parse().ok()),
        Some(b'd') => Some(f64::from_be_bytes(v[1..9].try_into().ok()?) as i64),
        Some(b'f') => Some(f32::from_be_bytes(v[1..5].try_into().ok()?) as i64),
        _ => None,
    })?;
    (d > 0).then_some(d.min(MAX_DELAY))
}

impl Delayed {
    /// The delayed messages kept in `store`.
    pub fn new(store: Arc<Store>, vhost: &str) -> Self {
        Delayed {
            area: DelayedArea::new(store, vhost),
            counter: AtomicU64::new(0),
            next_due: AtomicU64::new(u64::MAX),
            wake: Notify::new(),
        }
    }

    /// Keeps `message`, published to the delayed exchange `exchange`, until `delay` ms from now.
    /// The stored copy says `x-delay: -delay`, as the plugin delivers it.
    pub fn schedule(
        self: &Arc<Self>,
        exchange: &str,
        message: &Message,
        delay: i64,
        wait: Option<&Arc<ConfirmWait>>,
    ) {
        let due = now_ms() + delay as u64;
        let n = self.counter.fetch_add(1, Ordering::Relaxed) & ((1 << COUNTER_BITS) - 1);
        let seq = (due << COUNTER_BITS) | n;
        let negated = Message::new_at(
            exchange.to_string(),
            message.routing_key.clone(),
            message
                .with_header("x-delay", &signed_int(-delay))
                .properties,
            message.body.clone(),
            message.published_at,
        );
        let confirm = wait.map(|w| w.completion());
        let me = self.clone();
        self.area.put(
            seq,
            &negated,
            Box::new(move |r| {
                if let Some(c) = confirm {
                    c(r);
                }
                // Written: wake the task if this one is due before what it waits for.
                if me.next_due.fetch_min(due, Ordering::AcqRel) > due {
                    me.wake.notify_one();
                }
            }),
        );
    }

    /// The store id of the area (kept at start-up; dropped with the vhost).
    pub fn area_id(&self) -> u64 {
        self.area.id()
    }

    /// Routes delayed messages as they fall due through `vhost`, until it goes away.
    pub async fn run(self: Arc<Self>, vhost: Weak<dyn RouteDue>) {
        loop {
            // From before the read on, every message written wakes the task (its completion
            // finds a later `next_due`): one written after the read began but whose completion
            // ran before the task chose its next wake-up was otherwise routed late.
            self.next_due.store(u64::MAX, Ordering::Release);
            let me = self.clone();
            let batch = tokio::task::spawn_blocking(move || me.take_due()).await;
            let next = match batch {
                Ok(Ok((due, next))) => {
                    let Some(vhost) = vhost.upgrade() else {
                        return;
                    };
                    let routed = due.len();
                    for (exchange, message) in due {
                        vhost.route_due(&exchange, Arc::new(message));
                    }
                    if routed == BATCH {
                        continue;
                    }
                    next
                }
                Ok(Err(e)) => {
                    warn!("cannot read delayed messages from the store: {e}");
                    Some(now_ms() + 1000)
                }
                Err(_) => return,
            };
            if vhost.strong_count() == 0 {
                return;
            }
            // Keep an earlier due time written meanwhile (its wake-up permit is pending too).
            let next = next.unwrap_or(u64::MAX);
            let next = self.next_due.fetch_min(next, Ordering::AcqRel).min(next);
            let wait = Duration::from_millis(next.saturating_sub(now_ms()).min(3_600_000));
            let _ = tokio::time::timeout(wait, self.wake.notified()).await;
        }
    }

    /// Reads and deletes the messages due now (blocking). Returns them with the exchange they were
    /// published to, and the due time of the next one.
    #[allow(clippy::type_complexity)]
    fn take_due(&self) -> Result<(Vec<(String, Message)>, Option<u64>), storage::StoreError> {
        let now = now_ms();
        let mut records = self.area.read_front(BATCH)?;
        let taken = records
            .iter()
            .position(|(seq, _)| seq >> COUNTER_BITS > now)
            .unwrap_or(records.len());
        let next = records.get(taken).map(|(seq, _)| seq >> COUNTER_BITS);
        records.truncate(taken);
        // Deleted before the next read, so nothing is routed twice.
        self.area.delete_blocking(records.iter())?;
        let mut due = Vec::with_capacity(records.len());
        for (_, record) in records {
            let exchange = record.exchange.clone();
            match Message::from_record(record) {
                Some(m) => due.push((exchange, m)),
                None => debug!("dropping a delayed message whose properties do not decode"),
            }
        }
        Ok((due, next))
    }
}

/// Where messages that fell due are routed (their vhost).
pub trait RouteDue: Send + Sync {
    /// Routes a delayed message that fell due through `exchange` (dropped if it is gone; no
    /// confirm, no return).
    fn route_due(&self, exchange: &str, message: Arc<Message>);
}

/// A raw signed 32-bit value (`I`), as the plugin writes `x-delay`.
fn signed_int(n: i64) -> Vec<u8> {
    let mut v = vec![b'I'];
    v.extend_from_slice(&(n.clamp(i32::MIN as i64, i32::MAX as i64) as i32).to_be_bytes());
    v
}
