//! Basic content properties kept as the raw bytes the publisher sent.
//!
//! The broker forwards properties byte for byte (re-encoding a field table through a `BTreeMap` would
//! reorder its keys), and it reads only a few fields: delivery mode, priority, expiration, user id and
//! the headers table. [`Properties::new`] validates the layout in one pass and remembers where those
//! fields are, so reading them later costs nothing.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPProperties};
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::FieldTable;
use bytes::Bytes;
use std::ops::Range;

/// The property list does not follow the basic class layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed content properties")]
pub struct PropertiesError;

// Flag bits of the basic class properties, in wire order.
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;

/// Raw basic properties plus the positions of the fields the broker reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    raw: Bytes,
    delivery_mode: u8,
    priority: Option<u8>,
    expiration: Option<Range<u32>>,
    user_id: Option<Range<u32>>,
    reply_to: Option<Range<u32>>,
    headers: Option<Range<u32>>,
    /// Where the headers field is, or would be inserted.
    headers_pos: u32,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<Range<u32>, PropertiesError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(PropertiesError)?;
        let r = self.pos as u32..end as u32;
        self.pos = end;
        Ok(r)
    }
    fn u8(&mut self) -> Result<u8, PropertiesError> {
        let r = self.take(1)?;
        Ok(self.b[r.start as usize])
    }
    fn short_str(&mut self) -> Result<Range<u32>, PropertiesError> {
        let n = self.u8()? as usize;
        let r = self.take(n)?;
        std::str::from_utf8(&self.b[r.start as usize..r.end as usize])
            .map_err(|_| PropertiesError)?;
        Ok(r)
    }
    fn table(&mut self) -> Result<Range<u32>, PropertiesError> {
        let start = self.pos;
        let len = self.take(4)?;
        let l = &self.b[len.start as usize..len.end as usize];
        let n = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        self.take(n)?;
        let r = start as u32..self.pos as u32;
        // Check the table's structure at the door, without building it (and without recursion:
        // see `table.rs`).
        match crate::table::check_table(&self.b[r.start as usize..r.end as usize]) {
            Ok(n) if n == r.len() => Ok(r),
            _ => Err(PropertiesError),
        }
    }
}

impl Properties {
    /// Checks the layout of a raw property list (flags then fields) without keeping it.
    pub fn validate(raw: &[u8]) -> Result<(), PropertiesError> {
        Self::index(raw).map(|_| ())
    }

    /// Validates `raw` and remembers where the fields the broker reads are.
    pub fn new(raw: Bytes) -> Result<Self, PropertiesError> {
        let mut p = Self::index(&raw)?;
        p.raw = raw;
        Ok(p)
    }

    fn index(raw: &[u8]) -> Result<Self, PropertiesError> {
        let mut c = Cursor { b: raw, pos: 0 };
        let f = c.take(2)?;
        let flags = u16::from_be_bytes([raw[f.start as usize], raw[f.start as usize + 1]]);
        if flags & 1 != 0 || flags & 0b10 != 0 {
            // Continuation flags and unused bits: basic has only 14 properties.
            return Err(PropertiesError);
        }
        let mut p = Properties::default();
        if flags & CONTENT_TYPE != 0 {
            c.short_str()?;
        }
        if flags & CONTENT_ENCODING != 0 {
            c.short_str()?;
        }
        p.headers_pos = c.pos as u32;
        if flags & HEADERS != 0 {
            p.headers = Some(c.table()?);
        }
        if flags & DELIVERY_MODE != 0 {
            p.delivery_mode = c.u8()?;
        }
        if flags & PRIORITY != 0 {
            p.priority = Some(c.u8()?);
        }
        for bit in [CORRELATION_ID, REPLY_TO, EXPIRATION, MESSAGE_ID] {
            if flags & bit != 0 {
                let r = c.short_str()?;
                if bit == EXPIRATION {
                    p.expiration = Some(r);
                } else if bit == REPLY_TO {
                    p.reply_to = Some(r);
                }
            }
        }
        if flags & TIMESTAMP != 0 {
            c.take(8)?;
        }
        for bit in [TYPE, USER_ID, APP_ID, CLUSTER_ID] {
            if flags & bit != 0 {
                let r = c.short_str()?;
                if bit == USER_ID {
                    p.user_id = Some(r);
                }
            }
        }
        if c.pos != raw.len() {
            return Err(PropertiesError);
        }
        Ok(p)
    }

    /// Encodes typed properties (for messages the broker makes itself).
    pub fn from_basic(props: &AMQPProperties) -> Self {
        let ctx = WriteContext::from(Vec::with_capacity(32));
        let (raw, _) = gen_properties(props)(ctx)
            .expect("properties serialisation")
            .into_inner();
        Self::new(Bytes::from(raw)).expect("generated properties are well formed")
    }

    /// The raw headers table (with its length), if present.
    pub fn headers_raw(&self) -> Option<&[u8]> {
        self.headers
            .as_ref()
            .map(|r| &self.raw[r.start as usize..r.end as usize])
    }

