//! Bindings: `/api/bindings[/V]`, the bindings between two objects (`/api/bindings/V/e/S/q/Q`,
//! `.../e/S/e/D`: GET, and POST to bind), one binding named by its `properties_key`
//! (`.../q/Q/PROPS`: GET, DELETE to unbind), a queue's (`/api/queues/V/Q/bindings`) and an
//! exchange's (`/api/exchanges/V/X/bindings/source|destination`). Binds and unbinds run as the
//! calling user, with its permissions.

use super::access::{has_vhost, visible_names};
use super::{json_object, list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::BindingInfo;
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as S};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/bindings", get(all))
        .route("/api/bindings/{vhost}", get(of_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/q/{queue}",
            get(to_queue).post(bind_queue),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{dest}",
            get(to_exchange).post(bind_exchange),
        )
        // The default exchange, named by an empty segment: binding to it is refused.
        .route(
            "/api/bindings/{vhost}/e//q/{queue}",
            get(|| async { Json(json!([])) }).post(default_exchange),
        )
        .route(
            "/api/bindings/{vhost}/e//e/{dest}",
            get(|| async { Json(json!([])) }).post(default_exchange),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/q/{queue}/{props}",
            get(one_to_queue).delete(unbind_queue),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{dest}/{props}",
            get(one_to_exchange).delete(unbind_exchange),
        )
        .route("/api/queues/{vhost}/{name}/bindings", get(of_queue))
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(from_exchange),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(into_exchange),
        )
}

/// RabbitMQ's `quote_plus` as `properties_key` uses it: `[A-Za-z0-9.-_]` kept, `~` written
/// `%7E`, space as `+`, every other byte `%XX`.
fn quote_plus(key: &str) -> String {
    quote_plus_keeping(key, false)
}

/// RabbitMQ's `quote_plus` itself (`~` kept), as the `Location` of a new binding uses it.
fn quote_plus_keeping(key: &str, tilde: bool) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
            b'~' if tilde => out.push('~'),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The path segment that names a binding: its quoted key, `~` for an empty one, and with
/// arguments `~` and a stable 6-character hash of them (RabbitMQ's is Erlang's phash2, which
/// clients take from the listing and never compute).
pub(super) fn properties_key(key: &str, arguments: &Value) -> String {
    let empty = arguments.as_object().is_none_or(|m| m.is_empty());
    if empty {
        return if key.is_empty() {
            "~".into()
        } else {
            quote_plus(key)
        };
    }
    let mut h = std::hash::DefaultHasher::new();
    canonical(arguments).hash(&mut h);
    let hash = (h.finish() as u32).to_be_bytes();
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash);
    format!("{}~{tag}", quote_plus(key))
}

/// Arguments as text with every object's keys sorted, so that the hash does not depend on the
/// order a client wrote them in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn binding_json(b: &BindingInfo) -> Value {
    json!({
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": b.destination_type,
        "routing_key": b.routing_key,
        "arguments": b.arguments,
        "properties_key": properties_key(&b.routing_key, &b.arguments),
    })
}

/// The bindings `who` may see, in RabbitMQ's order (vhost, source, destination, key); a missing
/// vhost gives none (`strict`: 404).
fn visible(
    state: &State,
    who: &Authed,
    vhost: Option<&str>,
    strict: bool,
    keep: impl Fn(&BindingInfo) -> bool,
) -> ApiResult<Vec<Value>> {
    let mine = visible_names(state, who);
    let mut list = match state.backend.bindings(vhost) {
        Ok(l) => l,
        Err(e) if strict => return Err(e.into()),
        Err(_) => Vec::new(),
    };
    list.retain(|b| mine.contains(&b.vhost) && keep(b));
    list.sort_by(|a, b| {
        (&a.vhost, &a.source, &a.destination, &a.routing_key).cmp(&(
            &b.vhost,
            &b.source,
            &b.destination,
            &b.routing_key,
        ))
    });
    Ok(list.iter().map(binding_json).collect())
}

/// Lists take `sort` and `columns`, not pages (RabbitMQ ignores them here).
fn plain(items: Vec<Value>, mut q: ListQuery) -> ApiResult<Json<Value>> {
    q.page = None;
    Ok(Json(list_response(items, &q, "")?))
}

async fn all(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    plain(visible(&state, &who, None, true, |_| true)?, q)
}

async fn of_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    plain(visible(&state, &who, Some(&vhost), true, |_| true)?, q)
}

async fn to_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, source, queue)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let keep = |b: &BindingInfo| {
        b.source == source && b.destination == queue && b.destination_type == "queue"
    };
    Ok(Json(Value::Array(visible(
        &state,
        &who,
        Some(&vhost),
        false,
        keep,
    )?)))
}

async fn to_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, source, dest)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let keep = |b: &BindingInfo| {
        b.source == source && b.destination == dest && b.destination_type == "exchange"
    };
    Ok(Json(Value::Array(visible(
        &state,
        &who,
        Some(&vhost),
        false,
        keep,
    )?)))
}

