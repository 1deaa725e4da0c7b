//! Messages in and out through the API: `/api/exchanges/V/X/publish` and
//! `/api/queues/V/Q/get`. The bodies are checked here, with RabbitMQ's reasons; the publish and
//! the gets themselves run in the broker as the calling user (its permissions, the exchange's
//! and queue's rules, as over AMQP).

use super::json_object;
use crate::auth::Authed;
use crate::backend::{AckMode, GotMessage, MessageProperties, Publish};
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, State as S};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
        .route("/api/queues/{vhost}/{name}/get", post(get))
}

/// RabbitMQ's reason for a missing body key: `[{key_missing,count}]` (an Erlang term as text).
fn key_missing(key: &str) -> ApiError {
    ApiError::bad_request(format!("[{{key_missing,{key}}}]"))
}

fn required<'a>(b: &'a Map<String, Value>, key: &str) -> ApiResult<&'a Value> {
    b.get(key).ok_or_else(|| key_missing(key))
}

/// An integer given as a JSON number or a string of digits (as RabbitMQ's UI sends them).
fn integer(v: &Value) -> ApiResult<u64> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let shown = match v {
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    };
    parsed.ok_or_else(|| ApiError::bad_request(json!(["not_integer", shown])))
}

async fn get(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b = json_object(&body)?;
    let mode = match required(&b, "ackmode")?.as_str() {
        Some("ack_requeue_true") => AckMode::AckRequeueTrue,
        Some("ack_requeue_false") => AckMode::AckRequeueFalse,
        Some("reject_requeue_true") => AckMode::RejectRequeueTrue,
        Some("reject_requeue_false") => AckMode::RejectRequeueFalse,
        _ => return Err(ApiError::bad_request("Unsupported ackmode.")),
    };
    let count = integer(required(&b, "count")?)?;
    let base64_only = match required(&b, "encoding")?.as_str() {
        Some("auto") => false,
        Some("base64") => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let truncate = match b.get("truncate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(integer(v)? as usize),
    };
    let backend = state.backend.clone();
    let user = who.0.name.clone();
    let count = count.min(u32::MAX as u64) as usize;
    let got = tokio::task::spawn_blocking(move || {
        backend.get_messages(&user, &vhost, &name, count, mode)
    })
    .await
    .map_err(|_| ApiError::internal())??;
    Ok(Json(Value::Array(
        got.iter()
            .map(|m| got_json(m, base64_only, truncate))
            .collect(),
    )))
}

/// A message as `/get` shows it. `auto` shows a body that is UTF-8 as a string, anything else
/// as base64; `truncate` cuts the body (in bytes) before it is shown.
fn got_json(m: &GotMessage, base64_only: bool, truncate: Option<usize>) -> Value {
    let shown = match truncate {
        Some(n) if n < m.payload.len() => &m.payload[..n],
        _ => &m.payload[..],
    };
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(text) if !base64_only => (text.to_string(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    json!({
        "payload_bytes": m.payload.len(),
        "redelivered": m.redelivered,
        "exchange": m.exchange,
        "routing_key": m.routing_key,
        "message_count": m.message_count,
        "properties": m.properties,
        "payload": payload,
        "payload_encoding": encoding,
    })
}

async fn publish(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, exchange)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b = json_object(&body)?;
    let props = required(&b, "properties")?;
    let routing_key = required(&b, "routing_key")?;
    let payload = required(&b, "payload")?;
    let encoding = required(&b, "payload_encoding")?;
    let Value::String(payload) = payload else {
        return Err(ApiError::bad_request("payload_not_string"));
    };
    let payload = match encoding.as_str() {
        Some("string") => payload.clone().into_bytes(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| ApiError::bad_request(json!(["not_base64", payload])))?,
        _ => {
            return Err(ApiError::bad_request(json!([
                "unsupported_encoding",
                encoding
            ])))
        }
    };
    let properties = properties(props)?;
    let publish = Publish {
        vhost,
        exchange,
        routing_key: match routing_key {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        properties,
        payload,
    };
    let backend = state.backend.clone();
    let user = who.0.name.clone();
    let routed = tokio::task::spawn_blocking(move || backend.publish(&user, publish))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Json(json!({ "routed": routed })))
}

/// The `properties` of a publish: integers must be JSON integers, the rest strings, headers an
/// object without `null` in it; keys RabbitMQ does not know are ignored.
fn properties(v: &Value) -> ApiResult<MessageProperties> {
    let mut p = MessageProperties::default();
    let Value::Object(m) = v else {
        // RabbitMQ's UI sends `{}`; an empty list is an empty set of properties too.
        return Ok(p);
    };
    let int = |key: &str| -> ApiResult<Option<u64>> {
        match m.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(_) => Err(ApiError::bad_request(json!(["not_int", key]))),
        }
    };
    let text = |key: &str| -> ApiResult<Option<String>> {
        match m.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(json!(["not_string", key]))),
        }
    };
    p.content_type = text("content_type")?;
    p.content_encoding = text("content_encoding")?;
    p.delivery_mode = int("delivery_mode")?.map(|d| d.min(255) as u8);
    p.priority = int("priority")?.map(|d| d.min(255) as u8);
    p.correlation_id = text("correlation_id")?;
    p.reply_to = text("reply_to")?;
    p.expiration = text("expiration")?;
    p.message_id = text("message_id")?;
    p.timestamp = int("timestamp")?;
    p.kind = text("type")?;
    p.user_id = text("user_id")?;
    p.app_id = text("app_id")?;
    if let Some(h) = m.get("headers") {
        if has_null(h) {
            return Err(ApiError::bad_request("null_not_allowed"));
        }
        if let Value::Object(_) = h {
            p.headers = Some(h.clone());
        }
    }
    Ok(p)
}

fn has_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(has_null),
        Value::Object(m) => m.values().any(has_null),
        _ => false,
    }
}
