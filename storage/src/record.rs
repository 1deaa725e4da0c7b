//! A persistent message as stored.

use crate::codec::{Dec, Enc};
use crate::StoreError;
use bytes::Bytes;

/// A record that carries its properties and body.
const VERSION: u8 = 2;
/// A record whose properties and body are in the shared body area (a message routed to several
/// queues is stored once; each queue's record points at it).
const VERSION_SHARED: u8 = 3;

/// A message as the store keeps it: where it was published, its raw properties and body, and the
/// delivery state that must survive a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Raw basic properties (flags and list), as received.
    pub properties: Bytes,
    /// Body.
    pub body: Bytes,
    /// Times it was returned to the queue (x-delivery-count).
    pub delivery_count: u32,
    /// A transient message written only to page it out of memory: dropped at start-up.
    pub transient: bool,
    /// When it was published (ms since the Unix epoch): TTLs count from here.
    pub published_at: u64,
    /// The id of its shared body, if its properties and body are kept once for several queues.
    /// Encoding such a record leaves `properties` and `body` out; reading it back through
    /// [`crate::Store::read_messages`] fills them in from the body area.
    pub shared: Option<u64>,
    /// Read from the transient area (written only to page it out of memory). Not part of the
    /// encoding: [`crate::Store::read_messages`] sets it.
    pub in_transient_area: bool,
}

/// A record's fields, borrowed: what [`MessageRecord::encode`] writes, for an encoder that owns
/// none of them (the broker encodes its messages straight into the writer's buffer).
#[derive(Debug, Clone, Copy)]
pub struct RecordParts<'a> {
    /// Exchange it was published to.
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// Raw basic properties.
    pub properties: &'a [u8],
    /// Body.
    pub body: &'a [u8],
    /// Times it was returned to the queue.
    pub delivery_count: u32,
    /// A transient message.
    pub transient: bool,
    /// When it was published (ms since the Unix epoch).
    pub published_at: u64,
    /// The id of its shared body (properties and body are then left out).
    pub shared: Option<u64>,
}

/// The header: version, flags, count, time, two name lengths, the properties' length (or the
/// shared body's id, which is longer).
const HEADER: usize = 1 + 1 + 4 + 8 + 1 + 1;

impl RecordParts<'_> {
    /// The exact encoded size.
    pub fn encoded_len(&self) -> usize {
        let names = self.exchange.len().min(255) + self.routing_key.len().min(255);
        HEADER
            + names
            + match self.shared {
                Some(_) => 8,
                None => 4 + self.properties.len() + self.body.len(),
            }
    }

    /// Appends the encoded record to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        let mut e = Enc(std::mem::take(out));
        e.u8(if self.shared.is_some() {
            VERSION_SHARED
        } else {
            VERSION
        })
        .u8(self.transient as u8)
        .u32(self.delivery_count)
        .u64(self.published_at)
        .short(self.exchange)
        .short(self.routing_key);
        match self.shared {
            Some(id) => {
                e.u64(id);
            }
            None => {
                e.long(self.properties);
                e.0.extend_from_slice(self.body);
            }
        }
        *out = e.0;
    }
}

impl MessageRecord {
    /// Its fields, borrowed.
    pub fn parts(&self) -> RecordParts<'_> {
        RecordParts {
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            properties: &self.properties,
            body: &self.body,
            delivery_count: self.delivery_count,
            transient: self.transient,
            published_at: self.published_at,
            shared: self.shared,
        }
    }

    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.parts().encode_into(&mut out);
        out
    }

    /// The shared part of a record (properties and body), as the body area keeps it.
    pub fn encode_body(properties: &[u8], body: &[u8]) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(4 + properties.len() + body.len()));
        e.long(properties);
        e.0.extend_from_slice(body);
        e.0
    }

    /// Fills in properties and body from a value of the body area (no copy).
    pub(crate) fn attach_body(&mut self, value: Bytes) -> Result<(), StoreError> {
        let (properties, body) = split_props(&value, 0)?;
        self.properties = properties;
        self.body = body;
        Ok(())
    }

    /// Decodes a record; properties and body are slices of `value` (no copy).
    pub fn decode(value: Bytes) -> Result<Self, StoreError> {
        let mut d = Dec::new(&value);
        let version = d.u8()?;
        if version != VERSION && version != VERSION_SHARED {
            return Err(StoreError::Corrupt(format!(
                "unknown message record version {version}"
            )));
        }
        let transient = d.u8()? & 1 != 0;
        let delivery_count = d.u32()?;
        let published_at = d.u64()?;
        let exchange = d.short()?;
        let routing_key = d.short()?;
        let (properties, body, shared) = if version == VERSION_SHARED {
            (Bytes::new(), Bytes::new(), Some(d.u64()?))
        } else {
            let (p, b) = split_props(&value, d.pos())?;
            (p, b, None)
        };
        Ok(MessageRecord {
            exchange,
            routing_key,
            properties,
            body,
            delivery_count,
            transient,
            published_at,
            shared,
            in_transient_area: false,
        })
    }
}

