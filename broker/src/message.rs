//! A published message, shared (`Arc`) by every queue it was routed to.

use amqp_codec::Properties;
use bytes::Bytes;

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
}

impl Message {
    /// Body size in bytes.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}
