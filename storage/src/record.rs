//! A persistent message as stored.

use crate::codec::{Dec, Enc};
use crate::StoreError;
use bytes::Bytes;

const VERSION: u8 = 2;

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
}

impl MessageRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(
            16 + self.exchange.len()
                + self.routing_key.len()
                + self.properties.len()
                + self.body.len(),
        ));
        e.u8(VERSION)
            .u8(self.transient as u8)
            .u32(self.delivery_count)
            .u64(self.published_at)
            .short(&self.exchange)
            .short(&self.routing_key)
            .long(&self.properties);
        e.0.extend_from_slice(&self.body);
        e.0
    }

    /// Decodes a record; properties and body are slices of `value` (no copy).
    pub fn decode(value: Bytes) -> Result<Self, StoreError> {
        let mut d = Dec::new(&value);
        let version = d.u8()?;
        if version != VERSION {
            return Err(StoreError::Corrupt(format!(
                "unknown message record version {version}"
            )));
        }
        let transient = d.u8()? & 1 != 0;
        let delivery_count = d.u32()?;
        let published_at = d.u64()?;
        let exchange = d.short()?;
        let routing_key = d.short()?;
        let props_len = d.u32()? as usize;
        let start = d.pos();
        if start + props_len > value.len() {
            return Err(StoreError::Corrupt("truncated properties".into()));
        }
        let properties = value.slice(start..start + props_len);
        let body = value.slice(start + props_len..);
        Ok(MessageRecord {
            exchange,
            routing_key,
            properties,
            body,
            delivery_count,
            transient,
            published_at,
        })
    }
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
        };
        assert_eq!(MessageRecord::decode(Bytes::from(r.encode())).unwrap(), r);
        assert!(MessageRecord::decode(Bytes::from_static(&[9])).is_err());
        assert!(MessageRecord::decode(Bytes::from_static(&[1, 0, 0])).is_err());
    }
}
