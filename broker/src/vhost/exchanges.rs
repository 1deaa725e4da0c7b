//! Exchange and binding operations of a vhost, with RabbitMQ's rules: the default exchange
//! cannot be declared, deleted or bound, `amq.` names are reserved, redeclarations must be
//! equivalent, bindings need both ends to exist (and a queue end this caller may use).
//!
//! As for queues (`queues.rs`), these are the calls every entry point makes.

use super::{yes_no, VHost};
use crate::auth::{Access, Caller, PublishCache, Resource};
use crate::error::{AmqpError, AmqpResult};
use crate::exchange::{Destination, Exchange, ExchangeKind};
use amqp_codec::types::FieldTable;
use std::sync::Arc;

/// An exchange as it is declared.
#[derive(Debug, Clone, Default)]
pub struct ExchangeSpec {
    /// Name.
    pub name: String,
    /// The declared type (`direct`, `topic`, `x-delayed-message`, ...).
    pub kind: String,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Cannot be published to directly.
    pub internal: bool,
    /// Declared arguments.
    pub arguments: FieldTable,
    /// Who declares it (shown as `user_who_performed_action`).
    pub declared_by: String,
}

/// A binding as it is asked for.
#[derive(Debug, Clone)]
pub struct BindingSpec {
    /// The source exchange.
    pub source: String,
    /// Where it leads.
    pub destination: Destination,
    /// Routing key.
    pub routing_key: String,
    /// Binding arguments.
    pub arguments: FieldTable,
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused("operation not permitted on the default exchange")
}

