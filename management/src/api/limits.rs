//! `/api/vhost-limits` and `/api/user-limits`.

use super::access::{has_vhost, visible_names, visible_vhosts};
use super::json_object;
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, State as S};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/vhost-limits", get(all_vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            put(put_vhost_limit).delete(delete_vhost_limit),
        )
        .route("/api/user-limits", get(all_user_limits))
        .route("/api/user-limits/{user}", get(user_limits))
        .route(
            "/api/user-limits/{user}/{name}",
            put(put_user_limit).delete(delete_user_limit),
        )
}

/// The limits endpoints take JSON only (415 otherwise, as RabbitMQ).
fn json_content(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::empty(StatusCode::UNSUPPORTED_MEDIA_TYPE))
    }
}

/// `{"value": N}` of a PUT.
fn value_of(body: &Bytes) -> Result<Value, ApiError> {
    json_object(body)?
        .remove("value")
        .ok_or_else(|| ApiError::bad_request("[{key_missing,value}]"))
}

async fn all_vhost_limits(S(state): S<Arc<State>>, who: Authed) -> ApiResult<Json<Value>> {
    let visible = visible_names(&state, &who);
    let list = state
        .backend
        .vhost_limits()
        .into_iter()
        .filter(|(v, l)| visible.contains(v) && !l.is_empty())
        .map(|(vhost, value)| json!({ "vhost": vhost, "value": value }))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn vhost_limits(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    if !visible_vhosts(&state, &who).iter().any(|v| v.name == vhost) {
        return Err(ApiError::not_authorised(
            "User not authorised to access virtual host",
        ));
    }
    let list = state
        .backend
        .vhost_limits()
        .into_iter()
        .filter(|(v, l)| *v == vhost && !l.is_empty())
        .map(|(vhost, value)| json!({ "vhost": vhost, "value": value }))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn put_vhost_limit(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    who.admin()?;
    json_content(&headers)?;
    let value = value_of(&body)?;
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "vhost_not_found",
        ));
    }
    state.backend.set_vhost_limit(&vhost, &name, &value)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_vhost_limit(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    state.backend.clear_vhost_limit(&vhost, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn all_user_limits(S(state): S<Arc<State>>, _who: Authed) -> ApiResult<Json<Value>> {
    let list = state
        .backend
        .users()
        .into_iter()
        .filter(|u| !u.limits.is_empty())
        .map(|u| json!({ "user": u.name, "value": u.limits }))
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn user_limits(
    S(state): S<Arc<State>>,
    _who: Authed,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    let users = state.backend.users();
    let Some(u) = users.iter().find(|u| u.name == user) else {
        return Err(ApiError::not_found());
    };
    let list = if u.limits.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "user": u.name, "value": u.limits })]
    };
    Ok(Json(Value::Array(list)))
}

async fn put_user_limit(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((user, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    who.admin()?;
    json_content(&headers)?;
    let value = value_of(&body)?;
    state.backend.set_user_limit(&user, &name, &value)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_user_limit(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    state.backend.clear_user_limit(&user, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
