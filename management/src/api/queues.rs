//! `/api/queues`, `/api/queues/V`, `/api/queues/V/Q` (GET, PUT, DELETE) and
//! `/api/queues/V/Q/contents` (purge). Declares and deletes go through the broker as the calling
//! user, so its permissions apply as they do over AMQP.

use super::access::{has_vhost, visible_names};
use super::{json_object, list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::{Put, QueueDeclare, QueueInfo};
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as S};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/queues", get(list_all))
        .route("/api/queues/{vhost}", get(list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(get_queue).put(put_queue).delete(delete_queue),
        )
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
}

fn queue_json(q: &QueueInfo, node: &str) -> Value {
    let messages = q.messages_ready + q.messages_unacknowledged;
    let rate = json!({ "rate": 0.0 });
    json!({
        "arguments": q.arguments,
        "auto_delete": q.auto_delete,
        "consumer_capacity": if q.consumers > 0 { json!(1.0) } else { json!(0) },
        "consumer_utilisation": if q.consumers > 0 { json!(1.0) } else { json!(0) },
        "consumers": q.consumers,
        "durable": q.durable,
        "effective_policy_definition": q.effective_policy_definition,
        "exclusive": q.exclusive,
        "exclusive_consumer_tag": null,
        "head_message_timestamp": null,
        "messages": messages,
        "messages_details": rate,
        "messages_ready": q.messages_ready,
        "messages_ready_details": rate,
        "messages_unacknowledged": q.messages_unacknowledged,
        "messages_unacknowledged_details": rate,
        "name": q.name,
        "node": node,
        "operator_policy": q.operator_policy,
        "policy": q.policy,
        "recoverable_slaves": null,
        "single_active_consumer_tag": null,
        "state": "running",
        "type": q.arguments.get("x-queue-type").and_then(Value::as_str).unwrap_or("classic"),
        "vhost": q.vhost,
    })
}

fn listed(state: &State, who: &Authed, vhost: Option<&str>) -> ApiResult<Vec<Value>> {
    let node = state.backend.identity().node;
    let visible = visible_names(state, who);
    let mut queues = state.backend.queues(vhost)?;
    queues.retain(|q| visible.contains(&q.vhost));
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Ok(queues.iter().map(|q| queue_json(q, &node)).collect())
}

async fn list_all(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(list_response(listed(&state, &who, None)?, &q, "")?))
}

async fn list_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(list_response(
        listed(&state, &who, Some(&vhost))?,
        &q,
        "",
    )?))
}

async fn get_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(lq): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let found = listed(&state, &who, Some(&vhost))
        .map_err(|_| ApiError::not_found())?
        .into_iter()
        .find(|q| q["name"] == json!(name));
    let Some(mut q) = found else {
        return Err(ApiError::not_found());
    };
    let node = state.backend.identity().node;
    let mut details = Vec::new();
    for ch in state.backend.channels() {
        for k in ch
            .consumers
            .iter()
            .filter(|k| k.queue == name && k.vhost == vhost)
        {
            if k.exclusive {
                q["exclusive_consumer_tag"] = json!(k.tag);
            }
            details.push(super::connections::consumer_json(k, &ch, &node));
        }
    }
    q["consumer_details"] = Value::Array(details);
    let owner = state
        .backend
        .queues(Some(&vhost))
        .ok()
        .and_then(|qs| qs.into_iter().find(|x| x.name == name))
        .and_then(|x| x.owner);
    if let Some(owner) = owner.and_then(|o| {
        state
            .backend
            .connections()
            .into_iter()
            .find(|c| c.name == o)
    }) {
        q["owner_pid_details"] = json!({ "name": owner.name,
            "peer_host": owner.peer.ip().to_string(), "peer_port": owner.peer.port() });
    }
    q["deliveries"] = json!([]);
    q["incoming"] = json!([]);
    Ok(Json(super::with_columns(q, &lq)))
}

/// A boolean of a body: `true`/`false` or their strings (rabbitmqadmin sends strings); absent
/// is false, anything else (`null` included) RabbitMQ's `["not_boolean", value]`.
pub(super) fn flag(b: &serde_json::Map<String, Value>, key: &str) -> ApiResult<bool> {
    match b.get(key) {
        None => Ok(false),
        Some(Value::Bool(v)) => Ok(*v),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(ApiError::bad_request(json!(["not_boolean", other]))),
    }
}

async fn put_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let b = json_object(&body)?;
    if name.starts_with("amq.") {
        return Err(ApiError::not_authorised("Access refused."));
    }
    if name.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "queue should be less than 255 bytes, actually was {}\n",
            name.len()
        )));
    }
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "vhost_not_found",
        ));
    }
    let arguments = match b.get("arguments") {
        None | Some(Value::Null) | Some(Value::Array(_)) => json!({}),
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(_) => return Err(ApiError::internal()),
    };
    let declare = QueueDeclare {
        durable: flag(&b, "durable")?,
        auto_delete: flag(&b, "auto_delete")?,
        passive: flag(&b, "passive")?,
        arguments,
        vhost,
        name,
    };
    Ok(match state.backend.declare_queue(&who.0.name, declare)? {
        Put::Created => StatusCode::CREATED.into_response(),
        Put::Updated => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeleteQuery {
    #[serde(rename = "if-empty")]
    if_empty: Option<String>,
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
}

async fn delete_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    if name.starts_with("amq.") {
        return Err(ApiError::not_authorised("Access refused."));
    }
    state.backend.delete_queue(
        &who.0.name,
        &vhost,
        &name,
        q.if_empty.as_deref() == Some("true"),
        q.if_unused.as_deref() == Some("true"),
    )?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.backend.purge_queue(&who.0.name, &vhost, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
