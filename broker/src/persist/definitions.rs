//! Durable definitions (exchanges, queues, bindings) as store records.

use crate::exchange::{encode_table, Destination, Exchange};
use crate::persist::QueueStore;
use amqp_codec::types::FieldTable;
use storage::{BindingDef, ExchangeDef, Op, QueueDef, Store, StoreError};

/// Definition changes of one vhost, submitted to the store together (in order, without waiting).
#[must_use = "nothing is written until `submit`"]
#[derive(Debug)]
pub(crate) struct DefinitionWrites<'a> {
    vhost: &'a str,
    ops: Vec<Op>,
}

impl<'a> DefinitionWrites<'a> {
    /// No changes yet, for `vhost`.
    pub(crate) fn new(vhost: &'a str) -> Self {
        DefinitionWrites {
            vhost,
            ops: Vec::new(),
        }
    }

    /// Stores a durable exchange.
    pub(crate) fn put_exchange(&mut self, x: &Exchange) -> &mut Self {
        let def = ExchangeDef {
            vhost: self.vhost.to_string(),
            name: x.name.clone(),
            kind: x.type_name().to_string(),
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: encode_table(&x.arguments),
            declared_by: x.declared_by.clone(),
        };
        self.ops.push(Op::PutDef {
            key: ExchangeDef::key(self.vhost, &x.name),
            value: def.encode(),
        });
        self
    }

    /// Forgets a stored exchange.
    pub(crate) fn delete_exchange(&mut self, name: &str) -> &mut Self {
        self.ops.push(Op::DeleteDef {
            key: ExchangeDef::key(self.vhost, name),
        });
        self
    }

    /// Stores a durable queue whose messages are kept under store id `id`.
    pub(crate) fn put_queue(
        &mut self,
        name: &str,
        id: u64,
        auto_delete: bool,
        arguments: &FieldTable,
    ) -> &mut Self {
        let def = QueueDef {
            vhost: self.vhost.to_string(),
            name: name.to_string(),
            id,
            auto_delete,
            arguments: encode_table(arguments),
        };
        self.ops.push(Op::PutDef {
            key: QueueDef::key(self.vhost, name),
            value: def.encode(),
        });
        self
    }

    /// Forgets a stored queue's definition (its messages: [`DefinitionWrites::drop_messages`]).
    pub(crate) fn delete_queue(&mut self, name: &str) -> &mut Self {
        self.ops.push(Op::DeleteDef {
            key: QueueDef::key(self.vhost, name),
        });
        self
    }

    /// Drops every message of a queue's `lanes` lanes (the queue is gone).
    pub(crate) fn drop_messages(&mut self, store: &QueueStore, lanes: usize) -> &mut Self {
        self.ops
            .extend((0..lanes).map(|lane| Op::DropQueueMessages {
                queue: store.lane_id(lane),
            }));
        self
    }

    /// Drops every message kept under store id `id` (a vhost's delayed messages, with the vhost).
    pub(crate) fn drop_store_area(&mut self, id: u64) -> &mut Self {
        self.ops.push(Op::DropQueueMessages { queue: id });
        self
    }

    /// Stores a binding between durable ends.
    pub(crate) fn put_binding(
        &mut self,
        source: &str,
        dest: &Destination,
        key: &str,
        args: &FieldTable,
    ) -> &mut Self {
        let def = self.binding(source, dest, key, args);
        self.ops.push(Op::PutDef {
            key: def.key(),
            value: def.encode(),
        });
        self
    }

    /// Forgets a stored binding.
    pub(crate) fn delete_binding(
        &mut self,
        source: &str,
        dest: &Destination,
        key: &str,
        args: &FieldTable,
    ) -> &mut Self {
        let key = self.binding(source, dest, key, args).key();
        self.ops.push(Op::DeleteDef { key });
        self
    }

    fn binding(
        &self,
        source: &str,
        dest: &Destination,
        key: &str,
        args: &FieldTable,
    ) -> BindingDef {
        let (to_exchange, destination) = match dest {
            Destination::Queue(q) => (false, q.clone()),
            Destination::Exchange(x) => (true, x.clone()),
        };
        BindingDef {
            vhost: self.vhost.to_string(),
            source: source.to_string(),
            to_exchange,
            destination,
            routing_key: key.to_string(),
            arguments: encode_table(args),
        }
    }

    /// Hands the changes to the store's writer (nothing happens if there are none).
    pub(crate) fn submit(self, store: &Store) {
        if !self.ops.is_empty() {
            store.submit(self.ops, None);
        }
    }
}

/// Drops, and waits for it, the messages kept under the store ids in `ids` (start-up: pages of
/// queues that did not survive). Blocking.
pub(crate) fn drop_unkept_queues(store: &Store, ids: &[u64]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    store.commit_blocking(
        ids.iter()
            .map(|&queue| Op::DropQueueMessages { queue })
            .collect(),
    )
}
