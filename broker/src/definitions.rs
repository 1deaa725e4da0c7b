//! RabbitMQ's definitions file (`rabbitmqctl export_definitions`, the management API's
//! `/api/definitions`): users with their password hashes, vhosts with their limits, permissions,
//! topic permissions, exchanges, queues and bindings. `load_definitions` applies one at start-up,
//! idempotently: what exists is updated or left as is, nothing else is removed. Everything goes
//! through the operations every other entry point uses (`auth::AccessControl`, `Broker`, the
//! vhost operations), as the broker itself (no permission checks).
//!
//! Policies and runtime parameters other than vhost limits are not applied yet (logged).

use crate::auth::{
    limits_from, AdminError, Caller, HashingAlgorithm, PasswordHash, VHostInfo, USER_LIMITS,
    VHOST_LIMITS,
};
use crate::broker::Broker;
use crate::exchange::Destination;
use crate::queue::QueueSpec;
use crate::vhost::{BindingSpec, ExchangeSpec};
use amqp_codec::types::{AMQPValue, FieldArray, FieldTable, LongString};
use serde_json::Value;
use std::path::Path;
use tracing::{info, warn};

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Imported {
    /// Users created or updated.
    pub users: usize,
    /// Vhosts.
    pub vhosts: usize,
    /// Permission entries (plain and topic).
    pub permissions: usize,
    /// Exchanges, queues and bindings.
    pub entities: usize,
    /// Items skipped with a warning.
    pub skipped: usize,
}

/// Reads and applies a definitions file. A file that cannot be read or is not a JSON object is
/// an error (start-up stops, as RabbitMQ's does); an item that cannot be applied is skipped
/// with a warning naming it.
pub(crate) fn load_file(broker: &Broker, path: &Path) -> Result<Imported, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let defs: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if !defs.is_object() {
        return Err(format!("{}: not a definitions object", path.display()));
    }
    let done = apply(broker, &defs);
    info!(
        "imported definitions from {}: {} user(s), {} vhost(s), {} permission(s), {} exchange(s)/queue(s)/binding(s), {} skipped",
        path.display(),
        done.users,
        done.vhosts,
        done.permissions,
        done.entities,
        done.skipped
    );
    Ok(done)
}

