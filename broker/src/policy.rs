//! Policies and operator policies: named, prioritised regex patterns over queue and exchange
//! names whose definitions set what clients did not (or, for operator policies, cap what they
//! did), as RabbitMQ 3.10 has them (docs/rabbitmq-policies-observed.md).
//!
//! This module holds the rules every entry point shares (the management API, `warren ctl`,
//! definitions import): validation with RabbitMQ's words, which policy applies to an object (the
//! highest priority among those whose `apply-to` and pattern fit, wholly, definitions never
//! merged), and what a definition means for a queue. The vhost keeps its policies and applies
//! them to its queues and exchanges (`vhost::policies`); the queue merges them with its
//! arguments (`queue::settings`).

use crate::queue::{Overflow, PolicySettings};
use regex::Regex;
use serde_json::{Map, Number, Value};

/// Policies, or operator policies (separate namespaces, different keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/api/policies`, `rabbitmqctl set_policy`.
    Policy,
    /// `/api/operator-policies`, `rabbitmqctl set_operator_policy`.
    Operator,
}

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    /// Queues only.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Both.
    All,
}

impl ApplyTo {
    /// RabbitMQ's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }

    fn fits(self, queue: bool) -> bool {
        match self {
            ApplyTo::All => true,
            ApplyTo::Queues => queue,
            ApplyTo::Exchanges => !queue,
        }
    }
}

/// One policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its vhost.
    pub vhost: String,
    /// Its name.
    pub name: String,
    /// The pattern as given.
    pub pattern: String,
    regex: Regex,
    /// What it applies to.
    pub apply_to: ApplyTo,
    /// The definition, keys sorted (as RabbitMQ shows it).
    pub definition: Map<String, Value>,
    /// The priority as given (RabbitMQ keeps `1.5` and `-3` as they are).
    pub priority: Number,
}

/// Keys a policy may set (RabbitMQ 3.10 with its bundled plugins off: classic, quorum and
/// stream queue keys, exchange keys, and the mirroring keys it still validates).
const POLICY_KEYS: &[&str] = &[
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "delivery-limit",
    "expires",
    "ha-mode",
    "ha-params",
    "ha-promote-on-failure",
    "ha-promote-on-shutdown",
    "ha-sync-batch-size",
    "ha-sync-mode",
    "initial-cluster-size",
    "max-age",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-leader-locator",
    "queue-master-locator",
    "queue-mode",
    "queue-version",
    "stream-max-segment-size-bytes",
    "target-group-size",
    "consumer-timeout",
];

/// Keys an operator policy may set.
const OPERATOR_KEYS: &[&str] = &[
    "delivery-limit",
    "expires",
    "max-in-memory-bytes",
    "max-in-memory-length",
    "max-length",
    "max-length-bytes",
    "message-ttl",
];

/// A value as Erlang prints it in RabbitMQ's messages: strings as `<<"x">>`.
fn erl(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        other => other.to_string(),
    }
}

fn non_negative(v: &Value) -> Option<u64> {
    v.as_u64()
}

