//! A queue's effective settings: what its arguments and the policies that apply to it say, with
//! RabbitMQ's rule of which wins per key written once, here.
//!
//! Held in the queue's state (under its lock), so that a policy can change them at run time
//! ([`Queue::apply_policies`]). Declared-only properties (queue type, priorities, single active
//! consumer) stay in [`QueueArgs`].
//!
//! The rule, as RabbitMQ 3.10 classic queues apply it (`rabbit_amqqueue_process`'s argument
//! table): for `message-ttl`, `expires`, `max-length`, `max-length-bytes` (and `delivery-limit`
//! and `consumer-timeout`) the lower of the argument and the policy wins; for
//! `dead-letter-exchange`, `dead-letter-routing-key` and `overflow` the argument wins, the policy
//! filling in only what the arguments leave unset. An operator policy is merged into the policy
//! first: where both set a numeric key, the lower value.

use super::args::{Overflow, QueueArgs};
use super::{Queue, NO_TIMEOUT};
use std::sync::Arc;

/// What a policy definition sets for a queue (`None`: not set by it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySettings {
    /// `message-ttl` (ms).
    pub message_ttl: Option<u64>,
    /// `expires` (ms).
    pub expires: Option<u64>,
    /// `max-length`.
    pub max_length: Option<u64>,
    /// `max-length-bytes`.
    pub max_length_bytes: Option<u64>,
    /// `overflow`.
    pub overflow: Option<Overflow>,
    /// `dead-letter-exchange`.
    pub dlx: Option<String>,
    /// `dead-letter-routing-key`.
    pub dlrk: Option<String>,
    /// `delivery-limit`.
    pub delivery_limit: Option<u64>,
    /// `consumer-timeout` (ms).
    pub consumer_timeout: Option<u64>,
}

/// The settings in force for a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Per-queue message TTL (ms).
    pub message_ttl: Option<u64>,
    /// Delete the queue after this long unused (ms).
    pub expires: Option<u64>,
    /// Length limit in messages.
    pub max_length: Option<u64>,
    /// Length limit in body bytes.
    pub max_length_bytes: Option<u64>,
    /// What a publish into a full queue does.
    pub overflow: Overflow,
    /// Dead-letter exchange.
    pub dlx: Option<String>,
    /// Dead-letter routing key.
    pub dlrk: Option<String>,
    /// Returns after which a message is dead-lettered.
    pub delivery_limit: Option<u64>,
    /// How long a delivery may stay unacknowledged (ms).
    pub consumer_timeout: Option<u64>,
}

/// The lower of two optional limits (either alone if the other is unset).
fn lower(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl PolicySettings {
    /// A policy with an operator policy merged in: the lower value where both set a limit.
    pub fn with_operator(&self, operator: &PolicySettings) -> PolicySettings {
        PolicySettings {
            message_ttl: lower(self.message_ttl, operator.message_ttl),
            expires: lower(self.expires, operator.expires),
            max_length: lower(self.max_length, operator.max_length),
            max_length_bytes: lower(self.max_length_bytes, operator.max_length_bytes),
            overflow: self.overflow.or(operator.overflow),
            dlx: self.dlx.clone(),
            dlrk: self.dlrk.clone(),
            delivery_limit: lower(self.delivery_limit, operator.delivery_limit),
            consumer_timeout: lower(self.consumer_timeout, operator.consumer_timeout),
        }
    }
}

impl Settings {
    /// The settings of a queue declared with `args`, under `policy` (with any operator policy
    /// already merged in: [`PolicySettings::with_operator`]).
    pub fn resolve(args: &QueueArgs, policy: &PolicySettings) -> Settings {
        Settings {
            message_ttl: lower(args.message_ttl, policy.message_ttl),
            expires: lower(args.expires, policy.expires),
            max_length: lower(args.max_length, policy.max_length),
            max_length_bytes: lower(args.max_length_bytes, policy.max_length_bytes),
            overflow: args.overflow.or(policy.overflow).unwrap_or_default(),
            dlx: args.dlx.clone().or_else(|| policy.dlx.clone()),
            dlrk: args.dlrk.clone().or_else(|| policy.dlrk.clone()),
            delivery_limit: lower(args.delivery_limit, policy.delivery_limit),
            consumer_timeout: lower(args.consumer_timeout, policy.consumer_timeout),
        }
    }

    /// The settings from arguments alone (no policy applies).
    pub fn from_args(args: &QueueArgs) -> Settings {
        Settings::resolve(args, &PolicySettings::default())
    }

    /// True if the queue has a length limit.
    pub fn is_bounded(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }
}

impl Queue {
    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.lock().settings.clone()
    }

    /// Applies the policies that now match the queue (`None`: none does): recomputes its
    /// settings and acts on them at once, as RabbitMQ does (a lower length limit drops from the
    /// head, a TTL expires what is due, `expires` restarts its timer).
    pub fn apply_policies(self: &Arc<Self>, policy: Option<&PolicySettings>) {
        let dead = {
            let mut st = self.lock();
            let settings =
                Settings::resolve(&self.args, policy.unwrap_or(&PolicySettings::default()));
            if settings == st.settings {
                return;
            }
            st.settings = settings;
            self.consumer_timeout.store(
                st.settings.consumer_timeout.unwrap_or(NO_TIMEOUT),
                std::sync::atomic::Ordering::Relaxed,
            );
            if st.settings.message_ttl.is_some() {
                st.may_expire = true;
            }
            self.after_arrival(&mut st);
            // A new lower limit trims what is there at once, whatever the overflow behaviour
            // (RabbitMQ drops from the head even for reject-publish).
            if st.settings.is_bounded() {
                self.drop_head_locked(&mut st);
            }
            std::mem::take(&mut st.dead)
        };
        self.route_dead(dead);
        self.touch();
    }
}

impl Queue {
    /// The consumer timeout in force (ms), if the queue sets one. Takes no lock: channels ask
    /// while holding their deliveries lock (see the field's doc).
    pub fn consumer_timeout(&self) -> Option<u64> {
        let t = self
            .consumer_timeout
            .load(std::sync::atomic::Ordering::Relaxed);
        (t != NO_TIMEOUT).then_some(t)
    }
}
