//! The delayed-message exchange's messages: an area of the store of its own, keyed by due time.

use crate::message::Message;
use std::sync::Arc;
use storage::{Completion, MessageRecord, Op, Store, StoreError};

/// Store id of the default vhost's delayed messages (see `crate::delayed`).
pub(crate) const DELAYED_AREA: u64 = u64::MAX - 1;

/// The store id of a vhost's delayed messages: [`DELAYED_AREA`] for `/` (as before vhosts could
/// be added), else one derived from the name (stable across restarts; 2^32 ids far above any
/// queue's, which count up from 1).
pub(crate) fn delayed_area_id(vhost: &str) -> u64 {
    if vhost == "/" {
        return DELAYED_AREA;
    }
    let h = vhost.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
    });
    DELAYED_AREA - 1 - (h & 0xffff_ffff)
}

/// A delayed message read back: its key in the area and its record.
pub(crate) type DelayedRecord = (u64, MessageRecord);

/// The store area that keeps delayed messages in due order.
#[derive(Debug, Clone)]
pub(crate) struct DelayedArea {
    store: Arc<Store>,
    id: u64,
}

impl DelayedArea {
    /// The delayed area of `vhost` in `store`.
    pub(crate) fn new(store: Arc<Store>, vhost: &str) -> Self {
        DelayedArea {
            store,
            id: delayed_area_id(vhost),
        }
    }

    /// Its store id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Keeps `message` (durably) at `seq`; `done` runs once it is written.
    pub(crate) fn put(&self, seq: u64, message: &Message, done: Completion) {
        let op = Op::PutMessage {
            queue: self.id,
            seq,
            record: message.record().into(),
            size: message.size() as u64,
            shared: None,
            transient: false,
        };
        self.store.submit(vec![op], Some(done));
    }

    /// The first `max` messages, in due order (blocking).
    pub(crate) fn read_front(&self, max: usize) -> Result<Vec<DelayedRecord>, StoreError> {
        self.store.read_messages(self.id, 0, max, 16 << 20)
    }

    /// Deletes records read back, and waits for it (blocking), so a next read finds none of them.
    pub(crate) fn delete_blocking<'a>(
        &self,
        records: impl Iterator<Item = &'a DelayedRecord>,
    ) -> Result<(), StoreError> {
        let deletes: Vec<Op> = records
            .map(|(seq, record)| Op::DeleteMessage {
                queue: self.id,
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