impl VHost {
    /// exchange.declare (not passive): creates the exchange, or checks that the existing one is
    /// equivalent.
    /// Checks in RabbitMQ 3.10's order: the type, the default exchange, configure on the
    /// exchange; for a new one the reserved `amq.` prefix and, with an `alternate-exchange`, read
    /// on the new exchange and write on the alternate.
    pub fn declare_exchange(
        &self,
        spec: &ExchangeSpec,
        caller: &Caller,
    ) -> AmqpResult<Arc<Exchange>> {
        let kind = crate::exchange::parse_declared_type(&spec.kind, &spec.arguments)?;
        let name = spec.name.as_str();
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        caller.check(Access::Configure, Resource::Exchange, name)?;
        if self.exchange(name).is_none() {
            if name.starts_with("amq.") {
                return Err(AmqpError::access_refused(format!(
                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
            let ae = spec.arguments.inner().get("alternate-exchange");
            if let Some(v) = ae.filter(|v| crate::args::as_str(v).is_none()) {
                // RabbitMQ takes only a string here, and says so before any permission check.
                return Err(AmqpError::precondition_failed(format!(
                    "invalid type '{}' for arg 'alternate-exchange' in exchange '{name}' in vhost '{}'",
                    crate::args::type_name(v),
                    self.name
                )));
            }
            if let Some(ae) = ae.and_then(crate::args::as_str) {
                caller.check(Access::Read, Resource::Exchange, name)?;
                caller.check(Access::Write, Resource::Exchange, &ae)?;
            }
        }
        let x = self.create_or_match_exchange(spec, kind)?;
        self.apply_policies_to_exchange(&x);
        Ok(x)
    }

    /// basic.publish: the exchange to route through, checked in RabbitMQ's order: write on it
    /// (403; the default exchange is `amq.default`), then existence (404), then for a topic
    /// exchange the caller's topic permission on the routing key.
    /// `cache` is the channel's (see `auth::PublishCache`).
    pub fn publish_target(
        &self,
        name: &str,
        routing_key: &str,
        caller: &Caller,
        cache: &mut PublishCache,
    ) -> AmqpResult<Arc<Exchange>> {
        caller.check_publish(name, false, routing_key, cache)?;
        let x = self.get_exchange(name)?;
        if x.kind == ExchangeKind::Topic {
            caller.check_publish(name, true, routing_key, cache)?;
        }
        Ok(x)
    }

    /// exchange.declare passive: 404 unless it exists (the default exchange always does).
    pub fn check_exchange(&self, name: &str) -> AmqpResult<()> {
        if !name.is_empty() {
            self.get_exchange(name)?;
        }
        Ok(())
    }

    /// exchange.delete: the default exchange and `amq.` ones cannot be deleted; deleting one that
    /// does not exist succeeds.
    pub fn delete_exchange_named(
        &self,
        name: &str,
        if_unused: bool,
        caller: &Caller,
    ) -> AmqpResult<()> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        caller.check(Access::Configure, Resource::Exchange, name)?;
        self.delete_exchange(name, if_unused)
    }

    /// queue.bind and exchange.bind: both ends must exist (a queue end usable by `caller`), and
    /// the default exchange takes no bindings.
    pub fn bind(&self, spec: &BindingSpec, caller: &Caller) -> AmqpResult<()> {
        let (source, dest) = self.binding_ends(spec, caller)?;
        let Some(source) = source else {
            return Err(self.no_exchange(&spec.source));
        };
        self.add_binding(&source, dest, &spec.routing_key, &spec.arguments)
    }

    /// queue.unbind and exchange.unbind: as [`VHost::bind`], except that unbinding a queue from
    /// an exchange that does not exist succeeds (RabbitMQ 3.10).
    pub fn unbind(&self, spec: &BindingSpec, caller: &Caller) -> AmqpResult<()> {
        let (source, dest) = self.binding_ends(spec, caller)?;
        match source {
            Some(source) => self.remove_binding(&source, &dest, &spec.routing_key, &spec.arguments),
            None if matches!(spec.destination, Destination::Queue(_)) => {}
            None => return Err(self.no_exchange(&spec.source)),
        }
        Ok(())
    }

    /// The ends of a binding, checked in RabbitMQ's order: the default exchange (403), then for a
    /// queue binding the queue (404/405) and the source (looked up; `None` if missing), for an
    /// exchange binding the source (404) and the destination (404).
    fn binding_ends(
        &self,
        spec: &BindingSpec,
        caller: &Caller,
    ) -> AmqpResult<(Option<Arc<Exchange>>, Destination)> {
        // RabbitMQ's order: write on the destination, the default exchange, read on the source,
        // then existence, then the topic permission on the binding key.
        let (kind, dest_name) = match &spec.destination {
            Destination::Queue(q) => (Resource::Queue, q),
            Destination::Exchange(x) => (Resource::Exchange, x),
        };
        caller.check(Access::Write, kind, dest_name)?;
        if spec.source.is_empty() || (kind == Resource::Exchange && dest_name.is_empty()) {
            return Err(default_exchange_refused());
        }
        caller.check(Access::Read, Resource::Exchange, &spec.source)?;
        if let Some(x) = self.exchange(&spec.source) {
            if x.kind == ExchangeKind::Topic {
                caller.check_topic(Access::Read, &x.name, &spec.routing_key)?;
            }
        }
        match &spec.destination {
            Destination::Queue(q) => {
                if spec.source.is_empty() {
                    return Err(default_exchange_refused());
                }
                let queue = self.usable_queue(q, caller)?;
                Ok((
                    self.exchange(&spec.source),
                    Destination::Queue(queue.name.clone()),
                ))
            }
            Destination::Exchange(x) => {
                if spec.source.is_empty() || x.is_empty() {
                    return Err(default_exchange_refused());
                }
                let source = self.get_exchange(&spec.source)?;
                self.get_exchange(x)?;
                Ok((Some(source), spec.destination.clone()))
            }
        }
    }

    /// exchange.declare (non-passive): creates, or checks equivalence with the existing one. `kind`
    /// is (routing kind, declared as x-delayed-message).
    fn create_or_match_exchange(
        &self,
        spec: &ExchangeSpec,
        (kind, delayed): (ExchangeKind, bool),
    ) -> AmqpResult<Arc<Exchange>> {
        let (name, durable, auto_delete, internal, arguments) = (
            spec.name.as_str(),
            spec.durable,
            spec.auto_delete,
            spec.internal,
            &spec.arguments,
        );
        let mut xs = self.xs_mut();
        if let Some(x) = xs.get(name) {
            let mismatch = |arg: &str, got: &str, cur: &str| {
                AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for exchange '{name}' in vhost '{}': received '{got}' but current is '{cur}'",
                    self.name
                ))
            };
            if x.kind != kind || x.delayed != delayed {
                let declared = if delayed {
                    crate::exchange::DELAYED_TYPE
                } else {
                    kind.name()
                };
                return Err(mismatch("type", declared, x.type_name()));
            }
            if x.durable != durable {
                return Err(mismatch("durable", yes_no(durable), yes_no(x.durable)));
            }
            if x.auto_delete != auto_delete {
                return Err(mismatch(
                    "auto_delete",
                    yes_no(auto_delete),
                    yes_no(x.auto_delete),
                ));
            }
            if x.internal != internal {
                return Err(mismatch("internal", yes_no(internal), yes_no(x.internal)));
            }
            crate::args::check_equivalence(
                &format!("exchange '{name}' in vhost '{}'", self.name),
                &x.arguments,
                arguments,
                ["alternate-exchange"],
            )?;
            return Ok(x.clone());
        }
        let mut x = Exchange::new(
            name.to_string(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments.clone(),
        )
        .with_declarer(&spec.declared_by);
        if delayed {
            x = x.with_delay();
        }
        let x = Arc::new(x);
        xs.insert(name.to_string(), x.clone());
        if durable {
            let mut writes = self.definitions();
            writes.put_exchange(&x);
            self.persist(writes);
        }
        Ok(x)
    }

    /// Deletes an exchange and its bindings (no name rule: see [`VHost::delete_exchange_named`]).
    pub(crate) fn delete_exchange(&self, name: &str, if_unused: bool) -> AmqpResult<()> {
        let x = {
            let mut xs = self.xs_mut();
            let Some(x) = xs.get(name) else {
                // RabbitMQ answers delete-ok for an exchange that does not exist.
                return Ok(());
            };
            if if_unused && x.binding_count() > 0 {
                return Err(AmqpError::precondition_failed(format!(
                    "exchange '{}' in vhost '{}' in use",
                    name, self.name
                )));
            }
            xs.remove(name).expect("present")
        };
        if x.durable {
            let mut writes = self.definitions();
            writes.delete_exchange(&x.name);
            for (dest, key, args) in x.bindings() {
                writes.delete_binding(&x.name, &dest, &key, &args);
            }
            self.persist(writes);
        }
        self.unbind_everywhere(&Destination::Exchange(x.name.clone()));
        Ok(())
    }

    /// True if `dest` survives a restart (so a binding to it from a durable exchange is stored).
    fn is_durable(&self, dest: &Destination) -> bool {
        match dest {
            Destination::Queue(q) => self.queue(q).is_some_and(|q| q.keeps_definition()),
            Destination::Exchange(x) => self.exchange(x).is_some_and(|x| x.durable),
        }
    }

    /// Adds a binding, storing it when both ends are durable.
    fn add_binding(
        &self,
        source: &Exchange,
        dest: Destination,
        key: &str,
        args: &FieldTable,
    ) -> AmqpResult<()> {
        let durable = source.durable && self.is_durable(&dest);
        source.bind(dest.clone(), key, args)?;
        if durable {
            let mut writes = self.definitions();
            writes.put_binding(&source.name, &dest, key, args);
            self.persist(writes);
        }
        Ok(())
    }

    /// Removes a binding (and its stored copy); auto-deletes the source if it was its last.
    fn remove_binding(&self, source: &Exchange, dest: &Destination, key: &str, args: &FieldTable) {
        if source.unbind(dest, key, args) {
            if source.durable {
                let mut writes = self.definitions();
                writes.delete_binding(&source.name, dest, key, args);
                self.persist(writes);
            }
            self.auto_delete_exchange_if_unused(source);
        }
    }
}
