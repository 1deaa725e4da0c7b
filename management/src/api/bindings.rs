//! Bindings, read side: `/api/bindings[/V]`, the bindings between two objects
//! (`/api/bindings/V/e/S/q/Q`, `.../e/S/e/D`), a queue's (`/api/queues/V/Q/bindings`) and an
//! exchange's (`/api/exchanges/V/X/bindings/source|destination`), with RabbitMQ's
//! `properties_key`.

use super::access::visible_names;
use super::{list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::BindingInfo;
use crate::error::ApiResult;
use crate::State;
use axum::extract::{Path, Query, State as S};
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
        .route("/api/bindings/{vhost}/e/{source}/q/{queue}", get(to_queue))
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{dest}",
            get(to_exchange),
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

/// RabbitMQ's `quote_plus`: `[A-Za-z0-9.-~_]` kept (but `~` written `%7E`), space as `+`,
/// every other byte `%XX`.
fn quote_plus(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => out.push(b as char),
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
    arguments.to_string().hash(&mut h);
    let hash = (h.finish() as u32).to_be_bytes();
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash);
    format!("{}~{tag}", quote_plus(key))
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
