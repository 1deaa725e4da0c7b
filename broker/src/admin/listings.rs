//! `warren ctl`'s read side and object commands, as `rabbitmqctl` has them: `list_queues`,
//! `list_exchanges`, `list_bindings`, `list_connections`, `list_channels`, `list_consumers`
//! (each with rabbitmqctl's default columns, or the columns given as arguments), `purge_queue`,
//! `delete_queue`, `close_connection` (by connection name, where rabbitmqctl takes an Erlang
//! pid), `ping`, `await_startup` and `status`.

use super::{exit, Answer};
use crate::auth::Caller;
use crate::broker::Broker;
use crate::exchange::Destination;
use crate::vhost::DeleteIf;
use serde_json::{json, Map, Value};

/// Runs one of these commands; `None` if `command` is not one.
pub(super) fn run(broker: &Broker, command: &str, vhost: &str, args: &[String]) -> Option<Answer> {
    Some(match command {
        "list_queues" => listing(broker, vhost, args, Kind::Queues),
        "list_exchanges" => listing(broker, vhost, args, Kind::Exchanges),
        "list_bindings" => listing(broker, vhost, args, Kind::Bindings),
        "list_connections" => listing(broker, vhost, args, Kind::Connections),
        "list_channels" => listing(broker, vhost, args, Kind::Channels),
        "list_consumers" => listing(broker, vhost, args, Kind::Consumers),
        "purge_queue" => purge(broker, vhost, args),
        "delete_queue" => delete(broker, vhost, args),
        "close_connection" => close(broker, args),
        "ping" => Answer::info(format!("Will ping {}. This only checks if the OS process is running and registered with epmd. Timeout: 60000 ms.", broker.node_name()))
            .message("Ping succeeded"),
        "await_startup" => Answer::default(),
        "status" => status(broker),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Queues,
    Exchanges,
    Bindings,
    Connections,
    Channels,
    Consumers,
}

impl Kind {
    /// Every column it has (the keys of its rows).
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Queues => &[
                "name",
                "durable",
                "auto_delete",
                "arguments",
                "policy",
                "exclusive",
                "messages_ready",
                "messages_unacknowledged",
                "messages",
                "consumers",
                "state",
                "type",
                "vhost",
            ],
            Kind::Exchanges => &[
                "name",
                "type",
                "durable",
                "auto_delete",
                "internal",
                "arguments",
                "policy",
                "vhost",
            ],
            Kind::Bindings => &[
                "source_name",
                "source_kind",
                "destination_name",
                "destination_kind",
                "routing_key",
                "arguments",
                "vhost",
            ],
            Kind::Connections => &[
                "pid",
                "name",
                "user",
                "vhost",
                "peer_host",
                "peer_port",
                "host",
                "port",
                "ssl",
                "auth_mechanism",
                "state",
                "channels",
                "protocol",
                "timeout",
                "frame_max",
                "channel_max",
                "connected_at",
                "client_properties",
            ],
            Kind::Channels => &[
                "pid",
                "name",
                "connection",
                "number",
                "user",
                "vhost",
                "consumer_count",
                "messages_unacknowledged",
                "prefetch_count",
                "global_prefetch_count",
                "confirm",
                "transactional",
            ],
            Kind::Consumers => &[
                "queue_name",
                "channel_pid",
                "consumer_tag",
                "ack_required",
                "prefetch_count",
                "active",
                "activity_status",
                "exclusive",
                "arguments",
            ],
        }
    }

    /// rabbitmqctl's default columns and its "Listing ..." line.
    fn defaults(self) -> (&'static [&'static str], &'static str) {
        match self {
            Kind::Queues => (&["name", "messages"], "queues"),
            Kind::Exchanges => (&["name", "type"], "exchanges"),
            Kind::Bindings => (
                &[
                    "source_name",
                    "source_kind",
                    "destination_name",
                    "destination_kind",
                    "routing_key",
                    "arguments",
                ],
                "bindings",
            ),
            Kind::Connections => (&["user", "peer_host", "peer_port", "state"], "connections"),
            Kind::Channels => (
                &["pid", "user", "consumer_count", "messages_unacknowledged"],
                "channels",
            ),
            Kind::Consumers => (
                &[
                    "queue_name",
                    "channel_pid",
                    "consumer_tag",
                    "ack_required",
                    "prefetch_count",
                    "active",
                    "activity_status",
                    "arguments",
                ],
                "consumers",
            ),
        }
    }
}

