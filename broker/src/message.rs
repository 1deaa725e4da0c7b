//! A published message, shared (`Arc`) by every queue it was routed to.

use amqp_codec::Properties;
use bytes::Bytes;
use std::sync::OnceLock;

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
    /// Encoded store record, made once however many durable queues store the message.
    record: OnceLock<Bytes>,
}

impl Message {
    /// A new message.
    pub fn new(exchange: String, routing_key: String, properties: Properties, body: Bytes) -> Self {
        Message {
            exchange,
            routing_key,
            properties,
            body,
            record: OnceLock::new(),
        }
    }

    /// Body size in bytes.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// delivery_mode 2: stored when it goes to a durable queue.
    pub fn is_persistent(&self) -> bool {
        self.properties.delivery_mode() == 2
    }

    /// The record the store keeps for this message (encoded on first use).
    pub fn record(&self) -> Bytes {
        self.record
            .get_or_init(|| {
                Bytes::from(
                    storage::MessageRecord {
                        exchange: self.exchange.clone(),
                        routing_key: self.routing_key.clone(),
                        properties: self.properties.raw().clone(),
                        body: self.body.clone(),
                        delivery_count: 0,
                        transient: !self.is_persistent(),
                    }
                    .encode(),
                )
            })
            .clone()
    }

    /// Rebuilds a message from its store record.
    pub fn from_record(r: storage::MessageRecord) -> Option<Self> {
        let properties = Properties::new(r.properties).ok()?;
        Some(Message::new(r.exchange, r.routing_key, properties, r.body))
    }
}
