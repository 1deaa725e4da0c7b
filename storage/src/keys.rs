//! Key layouts.
//!
//! Message keys are `queue id (u64 BE) ++ sequence (u64 BE)`: byte order is queue order, so a queue's
//! messages are one contiguous range, read front to back, and runs of acks delete as ranges.

/// The key of a message.
pub fn message(queue: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&queue.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Splits a message key.
pub fn parse_message(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() != 16 {
        return None;
    }
    Some((
        u64::from_be_bytes(key[..8].try_into().ok()?),
        u64::from_be_bytes(key[8..].try_into().ok()?),
    ))
}

/// The key of a queue's counters.
pub fn counts(queue: u64) -> [u8; 8] {
    queue.to_be_bytes()
}

/// The key of a shared body (and of its reference count).
pub fn body(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Tag bytes of definition keys.
pub mod tag {
    /// A vhost.
    pub const VHOST: u8 = b'v';
    /// An exchange.
    pub const EXCHANGE: u8 = b'x';
    /// A queue.
    pub const QUEUE: u8 = b'q';
    /// A binding.
    pub const BINDING: u8 = b'b';
    /// An access-control record (users, vhosts, permissions): opaque to the store.
    pub const ACCESS: u8 = b'a';
}

/// The key of an access-control record: [`tag::ACCESS`], its kind, then its names, each followed
/// by a NUL (names cannot contain NUL: they come from AMQP short strings and UTF-8 text).
pub fn access_key(kind: u8, names: &[&str]) -> Vec<u8> {
    let mut k = vec![tag::ACCESS, kind];
    for n in names {
        k.extend_from_slice(n.as_bytes());
        k.push(0);
    }
    k
}