/// Splits `long(properties) ++ body` starting at `at`.
fn split_props(value: &Bytes, at: usize) -> Result<(Bytes, Bytes), StoreError> {
    let mut d = Dec::new(&value[at..]);
    let props_len = d.u32()? as usize;
    let start = at + d.pos();
    if start + props_len > value.len() {
        return Err(StoreError::Corrupt("truncated properties".into()));
    }
    Ok((
        value.slice(start..start + props_len),
        value.slice(start + props_len..),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let r = MessageRecord {
            exchange: "amq.direct".into(),
            routing_key: "k".into(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from(vec![7u8; 1000]),
            delivery_count: 3,
            transient: true,
            published_at: 1_700_000_000_000,
            shared: None,
            in_transient_area: false,
        };
        assert_eq!(MessageRecord::decode(Bytes::from(r.encode())).unwrap(), r);
        let mut s = MessageRecord {
            shared: Some(42),
            ..r.clone()
        };
        let mut back = MessageRecord::decode(Bytes::from(s.encode())).unwrap();
        assert_eq!(back.shared, Some(42));
        assert!(back.body.is_empty() && back.properties.is_empty());
        back.attach_body(Bytes::from(MessageRecord::encode_body(
            &s.properties,
            &s.body,
        )))
        .unwrap();
        s.shared = Some(42);
        assert_eq!(back, s);
        assert!(MessageRecord::decode(Bytes::from_static(&[9])).is_err());
        assert!(MessageRecord::decode(Bytes::from_static(&[1, 0, 0])).is_err());
    }

    /// The record is built in one allocation of its exact size: a short capacity made every
    /// record reallocate, copying the body once more (seen in the issue 14 profile).
    #[test]
    fn encoding_allocates_once() {
        let r = MessageRecord {
            exchange: "amq.direct".into(),
            routing_key: "tasks".into(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from(vec![7u8; 1024]),
            delivery_count: 0,
            transient: false,
            published_at: 1_700_000_000_000,
            shared: None,
            in_transient_area: false,
        };
        let v = r.encode();
        assert_eq!(v.capacity(), v.len());
        let shared = MessageRecord {
            shared: Some(7),
            ..r
        };
        assert_eq!(shared.parts().encoded_len(), shared.encode().len());
    }

    /// Pins the on-disk format (`warren-store-v3`): a change here breaks every stored message,
    /// so it must come with a new format version and an upgrade. The expected bytes are written
    /// out from the format's description, field by field.
    #[test]
    fn golden_bytes() {
        let r = MessageRecord {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            properties: Bytes::from_static(&[0x10, 0x00, 0x02]),
            body: Bytes::from_static(b"hi"),
            delivery_count: 0x0102_0304,
            transient: true,
            published_at: 0x0000_018C_0000_0001,
            shared: None,
            in_transient_area: false,
        };
        let mut own: Vec<u8> = vec![
            2, // version: properties and body inline
            1, // transient
            0x01, 0x02, 0x03, 0x04, // delivery count, u32 big-endian
            0x00, 0x00, 0x01, 0x8C, 0x00, 0x00, 0x00, 0x01, // published at (ms), u64 BE
            2, b'e', b'x', // exchange, short string
            2, b'r', b'k', // routing key, short string
            0, 0, 0, 3, 0x10, 0x00, 0x02, // raw properties, u32 BE length + bytes
        ];
        own.extend_from_slice(b"hi"); // body: the rest of the value
        assert_eq!(r.encode(), own);
        let shared = MessageRecord {
            shared: Some(0x0A0B),
            transient: false,
            ..r
        };
        let pointer: Vec<u8> = vec![
            3, // version: properties and body in the shared body area
            0, // not transient
            0x01, 0x02, 0x03, 0x04, // delivery count
            0x00, 0x00, 0x01, 0x8C, 0x00, 0x00, 0x00, 0x01, // published at
            2, b'e', b'x', 2, b'r', b'k', // exchange, routing key
            0, 0, 0, 0, 0, 0, 0x0A, 0x0B, // body id, u64 BE
        ];
        assert_eq!(shared.encode(), pointer);
        // A shared body: u32 BE properties length, properties, body.
        assert_eq!(
            MessageRecord::encode_body(&[0x10, 0x00, 0x02], b"hi"),
            [0, 0, 0, 3, 0x10, 0x00, 0x02, b'h', b'i']
        );
        // Message keys: queue id then sequence, both u64 big-endian, so that byte order is queue
        // order.
        assert_eq!(
            crate::keys::message(0x0102, 0x0A0B),
            [0, 0, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0x0A, 0x0B]
        );
    }
}