async fn of_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let keep = |b: &BindingInfo| b.destination == name && b.destination_type == "queue";
    Ok(Json(Value::Array(visible(
        &state,
        &who,
        Some(&vhost),
        false,
        keep,
    )?)))
}

async fn from_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let name = if name == "amq.default" {
        String::new()
    } else {
        name
    };
    let keep = |b: &BindingInfo| b.source == name;
    Ok(Json(Value::Array(visible(
        &state,
        &who,
        Some(&vhost),
        false,
        keep,
    )?)))
}

async fn into_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let keep = |b: &BindingInfo| b.destination == name && b.destination_type == "exchange";
    Ok(Json(Value::Array(visible(
        &state,
        &who,
        Some(&vhost),
        false,
        keep,
    )?)))
}

/// `+` and `%XX` decoded, as RabbitMQ reads the key part of a `properties_key`.
fn unquote_plus(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the path segment `props` names binding `b`: its key part is unquoted (so `x+y`,
/// `x%2By` and `x y` all name the key `x y`), and the hash part, if any, must be `b`'s.
fn names(b: &BindingInfo, props: &str) -> bool {
    let (key, hash) = match props.split_once('~') {
        Some((k, h)) => (k, h),
        None => (props, ""),
    };
    let key = unquote_plus(key);
    if key != b.routing_key {
        return false;
    }
    let canonical = if hash.is_empty() {
        properties_key(&key, &json!({}))
    } else {
        format!("{}~{hash}", quote_plus(&key))
    };
    properties_key(&b.routing_key, &b.arguments) == canonical
}

/// A new binding between `source` and `dest` (`queue` or `exchange`): 201 with the new
/// binding's path relative to the pair in `Location`.
fn bind(
    state: &State,
    who: &Authed,
    (vhost, source, dest): (String, String, String),
    destination_type: &str,
    body: &Bytes,
) -> ApiResult<Response> {
    let b = json_object(body)?;
    if source == "amq.default" {
        return default_refused();
    }
    if !has_vhost(state, &vhost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "vhost_not_found",
        ));
    }
    let routing_key = match b.get("routing_key") {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let arguments = match b.get("arguments") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => json!({}),
    };
    let info = BindingInfo {
        vhost,
        source,
        destination: dest,
        destination_type: destination_type.into(),
        routing_key,
        arguments,
    };
    state.backend.bind(&who.0.name, &info)?;
    let location = format!(
        "{}/{}",
        quote_plus_keeping(&info.destination, true),
        quote_plus_keeping(&properties_key(&info.routing_key, &info.arguments), true)
    );
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Binding from or to the default exchange is refused as RabbitMQ's API refuses it.
fn default_refused() -> ApiResult<Response> {
    Err(ApiError::not_authorised("Access refused."))
}

async fn default_exchange() -> ApiResult<Response> {
    default_refused()
}

async fn bind_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(p): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    bind(&state, &who, p, "queue", &body)
}

async fn bind_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(p): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    bind(&state, &who, p, "exchange", &body)
}

/// The one binding between a pair that `props` names (404 if none).
fn one(
    state: &State,
    who: &Authed,
    (vhost, source, dest, props): &(String, String, String, String),
    destination_type: &str,
) -> ApiResult<BindingInfo> {
    let mine = visible_names(state, who);
    if !mine.contains(vhost) {
        return Err(ApiError::not_found());
    }
    state
        .backend
        .bindings(Some(vhost))
        .map_err(|_| ApiError::not_found())?
        .into_iter()
        .find(|b| {
            b.source == *source
                && b.destination == *dest
                && b.destination_type == destination_type
                && names(b, props)
        })
        .ok_or_else(ApiError::not_found)
}

async fn one_to_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(p): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(binding_json(&one(&state, &who, &p, "queue")?)))
}

async fn one_to_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(p): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(binding_json(&one(&state, &who, &p, "exchange")?)))
}

async fn unbind_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(p): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let b = one(&state, &who, &p, "queue")?;
    state.backend.unbind(&who.0.name, &b)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unbind_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(p): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let b = one(&state, &who, &p, "exchange")?;
    state.backend.unbind(&who.0.name, &b)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RabbitMQ 3.10.8's examples (docs/rabbitmq-http-api-objects-observed.md).
    #[test]
    fn properties_keys_as_rabbitmq_writes_them() {
        let none = json!({});
        assert_eq!(properties_key("", &none), "~");
        assert_eq!(properties_key("a.b", &none), "a.b");
        assert_eq!(properties_key("a/b c%~_.", &none), "a%2Fb+c%25%7E_.");
        assert_eq!(properties_key("ünï", &none), "%C3%BCn%C3%AF");
        assert_eq!(properties_key("a.*", &none), "a.%2A");
        assert_eq!(properties_key("#", &none), "%23");
        let with = properties_key("k", &json!({"x-a": 1}));
        let (key, tag) = with.split_once('~').expect("a hash part");
        assert_eq!(key, "k");
        assert_eq!(tag.len(), 6);
        assert!(tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(with, properties_key("k", &json!({"x-a": 1})), "stable");
        assert_ne!(with, properties_key("k", &json!({"x-a": 2})));
    }
}