/// Checks one key's value; RabbitMQ's reason if it is wrong.
fn check_value(key: &str, v: &Value) -> Result<(), String> {
    let bad = |what: &str| Err(format!("{} is not a valid {what}", erl(v)));
    match key {
        "message-ttl" => non_negative(v).map_or_else(|| bad("message TTL"), |_| Ok(())),
        "max-length" => non_negative(v).map_or_else(|| bad("maximum length"), |_| Ok(())),
        "max-length-bytes" => {
            non_negative(v).map_or_else(|| bad("maximum length in bytes"), |_| Ok(()))
        }
        "expires" => match v.as_u64() {
            Some(n) if n >= 1 => Ok(()),
            _ => bad("queue expiry"),
        },
        "delivery-limit" => non_negative(v).map_or_else(|| bad("delivery limit"), |_| Ok(())),
        "consumer-timeout" => non_negative(v).map_or_else(|| bad("consumer timeout"), |_| Ok(())),
        "max-in-memory-length" | "max-in-memory-bytes" => {
            non_negative(v).map_or_else(|| bad("maximum length"), |_| Ok(()))
        }
        "overflow" => match v.as_str() {
            Some("drop-head" | "reject-publish" | "reject-publish-dlx") => Ok(()),
            _ => bad("overflow value"),
        },
        "dead-letter-exchange" => match v {
            Value::String(_) => Ok(()),
            _ => bad("dead letter exchange name"),
        },
        "dead-letter-routing-key" => match v {
            Value::String(_) => Ok(()),
            _ => bad("dead letter routing key"),
        },
        "alternate-exchange" => match v {
            Value::String(_) => Ok(()),
            _ => bad("alternate exchange name"),
        },
        "queue-mode" => match v.as_str() {
            Some("default" | "lazy") => Ok(()),
            _ => bad("queue-mode value"),
        },
        "ha-mode" => match v.as_str() {
            Some("exactly" | "nodes") => Err(format!(
                "ha-mode=\"{}\" takes {}, none given",
                v.as_str().unwrap_or_default(),
                if v.as_str() == Some("exactly") {
                    "an integer"
                } else {
                    "a list"
                }
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Validates a definition: RabbitMQ's reason (without its `Validation failed` wrapper) if it
/// is not one. Bad values are reported before unknown keys, as RabbitMQ does.
pub(crate) fn check_definition(kind: Kind, definition: &Map<String, Value>) -> Result<(), String> {
    if definition.is_empty() {
        return Err("no policy provided".into());
    }
    let allowed = match kind {
        Kind::Policy => POLICY_KEYS,
        Kind::Operator => OPERATOR_KEYS,
    };
    let mut unknown: Vec<(&String, &Value)> = Vec::new();
    for (k, v) in definition {
        if allowed.contains(&k.as_str()) {
            check_value(k, v)?;
        } else {
            unknown.push((k, v));
        }
    }
    if definition.contains_key("ha-mode") {
        // ha-mode with its ha-params is checked above only when ha-params is missing.
    }
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_by(|a, b| a.0.cmp(b.0));
    let listed: Vec<String> = unknown
        .iter()
        .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erl(v)))
        .collect();
    Err(format!(
        "[{}] are not recognised policy settings",
        listed.join(",")
    ))
}

impl Policy {
    /// A policy from its parts as a client gives them (JSON values, RabbitMQ's defaults for
    /// the optional ones), validated; RabbitMQ's reason (without `Validation failed`) if not.
    pub fn new(
        kind: Kind,
        vhost: &str,
        name: &str,
        pattern: &Value,
        definition: &Value,
        apply_to: Option<&Value>,
        priority: Option<&Value>,
    ) -> Result<Policy, String> {
        let apply_to = match apply_to {
            None => ApplyTo::All,
            Some(Value::String(s)) if s == "queues" => ApplyTo::Queues,
            Some(Value::String(s)) if s == "exchanges" => ApplyTo::Exchanges,
            Some(Value::String(s)) if s == "all" => ApplyTo::All,
            Some(other) => {
                let shown = match other {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                return Err(format!(
                    "apply-to '{shown}' unrecognised; should be 'queues', 'exchanges' or 'all'"
                ));
            }
        };
        let priority = match priority {
            None => Number::from(0),
            Some(Value::Number(n)) => n.clone(),
            Some(other) => {
                return Err(format!(
                    "priority should be a number, actually was {}",
                    erl(other)
                ))
            }
        };
        let Value::String(pattern) = pattern else {
            return Err(format!(
                "pattern should be a binary but was {}",
                erl(pattern)
            ));
        };
        let regex = Regex::new(pattern).map_err(|e| {
            format!(
                "pattern should be regular expression but is invalid: {}",
                e.to_string().lines().last().unwrap_or("invalid")
            )
        })?;
        let Value::Object(definition) = definition else {
            return Err("definition should be a JSON object".into());
        };
        check_definition(kind, definition)?;
        let mut sorted: Vec<(&String, &Value)> = definition.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        Ok(Policy {
            vhost: vhost.into(),
            name: name.into(),
            pattern: pattern.clone(),
            regex,
            apply_to,
            definition: sorted
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            priority,
        })
    }

    /// The priority as a number to compare.
    fn rank(&self) -> f64 {
        self.priority.as_f64().unwrap_or(0.0)
    }

    /// Whether it applies to a queue (`queue`) or exchange named `name`.
    pub fn matches(&self, name: &str, queue: bool) -> bool {
        self.apply_to.fits(queue) && self.regex.is_match(name)
    }

    /// What its definition sets for a queue.
    pub fn queue_settings(&self) -> PolicySettings {
        let d = &self.definition;
        let num = |k: &str| d.get(k).and_then(Value::as_u64);
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
        PolicySettings {
            message_ttl: num("message-ttl"),
            expires: num("expires"),
            max_length: num("max-length"),
            max_length_bytes: num("max-length-bytes"),
            overflow: match d.get("overflow").and_then(Value::as_str) {
                Some("drop-head") => Some(Overflow::DropHead),
                Some("reject-publish") => Some(Overflow::RejectPublish),
                Some("reject-publish-dlx") => Some(Overflow::RejectPublishDlx),
                _ => None,
            },
            dlx: text("dead-letter-exchange"),
            dlrk: text("dead-letter-routing-key"),
            delivery_limit: num("delivery-limit"),
            consumer_timeout: num("consumer-timeout"),
        }
    }

    /// The alternate exchange its definition names.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.definition
            .get("alternate-exchange")
            .and_then(Value::as_str)
    }

    /// As the API and definitions show it (RabbitMQ's key order).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "vhost": self.vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.as_str(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }
}

/// A vhost's policies of one kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policies {
    list: Vec<Policy>,
}

impl Policies {
    /// Every policy, by name.
    pub(crate) fn all(&self) -> &[Policy] {
        &self.list
    }

    /// Adds or replaces a policy; true if it is new.
    pub(crate) fn put(&mut self, p: Policy) -> bool {
        match self.list.iter_mut().find(|x| x.name == p.name) {
            Some(existing) => {
                *existing = p;
                false
            }
            None => {
                let at = self.list.partition_point(|x| x.name < p.name);
                self.list.insert(at, p);
                true
            }
        }
    }

    /// Removes a policy; false if there was none of that name.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|p| p.name != name);
        self.list.len() != before
    }

    /// The policy that applies to a queue or exchange: the highest priority among the matching
    /// ones (on a tie, the first by name, so that the choice is stable).
    pub(crate) fn applying(&self, name: &str, queue: bool) -> Option<&Policy> {
        let mut best: Option<&Policy> = None;
        for p in self.list.iter().filter(|p| p.matches(name, queue)) {
            if best.is_none_or(|b| p.rank() > b.rank()) {
                best = Some(p);
            }
        }
        best
    }
}

/// A policy's definition merged with an operator policy's, as RabbitMQ's
/// `effective_policy_definition` shows them: every key of both, the lower value where both set
/// a number, keys sorted.
pub(crate) fn effective_definition(policy: Option<&Policy>, operator: Option<&Policy>) -> Value {
    let mut out: std::collections::BTreeMap<String, Value> = Default::default();
    if let Some(p) = policy {
        for (k, v) in &p.definition {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(o) = operator {
        for (k, v) in &o.definition {
            let merged = match (out.get(k).and_then(Value::as_f64), v.as_f64()) {
                (Some(a), Some(b)) if a <= b => out[k].clone(),
                _ => v.clone(),
            };
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, pattern: &str, def: Value, apply: &str, prio: i64) -> Policy {
        Policy::new(
            Kind::Policy,
            "/",
            name,
            &json!(pattern),
            &def,
            Some(&json!(apply)),
            Some(&json!(prio)),
        )
        .unwrap()
    }

    #[test]
    fn validation_reasons_are_rabbitmqs() {
        let check = |kind, def: Value| check_definition(kind, def.as_object().unwrap());
        assert_eq!(
            check(Kind::Policy, json!({"message-ttl": "abc"})),
            Err("<<\"abc\">> is not a valid message TTL".into())
        );
        assert_eq!(
            check(Kind::Policy, json!({"expires": 0})),
            Err("0 is not a valid queue expiry".into())
        );
        assert_eq!(
            check(Kind::Policy, json!({"max-length": 5, "foo": 1, "bar": 2})),
            Err("[{<<\"bar\">>,2},{<<\"foo\">>,1}] are not recognised policy settings".into())
        );
        assert_eq!(
            check(Kind::Operator, json!({"overflow": "drop-head"})),
            Err("[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings".into())
        );
        assert_eq!(
            check(Kind::Policy, json!({})),
            Err("no policy provided".into())
        );
        let bad_apply = Policy::new(
            Kind::Policy,
            "/",
            "p",
            &json!("x"),
            &json!({"max-length": 1}),
            Some(&json!("bogus")),
            None,
        );
        assert_eq!(
            bad_apply.unwrap_err(),
            "apply-to 'bogus' unrecognised; should be 'queues', 'exchanges' or 'all'"
        );
    }

    #[test]
    fn highest_priority_applies_wholly_and_kinds_are_respected() {
        let mut ps = Policies::default();
        ps.put(policy("low", "^q", json!({"max-length": 3}), "queues", 1));
        ps.put(policy(
            "high",
            "^q",
            json!({"alternate-exchange": "ae"}),
            "all",
            5,
        ));
        ps.put(policy(
            "xs",
            ".",
            json!({"alternate-exchange": "x"}),
            "exchanges",
            9,
        ));
        assert_eq!(ps.applying("q1", true).unwrap().name, "high");
        assert_eq!(
            ps.applying("q1", true).unwrap().queue_settings().max_length,
            None
        );
        assert_eq!(ps.applying("zz", false).unwrap().name, "xs");
        assert!(ps.applying("zz", true).is_none());
        // Unanchored: the pattern is searched in the name.
        assert!(policy("p", "abc", json!({"max-length": 1}), "all", 0).matches("pre-abc", true));
    }

    #[test]
    fn effective_definition_takes_the_lower_number() {
        let p = policy(
            "p",
            ".",
            json!({"max-length": 3, "message-ttl": 50000, "alternate-exchange": "amq.fanout"}),
            "all",
            0,
        );
        let o = policy(
            "o",
            ".",
            json!({"max-length": 2, "expires": 600000}),
            "all",
            0,
        );
        assert_eq!(
            effective_definition(Some(&p), Some(&o)),
            json!({"alternate-exchange": "amq.fanout", "expires": 600000, "max-length": 2,
                   "message-ttl": 50000})
        );
    }
}
