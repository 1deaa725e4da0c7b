//! A published message, shared (`Arc`) by every queue it was routed to.

use crate::reply_text::expiration;
use amqp_codec::Properties;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use storage::{EncodeRecord, Record, Store};

/// Largest TTL or expiry RabbitMQ accepts (ms): ten years.
pub(crate) const MAX_EXPIRY: i128 = 315_360_000_000;
/// Bodies at least this big are stored once when a message goes to several queues: below it, a
/// shared body's bookkeeping (its reference count and one index entry per queue) costs about as
/// much as the copies it saves.
pub(crate) const SHARE_MIN_BODY: usize = 128;

/// An immutable message: what the publisher sent, plus where it was published.
#[derive(Debug)]
pub struct Message {
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Content properties, raw.
    pub properties: Properties,
    /// The body (a slice of the read buffer when it came in one frame).
    pub body: Bytes,
    /// When it was published (ms since the Unix epoch): TTLs count from here.
    pub published_at: u64,
    /// Sender-selected routing keys (the `CC` and `BCC` headers), routed to as well.
    pub extra_keys: Vec<String>,
    /// The same pointing at its shared body, made once however many durable queues store it.
    shared_record: OnceLock<Bytes>,
    /// Set while routing to several queues: the first queue that stores the message stores its
    /// body in the store's shared body area, and the others point at it.
    share: AtomicBool,
    /// The id of its body in the shared body area, once stored there (or read back from there).
    shared_body: OnceLock<u64>,
}

impl Message {
    /// A new message, published now.
    pub fn new(exchange: String, routing_key: String, properties: Properties, body: Bytes) -> Self {
        Self::new_at(exchange, routing_key, properties, body, now_ms())
    }

    /// A message published at `published_at` (ms since the Unix epoch).
    pub fn new_at(
        exchange: String,
        routing_key: String,
        properties: Properties,
        body: Bytes,
        published_at: u64,
    ) -> Self {
        Message {
            exchange,
            routing_key,
            properties,
            body,
            published_at,
            extra_keys: Vec::new(),
            shared_record: OnceLock::new(),
            share: AtomicBool::new(false),
            shared_body: OnceLock::new(),
        }
    }

    /// Called before enqueueing on `queues` queues: with two or more (and a body worth it), the
    /// queues that store the message share one copy of its body. [`Message::end_sharing`] must
    /// follow once every queue had it.
    pub fn begin_sharing(&self, queues: usize) {
        // A message read back from the store already points at a body it does not own.
        if queues >= 2 && self.body.len() >= SHARE_MIN_BODY && self.shared_body.get().is_none() {
            self.share.store(true, Ordering::Relaxed);
        }
    }

    /// Drops the router's hold on the shared body, if a queue stored one.
    pub fn end_sharing(&self, store: &Store) {
        if self.share.swap(false, Ordering::Relaxed) {
            if let Some(&id) = self.shared_body.get() {
                store.release_body(id);
            }
        }
    }

    /// The id of its shared body, if it has one.
    pub fn shared_id(&self) -> Option<u64> {
        self.shared_body.get().copied()
    }

    /// What a queue writes to store the message: its record, and the shared body the record
    /// points at. Only records that survive a restart (`lasting`) share a body: the transient
    /// area is dropped wholesale at start-up, references and all. The first lasting call while
    /// sharing submits the body itself (before the record, so the writer sees them in order).
    pub fn store_form(self: &Arc<Self>, store: &Store, lasting: bool) -> (Record, Option<u64>) {
        if !lasting {
            return (self.deferred_record(), None);
        }
        if self.share.load(Ordering::Relaxed) {
            self.shared_body
                .get_or_init(|| store.put_shared_body(self.properties.raw(), &self.body));
        }
        match self.shared_id() {
            Some(id) => (
                Record::Encoded(
                    self.shared_record
                        .get_or_init(|| self.encode_record(0, Some(id)))
                        .clone(),
                ),
                Some(id),
            ),
            None => (self.deferred_record(), None),
        }
    }

    /// Its record as first stored (no delivery count, its own body), encoded by the store's
    /// writer if it is written at all (a message acked before its put was written never is).
    fn deferred_record(self: &Arc<Self>) -> Record {
        Record::Deferred(self.clone())
    }

