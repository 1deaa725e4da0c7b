//! Queue operations of a vhost, with every rule RabbitMQ applies to them: declare (reserved names,
//! argument validation, quorum properties, equivalence with an existing queue, exclusivity),
//! lookup for use by a connection, delete (`if-unused`, `if-empty`) and purge.
//!
//! These are the calls every entry point makes: the AMQP channel handlers translate methods into
//! them, and definitions import, the HTTP API and permission checks are to use the same ones.

use super::{yes_no, VHost};
use crate::auth::{Access, Caller, Resource};
use crate::error::{AmqpError, AmqpResult};
use crate::persist::QueueStore;
use crate::queue::{Queue, QueueArgs, QueueOwner, QueueSpec, QueueType};
use amqp_codec::types::FieldTable;
use rand::Rng;
use std::sync::Arc;

/// What a declare did.
#[derive(Debug)]
pub struct Declared {
    /// The queue, new or existing.
    pub queue: Arc<Queue>,
    /// It was created by this declare.
    pub created: bool,
}

/// Which delete `queue.delete` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteIf {
    /// Only if it has no consumers.
    pub unused: bool,
    /// Only if it has no ready messages.
    pub empty: bool,
}

/// RabbitMQ takes a missing `x-queue-type` and `classic` as the same on redeclaration: drops a
/// `classic` that only one side states.
fn classic_by_default(current: &FieldTable, new: &FieldTable) -> (FieldTable, FieldTable) {
    let classic = |t: &FieldTable| {
        t.inner()
            .get("x-queue-type")
            .and_then(crate::args::as_str)
            .is_some_and(|s| s == "classic")
    };
    let without = |t: &FieldTable| {
        let mut m = t.inner().clone();
        m.remove("x-queue-type");
        FieldTable::from(m)
    };
    let has = |t: &FieldTable| t.contains_key("x-queue-type");
    match (has(current), has(new)) {
        (true, false) if classic(current) => (without(current), new.clone()),
        (false, true) if classic(new) => (current.clone(), without(new)),
        _ => (current.clone(), new.clone()),
    }
}

/// A server-generated name: `prefix-` and 22 URL-safe base64 characters, like RabbitMQ's
/// (`amq.gen` for queues, `amq.ctag` for consumer tags).
pub(crate) fn generated_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::thread_rng();
    let suffix: String = (0..22)
        .map(|_| ALPHABET[rng.gen_range(0..64)] as char)
        .collect();
    format!("{prefix}-{suffix}")
}

/// `RESOURCE_LOCKED` for a queue that is another connection's exclusive queue.
fn locked(q: &Queue) -> AmqpError {
    crate::reply_text::queue_locked(&q.vhost, &q.name)
}

/// 405 unless the queue is not exclusive or is owned by `caller`'s connection (`None` for
/// callers that are no connection, which may use any queue).
pub(crate) fn check_exclusive(q: &Queue, caller: &Caller) -> AmqpResult<()> {
    match (q.exclusive_owner, caller.connection) {
        (Some(owner), Some(me)) if owner != me => Err(locked(q)),
        _ => Ok(()),
    }
}

impl VHost {
    /// basic.consume, basic.get: a queue `caller` may read: 403 without read permission, then
    /// as [`VHost::usable_queue`].
    pub fn readable_queue(&self, name: &str, caller: &Caller) -> AmqpResult<Arc<Queue>> {
        caller.check(Access::Read, Resource::Queue, name)?;
        self.usable_queue(name, caller)
    }

    /// Looks up a queue that `caller` may use: 404 if missing, 405 if another connection's
    /// exclusive queue. (No permission check: passive declares need none.)
    pub fn usable_queue(&self, name: &str, caller: &Caller) -> AmqpResult<Arc<Queue>> {
        let q = self.queue(name).ok_or_else(|| self.no_queue(name))?;
        check_exclusive(&q, caller)?;
        Ok(q)
    }

