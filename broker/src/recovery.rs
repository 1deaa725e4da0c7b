//! Start-up: rebuilds durable exchanges, queues, bindings and messages from the store.
//!
//! Definitions and per-queue counters are read without scanning messages, and no message is read:
//! each durable queue's stored messages start out paged (see `queue/backlog.rs`), so start-up time
//! and memory do not grow with the backlog.

use crate::broker::Broker;
use crate::exchange::{Destination, Exchange};
use crate::persist::{AccessRecord, QueueStore};
use crate::queue::{Queue, QueueArgs, QueueSpec};
use amqp_codec::types::FieldTable;
use std::sync::Arc;
use std::time::Instant;
use storage::StoreError;
use tracing::{info, warn};

fn table(bytes: &[u8]) -> FieldTable {
    if bytes.is_empty() {
        return FieldTable::default();
    }
    amqp_codec::types::parsing::parse_field_table(bytes)
        .map(|(_, t)| t)
        .unwrap_or_default()
}

/// What was recovered.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RecoveryStats {
    /// Durable exchanges.
    pub exchanges: usize,
    /// Durable queues.
    pub queues: usize,
    /// Bindings.
    pub bindings: usize,
    /// Messages.
    pub messages: u64,
}

/// Rebuilds the broker's durable state from its store. Blocking: call before serving.
pub(crate) fn recover(broker: &Broker) -> Result<RecoveryStats, StoreError> {
    let started = Instant::now();
    let store = broker.store.clone();
    let r = store.recover()?;
    let access: Vec<AccessRecord> = r
        .access
        .iter()
        .filter_map(|v| AccessRecord::decode(v))
        .collect();
    let policies: Vec<AccessRecord> = access
        .iter()
        .filter(|a| matches!(a, AccessRecord::Policy { .. }))
        .cloned()
        .collect();
    if broker.access.restore(access) {
        for info in broker.access.vhosts() {
            broker.add_vhost(info);
        }
    } else {
        info!(
            "first start: creating user '{}' and vhost '{}'",
            broker.config.default_user, broker.config.default_vhost
        );
        broker.make_defaults();
    }
    let mut stats = RecoveryStats::default();
    for x in r.exchanges {
        let arguments = table(&x.arguments);
        let (Some(vhost), Ok((kind, delayed))) = (
            broker.vhost(&x.vhost),
            crate::exchange::parse_declared_type(&x.kind, &arguments),
        ) else {
            warn!(
                "skipping stored exchange '{}' in vhost '{}': unknown vhost or type",
                x.name, x.vhost
            );
            continue;
        };
        let mut restored = Exchange::new(x.name, kind, true, x.auto_delete, x.internal, arguments)
            .with_declarer(&x.declared_by);
        if delayed {
            restored = restored.with_delay();
        }
        vhost.restore_exchange(restored);
        stats.exchanges += 1;
    }
    // Store ids in use: every lane of every durable queue, and the delayed messages.
    let mut kept_ids: Vec<u64> = broker
        .vhosts()
        .iter()
        .map(|v| v.delayed.area_id())
        .collect();
    for rq in r.queues {
        let Some(vhost) = broker.vhost(&rq.def.vhost) else {
            warn!(
                "skipping stored queue '{}': unknown vhost '{}'",
                rq.def.name, rq.def.vhost
            );
            continue;
        };
        let persist = QueueStore {
            store: store.clone(),
            id: rq.def.id,
            budget: broker.config.queue_budget(),
        };
        let arguments = table(&rq.def.arguments);
        let what = format!("queue '{}' in vhost '{}'", rq.def.name, rq.def.vhost);
        let args = QueueArgs::parse(&arguments, &what).unwrap_or_else(|e| {
            warn!(
                "stored {what} has arguments that no longer validate ({}); ignoring them",
                e.explanation
            );
            QueueArgs::default()
        });
        let lanes = args.lanes() as u64;
        store.reserve_queue_ids(rq.def.id + lanes - 1);
        // Lane 0's state came with the definition; a priority queue's other lanes have their own
        // ids.
        let mut states = vec![storage::QueueState {
            count: rq.count,
            bytes: rq.bytes,
            delivered: rq.delivered,
            head: rq.head,
            tail: rq.tail,
        }];
        for lane in 1..lanes {
            states.push(store.queue_state(rq.def.id + lane)?);
        }
        let spec = QueueSpec {
            name: rq.def.name.clone(),
            durable: true,
            exclusive_owner: None,
            auto_delete: rq.def.auto_delete,
            arguments,
        };
        let owner = Arc::downgrade(&vhost);
        let owner: std::sync::Weak<dyn crate::queue::QueueOwner> = owner;
        let q = vhost.restore_queue(Queue::new(spec, rq.def.vhost.clone(), args, persist, owner));
        // Nothing is read: the stored messages start out paged and are read back as consumers
        // need them.
        stats.messages += states.iter().map(|s| s.count).sum::<u64>();
        q.restore(&states);
        q.touch();
        kept_ids.extend(q.store_ids());
        stats.queues += 1;
    }
    // Pages of queues that did not survive (non-durable or exclusive, or deleted while their drop
    // was not yet written): dropped now, in the store's order, before anything new is written.
    kept_ids.sort_unstable();
    let orphans: Vec<u64> = store
        .stored_queue_ids()?
        .into_iter()
        .filter(|id| kept_ids.binary_search(id).is_err())
        .collect();
    if !orphans.is_empty() {
        info!(
            "dropping the paged messages of {} queue(s) that did not survive",
            orphans.len()
        );
        crate::persist::drop_unkept_queues(&store, &orphans)?;
    }
    for b in r.bindings {
        let Some(vhost) = broker.vhost(&b.vhost) else {
            continue;
        };
        let Some(source) = vhost.exchange(&b.source) else {
            warn!(
                "skipping stored binding from missing exchange '{}'",
                b.source
            );
            continue;
        };
        let dest = if b.to_exchange {
            Destination::Exchange(b.destination)
        } else {
            Destination::Queue(b.destination)
        };
        if source
            .bind(dest, &b.routing_key, &table(&b.arguments))
            .is_ok()
        {
            stats.bindings += 1;
        }
    }
    restore_policies(broker, policies);
    info!(
        "recovered {} exchange(s), {} queue(s) with {} message(s), {} binding(s) in {} ms",
        stats.exchanges,
        stats.queues,
        stats.messages,
        stats.bindings,
        started.elapsed().as_millis()
    );
    Ok(stats)
}

/// Puts back the stored policies, then applies them to the recovered queues and exchanges.
fn restore_policies(broker: &Broker, records: Vec<AccessRecord>) {
    use crate::policy::{Kind, Policy};
    for r in records {
        let AccessRecord::Policy {
            component,
            vhost,
            name,
            pattern,
            apply_to,
            definition,
            priority,
        } = r
        else {
            continue;
        };
        let kind = if component == "operator_policy" {
            Kind::Operator
        } else {
            Kind::Policy
        };
        let parsed = Policy::new(
            kind,
            &vhost,
            &name,
            &serde_json::Value::String(pattern),
            &definition,
            Some(&serde_json::Value::String(apply_to)),
            Some(&priority),
        );
        match (broker.vhost(&vhost), parsed) {
            (Some(v), Ok(p)) => v.restore_policy(kind, p),
            (_, Err(why)) => warn!("skipping stored policy '{name}' in vhost '{vhost}': {why}"),
            (None, _) => warn!("skipping stored policy '{name}': unknown vhost '{vhost}'"),
        }
    }
    for v in broker.vhosts() {
        v.apply_policies();
    }
}