fn items<'a>(defs: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    defs.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Tags as a list (3.10's export) or a comma-separated string (older exports).
fn tags(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// Applies parsed definitions (see [`load_file`]).
pub(crate) fn apply(broker: &Broker, defs: &Value) -> Imported {
    let mut done = Imported::default();
    let access = &broker.access;
    let skip = |what: String, why: &dyn std::fmt::Display, done: &mut Imported| {
        warn!("definitions: skipping {what}: {why}");
        done.skipped += 1;
    };
    for u in items(defs, "users") {
        let name = text(u, "name");
        let algorithm = match u.get("hashing_algorithm").and_then(Value::as_str) {
            None => HashingAlgorithm::Sha256,
            Some(a) => match HashingAlgorithm::from_name(a) {
                Some(a) => a,
                None => {
                    skip(
                        format!("user '{name}'"),
                        &format!("unknown hashing_algorithm {a}"),
                        &mut done,
                    );
                    continue;
                }
            },
        };
        let hash = match PasswordHash::from_base64(algorithm, text(u, "password_hash")) {
            Ok(h) => h,
            Err(e) => {
                skip(format!("user '{name}'"), &e, &mut done);
                continue;
            }
        };
        let user_tags = tags(u.get("tags"));
        let r = match access.add_user(name, hash.clone(), user_tags.clone()) {
            Err(AdminError::UserExists(_)) => access
                .set_password(name, hash)
                .and_then(|()| access.set_tags(name, user_tags)),
            other => other,
        };
        if let Some(limits) = u
            .get("limits")
            .filter(|l| l.as_object().is_some_and(|o| !o.is_empty()))
        {
            let r = limits_from(limits, &USER_LIMITS, "user-limits")
                .and_then(|l| access.set_user_limits(name, l));
            if let Err(e) = r {
                skip(format!("limits of user '{name}'"), &e, &mut done);
            }
        }
        match r {
            Ok(()) => done.users += 1,
            Err(e) => skip(format!("user '{name}'"), &e, &mut done),
        }
    }
    for v in items(defs, "vhosts") {
        let name = text(v, "name");
        if name.is_empty() {
            skip("a vhost without a name".into(), &"no name", &mut done);
            continue;
        }
        let meta = v.get("metadata");
        let (vhost, created) = broker.add_vhost(VHostInfo {
            name: name.into(),
            description: meta
                .and_then(|m| m.get("description"))
                .or_else(|| v.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
            tags: tags(meta.and_then(|m| m.get("tags")).or_else(|| v.get("tags"))),
            // RabbitMQ honours it inside `metadata` only.
            default_queue_type: meta
                .and_then(|m| m.get("default_queue_type"))
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Default::default()
        });
        if created && tokio::runtime::Handle::try_current().is_ok() {
            vhost.start_delayed();
        }
        // Limits as 3.10 exports them: a list of [name, value] pairs.
        if let Some(pairs) = v
            .get("limits")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
        {
            let obj: serde_json::Map<String, Value> = pairs
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.clone())))
                .collect();
            let r = limits_from(&Value::Object(obj), &VHOST_LIMITS, "limits")
                .and_then(|l| broker.set_vhost_limits(name, l));
            if let Err(e) = r {
                skip(format!("limits of vhost '{name}'"), &e, &mut done);
            }
        }
        done.vhosts += 1;
    }
    for p in items(defs, "parameters") {
        if text(p, "component") == "vhost-limits" {
            let vhost = text(p, "vhost");
            let r = limits_from(
                p.get("value").unwrap_or(&Value::Null),
                &VHOST_LIMITS,
                "limits",
            )
            .and_then(|l| broker.set_vhost_limits(vhost, l));
            if let Err(e) = r {
                skip(format!("limits of vhost '{vhost}'"), &e, &mut done);
            }
        } else {
            skip(
                format!(
                    "parameter '{}' of component '{}'",
                    text(p, "name"),
                    text(p, "component")
                ),
                &"not supported yet",
                &mut done,
            );
        }
    }
    for p in items(defs, "permissions") {
        let (user, vhost) = (text(p, "user"), text(p, "vhost"));
        match access.set_permissions(
            user,
            vhost,
            text(p, "configure"),
            text(p, "write"),
            text(p, "read"),
        ) {
            Ok(()) => done.permissions += 1,
            Err(e) => skip(
                format!("permissions of '{user}' in vhost '{vhost}'"),
                &e,
                &mut done,
            ),
        }
    }
    for p in items(defs, "topic_permissions") {
        let (user, vhost, x) = (text(p, "user"), text(p, "vhost"), text(p, "exchange"));
        match access.set_topic_permissions(user, vhost, x, text(p, "write"), text(p, "read")) {
            Ok(()) => done.permissions += 1,
            Err(e) => skip(
                format!("topic permissions of '{user}' on '{x}' in vhost '{vhost}'"),
                &e,
                &mut done,
            ),
        }
    }
    let policies = items(defs, "policies").count();
    if policies > 0 {
        warn!("definitions: {policies} polic(ies) not applied: policies are not supported yet");
        done.skipped += policies;
    }
    let caller = Caller::internal();
    for x in items(defs, "exchanges") {
        let (vname, name) = (text(x, "vhost"), text(x, "name"));
        let Some(vhost) = broker.vhost(vname) else {
            skip(
                format!("exchange '{name}'"),
                &format!("no vhost '{vname}'"),
                &mut done,
            );
            continue;
        };
        let spec = ExchangeSpec {
            name: name.into(),
            kind: text(x, "type").into(),
            durable: flag(x, "durable"),
            auto_delete: flag(x, "auto_delete"),
            internal: flag(x, "internal"),
            arguments: table(x.get("arguments")),
        };
        match vhost.declare_exchange(&spec, &caller) {
            Ok(_) => done.entities += 1,
            Err(e) => skip(
                format!("exchange '{name}' in vhost '{vname}'"),
                &e,
                &mut done,
            ),
        }
    }
    for q in items(defs, "queues") {
        let (vname, name) = (text(q, "vhost"), text(q, "name"));
        let Some(vhost) = broker.vhost(vname) else {
            skip(
                format!("queue '{name}'"),
                &format!("no vhost '{vname}'"),
                &mut done,
            );
            continue;
        };
        let spec = QueueSpec {
            name: name.into(),
            durable: flag(q, "durable"),
            exclusive_owner: None,
            auto_delete: flag(q, "auto_delete"),
            arguments: table(q.get("arguments")),
        };
        match vhost.declare_queue(spec, &caller) {
            Ok(_) => done.entities += 1,
            Err(e) => skip(format!("queue '{name}' in vhost '{vname}'"), &e, &mut done),
        }
    }
    for b in items(defs, "bindings") {
        let vname = text(b, "vhost");
        let Some(vhost) = broker.vhost(vname) else {
            skip(
                "a binding".into(),
                &format!("no vhost '{vname}'"),
                &mut done,
            );
            continue;
        };
        let dest = text(b, "destination").to_string();
        let spec = BindingSpec {
            source: text(b, "source").into(),
            destination: if text(b, "destination_type") == "exchange" {
                Destination::Exchange(dest)
            } else {
                Destination::Queue(dest)
            },
            routing_key: text(b, "routing_key").into(),
            arguments: table(b.get("arguments")),
        };
        match vhost.bind(&spec, &caller) {
            Ok(()) => done.entities += 1,
            Err(e) => skip(
                format!("binding from '{}' in vhost '{vname}'", spec.source),
                &e,
                &mut done,
            ),
        }
    }
    done
}