/// rabbitmqctl prints a table as a list of `{key, value}` pairs.
fn arguments(t: &amqp_codec::types::FieldTable) -> Value {
    match crate::definitions::json_table(t) {
        Value::Object(m) => Value::Array(m.into_iter().map(|(k, v)| json!([k, v])).collect()),
        other => other,
    }
}

/// Every row of a listing, as maps of every column it knows.
fn rows(broker: &Broker, vhost: &str, kind: Kind) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    let obj = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    match kind {
        Kind::Queues => {
            let Some(v) = broker.vhost(vhost) else {
                return out;
            };
            let mut qs = v.queues();
            qs.sort_by(|a, b| a.name.cmp(&b.name));
            for q in qs {
                let f = q.figures();
                let (ready, unacked, consumers) = (f.ready, f.unacked, f.consumers);
                let (policy, _) = v.policies_for(&q.name, true);
                out.push(obj(json!({
                    "name": q.name, "durable": q.durable, "auto_delete": q.auto_delete,
                    "arguments": arguments(&q.arguments), "policy": policy.map(|p| p.name).unwrap_or_default(),
                    "exclusive": q.exclusive_owner.is_some(), "messages_ready": ready,
                    "messages_unacknowledged": unacked, "messages": ready + unacked,
                    "consumers": consumers, "state": "running", "type": "classic", "vhost": vhost,
                })));
            }
        }
        Kind::Exchanges => {
            let Some(v) = broker.vhost(vhost) else {
                return out;
            };
            let mut xs = v.exchanges();
            xs.sort_by(|a, b| a.name.cmp(&b.name));
            for x in xs {
                let (policy, _) = v.policies_for(&x.name, false);
                out.push(obj(json!({
                    "name": x.name, "type": x.declared_type(), "durable": x.durable,
                    "auto_delete": x.auto_delete, "internal": x.internal,
                    "arguments": arguments(&x.arguments),
                    "policy": policy.map(|p| p.name).unwrap_or_default(), "vhost": vhost,
                })));
            }
        }
        Kind::Bindings => {
            let Some(v) = broker.vhost(vhost) else {
                return out;
            };
            let mut qs = v.queues();
            qs.sort_by(|a, b| a.name.cmp(&b.name));
            let mut all: Vec<(String, String, &str, String, Value)> = qs
                .iter()
                .map(|q| {
                    (
                        String::new(),
                        q.name.clone(),
                        "queue",
                        q.name.clone(),
                        json!([]),
                    )
                })
                .collect();
            let mut xs = v.exchanges();
            xs.sort_by(|a, b| a.name.cmp(&b.name));
            let mut named = Vec::new();
            for x in xs.iter().filter(|x| !x.name.is_empty()) {
                for (dest, key, args) in x.bindings() {
                    let (d, kind) = match dest {
                        Destination::Queue(q) => (q, "queue"),
                        Destination::Exchange(e) => (e, "exchange"),
                    };
                    named.push((x.name.clone(), d, kind, key, arguments(&args)));
                }
            }
            named.sort_by(|a, b| (&a.0, &a.1, &a.3).cmp(&(&b.0, &b.1, &b.3)));
            all.extend(named);
            for (source, dest, kind, key, args) in all {
                out.push(obj(json!({
                    "source_name": source, "source_kind": "exchange", "destination_name": dest,
                    "destination_kind": kind, "routing_key": key, "arguments": args,
                    "vhost": vhost,
                })));
            }
        }
        // rabbitmqctl lists these for every vhost (consumers: of `vhost`'s queues); the rows
        // are the management API's.
        Kind::Connections => {
            // rabbitmqctl's JSON gives client properties with their types.
            let typed: std::collections::HashMap<String, Value> = broker
                .connections()
                .iter()
                .map(|c| (c.name.clone(), typed_table(&c.client_properties)))
                .collect();
            for c in crate::management::connection_rows(broker) {
                let props = typed.get(&c.name).cloned().unwrap_or_else(|| json!([]));
                out.push(obj(json!({
                    "pid": c.name, "name": c.name, "user": c.user, "vhost": c.vhost,
                    "peer_host": c.peer.ip().to_string(), "peer_port": c.peer.port(),
                    "host": c.local.ip().to_string(), "port": c.local.port(), "ssl": c.tls,
                    "auth_mechanism": c.auth_mechanism, "state": "running",
                    "channels": c.channels, "protocol": "{0,9,1}", "timeout": c.heartbeat,
                    "frame_max": c.frame_max, "channel_max": c.channel_max,
                    "connected_at": c.connected_at, "client_properties": props,
                })));
            }
        }
        Kind::Channels | Kind::Consumers => {
            for ch in crate::management::channel_rows(broker) {
                let pid = format!("{} ({})", ch.connection, ch.number);
                if kind == Kind::Channels {
                    out.push(obj(json!({
                        "pid": pid, "name": pid, "connection": ch.connection,
                        "number": ch.number, "user": ch.user, "vhost": ch.vhost,
                        "consumer_count": ch.consumers.len(),
                        "messages_unacknowledged": ch.messages_unacknowledged,
                        "prefetch_count": ch.prefetch_count,
                        "global_prefetch_count": ch.global_prefetch_count,
                        "confirm": ch.confirm, "transactional": ch.transactional,
                    })));
                    continue;
                }
                for k in ch.consumers.iter().filter(|k| k.vhost == vhost) {
                    let args = match &k.arguments {
                        Value::Object(m) => m.iter().map(|(k, v)| json!([k, v])).collect(),
                        _ => Vec::new(),
                    };
                    out.push(obj(json!({
                        "queue_name": k.queue, "channel_pid": pid, "consumer_tag": k.tag,
                        "ack_required": k.ack_required, "prefetch_count": k.prefetch_count,
                        "active": true, "activity_status": "up", "exclusive": k.exclusive,
                        "arguments": args,
                    })));
                }
            }
        }
    }
    out
}