    /// queue.declare (not passive): creates the queue, or checks that the existing one is
    /// equivalent. An empty name asks for a server-generated one; a name of the reserved
    /// `amq.` family is refused. `caller` is the declaring connection (the owner if `spec` is
    /// exclusive).
    ///
    /// The existence check, the store id allocation and the insertion happen under the vhost's
    /// queue lock, so a concurrent delete can never leave a durable queue without its store.
    pub fn declare_queue(
        self: &Arc<Self>,
        mut spec: QueueSpec,
        caller: &Caller,
    ) -> AmqpResult<Declared> {
        if spec.name.is_empty() {
            spec.name = generated_name("amq.gen");
        } else if spec.name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "queue name '{}' contains reserved prefix 'amq.*'",
                spec.name
            )));
        }
        // RabbitMQ checks a server-named queue's generated name.
        caller.check(Access::Configure, Resource::Queue, &spec.name)?;
        let what = format!("queue '{}' in vhost '{}'", spec.name, self.name);
        let args = QueueArgs::parse(&spec.arguments, &what)?;
        if args.queue_type == QueueType::Quorum {
            // Quorum queues are durable, shared and long-lived (RabbitMQ's checks, in order).
            for (bad, property) in [
                (spec.auto_delete, "auto-delete"),
                (spec.exclusive_owner.is_some(), "exclusive-owner"),
                (!spec.durable, "non-durable"),
            ] {
                if bad {
                    return Err(AmqpError::precondition_failed(format!(
                        "invalid property '{property}' for {what}"
                    )));
                }
            }
        }
        if self.queue(&spec.name).is_none() {
            // Dead-lettering from a new queue: read on it, write on the target (RabbitMQ 3.10).
            if let Some(dlx) = &args.dlx {
                caller.check(Access::Read, Resource::Queue, &spec.name)?;
                caller.check(Access::Write, Resource::Exchange, dlx)?;
            }
        }
        let mut qs = self.qs_mut();
        if let Some(existing) = qs.get(&spec.name) {
            let existing = existing.clone();
            drop(qs);
            Self::check_equivalent(&existing, &spec, caller)?;
            crate::metrics::COUNTERS.queues_declared.inc();
            return Ok(Declared {
                queue: existing,
                created: false,
            });
        }
        let max = self.max_queues.load(std::sync::atomic::Ordering::Acquire);
        if qs.len() as u64 >= max {
            return Err(crate::reply_text::queue_limit(&spec.name, &self.name, max));
        }
        // Every queue may page a backlog out to the store; only durable, non-exclusive ones keep
        // their definition and persistent messages there (see `Queue::keeps_definition`).
        let store = QueueStore {
            store: self.store.clone(),
            id: self.store.allocate_queue_ids(args.lanes() as u64),
            budget: self.budget,
        };
        let owner = Arc::downgrade(self);
        let owner: std::sync::Weak<dyn QueueOwner> = owner;
        let q = Arc::new(Queue::new(spec, self.name.clone(), args, store, owner));
        qs.insert(q.name.clone(), q.clone());
        if q.keeps_definition() {
            // Submitted under the lock: a delete that follows writes its removal after this.
            let mut writes = self.definitions();
            writes.put_queue(&q.name, q.store.id, q.auto_delete, &q.arguments);
            self.persist(writes);
        }
        drop(qs);
        self.apply_policies_to_queue(&q);
        crate::metrics::COUNTERS.queues_declared.inc();
        crate::metrics::COUNTERS.queues_created.inc();
        Ok(Declared {
            queue: q,
            created: true,
        })
    }

    /// The equivalence rules of a redeclaration, in RabbitMQ's order.
    fn check_equivalent(existing: &Queue, spec: &QueueSpec, caller: &Caller) -> AmqpResult<()> {
        check_exclusive(existing, caller)?;
        if existing.exclusive_owner.is_some() != spec.exclusive_owner.is_some() {
            return Err(locked(existing));
        }
        let mismatch = |arg: &str, got: bool, cur: bool| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received '{}' but current is '{}'",
                existing.name,
                existing.vhost,
                yes_no(got),
                yes_no(cur)
            ))
        };
        if existing.durable != spec.durable {
            return Err(mismatch("durable", spec.durable, existing.durable));
        }
        if existing.auto_delete != spec.auto_delete {
            return Err(mismatch(
                "auto_delete",
                spec.auto_delete,
                existing.auto_delete,
            ));
        }
        let (current, new) = classic_by_default(&existing.arguments, &spec.arguments);
        crate::args::check_equivalence(
            &format!("queue '{}' in vhost '{}'", existing.name, existing.vhost),
            &current,
            &new,
            crate::queue::equivalence_args(),
        )
    }

    /// queue.delete by name: deleting a queue that does not exist succeeds (0 messages), as in
    /// RabbitMQ. Returns the number of ready messages dropped.
    pub fn delete_queue_named(
        &self,
        name: &str,
        caller: &Caller,
        only_if: DeleteIf,
    ) -> AmqpResult<(Option<Arc<Queue>>, u32)> {
        caller.check(Access::Configure, Resource::Queue, name)?;
        let Some(queue) = self.queue(name) else {
            return Ok((None, 0));
        };
        check_exclusive(&queue, caller)?;
        let (ready, consumers) = queue.counts();
        if only_if.unused && consumers > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{}' in vhost '{}' in use",
                queue.name, queue.vhost
            )));
        }
        if only_if.empty && ready > 0 {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{}' in vhost '{}' not empty",
                queue.name, queue.vhost
            )));
        }
        let n = self.delete_queue(&queue);
        Ok((Some(queue), n))
    }

    /// queue.purge: drops the queue's ready messages (not those delivered and unacked); returns
    /// how many. 404 if missing, 405 if another connection's exclusive queue.
    pub fn purge_queue(&self, name: &str, caller: &Caller) -> AmqpResult<u32> {
        Ok(self.readable_queue(name, caller)?.purge())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::Budget;
    use storage::{Store, StoreConfig};

    fn vhost() -> (tempfile::TempDir, Arc<VHost>) {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            sync: false,
            ..Default::default()
        };
        let store = Arc::new(Store::open(dir.path(), config).unwrap());
        (dir, Arc::new(VHost::new("/", store, Budget::default(), "")))
    }

    fn durable(name: &str) -> QueueSpec {
        QueueSpec {
            name: name.into(),
            durable: true,
            ..Default::default()
        }
    }

    /// A durable queue declared while another caller deletes it always ends up with its store
    /// and its definition record, and a deleted one leaves none. (Before the declare allocated
    /// its store under the vhost's lock, a declare that saw the queue, then lost it to a delete,
    /// inserted a queue with no store: no definition written, no message stored.)
    #[test]
    fn a_declare_racing_a_delete_never_leaves_a_queue_without_its_definition() {
        use std::sync::Barrier;
        let (_dir, v) = vhost();
        let rounds = 1000;
        // Each round the declarer and the deleter start at once; the test checks in between.
        let start = Arc::new(Barrier::new(3));
        let end = Arc::new(Barrier::new(3));
        let spawn = |f: Box<dyn Fn() + Send>| {
            let (start, end) = (start.clone(), end.clone());
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    start.wait();
                    f();
                    end.wait();
                }
            })
        };
        let v1 = v.clone();
        let declarer = spawn(Box::new(move || {
            v1.declare_queue(durable("q"), &Caller::internal()).unwrap();
        }));
        let v2 = v.clone();
        let deleter = spawn(Box::new(move || {
            v2.delete_queue_named("q", &Caller::internal(), DeleteIf::default())
                .unwrap();
        }));
        for round in 0..rounds {
            start.wait();
            end.wait();
            v.store().commit_blocking(vec![]).unwrap();
            let stored = v.store().recover().unwrap();
            let def = stored.queues.iter().find(|r| r.def.name == "q");
            match v.queue("q") {
                Some(q) => {
                    assert!(
                        def.is_some(),
                        "round {round}: queue in the vhost, not in the store"
                    );
                    assert_eq!(def.unwrap().def.id, q.store.id, "round {round}: store id");
                }
                None => assert!(
                    def.is_none(),
                    "round {round}: deleted queue still in the store"
                ),
            }
        }
        declarer.join().unwrap();
        deleter.join().unwrap();
    }

    #[test]
    fn reserved_and_generated_names() {
        let (_dir, v) = vhost();
        let e = v
            .declare_queue(durable("amq.mine"), &Caller::internal())
            .unwrap_err();
        assert_eq!(
            e.reply_text(),
            "ACCESS_REFUSED - queue name 'amq.mine' contains reserved prefix 'amq.*'"
        );
        let d = v.declare_queue(durable(""), &Caller::internal()).unwrap();
        assert!(d.created);
        assert!(d.queue.name.starts_with("amq.gen-") && d.queue.name.len() == 30);
    }

    #[test]
    fn another_connections_exclusive_queue_is_locked() {
        let (_dir, v) = vhost();
        let spec = QueueSpec {
            name: "x".into(),
            exclusive_owner: Some(1),
            ..Default::default()
        };
        v.declare_queue(spec.clone(), &Caller::connection(1))
            .unwrap();
        let e = v.usable_queue("x", &Caller::connection(2)).unwrap_err();
        assert_eq!(e.code.code(), 405);
        assert!(v.usable_queue("x", &Caller::connection(1)).is_ok());
        // Callers that are no connection (definitions, the HTTP API) may use it.
        assert!(v.usable_queue("x", &Caller::internal()).is_ok());
    }
}
