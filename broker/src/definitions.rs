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
use crate::policy::{Kind, Policy};
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

/// Reads and applies a definitions file at start-up, as RabbitMQ's `load_definitions`: a file
/// that cannot be read, is not a JSON object, or has an entry the import refuses stops start-up
/// with the reason (checked whole first, as [`import`] does: nothing is half-applied).
pub(crate) fn load_file(broker: &Broker, path: &Path) -> Result<Imported, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let defs: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if !defs.is_object() {
        return Err(format!("{}: not a definitions object", path.display()));
    }
    let done = import(broker, &defs, None).map_err(|why| {
        let why = match why {
            Value::String(s) => s,
            other => other.to_string(),
        };
        format!("{}: refused: {why}", path.display())
    })?;
    info!("imported definitions from {}", path.display());
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
        let hash = match u.get("password").and_then(Value::as_str) {
            // RabbitMQ's import takes a cleartext `password` too (hashed here).
            Some(clear) => Ok(PasswordHash::new(clear)),
            None => PasswordHash::from_base64(algorithm, text(u, "password_hash")),
        };
        let hash = match hash {
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
        } else if text(p, "component") == "operator_policy" {
            match operator_policy(p).and_then(|(v, pol)| {
                broker
                    .vhost(&v)
                    .map(|vh| vh.set_policy(Kind::Operator, pol))
                    .ok_or_else(|| format!("no vhost '{v}'"))
            }) {
                Ok(_) => done.entities += 1,
                Err(e) => skip(
                    format!("operator policy '{}'", text(p, "name")),
                    &e,
                    &mut done,
                ),
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
    for p in items(defs, "policies") {
        match policy(p).and_then(|(v, pol)| {
            broker
                .vhost(&v)
                .map(|vh| vh.set_policy(Kind::Policy, pol))
                .ok_or_else(|| format!("no vhost '{v}'"))
        }) {
            Ok(_) => done.entities += 1,
            Err(e) => skip(format!("policy '{}'", text(p, "name")), &e, &mut done),
        }
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
            declared_by: crate::auth::INTERNAL_USER.into(),
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

/// A `policies` entry: its vhost and the policy (`apply-to` and `priority` may be left out).
fn policy(p: &Value) -> Result<(String, Policy), String> {
    let (vhost, name) = (text(p, "vhost"), text(p, "name"));
    let made = Policy::new(
        Kind::Policy,
        vhost,
        name,
        p.get("pattern").unwrap_or(&Value::Null),
        p.get("definition").unwrap_or(&Value::Null),
        p.get("apply-to"),
        p.get("priority"),
    )
    .map_err(|why| format!("Validation failed\n\n{why}\n ({vhost}/{name})"))?;
    Ok((vhost.to_string(), made))
}

/// A `parameters` entry of component `operator_policy`: its value needs all four keys.
fn operator_policy(p: &Value) -> Result<(String, Policy), String> {
    let (vhost, name) = (text(p, "vhost"), text(p, "name"));
    let value = p.get("value").unwrap_or(&Value::Null);
    let where_ = format!("({vhost}/operator_policy/{name})");
    for key in ["pattern", "definition", "priority", "apply-to"] {
        if value.get(key).is_none() {
            return Err(format!(
                "Validation failed\n\nKey \"{key}\" not found in {name}\n {where_}"
            ));
        }
    }
    let made = Policy::new(
        Kind::Operator,
        vhost,
        name,
        &value["pattern"],
        &value["definition"],
        value.get("apply-to"),
        value.get("priority"),
    )
    .map_err(|why| format!("Validation failed\n\n{why}\n {where_}"))?;
    Ok((vhost.to_string(), made))
}

/// Why an import was refused: RabbitMQ's reason, as its API gives it (a text or a JSON term).
pub(crate) type Refusal = Value;

/// An import through the API or `warren ctl import_definitions`: the whole file is checked
/// first, so that a bad entry refuses the import with nothing applied (RabbitMQ applies up to
/// the bad entry; Warren does not half-apply). With `only`, into that vhost: every entity goes
/// there, and users, vhosts and permissions are ignored.
pub(crate) fn import(
    broker: &Broker,
    defs: &Value,
    only: Option<&str>,
) -> Result<Imported, Refusal> {
    let mut defs = defs.clone();
    if let Some(target) = only {
        let Value::Object(m) = &mut defs else {
            return Ok(Imported::default());
        };
        m.retain(|k, _| {
            matches!(
                k.as_str(),
                "parameters" | "policies" | "queues" | "exchanges" | "bindings"
            )
        });
        for list in m.values_mut() {
            if let Value::Array(items) = list {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    item["vhost"] = Value::String(target.to_string());
                }
            }
        }
    }
    check(broker, &defs)?;
    let done = apply(broker, &defs);
    info!(
        "imported definitions: {} user(s), {} vhost(s), {} permission(s), {} other item(s), {} skipped",
        done.users, done.vhosts, done.permissions, done.entities, done.skipped
    );
    Ok(done)
}

/// Checks every entry as RabbitMQ's import would, in its order (users, vhosts, permissions,
/// topic permissions, parameters, policies, queues, exchanges, bindings), against the broker
/// plus what the file itself creates; the first bad entry's reason.
fn check(broker: &Broker, defs: &Value) -> Result<(), Refusal> {
    use serde_json::json;
    let access = &broker.access;
    let mut users: Vec<String> = access.users().iter().map(|u| u.name.clone()).collect();
    let mut vhosts: Vec<String> = access.vhosts().iter().map(|v| v.name.clone()).collect();
    for u in items(defs, "users") {
        let name = text(u, "name");
        if u.get("password").is_none() {
            let algorithm = match u.get("hashing_algorithm").and_then(Value::as_str) {
                None => HashingAlgorithm::Sha256,
                Some(a) => HashingAlgorithm::from_name(a).ok_or_else(|| {
                    json!(format!("unknown hashing algorithm {a} of user '{name}'"))
                })?,
            };
            PasswordHash::from_base64(algorithm, text(u, "password_hash"))
                .map_err(|e| json!(format!("user '{name}': {e}")))?;
        }
        users.push(name.to_string());
    }
    for v in items(defs, "vhosts") {
        let name = text(v, "name");
        if name.is_empty() {
            return Err(json!("vhost without a name"));
        }
        vhosts.push(name.to_string());
    }
    let known = |list: &[String], name: &str| list.iter().any(|x| x == name);
    let pattern_ok = |p: &str| -> Result<(), Refusal> {
        crate::auth::Pattern::new(p)
            .map(|_| ())
            .map_err(|e| json!(["invalid_regexp", p, [e.to_string(), 0]]))
    };
    for key in ["permissions", "topic_permissions"] {
        for p in items(defs, key) {
            let (user, vhost) = (text(p, "user"), text(p, "vhost"));
            if !known(&users, user) {
                return Err(json!(["no_such_user", user]));
            }
            if !known(&vhosts, vhost) {
                return Err(json!(["no_such_vhost", vhost]));
            }
            for f in ["configure", "write", "read"] {
                pattern_ok(text(p, f))?;
            }
        }
    }
    for p in items(defs, "parameters") {
        let vhost = text(p, "vhost");
        match text(p, "component") {
            "vhost-limits" => {
                if !known(&vhosts, vhost) {
                    return Err(json!(["no_such_vhost", vhost]));
                }
                limits_from(
                    p.get("value").unwrap_or(&Value::Null),
                    &VHOST_LIMITS,
                    "limits",
                )
                .map_err(|e| json!(e.to_string()))?;
            }
            "operator_policy" => {
                if !known(&vhosts, vhost) {
                    return Err(json!(["no_such_vhost", vhost]));
                }
                operator_policy(p).map_err(Value::String)?;
            }
            _ => {}
        }
    }
    for p in items(defs, "policies") {
        let vhost = text(p, "vhost");
        if !known(&vhosts, vhost) {
            return Err(json!(["no_such_vhost", vhost]));
        }
        policy(p).map_err(Value::String)?;
    }
    let amqp = |e: crate::error::AmqpError| {
        json!([
            "amqp_error",
            e.code.name().to_ascii_lowercase(),
            e.explanation,
            "none"
        ])
    };
    let mut queues: Vec<(String, String)> = Vec::new();
    for q in items(defs, "queues") {
        let (vhost, name) = (text(q, "vhost"), text(q, "name"));
        if !known(&vhosts, vhost) {
            return Err(json!(["no_such_vhost", vhost]));
        }
        let what = format!("queue '{name}' in vhost '{vhost}'");
        crate::queue::QueueArgs::parse(&table(q.get("arguments")), &what).map_err(amqp)?;
        queues.push((vhost.into(), name.into()));
    }
    let mut exchanges: Vec<(String, String)> = Vec::new();
    for x in items(defs, "exchanges") {
        let (vhost, name) = (text(x, "vhost"), text(x, "name"));
        if !known(&vhosts, vhost) {
            return Err(json!(["no_such_vhost", vhost]));
        }
        crate::exchange::parse_declared_type(text(x, "type"), &table(x.get("arguments")))
            .map_err(amqp)?;
        exchanges.push((vhost.into(), name.into()));
    }
    for b in items(defs, "bindings") {
        let vhost = text(b, "vhost");
        if !known(&vhosts, vhost) {
            return Err(json!(["no_such_vhost", vhost]));
        }
        let v = broker.vhost(vhost);
        let has_exchange = |name: &str| {
            name.is_empty()
                || exchanges.iter().any(|(vh, n)| vh == vhost && n == name)
                || v.as_ref().is_some_and(|v| v.exchange(name).is_some())
        };
        let source = text(b, "source");
        if !has_exchange(source) {
            return Err(json!(format!(
                "NOT_FOUND - no exchange '{source}' in vhost '{vhost}'"
            )));
        }
        let dest = text(b, "destination");
        let found = if text(b, "destination_type") == "exchange" {
            has_exchange(dest)
        } else {
            queues.iter().any(|(vh, n)| vh == vhost && n == dest)
                || v.as_ref().is_some_and(|v| v.queue(dest).is_some())
        };
        if !found {
            let kind = if text(b, "destination_type") == "exchange" {
                "exchange"
            } else {
                "queue"
            };
            return Err(json!(format!(
                "NOT_FOUND - no {kind} '{dest}' in vhost '{vhost}'"
            )));
        }
    }
    Ok(())
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
    // RabbitMQ puts `vhost` second, after the name (or the source of a binding).
    let with_vhost = |item: Value, vhost: &str| match item {
        Value::Object(m) if only.is_none() => {
            let mut out = serde_json::Map::with_capacity(m.len() + 1);
            for (i, (k, v)) in m.into_iter().enumerate() {
                out.insert(k, v);
                if i == 0 {
                    out.insert("vhost".into(), json!(vhost));
                }
            }
            Value::Object(out)
        }
        other => other,
    };
    let (mut queues, mut exchanges, mut bindings, mut parameters, mut policies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for v in &vhosts {
        let limits = access.vhost_limits(&v.name);
        if !limits.is_empty() {
            parameters.push(json!({
                "value": limits, "vhost": v.name, "component": "vhost-limits", "name": "limits",
            }));
        }
        // Policies keep their vhost even in a one-vhost export; operator policies are
        // exported as runtime parameters (RabbitMQ 3.10 has no key of their own).
        policies.extend(v.policies(Kind::Policy).iter().map(Policy::to_json));
        for p in v.policies(Kind::Operator) {
            parameters.push(json!({
                "value": { "pattern": p.pattern, "definition": p.definition,
                           "priority": p.priority, "apply-to": p.apply_to.as_str() },
                "vhost": v.name, "component": "operator_policy", "name": p.name,
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
            "rabbit_version": version, "parameters": parameters, "policies": policies,
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
        "policies": policies,
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
