//! Warren's store: definitions and persistent messages in an embedded RocksDB.
//!
//! * Column families: `meta` (format version), `defs` (vhosts, exchanges, queues, bindings),
//!   `msgs` (messages, keyed by big-endian `(queue id, sequence)` so a queue is one contiguous,
//!   ordered key range), `tmsgs` (records that only page messages out of memory: the same keys,
//!   emptied at start-up, counted nowhere), `counts` (per-queue message count and bytes, kept by a merge operator so that
//!   start-up reads counters instead of scanning messages), `bodies`, `refs` and `qrefs` (bodies
//!   shared by the records of several queues, their reference counts, and which record points at
//!   which body: see `batch`).
//! * Writes go through one writer thread that commits everything waiting as one `WriteBatch` with one
//!   WAL sync (group commit), then runs the completions (publisher confirms, declare-ok). A message
//!   deleted before its batch was written is neither written nor deleted.
//! * RocksDB is never called from an async task: writes go to the writer thread, and reads are meant
//!   to run on blocking threads (`tokio::task::spawn_blocking`).

mod batch;
mod cf;
mod codec;
mod compactor;
mod config;
mod counts;
pub mod defs;
mod error;
mod inbox;
pub mod keys;
mod ops;
pub mod record;
mod slot;
mod store;
mod writer;

pub use config::StoreConfig;
pub use defs::{BindingDef, ExchangeDef, QueueDef};
pub use error::StoreError;
pub use inbox::HOLD as DEFAULT_HOLD;
pub use keys::access_key;
pub use ops::{Completion, EncodeRecord, Op, Record};
pub use record::{MessageRecord, RecordParts};
pub use store::{QueueState, Recovered, RecoveredQueue, Store};

/// Seconds since the Unix epoch (for probe records).
pub(crate) fn message_time_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
