//! Durable definitions: exchanges, queues, bindings. Arguments are kept as the AMQP-encoded field
//! table bytes the client sent, so the store needs no knowledge of field types.

use crate::codec::{Dec, Enc};
use crate::keys::tag;
use crate::StoreError;

const VERSION: u8 = 1;

/// A durable exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeDef {
    /// Vhost.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Type name (`direct`, `topic`, ...).
    pub kind: String,
    /// Auto-delete flag.
    pub auto_delete: bool,
    /// Internal flag.
    pub internal: bool,
    /// Arguments, AMQP-encoded field table.
    pub arguments: Vec<u8>,
    /// The user who declared it (RabbitMQ's `user_who_performed_action`); empty in records
    /// written before it was kept (a trailing field, so older records still decode).
    pub declared_by: String,
}

/// A durable queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDef {
    /// Vhost.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// The id its messages are keyed by.
    pub id: u64,
    /// Auto-delete flag.
    pub auto_delete: bool,
    /// Arguments, AMQP-encoded field table.
    pub arguments: Vec<u8>,
}

/// A binding between durable ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDef {
    /// Vhost.
    pub vhost: String,
    /// Source exchange.
    pub source: String,
    /// True if the destination is an exchange, false for a queue.
    pub to_exchange: bool,
    /// Destination name.
    pub destination: String,
    /// Routing key.
    pub routing_key: String,
    /// Arguments, AMQP-encoded field table.
    pub arguments: Vec<u8>,
}

/// FNV-1a: a stable hash (unlike `DefaultHasher`) to tell bindings with different arguments apart.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
    })
}

impl ExchangeDef {
    /// Its key in the `defs` column family.
    pub fn key(vhost: &str, name: &str) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(tag::EXCHANGE).short(vhost).short(name);
        e.0
    }
    /// Encodes the definition (the value stored under its key).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(VERSION)
            .short(&self.vhost)
            .short(&self.name)
            .short(&self.kind)
            .u8(self.auto_delete as u8)
            .u8(self.internal as u8)
            .long(&self.arguments)
            .short(&self.declared_by);
        e.0
    }
    /// Decodes a stored definition.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let mut d = Dec::new(b);
        check_version(d.u8()?)?;
        Ok(ExchangeDef {
            vhost: d.short()?,
            name: d.short()?,
            kind: d.short()?,
            auto_delete: d.u8()? != 0,
            internal: d.u8()? != 0,
            arguments: d.long()?.to_vec(),
            declared_by: if d.pos() < b.len() {
                d.short()?
            } else {
                String::new()
            },
        })
    }
}

impl QueueDef {
    /// Its key in the `defs` column family.
    pub fn key(vhost: &str, name: &str) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(tag::QUEUE).short(vhost).short(name);
        e.0
    }
    /// Encodes the definition (the value stored under its key).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(VERSION)
            .short(&self.vhost)
            .short(&self.name)
            .u64(self.id)
            .u8(self.auto_delete as u8)
            .long(&self.arguments);
        e.0
    }
    /// Decodes a stored definition.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let mut d = Dec::new(b);
        check_version(d.u8()?)?;
        Ok(QueueDef {
            vhost: d.short()?,
            name: d.short()?,
            id: d.u64()?,
            auto_delete: d.u8()? != 0,
            arguments: d.long()?.to_vec(),
        })
    }
}

impl BindingDef {
    /// Its key in the `defs` column family.
    pub fn key(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(tag::BINDING)
            .short(&self.vhost)
            .short(&self.source)
            .u8(self.to_exchange as u8)
            .short(&self.destination)
            .short(&self.routing_key)
            .u64(fnv1a(&self.arguments));
        e.0
    }
    /// Encodes the definition (the value stored under its key).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(VERSION)
            .short(&self.vhost)
            .short(&self.source)
            .u8(self.to_exchange as u8)
            .short(&self.destination)
            .short(&self.routing_key)
            .long(&self.arguments);
        e.0
    }
    /// Decodes a stored definition.
    pub fn decode(b: &[u8]) -> Result<Self, StoreError> {
        let mut d = Dec::new(b);
        check_version(d.u8()?)?;
        Ok(BindingDef {
            vhost: d.short()?,
            source: d.short()?,
            to_exchange: d.u8()? != 0,
            destination: d.short()?,
            routing_key: d.short()?,
            arguments: d.long()?.to_vec(),
        })
    }
}

fn check_version(v: u8) -> Result<(), StoreError> {
    if v == VERSION {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "unknown definition record version {v}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip() {
        let x = ExchangeDef {
            vhost: "/".into(),
            name: "logs".into(),
            kind: "topic".into(),
            auto_delete: false,
            internal: true,
            arguments: vec![0, 0, 0, 0],
            declared_by: "alice".into(),
        };
        assert_eq!(ExchangeDef::decode(&x.encode()).unwrap(), x);
        // A record from before `declared_by` was kept decodes with it empty.
        let old = x.encode();
        let old = &old[..old.len() - 1 - "alice".len()];
        let decoded = ExchangeDef::decode(old).unwrap();
        assert_eq!(
            (decoded.declared_by.as_str(), decoded.name.as_str()),
            ("", "logs")
        );
        let q = QueueDef {
            vhost: "/".into(),
            name: "tasks".into(),
            id: 42,
            auto_delete: true,
            arguments: vec![],
        };
        assert_eq!(QueueDef::decode(&q.encode()).unwrap(), q);
        let b = BindingDef {
            vhost: "/".into(),
            source: "logs".into(),
            to_exchange: false,
            destination: "tasks".into(),
            routing_key: "a.#".into(),
            arguments: vec![0, 0, 0, 0],
        };
        assert_eq!(BindingDef::decode(&b.encode()).unwrap(), b);
        let mut other = b.clone();
        other.arguments = vec![0, 0, 0, 1, 0];
        assert_ne!(b.key(), other.key());
    }
}
