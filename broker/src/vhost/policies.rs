//! A vhost's policies and operator policies: kept here, stored as access records, and applied
//! to the vhost's queues and exchanges at once when they change, and to each new one as it is
//! declared. Which policy applies and what it means are `crate::policy`'s rules.

use super::VHost;
use crate::exchange::Exchange;
use crate::persist::{AccessRecord, AccessWrites};
use crate::policy::{Kind, Policies, Policy};
use crate::queue::Queue;
use std::sync::Arc;

/// Both kinds of a vhost's policies.
#[derive(Debug, Default)]
pub(crate) struct PolicySet {
    policies: Policies,
    operator: Policies,
}

impl PolicySet {
    fn of(&self, kind: Kind) -> &Policies {
        match kind {
            Kind::Policy => &self.policies,
            Kind::Operator => &self.operator,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut Policies {
        match kind {
            Kind::Policy => &mut self.policies,
            Kind::Operator => &mut self.operator,
        }
    }
}

/// RabbitMQ's runtime-parameter component of a kind (also the stored record's).
pub(crate) fn component(kind: Kind) -> &'static str {
    match kind {
        Kind::Policy => "policy",
        Kind::Operator => "operator_policy",
    }
}

fn record(kind: Kind, p: &Policy) -> AccessRecord {
    AccessRecord::Policy {
        component: component(kind).into(),
        vhost: p.vhost.clone(),
        name: p.name.clone(),
        pattern: p.pattern.clone(),
        apply_to: p.apply_to.as_str().into(),
        definition: serde_json::Value::Object(p.definition.clone()),
        priority: serde_json::Value::Number(p.priority.clone()),
    }
}

impl VHost {
    fn policy_set(&self) -> std::sync::RwLockReadGuard<'_, PolicySet> {
        self.policies.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The policies of one kind, by name.
    pub fn policies(&self, kind: Kind) -> Vec<Policy> {
        self.policy_set().of(kind).all().to_vec()
    }

    /// Adds or replaces a policy, stores it and applies the vhost's policies again. True if it
    /// is new.
    pub fn set_policy(&self, kind: Kind, p: Policy) -> bool {
        let mut w = AccessWrites::default();
        w.put(&record(kind, &p));
        let created = {
            let mut set = self.policies.write().unwrap_or_else(|e| e.into_inner());
            let created = set.of_mut(kind).put(p);
            // Submitted under the lock: writes of the same policy reach the store in order.
            w.submit(&self.store);
            created
        };
        self.apply_policies();
        created
    }

    /// Removes a policy (false if there is none of that name) and applies the rest again.
    pub fn clear_policy(&self, kind: Kind, name: &str) -> bool {
        let removed = {
            let mut set = self.policies.write().unwrap_or_else(|e| e.into_inner());
            let Some(p) = set.of(kind).all().iter().find(|p| p.name == name).cloned() else {
                return false;
            };
            set.of_mut(kind).remove(name);
            let mut w = AccessWrites::default();
            w.delete(&record(kind, &p));
            w.submit(&self.store);
            true
        };
        self.apply_policies();
        removed
    }

    /// Deletes every stored policy of the vhost (the vhost is being deleted).
    pub(crate) fn forget_policies(&self) {
        let set = self.policy_set();
        let mut w = AccessWrites::default();
        for kind in [Kind::Policy, Kind::Operator] {
            for p in set.of(kind).all() {
                w.delete(&record(kind, p));
            }
        }
        w.submit(&self.store);
    }

    /// Puts back a stored policy (recovery; applied by [`VHost::apply_policies`] once the
    /// queues and exchanges are back).
    pub(crate) fn restore_policy(&self, kind: Kind, p: Policy) {
        self.policies
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .of_mut(kind)
            .put(p);
    }

    /// The policy and the operator policy that apply to a queue (`queue`) or exchange.
    pub fn policies_for(&self, name: &str, queue: bool) -> (Option<Policy>, Option<Policy>) {
        let set = self.policy_set();
        (
            set.policies.applying(name, queue).cloned(),
            if queue {
                set.operator.applying(name, true).cloned()
            } else {
                // Operator policies never show on (or act on) exchanges.
                None
            },
        )
    }

    /// Applies the policies in force to one queue.
    pub(crate) fn apply_policies_to_queue(&self, q: &Arc<Queue>) {
        let (policy, operator) = self.policies_for(&q.name, true);
        let settings = match (&policy, &operator) {
            (None, None) => None,
            (p, o) => {
                let p = p.as_ref().map(Policy::queue_settings).unwrap_or_default();
                let o = o.as_ref().map(Policy::queue_settings).unwrap_or_default();
                Some(p.with_operator(&o))
            }
        };
        q.apply_policies(settings.as_ref());
    }

    /// Applies the policies in force to one exchange.
    pub(crate) fn apply_policies_to_exchange(&self, x: &Exchange) {
        let (policy, _) = self.policies_for(&x.name, false);
        x.set_policy_alternate(
            policy
                .as_ref()
                .and_then(|p| p.alternate_exchange())
                .map(str::to_string),
        );
    }

    /// Applies the policies in force to every queue and exchange of the vhost.
    pub fn apply_policies(&self) {
        for q in self.queues() {
            self.apply_policies_to_queue(&q);
        }
        for x in self.exchanges() {
            self.apply_policies_to_exchange(&x);
        }
    }
}