fn listing(broker: &Broker, vhost: &str, args: &[String], kind: Kind) -> Answer {
    let (defaults, what) = kind.defaults();
    let per_vhost = matches!(
        kind,
        Kind::Queues | Kind::Exchanges | Kind::Bindings | Kind::Consumers
    );
    let info = if per_vhost {
        format!("Listing {what} for vhost {vhost} ...")
    } else {
        format!("Listing {what} ...")
    };
    // An unknown vhost lists nothing (rabbitmqctl exits 0 there too).
    let a = Answer::info(info);
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let columns: Vec<&str> = if wanted.is_empty() {
        defaults.to_vec()
    } else {
        wanted
    };
    let all = rows(broker, vhost, kind);
    if let Some(bad) = columns.iter().find(|c| !kind.keys().contains(c)) {
        return Answer::default().failed(
            format!("Error (argument validation): Info key(s) {bad} are not supported"),
            exit::USAGE,
        );
    }
    let table = all
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| r.get(*c).cloned().unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    a.table(&columns, table)
}

/// The queue a command names (its first argument that is not an option).
fn queue_arg(args: &[String]) -> Option<&str> {
    args.iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
}

fn missing_argument(command: &str) -> Answer {
    Answer::default().failed(
        format!("Error (argument validation): not enough arguments for {command}"),
        exit::USAGE,
    )
}

fn purge(broker: &Broker, vhost: &str, args: &[String]) -> Answer {
    let Some(name) = queue_arg(args) else {
        return missing_argument("purge_queue");
    };
    let a = Answer::info(format!("Purging queue '{name}' in vhost '{vhost}' ..."));
    let Some(v) = broker.vhost(vhost) else {
        return a.failed(
            format!("Virtual host '{vhost}' does not exist"),
            exit::DATA_ERR,
        );
    };
    match v.purge_queue(name, &Caller::internal()) {
        Ok(_) => a,
        Err(e) => a.failed(e.reply_text(), exit::DATA_ERR),
    }
}

