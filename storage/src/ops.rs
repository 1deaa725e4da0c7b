//! The vocabulary of changes: what callers submit to the store ([`Op`]) and what runs once it is
//! durable ([`Completion`]).

use crate::StoreError;
use bytes::Bytes;
use std::sync::Arc;

/// Something that encodes into a message record ([`crate::RecordParts`]), on the writer thread.
pub trait EncodeRecord: Send + Sync {
    /// The encoded size.
    fn encoded_len(&self) -> usize;
    /// Appends the encoded record to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);
}

/// A message record to write: encoded already, or encoded by the writer thread only if it is
/// written (most puts of a queue whose consumers keep up are cancelled by their ack first, and
/// then it never is).
#[derive(Clone)]
pub enum Record {
    /// Encoded.
    Encoded(Bytes),
    /// Encoded when written.
    Deferred(Arc<dyn EncodeRecord>),
}

impl Record {
    /// The encoded size.
    pub fn len(&self) -> usize {
        match self {
            Record::Encoded(b) => b.len(),
            Record::Deferred(e) => e.encoded_len(),
        }
    }

    /// True if the encoding is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Record {
    fn from(b: Bytes) -> Self {
        Record::Encoded(b)
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Record::Encoded(b) => write!(f, "Encoded({} bytes)", b.len()),
            Record::Deferred(e) => write!(f, "Deferred({} bytes)", e.encoded_len()),
        }
    }
}

/// One change.
#[derive(Debug, Clone)]
pub enum Op {
    /// Store a message (encoded [`crate::MessageRecord`]) at (queue, seq).
    PutMessage {
        /// Queue id.
        queue: u64,
        /// Sequence in the queue.
        seq: u64,
        /// Its record.
        record: Record,
        /// Body size, for the queue's byte counter.
        size: u64,
        /// The shared body the record points at (it holds a reference).
        shared: Option<u64>,
        /// Written only to page it out of memory (a transient message, or any message of a
        /// non-durable queue): kept in `tmsgs`, which start-up empties, and left out of the
        /// queue's counters. Such a record never points at a shared body.
        transient: bool,
    },
    /// Delete the message at (queue, seq).
    DeleteMessage {
        /// Queue id.
        queue: u64,
        /// Sequence.
        seq: u64,
        /// Body size, for the queue's byte counter.
        size: u64,
        /// The shared body the record pointed at (its reference is dropped).
        shared: Option<u64>,
        /// The record was put as transient.
        transient: bool,
    },
    /// Store a shared body (encoded with [`crate::MessageRecord::encode_body`]) with one reference
    /// held by whoever routes the message, dropped with [`Op::ReleaseBody`] once every queue's
    /// record (which hold their own references) has been submitted.
    PutBody {
        /// Body id ([`crate::Store::allocate_body_id`]).
        id: u64,
        /// Properties and body.
        value: Bytes,
    },
    /// Drops the router's reference to a shared body.
    ReleaseBody {
        /// Body id.
        id: u64,
    },
    /// Delete the messages `from..=to` of a queue (a purge of its paged range).
    DeleteRange {
        /// Queue id.
        queue: u64,
        /// First sequence.
        from: u64,
        /// Last sequence.
        to: u64,
        /// Messages in the range, for the counter.
        count: u64,
        /// Their body bytes, for the counter.
        bytes: u64,
    },
    /// Replace the message at (queue, seq) without changing counters (delivery count update).
    UpdateMessage {
        /// Queue id.
        queue: u64,
        /// Sequence.
        seq: u64,
        /// Encoded record.
        record: Bytes,
        /// The record was put as transient.
        transient: bool,
    },
    /// Record that messages up to `seq` were delivered at least once (they come back as redelivered
    /// after a restart, as in RabbitMQ).
    MarkDelivered {
        /// Queue id.
        queue: u64,
        /// Highest delivered sequence.
        seq: u64,
    },
    /// Delete every message of a queue and its counters.
    DropQueueMessages {
        /// Queue id.
        queue: u64,
    },
    /// Put a definition.
    PutDef {
        /// Key in `defs`.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete a definition.
    DeleteDef {
        /// Key in `defs`.
        key: Vec<u8>,
    },
}

/// Runs once the request's batch is durable (or failed).
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