/// Arguments as JSON become a field table as RabbitMQ's import makes them: strings are long
/// strings, integers signed 64-bit, booleans, floats doubles, lists arrays, objects tables.
pub(crate) fn table(v: Option<&Value>) -> FieldTable {
    let mut t = FieldTable::default();
    if let Some(Value::Object(obj)) = v {
        for (k, v) in obj {
            if let Some(value) = amqp_value(v) {
                t.insert(k.as_str().into(), value);
            }
        }
    }
    t
}

fn amqp_value(v: &Value) -> Option<AMQPValue> {
    Some(match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64()?),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().filter_map(amqp_value).collect::<Vec<_>>(),
        )),
        Value::Object(_) => AMQPValue::FieldTable(table(Some(v))),
    })
}

/// A field value as RabbitMQ's definitions and HTTP API write it in JSON.
pub(crate) fn json_value(v: &AMQPValue) -> Value {
    use serde_json::json;
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Timestamp(n) => json!(n),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::DecimalValue(d) => json!(d.value as f64 / 10f64.powi(d.scale as i32)),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(json_value).collect())
        }
        AMQPValue::FieldTable(t) => json_table(t),
        AMQPValue::Void => Value::Null,
    }
}

/// A field table as a JSON object.
pub(crate) fn json_table(t: &FieldTable) -> Value {
    Value::Object(
        t.inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json_value(v)))
            .collect(),
    )
}

/// Which of RabbitMQ 3.10.8's two export layouts (observed): the HTTP API's, or
/// `rabbitmqctl export_definitions`'s (vhosts with limits and metadata, queues with their type,
/// exchanges without `internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `GET /api/definitions`.
    Http,
    /// `rabbitmqctl export_definitions`.
    Ctl,
}

