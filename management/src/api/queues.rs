//! `/api/queues`, `/api/queues/V`, `/api/queues/V/Q` (GET, PUT, DELETE) and
//! `/api/queues/V/Q/contents` (purge). Declares and deletes go through the broker as the calling
//! user, so its permissions apply as they do over AMQP.

use super::access::{has_vhost, visible_names};
use super::{json_object, list_response, ListQuery, StatsQuery};
use crate::auth::Authed;
use crate::backend::{Put, QueueDeclare, QueueInfo};
use crate::error::{ApiError, ApiResult};
use crate::rates::Kind;
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as S};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
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
        .route("/api/queues/{vhost}/{name}/actions", post(actions))
}

fn queue_json(q: &QueueInfo, node: &str) -> Value {
    let messages = q.messages_ready + q.messages_unacknowledged;
    let z = &q.sizes;
    let rate = json!({ "rate": 0.0 });
    let busy = if q.consumers > 0 {
        json!(1.0)
    } else {
        json!(0)
    };
    json!({
        "arguments": q.arguments,
        "auto_delete": q.auto_delete,
        "backing_queue_status": {
            "avg_ack_egress_rate": 0.0, "avg_ack_ingress_rate": 0.0, "avg_egress_rate": 0.0,
            "avg_ingress_rate": 0.0, "len": q.messages_ready, "mode": "default",
            "q1": 0, "q2": 0, "q3": q.messages_ready - z.paged.min(q.messages_ready), "q4": 0,
            "target_ram_count": "infinity", "version": 1,
        },
        "consumer_capacity": busy,
        "consumer_utilisation": busy,
        "consumers": q.consumers,
        "durable": q.durable,
        "effective_policy_definition": q.effective_policy_definition,
        "exclusive": q.exclusive,
        "exclusive_consumer_tag": null,
        "garbage_collection": { "fullsweep_after": 65535, "max_heap_size": 0,
            "min_bin_vheap_size": 46422, "min_heap_size": 233, "minor_gcs": 0 },
        "head_message_timestamp": null,
        // What the queue holds in memory, roughly: its in-memory bodies.
        "memory": z.ready_ram_bytes + z.unacked_bytes,
        "message_bytes": z.ready_bytes + z.unacked_bytes,
        "message_bytes_paged_out": z.paged_bytes,
        "message_bytes_persistent": z.persistent_bytes,
        "message_bytes_ram": z.ready_ram_bytes + z.unacked_bytes,
        "message_bytes_ready": z.ready_bytes,
        "message_bytes_unacknowledged": z.unacked_bytes,
        "messages": messages,
        "messages_details": rate,
        "messages_paged_out": z.paged,
        "messages_persistent": z.persistent,
        "messages_ram": z.ready_ram + q.messages_unacknowledged,
        "messages_ready": q.messages_ready,
        "messages_ready_details": rate,
        "messages_ready_ram": z.ready_ram,
        "messages_unacknowledged": q.messages_unacknowledged,
        "messages_unacknowledged_details": rate,
        "messages_unacknowledged_ram": q.messages_unacknowledged,
        "name": q.name,
        "node": node,
        "operator_policy": q.operator_policy,
        "policy": q.policy,
        "recoverable_slaves": null,
        "reductions": 0,
        "reductions_details": rate,
        "single_active_consumer_tag": null,
        "state": "running",
        "type": queue_type(q),
        "vhost": q.vhost,
    })
}

fn queue_type(q: &QueueInfo) -> &str {
    q.arguments
        .get("x-queue-type")
        .and_then(Value::as_str)
        .unwrap_or("classic")
}

/// A queue with `disable_stats=true`: its definition only (with `enable_queue_totals=true`, its
/// message totals too), as RabbitMQ answers without statistics.
fn queue_bare(q: &QueueInfo, node: &str, totals: bool) -> Value {
    let mut v = json!({
        "arguments": q.arguments,
        "auto_delete": q.auto_delete,
        "durable": q.durable,
        "exclusive": q.exclusive,
        "name": q.name,
        "node": node,
        "state": if totals { "running" } else { "live" },
        "type": queue_type(q),
        "vhost": q.vhost,
    });
    if totals {
        v["messages"] = json!(q.messages_ready + q.messages_unacknowledged);
        v["messages_ready"] = json!(q.messages_ready);
        v["messages_unacknowledged"] = json!(q.messages_unacknowledged);
    }
    v
}

fn listed(
    state: &State,
    who: &Authed,
    vhost: Option<&str>,
    stats: &StatsQuery,
) -> ApiResult<Vec<Value>> {
    let visible = visible_names(state, who);
    let mut queues = state.backend.queues(vhost)?;
    queues.retain(|q| visible.contains(&q.vhost));
    queues.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    Ok(rendered(state, &queues, stats))
}

/// Queues as RabbitMQ shows them, each with its `message_stats` once it has counted any.
fn rendered(state: &State, queues: &[QueueInfo], stats: &StatsQuery) -> Vec<Value> {
    let node = state.backend.identity().node;
    if let Some(totals) = stats.bare() {
        return queues
            .iter()
            .map(|q| queue_bare(q, &node, totals))
            .collect();
    }
    state.object_rates.with_message_stats(
        Kind::Queue,
        queues.iter().map(|q| {
            let json = queue_json(q, &node);
            (q.vhost.as_str(), q.name.as_str(), &q.counts, json)
        }),
    )
}

async fn list_all(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(list_response(
        listed(&state, &who, None, &s)?,
        &q,
        "",
    )?))
}

async fn list_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(list_response(
        listed(&state, &who, Some(&vhost), &s)?,
        &q,
        "",
    )?))
}

async fn get_queue(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(s): Query<StatsQuery>,
    Query(lq): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    if !visible_names(&state, &who).contains(&vhost) {
        return Err(ApiError::not_found());
    }
    let info = state
        .backend
        .queues(Some(&vhost))
        .map_err(|_| ApiError::not_found())?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(ApiError::not_found)?;
    let mut q = rendered(&state, std::slice::from_ref(&info), &s)
        .pop()
        .unwrap_or_default();
    if s.bare().is_some() {
        return Ok(Json(super::with_columns(q, &lq)));
    }
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
    if let Some(owner) = info.owner.and_then(|o| {
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

/// `POST /api/queues/V/Q/actions`: `sync` and `cancel_sync`, RabbitMQ's mirrored-queue actions.
/// Warren's queues are not mirrored, so both are accepted and do nothing (as RabbitMQ does for
/// a queue without mirrors). Administrators only.
async fn actions(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    who.admin()?;
    let exists = has_vhost(&state, &vhost)
        && state
            .backend
            .queues(Some(&vhost))?
            .iter()
            .any(|q| q.name == name);
    if !exists {
        return Err(ApiError::not_found());
    }
    let b = json_object(&body)?;
    match b.get("action") {
        None => Err(ApiError::bad_request("[{key_missing,action}]")),
        Some(Value::String(a)) if a == "sync" || a == "cancel_sync" => Ok(StatusCode::NO_CONTENT),
        Some(Value::String(a)) => Err(ApiError::bad_request(json!(["unknown", a]))),
        Some(other) => Err(ApiError::bad_request(json!(["unknown", other]))),
    }
}
