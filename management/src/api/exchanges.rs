//! `/api/exchanges`, `/api/exchanges/V`, `/api/exchanges/V/X` (GET, PUT, DELETE): declares and
//! deletes run as the calling user, with its permissions.

use super::access::{has_vhost, visible_names};
use super::queues::flag;
use super::{json_object, list_response, ListQuery, StatsQuery};
use crate::auth::Authed;
use crate::backend::{ExchangeDeclare, ExchangeInfo, Put};
use crate::error::{ApiError, ApiResult};
use crate::rates::Kind;
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as S};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/exchanges", get(list_all))
        .route("/api/exchanges/{vhost}", get(list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(get_exchange).put(put_exchange).delete(delete_exchange),
        )
}

fn exchange_json(x: &ExchangeInfo) -> Value {
    let by = &x.declared_by;
    let mut v = json!({
        "arguments": x.arguments,
        "auto_delete": x.auto_delete,
        "durable": x.durable,
        "internal": x.internal,
        "name": x.name,
        "type": x.kind,
        "user_who_performed_action": by,
        "vhost": x.vhost,
    });
    // RabbitMQ shows the key only when a policy applies.
    if let Some(p) = &x.policy {
        v["policy"] = json!(p);
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
    let mut xs = state.backend.exchanges(vhost)?;
    xs.retain(|x| visible.contains(&x.vhost));
    xs.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    if stats.disabled() {
        return Ok(xs.iter().map(exchange_json).collect());
    }
    Ok(state.object_rates.with_message_stats(
        Kind::Exchange,
        xs.iter().map(|x| {
            (
                x.vhost.as_str(),
                x.name.as_str(),
                &x.counts,
                exchange_json(x),
            )
        }),
    ))
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

async fn get_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    // The default exchange is also reachable by its permission name.
    let wanted = if name == "amq.default" { "" } else { &name };
    let found = listed(&state, &who, Some(&vhost), &s)
        .map_err(|_| ApiError::not_found())?
        .into_iter()
        .find(|x| x["name"] == json!(wanted));
    let Some(mut x) = found else {
        return Err(ApiError::not_found());
    };
    x["incoming"] = json!([]);
    x["outgoing"] = json!([]);
    Ok(Json(super::with_columns(x, &q)))
}

async fn put_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let b = json_object(&body)?;
    // A new amq.* name is refused; an equivalent redeclaration of a built-in one is not.
    let exists = state
        .backend
        .exchanges(Some(&vhost))
        .is_ok_and(|xs| xs.iter().any(|x| x.name == name));
    if name.starts_with("amq.") && !exists {
        return Err(ApiError::not_authorised("Access refused."));
    }
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "vhost_not_found",
        ));
    }
    let kind = match b.get("type") {
        None | Some(Value::Null) => "direct".to_string(),
        Some(Value::String(t)) => t.clone(),
        Some(other) => other.to_string(),
    };
    let arguments = match b.get("arguments") {
        None | Some(Value::Null) | Some(Value::Array(_)) => json!({}),
        Some(Value::Object(m)) => Value::Object(m.clone()),
        Some(_) => return Err(ApiError::internal()),
    };
    let declare = ExchangeDeclare {
        kind,
        durable: flag(&b, "durable")?,
        auto_delete: flag(&b, "auto_delete")?,
        internal: flag(&b, "internal")?,
        passive: flag(&b, "passive")?,
        arguments,
        vhost,
        name,
    };
    Ok(
        match state.backend.declare_exchange(&who.0.name, declare)? {
            Put::Created => StatusCode::CREATED.into_response(),
            Put::Updated => StatusCode::NO_CONTENT.into_response(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeleteQuery {
    #[serde(rename = "if-unused")]
    if_unused: Option<String>,
}

async fn delete_exchange(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    if name.starts_with("amq.") || name.is_empty() {
        return Err(ApiError::not_authorised("Access refused."));
    }
    state.backend.delete_exchange(
        &who.0.name,
        &vhost,
        &name,
        q.if_unused.as_deref() == Some("true"),
    )?;
    Ok(StatusCode::NO_CONTENT)
}
