//! The delayed-message exchange's messages: an area of the store of its own, keyed by due time.

use crate::message::Message;
use std::sync::Arc;
use storage::{Completion, MessageRecord, Op, Store, StoreError};

/// Store id of the delayed messages (one area for the broker; see `crate::delayed`).
pub(crate) const DELAYED_AREA: u64 = u64::MAX - 1;

/// A delayed message read back: its key in the area and its record.
pub(crate) type DelayedRecord = (u64, MessageRecord);

/// The store area that keeps delayed messages in due order.
#[derive(Debug, Clone)]
pub(crate) struct DelayedArea {
    store: Arc<Store>,
}

impl DelayedArea {
    /// The delayed area of `store`.
    pub(crate) fn new(store: Arc<Store>) -> Self {
        DelayedArea { store }
    }

    /// Keeps `message` (durably) at `seq`; `done` runs once it is written.
    pub(crate) fn put(&self, seq: u64, message: &Message, done: Completion) {
        let op = Op::PutMessage {
            queue: DELAYED_AREA,
            seq,
            record: message.record(),
            size: message.size() as u64,
            shared: None,
            transient: false,
        };
        self.store.submit(vec![op], Some(done));
    }

    /// The first `max` messages, in due order (blocking).
    pub(crate) fn read_front(&self, max: usize) -> Result<Vec<DelayedRecord>, StoreError> {
        self.store.read_messages(DELAYED_AREA, 0, max, 16 << 20)
    }

    /// Deletes records read back, and waits for it (blocking), so a next read finds none of them.
    pub(crate) fn delete_blocking<'a>(
        &self,
        records: impl Iterator<Item = &'a DelayedRecord>,
    ) -> Result<(), StoreError> {
        let deletes: Vec<Op> = records
            .map(|(seq, record)| Op::DeleteMessage {
                queue: DELAYED_AREA,
                seq: *seq,
                size: record.body.len() as u64,
                shared: record.shared,
                transient: record.in_transient_area,
            })
            .collect();
        if deletes.is_empty() {
            return Ok(());
        }
        self.store.commit_blocking(deletes)
    }
}
