//! `warren ctl` policy commands, as `rabbitmqctl` has them: `set_policy`, `clear_policy`,
//! `list_policies` and their `operator_policy` twins (`set_operator_policy`, ...). The rules
//! are `crate::policy`'s, shared with the management API and definitions import.

use super::{exit, Answer};
use crate::broker::Broker;
use crate::policy::{Kind, Policy};
use serde_json::{json, Value};

/// Runs a policy command; `None` if `command` is not one.
pub(super) fn run(broker: &Broker, command: &str, vhost: &str, args: &[String]) -> Option<Answer> {
    let (verb, kind) = match command {
        "set_policy" => ("set", Kind::Policy),
        "clear_policy" => ("clear", Kind::Policy),
        "list_policies" => ("list", Kind::Policy),
        "set_operator_policy" => ("set", Kind::Operator),
        "clear_operator_policy" => ("clear", Kind::Operator),
        "list_operator_policies" => ("list", Kind::Operator),
        _ => return None,
    };
    Some(match verb {
        "set" => set(broker, kind, vhost, args),
        "clear" => clear(broker, kind, vhost, args),
        _ => list(broker, kind, vhost),
    })
}

fn set(broker: &Broker, kind: Kind, vhost: &str, args: &[String]) -> Answer {
    let mut priority = "0".to_string();
    let mut apply_to = "all".to_string();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--priority" if i + 1 < args.len() => {
                priority = args[i + 1].clone();
                i += 2;
            }
            "--apply-to" if i + 1 < args.len() => {
                apply_to = args[i + 1].clone();
                i += 2;
            }
            other => {
                positional.push(other.to_string());
                i += 1;
            }
        }
    }
    let Ok(priority) = priority.parse::<i64>() else {
        return Answer::default().failed(
            format!("Error (argument validation): Invalid options for this command:\n--priority : {priority}"),
            exit::USAGE,
        );
    };
    let [name, pattern, definition] = positional.as_slice() else {
        return Answer::default().failed(
            "Error (argument validation): not enough arguments for set_policy",
            exit::USAGE,
        );
    };
    let what = match kind {
        Kind::Policy => "policy",
        Kind::Operator => "operator policy override",
    };
    let a = Answer::info(format!(
        "Setting {what} \"{name}\" for pattern \"{pattern}\" to \"{definition}\" with priority \"{priority}\" for vhost \"{vhost}\" ..."
    ));
    let Some(v) = broker.vhost(vhost) else {
        return a.failed(
            format!("Virtual host '{vhost}' does not exist"),
            exit::DATA_ERR,
        );
    };
    let Ok(def) = serde_json::from_str::<Value>(definition) else {
        return a.failed("JSON decoding error. Reason: badarg", exit::UNAVAILABLE);
    };
    match Policy::new(
        kind,
        vhost,
        name,
        &json!(pattern),
        &def,
        Some(&json!(apply_to)),
        Some(&json!(priority)),
    ) {
        Ok(p) => {
            v.set_policy(kind, p);
            a
        }
        Err(why) => a.failed(format!("Validation failed\n\n{why}\n"), exit::UNAVAILABLE),
    }
}

fn clear(broker: &Broker, kind: Kind, vhost: &str, args: &[String]) -> Answer {
    let Some(name) = args.first() else {
        return Answer::default().failed(
            "Error (argument validation): not enough arguments for clear_policy",
            exit::USAGE,
        );
    };
    let what = match kind {
        Kind::Policy => "policy",
        Kind::Operator => "operator policy",
    };
    let a = Answer::info(format!(
        "Clearing {what} \"{name}\" on vhost \"{vhost}\" ..."
    ));
    match broker.vhost(vhost) {
        Some(v) if v.clear_policy(kind, name) => a,
        _ => a.failed("Parameter does not exist", exit::UNAVAILABLE),
    }
}

fn list(broker: &Broker, kind: Kind, vhost: &str) -> Answer {
    let what = match kind {
        Kind::Policy => "policies",
        Kind::Operator => "operator policy overrides",
    };
    let a = Answer::info(format!("Listing {what} for vhost \"{vhost}\" ..."));
    let Some(v) = broker.vhost(vhost) else {
        return a.failed(
            format!("Virtual host '{vhost}' does not exist"),
            exit::DATA_ERR,
        );
    };
    // As rabbitmqctl: the definition is compact JSON text (a string in --formatter json).
    let rows = v
        .policies(kind)
        .iter()
        .map(|p| {
            vec![
                json!(p.vhost),
                json!(p.name),
                json!(p.pattern),
                json!(p.apply_to.as_str()),
                json!(Value::Object(p.definition.clone()).to_string()),
                json!(p.priority),
            ]
        })
        .collect();
    a.table(
        &[
            "vhost",
            "name",
            "pattern",
            "apply-to",
            "definition",
            "priority",
        ],
        rows,
    )
}
