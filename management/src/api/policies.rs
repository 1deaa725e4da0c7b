//! `/api/policies[/V[/NAME]]` and `/api/operator-policies[/V[/NAME]]`, with RabbitMQ's tag
//! rules: lists for every management user (its own vhosts; all for administrators), single
//! policies for policymakers in their vhosts and administrators, operator policies for
//! administrators only. The policies themselves (validation, which applies) are the broker's.

use super::access::has_vhost;
use super::{json_object, list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::{OpError, Put};
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as S};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/policies", get(list::<false>))
        .route("/api/policies/{vhost}", get(list_vhost::<false>))
        .route(
            "/api/policies/{vhost}/{name}",
            get(one::<false>)
                .put(put_one::<false>)
                .delete(delete_one::<false>),
        )
        .route("/api/operator-policies", get(list::<true>))
        .route("/api/operator-policies/{vhost}", get(list_vhost::<true>))
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(one::<true>)
                .put(put_one::<true>)
                .delete(delete_one::<true>),
        )
        // Policies are runtime parameters in RabbitMQ, but not settable as such.
        .route(
            "/api/parameters/policy/{vhost}/{name}",
            put(not_as_parameter),
        )
        .route(
            "/api/parameters/operator_policy/{vhost}/{name}",
            put(not_as_parameter),
        )
}

async fn not_as_parameter() -> ApiError {
    ApiError::bad_request("policies may not be set using this method")
}

/// The vhosts `who` has a permission record in (monitoring users included: policies are
/// listed by permission, not by tag).
fn permitted(state: &State, who: &Authed) -> Vec<String> {
    state
        .backend
        .permissions()
        .into_iter()
        .filter(|p| p.user == who.0.name)
        .map(|p| p.vhost)
        .collect()
}

fn not_object() -> ApiError {
    ApiError::not_authorised("User not authorised to access object")
}

/// Policies as lists show them: sorted by vhost and name; `sort` and `columns` apply, pages
/// do not (RabbitMQ answers a plain list).
fn listed(state: &State, who: &Authed, operator: bool, vhost: Option<&str>) -> Vec<Value> {
    let mine = (!who.0.is_admin()).then(|| permitted(state, who));
    let mut items: Vec<Value> = state
        .backend
        .policies(operator)
        .into_iter()
        .filter(|p| {
            let v = p["vhost"].as_str().unwrap_or_default();
            vhost.is_none_or(|want| want == v)
                && mine.as_ref().is_none_or(|m| m.iter().any(|x| x == v))
        })
        .collect();
    let key = |p: &Value| {
        (
            p["vhost"].as_str().unwrap_or_default().to_string(),
            p["name"].as_str().unwrap_or_default().to_string(),
        )
    };
    items.sort_by_key(key);
    items
}

fn plain(items: Vec<Value>, mut q: ListQuery) -> ApiResult<Json<Value>> {
    q.page = None;
    Ok(Json(list_response(items, &q, "")?))
}

async fn list<const OPERATOR: bool>(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    plain(listed(&state, &who, OPERATOR, None), q)
}

async fn list_vhost<const OPERATOR: bool>(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    if !who.0.is_admin() && !permitted(&state, &who).contains(&vhost) {
        return Err(ApiError::not_authorised(
            "User not authorised to access virtual host",
        ));
    }
    plain(listed(&state, &who, OPERATOR, Some(&vhost)), q)
}

/// Who may touch one policy: administrators; for (plain) policies also policymakers with a
/// permission record in an existing vhost.
fn may_touch(state: &State, who: &Authed, vhost: &str, operator: bool) -> ApiResult<()> {
    if who.0.is_admin() {
        return Ok(());
    }
    if operator {
        return Err(ApiError::not_authorised("Not administrator user"));
    }
    if !who.0.is_policymaker() {
        return Err(not_object());
    }
    if has_vhost(state, vhost) && !permitted(state, who).iter().any(|v| v == vhost) {
        return Err(not_object());
    }
    Ok(())
}

async fn one<const OPERATOR: bool>(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let operator = OPERATOR;
    may_touch(&state, &who, &vhost, operator)?;
    state
        .backend
        .policies(operator)
        .into_iter()
        .find(|p| p["vhost"] == json!(vhost) && p["name"] == json!(name))
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// RabbitMQ HTML-escapes `<` and `>` in the reasons of `/api/policies` (not of operator
/// policies).
fn escaped(e: OpError, operator: bool) -> ApiError {
    match e {
        OpError::BadRequest(r) if !operator => {
            ApiError::bad_request(r.replace('<', "&lt;").replace('>', "&gt;"))
        }
        other => other.into(),
    }
}

async fn put_one<const OPERATOR: bool>(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let operator = OPERATOR;
    may_touch(&state, &who, &vhost, operator)?;
    let b = json_object(&body)?;
    for key in ["pattern", "definition"] {
        if !b.contains_key(key) {
            return Err(ApiError::bad_request(format!("[{{key_missing,{key}}}]")));
        }
    }
    let done = state
        .backend
        .put_policy(operator, &vhost, &name, &b)
        .map_err(|e| escaped(e, operator))?;
    Ok(match done {
        Put::Created => StatusCode::CREATED.into_response(),
        Put::Updated => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn delete_one<const OPERATOR: bool>(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let operator = OPERATOR;
    may_touch(&state, &who, &vhost, operator)?;
    state.backend.delete_policy(operator, &vhost, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
