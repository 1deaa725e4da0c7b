//! The broker's side of durability: every store operation the broker writes is built here, so the
//! rest of the broker speaks of queues, definitions and confirms, never of `storage::Op`.
//!
//! - [`QueueStore`]: a queue's messages (put, delete, mark delivered, read a range).
//! - [`DefinitionWrites`]: durable exchanges, queues and bindings of a vhost, written together.
//! - [`DelayedArea`]: the delayed-message exchange's messages, kept by due time.
//! - [`AccessWrites`]: users, vhosts and permissions (`auth`).
//! - [`ConfirmWait`]: how a publisher confirm waits for the store.
//!
//! Messages are written by the store's writer thread (group commit). A persistent message routed to
//! durable queues is confirmed once every queue's write is durable: each queue's write carries a
//! completion of one shared [`ConfirmWait`], and the last one to finish tells the publishing
//! connection, through its event mailbox, that the confirm may go out.
//!
//! Reads block: they are made only from blocking threads (`spawn_blocking`, start-up).

mod access;
mod confirm;
mod definitions;
mod delayed;
mod queue_store;

pub(crate) use access::{AccessRecord, AccessWrites};
pub(crate) use confirm::ConfirmWait;
pub(crate) use definitions::{drop_unkept_queues, DefinitionWrites};
pub(crate) use delayed::DelayedArea;
pub(crate) use queue_store::StaleRecord;
pub use queue_store::{Budget, QueueStore};