    /// Takes the sender-selected routing keys from the `CC` and `BCC` headers (arrays of strings),
    /// and removes `BCC` from the message, as RabbitMQ does at publish. A `CC` or `BCC` that is not
    /// an array is refused with RabbitMQ's reason (`{unacceptable_type_in_header,"CC",longstr}`).
    pub fn with_sender_selected_keys(mut self) -> Result<Self, String> {
        let Some(table) = self.properties.headers_raw() else {
            return Ok(self);
        };
        // Most messages with headers have neither: look before allocating anything.
        if !amqp_codec::rawtable::iter(table).any(|(k, _)| k == "CC" || k == "BCC") {
            return Ok(self);
        }
        let entries = amqp_codec::rawtable::entries(table);
        let mut keys = Vec::new();
        let mut bcc = false;
        for (k, v) in &entries {
            if *k == "CC" || *k == "BCC" {
                if v.first() != Some(&b'A') {
                    return Err(crate::reply_text::unacceptable_type_in_header(
                        k,
                        amqp_codec::rawtable::type_name(v),
                    ));
                }
                bcc |= *k == "BCC";
                keys.extend(
                    amqp_codec::rawtable::array_items(v)
                        .into_iter()
                        .filter_map(amqp_codec::rawtable::str_of)
                        .map(str::to_string),
                );
            }
        }
        if bcc {
            let kept =
                amqp_codec::rawtable::table(entries.into_iter().filter(|(k, _)| *k != "BCC"));
            self.properties = self.properties.with_raw_headers(Some(&kept), false);
        }
        self.extra_keys = keys;
        Ok(self)
    }

    /// The per-message TTL from the `expiration` property (checked at publish: see
    /// [`parse_expiration`]).
    pub fn expiration_ms(&self) -> Option<u64> {
        self.properties
            .expiration()
            .and_then(|e| parse_expiration(e).ok())
    }

    /// The same message with a header set (for `x-delivery-count`), the table sorted by key as
    /// RabbitMQ leaves it. `value` is a raw field value (`amqp_codec::rawtable`). Slow path.
    pub fn with_header(&self, name: &str, value: &[u8]) -> Message {
        let mut entries: Vec<(&str, &[u8])> = self
            .properties
            .headers_raw()
            .map(amqp_codec::rawtable::entries)
            .unwrap_or_default();
        entries.retain(|(k, _)| *k != name);
        entries.push((name, value));
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let table = amqp_codec::rawtable::table(entries);
        Message::new_at(
            self.exchange.clone(),
            self.routing_key.clone(),
            self.properties.with_raw_headers(Some(&table), false),
            self.body.clone(),
            self.published_at,
        )
    }

    /// Body size in bytes.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// delivery_mode 2: stored when it goes to a durable queue.
    pub fn is_persistent(&self) -> bool {
        self.properties.delivery_mode() == 2
    }

    /// The record the store keeps for this message, with its properties and body.
    pub fn record(&self) -> Bytes {
        self.encode_record(0, None)
    }

    /// The record with a delivery count (written again when a counted delivery is returned):
    /// a lasting record points at the shared body if the message has one, as when first stored.
    pub fn record_with_count(&self, delivery_count: u32, lasting: bool) -> Bytes {
        let shared = if lasting { self.shared_id() } else { None };
        self.encode_record(delivery_count, shared)
    }

    fn encode_record(&self, delivery_count: u32, shared: Option<u64>) -> Bytes {
        let mut out = Vec::new();
        self.record_parts(delivery_count, shared)
            .encode_into(&mut out);
        Bytes::from(out)
    }

    fn record_parts(&self, delivery_count: u32, shared: Option<u64>) -> storage::RecordParts<'_> {
        storage::RecordParts {
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            properties: self.properties.raw(),
            body: &self.body,
            delivery_count,
            transient: !self.is_persistent(),
            published_at: self.published_at,
            shared,
        }
    }

    /// Rebuilds a message from its store record.
    pub fn from_record(r: storage::MessageRecord) -> Option<Self> {
        let properties = Properties::new(r.properties).ok()?;
        let m = Message::new_at(
            r.exchange,
            r.routing_key,
            properties,
            r.body,
            r.published_at,
        );
        if let Some(id) = r.shared {
            let _ = m.shared_body.set(id);
        }
        Some(m)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Parses an `expiration` property as RabbitMQ does (Erlang's `string:to_integer`, then the
/// expiry range check). The error is RabbitMQ's reason term: `no_integer`,
/// `{leftover_string,".5"}`, `{value_negative,-1}`, `{value_too_large,N}`.
pub(crate) fn parse_expiration(e: &str) -> Result<u64, String> {
    let b = e.as_bytes();
    let sign = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = b[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Err(expiration::NO_INTEGER.into());
    }
    let (number, rest) = e.split_at(sign + digits);
    if !rest.is_empty() {
        return Err(expiration::leftover_string(rest));
    }
    let n: i128 = number.parse().unwrap_or(i128::MAX);
    if n < 0 {
        return Err(expiration::value_negative(n));
    }
    if n > MAX_EXPIRY {
        return Err(expiration::value_too_large(n));
    }
    Ok(n as u64)
}

/// A message's first record, encoded on the store's writer thread (see
/// [`Message::store_form`]).
impl EncodeRecord for Message {
    fn encoded_len(&self) -> usize {
        self.record_parts(0, None).encoded_len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        self.record_parts(0, None).encode_into(out);
    }
}