/// The broker's definitions in RabbitMQ 3.10's export format: the whole broker, or one vhost
/// (then only its parameters, policies, queues, exchanges and bindings, without `vhost` keys).
/// Exported as RabbitMQ exports them: queues not owned by a connection, exchanges but the default
/// and `amq.*` ones, bindings whose source is exported.
pub(crate) fn export(broker: &Broker, only: Option<&str>, layout: Layout) -> Result<Value, String> {
    use serde_json::json;
    let version = crate::connection::RABBITMQ_VERSION;
    let access = &broker.access;
    let mut vhosts = broker.vhosts();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(name) = only {
        if !access.has_vhost(name) {
            return Err("vhost_not_found".into());
        }
        vhosts.retain(|v| v.name == name);
    }
    let with_vhost = |mut item: Value, vhost: &str| {
        if only.is_none() {
            item["vhost"] = json!(vhost);
        }
        item
    };
    let (mut queues, mut exchanges, mut bindings, mut parameters) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in &vhosts {
        let limits = access.vhost_limits(&v.name);
        if !limits.is_empty() {
            parameters.push(json!({
                "value": limits, "vhost": v.name, "component": "vhost-limits", "name": "limits",
            }));
        }
        let mut qs = v.queues();
        qs.sort_by(|a, b| a.name.cmp(&b.name));
        for q in qs.iter().filter(|q| q.exclusive_owner.is_none()) {
            let mut item = json!({ "name": q.name, "durable": q.durable,
                                   "auto_delete": q.auto_delete });
            if layout == Layout::Ctl {
                item["type"] = json!("classic");
            }
            item["arguments"] = json_table(&q.arguments);
            queues.push(with_vhost(item, &v.name));
        }
        // Bindings to exclusive queues go with them (not exported).
        let exclusive: Vec<&str> = qs
            .iter()
            .filter(|q| q.exclusive_owner.is_some())
            .map(|q| q.name.as_str())
            .collect();
        let mut xs = v.exchanges();
        xs.sort_by(|a, b| a.name.cmp(&b.name));
        for x in &xs {
            let exported = !x.name.is_empty() && !x.name.starts_with("amq.");
            if exported {
                let kind = x.declared_type();
                let mut item = json!({ "name": x.name, "type": kind, "durable": x.durable,
                                       "auto_delete": x.auto_delete });
                if layout == Layout::Http {
                    item["internal"] = json!(x.internal);
                }
                item["arguments"] = json_table(&x.arguments);
                exchanges.push(with_vhost(item, &v.name));
            }
            if x.name.is_empty() {
                continue;
            }
            for (dest, key, args) in x.bindings() {
                let (destination, kind) = match dest {
                    Destination::Queue(q) if exclusive.contains(&q.as_str()) => continue,
                    Destination::Queue(q) => (q, "queue"),
                    Destination::Exchange(e) => (e, "exchange"),
                };
                bindings.push(with_vhost(
                    json!({ "source": x.name, "destination": destination,
                            "destination_type": kind, "routing_key": key,
                            "arguments": json_table(&args) }),
                    &v.name,
                ));
            }
        }
    }
    if only.is_some() {
        return Ok(json!({
            "rabbit_version": version, "parameters": parameters, "policies": [],
            "queues": queues, "exchanges": exchanges, "bindings": bindings,
        }));
    }
    let users: Vec<Value> = access
        .users()
        .iter()
        .map(|u| {
            json!({ "name": u.name, "password_hash": u.hash.to_base64(),
                    "hashing_algorithm": u.hash.algorithm.name(), "tags": u.tags,
                    "limits": access.user_limits(&u.name) })
        })
        .collect();
    let infos = access.vhosts();
    let vhost_list: Vec<Value> = vhosts
        .iter()
        .map(|v| match layout {
            Layout::Http => json!({ "name": v.name }),
            Layout::Ctl => {
                let info = infos.iter().find(|i| i.name == v.name);
                let pairs: Vec<Value> = access
                    .vhost_limits(&v.name)
                    .iter()
                    .map(|(k, n)| json!([k, n]))
                    .collect();
                json!({ "name": v.name, "limits": pairs, "metadata": {
                    "description": info.map_or("", |i| i.description.as_str()),
                    "tags": info.map(|i| i.tags.clone()).unwrap_or_default(),
                } })
            }
        })
        .collect();
    let permissions: Vec<Value> = access
        .permissions(None, None)
        .iter()
        .map(|(user, vhost, p)| {
            json!({ "user": user, "vhost": vhost, "configure": p.configure.as_str(),
                    "write": p.write.as_str(), "read": p.read.as_str() })
        })
        .collect();
    let topic_permissions: Vec<Value> = access
        .topic_permissions(None, None)
        .iter()
        .map(|(user, vhost, p)| {
            json!({ "user": user, "vhost": vhost, "exchange": p.exchange,
                    "write": p.write.as_str(), "read": p.read.as_str() })
        })
        .collect();
    Ok(json!({
        "rabbit_version": version,
        "rabbitmq_version": version,
        "product_name": "RabbitMQ",
        "product_version": version,
        "users": users,
        "vhosts": vhost_list,
        "permissions": permissions,
        "topic_permissions": topic_permissions,
        "parameters": parameters,
        "global_parameters": [
            { "name": "internal_cluster_id", "value": format!("warren-{}", broker.node_name()) }
        ],
        "policies": [],
        "queues": queues,
        "exchanges": exchanges,
        "bindings": bindings,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_become_rabbitmq_field_types() {
        let v: Value = serde_json::from_str(
            r#"{"x-max-length": 10, "x-queue-type": "classic", "x-flag": true, "x-list": ["a", 1]}"#,
        )
        .unwrap();
        let t = table(Some(&v));
        assert_eq!(
            t.inner().get("x-max-length"),
            Some(&AMQPValue::LongLongInt(10))
        );
        assert!(matches!(
            t.inner().get("x-queue-type"),
            Some(AMQPValue::LongString(_))
        ));
        assert_eq!(t.inner().get("x-flag"), Some(&AMQPValue::Boolean(true)));
        assert!(matches!(
            t.inner().get("x-list"),
            Some(AMQPValue::FieldArray(_))
        ));
    }

    #[test]
    fn tags_as_list_or_comma_string() {
        assert_eq!(tags(Some(&serde_json::json!(["a", "b"]))), vec!["a", "b"]);
        assert_eq!(tags(Some(&serde_json::json!("a, b"))), vec!["a", "b"]);
        assert!(tags(Some(&serde_json::json!(""))).is_empty());
    }
}