    /// A copy with the headers table replaced by `table` (raw, with its length; `None` removes
    /// it) and, if `drop_expiration`, without expiration. Every other field is kept byte for
    /// byte.
    pub fn with_raw_headers(&self, table: Option<&[u8]>, drop_expiration: bool) -> Self {
        let raw = &self.raw[..];
        let mut flags = u16::from_be_bytes([raw[0], raw[1]]);
        let mut out = Vec::with_capacity(raw.len() + table.map_or(0, <[u8]>::len));
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&raw[2..self.headers_pos as usize]);
        match table {
            Some(t) => {
                out.extend_from_slice(t);
                flags |= HEADERS;
            }
            None => flags &= !HEADERS,
        }
        let rest_from = self
            .headers
            .as_ref()
            .map_or(self.headers_pos as usize, |h| h.end as usize);
        match self.expiration.as_ref().filter(|_| drop_expiration) {
            Some(e) => {
                // The field is its length octet and the text.
                out.extend_from_slice(&raw[rest_from..e.start as usize - 1]);
                out.extend_from_slice(&raw[e.end as usize..]);
                flags &= !EXPIRATION;
            }
            None => out.extend_from_slice(&raw[rest_from..]),
        }
        out[0..2].copy_from_slice(&flags.to_be_bytes());
        Self::new(Bytes::from(out)).expect("rewritten properties are well formed")
    }

    /// Parses every field (slow path: only for code that must rewrite properties).
    pub fn to_basic(&self) -> AMQPProperties {
        parse_properties(&self.raw[..])
            .map(|(_, p)| p)
            .unwrap_or_default()
    }

    /// The raw flags and fields, as received.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// delivery_mode (2 means persistent); 0 when absent.
    pub fn delivery_mode(&self) -> u8 {
        self.delivery_mode
    }

    /// The priority property, if present.
    pub fn priority(&self) -> Option<u8> {
        self.priority
    }

    fn str_at(&self, r: &Option<Range<u32>>) -> Option<&str> {
        r.as_ref()
            .map(|r| std::str::from_utf8(&self.raw[r.start as usize..r.end as usize]).unwrap_or(""))
    }

    /// The expiration property (a string of milliseconds, by RabbitMQ's convention).
    pub fn expiration(&self) -> Option<&str> {
        self.str_at(&self.expiration)
    }

    /// The reply_to property.
    pub fn reply_to(&self) -> Option<&str> {
        self.str_at(&self.reply_to)
    }

    /// A copy with the reply_to property replaced (it must be present; `to` at most 255 bytes).
    pub fn with_reply_to(&self, to: &str) -> Self {
        let Some(r) = &self.reply_to else {
            return self.clone();
        };
        let to = &to.as_bytes()[..to.len().min(255)];
        let mut out = Vec::with_capacity(self.raw.len() + to.len());
        out.extend_from_slice(&self.raw[..r.start as usize - 1]);
        out.push(to.len() as u8);
        out.extend_from_slice(to);
        out.extend_from_slice(&self.raw[r.end as usize..]);
        Self::new(Bytes::from(out)).expect("rewritten properties are well formed")
    }

    /// The user_id property.
    pub fn user_id(&self) -> Option<&str> {
        self.str_at(&self.user_id)
    }

    /// True if a headers table is present.
    pub fn has_headers(&self) -> bool {
        self.headers.is_some()
    }

    /// Parses the headers table, if present.
    pub fn headers(&self) -> Option<FieldTable> {
        let r = self.headers.as_ref()?;
        parse_field_table(&self.raw[r.start as usize..r.end as usize])
            .ok()
            .map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{AMQPValue, ShortString};

    #[test]
    fn reads_fields_from_generated_properties() {
        let mut headers = FieldTable::default();
        headers.insert(ShortString::from("k"), AMQPValue::LongString("v".into()));
        let basic = AMQPProperties::default()
            .with_content_type("text/plain".into())
            .with_headers(headers.clone())
            .with_delivery_mode(2)
            .with_priority(7)
            .with_expiration("1000".into())
            .with_user_id("guest".into())
            .with_app_id("app".into());
        let p = Properties::from_basic(&basic);
        assert_eq!(p.delivery_mode(), 2);
        assert_eq!(p.priority(), Some(7));
        assert_eq!(p.expiration(), Some("1000"));
        assert_eq!(p.user_id(), Some("guest"));
        assert_eq!(p.headers(), Some(headers));
        assert_eq!(p.to_basic(), basic);
    }

    #[test]
    fn empty_properties_are_two_zero_flag_bytes() {
        let p = Properties::new(Bytes::from_static(&[0, 0])).unwrap();
        assert_eq!(p.delivery_mode(), 0);
        assert!(!p.has_headers());
    }

    #[test]
    fn rejects_truncated_fields() {
        assert!(Properties::validate(&[0x80, 0, 5, b'a']).is_err());
        assert!(Properties::validate(&[0]).is_err());
        assert!(Properties::validate(&[0x10, 0, 2, 9]).is_err());
    }
}