fn delete(broker: &Broker, vhost: &str, args: &[String]) -> Answer {
    let Some(name) = queue_arg(args) else {
        return missing_argument("delete_queue");
    };
    let only_if = DeleteIf {
        unused: args.iter().any(|a| a == "--if-unused" || a == "-u"),
        empty: args.iter().any(|a| a == "--if-empty" || a == "-e"),
    };
    let a = Answer::info(format!("Deleting queue '{name}' on vhost '{vhost}' ..."));
    let Some(v) = broker.vhost(vhost) else {
        return a.failed(
            format!("Virtual host '{vhost}' does not exist"),
            exit::DATA_ERR,
        );
    };
    match v.delete_queue_named(name, &Caller::internal(), only_if) {
        Ok((Some(_), n)) => a.message(format!(
            "Queue was successfully deleted with {n} ready messages"
        )),
        // rabbitmqctl's words and exit code.
        Ok((None, _)) => a.failed("Queue not found", exit::USAGE),
        Err(e) => a.failed(e.reply_text(), exit::DATA_ERR),
    }
}

/// A field table as rabbitmqctl's JSON lists it: `[[key, type, value], ...]`, tables nested
/// the same way, arrays as `[[type, value], ...]`.
fn typed_table(t: &amqp_codec::types::FieldTable) -> Value {
    Value::Array(
        t.inner()
            .iter()
            .map(|(k, v)| json!([k.as_str(), crate::args::type_name(v), typed_value(v)]))
            .collect(),
    )
}

fn typed_value(v: &amqp_codec::types::AMQPValue) -> Value {
    use amqp_codec::types::AMQPValue;
    match v {
        AMQPValue::FieldTable(t) => typed_table(t),
        AMQPValue::FieldArray(items) => Value::Array(
            items
                .as_slice()
                .iter()
                .map(|i| json!([crate::args::type_name(i), typed_value(i)]))
                .collect(),
        ),
        other => crate::definitions::json_value(other),
    }
}

fn close(broker: &Broker, args: &[String]) -> Answer {
    let (Some(name), reason) = (args.first(), args.get(1)) else {
        return Answer::default().failed(
            "Error (argument validation): not enough arguments for close_connection",
            exit::USAGE,
        );
    };
    let reason = reason.map_or("", String::as_str);
    let a = Answer::info(format!("Closing connection {name}, reason: {reason}..."));
    if broker.close_connection(name, reason) {
        a
    } else {
        // rabbitmqctl: 69 for a pid it cannot reach.
        a.failed(format!("No connection named '{name}'"), exit::UNAVAILABLE)
    }
}

fn status(broker: &Broker) -> Answer {
    let (connections, channels) = broker.connection_totals(|_| true);
    let queues: usize = broker.vhosts().iter().map(|v| v.queues().len()).sum();
    let lines = [
        format!("Status of node {} ...", broker.node_name()),
        "Runtime".into(),
        String::new(),
        format!("OS PID: {}", std::process::id()),
        format!("Uptime (seconds): {}", broker.started.elapsed().as_secs()),
        format!("RabbitMQ version: {}", crate::connection::RABBITMQ_VERSION),
        format!("Warren version: {}", env!("CARGO_PKG_VERSION")),
        format!("Node name: {}", broker.node_name()),
        String::new(),
        "Totals".into(),
        String::new(),
        format!("Connection count: {connections}"),
        format!("Channel count: {channels}"),
        format!("Queue count: {queues}"),
        format!("Virtual host count: {}", broker.vhosts().len()),
        String::new(),
        "Alarms".into(),
        String::new(),
        match broker.alarms.in_effect() {
            a if a.is_empty() => "(none)".into(),
            a => a.join(", "),
        },
    ];
    Answer::default().message(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The declared columns are the rows' keys: a column a row lacks would print `null`.
    #[test]
    fn every_default_column_is_a_known_key() {
        for kind in [
            Kind::Queues,
            Kind::Exchanges,
            Kind::Bindings,
            Kind::Connections,
            Kind::Channels,
            Kind::Consumers,
        ] {
            for c in kind.defaults().0 {
                assert!(kind.keys().contains(c), "{kind:?} {c}");
            }
        }
    }
}
