//! Vhosts, users, permissions and topic permissions: `/api/vhosts`, `/api/users`,
//! `/api/permissions`, `/api/topic-permissions` and their per-object routes.

use super::{json_object, list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::{NewPassword, OpError, Permission, Put, TopicPermission, VHost};
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as S};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/vhosts", get(list_vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(get_vhost).put(put_vhost).delete(delete_vhost),
        )
        .route("/api/vhosts/{vhost}/permissions", get(vhost_permissions))
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(vhost_topic_permissions),
        )
        .route("/api/users", get(list_users))
        .route(
            "/api/users/without-permissions",
            get(users_without_permissions),
        )
        .route("/api/users/bulk-delete", post(bulk_delete_users))
        .route(
            "/api/users/{user}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/api/users/{user}/permissions", get(user_permissions))
        .route(
            "/api/users/{user}/topic-permissions",
            get(user_topic_permissions),
        )
        .route("/api/permissions", get(list_permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(get_permission)
                .put(put_permission)
                .delete(delete_permission),
        )
        .route("/api/topic-permissions", get(list_topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(get_topic_permission)
                .put(put_topic_permission)
                .delete(delete_topic_permission),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}/{exchange}",
            get(get_topic_permission_of).delete(delete_topic_permission_of),
        )
}

/// 201 or 204, as RabbitMQ answers a PUT.
fn put_status(p: Put) -> Response {
    match p {
        Put::Created => StatusCode::CREATED.into_response(),
        Put::Updated => StatusCode::NO_CONTENT.into_response(),
    }
}

fn vhost_json(v: &VHost, node: &str) -> Value {
    let mut metadata = json!({ "description": v.description, "tags": v.tags });
    if let Some(t) = &v.default_queue_type {
        metadata["default_queue_type"] = json!(t);
    }
    json!({
        "name": v.name,
        "description": v.description,
        "tags": v.tags,
        "default_queue_type": v.default_queue_type.as_deref().unwrap_or("undefined"),
        "metadata": metadata,
        "tracing": v.tracing,
        "cluster_state": { node: "running" },
    })
}

/// Whether `name` is a vhost.
pub(crate) fn has_vhost(state: &State, name: &str) -> bool {
    state.backend.vhosts().iter().any(|v| v.name == name)
}

/// The names of the vhosts `who` may see (see [`visible_vhosts`]).
pub(crate) fn visible_names(state: &State, who: &Authed) -> Vec<String> {
    visible_vhosts(state, who)
        .into_iter()
        .map(|v| v.name)
        .collect()
}

/// The vhosts `who` may see: all for monitoring users, else those it has a permission record in.
pub(crate) fn visible_vhosts(state: &State, who: &Authed) -> Vec<VHost> {
    let all = state.backend.vhosts();
    if who.0.is_monitor() {
        return all;
    }
    let mine: Vec<String> = state
        .backend
        .permissions()
        .into_iter()
        .filter(|p| p.user == who.0.name)
        .map(|p| p.vhost)
        .collect();
    all.into_iter().filter(|v| mine.contains(&v.name)).collect()
}

async fn list_vhosts(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let node = state.backend.identity().node;
    let list: Vec<Value> = visible_vhosts(&state, &who)
        .iter()
        .map(|v| vhost_json(v, &node))
        .collect();
    Ok(Json(list_response(list, &q, "name")?))
}

async fn get_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    let node = state.backend.identity().node;
    visible_vhosts(&state, &who)
        .iter()
        .find(|v| v.name == name)
        .map(|v| Json(vhost_json(v, &node)))
        .ok_or_else(ApiError::not_found)
}

/// A JSON value as text (a description given as a number is kept as its text).
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

async fn put_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    who.admin()?;
    let b = json_object(&body)?;
    let tracing = match b.get("tracing") {
        None => None,
        Some(Value::Bool(t)) => Some(*t),
        Some(Value::String(s)) if s == "true" || s == "false" => Some(s == "true"),
        Some(other) => return Err(ApiError::bad_request(json!(["not_boolean", other]))),
    };
    let existing = state.backend.vhosts().into_iter().find(|v| v.name == name);
    // Vhost tags keep empty items (RabbitMQ splits on ',' and trims).
    let tags = match b.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|t| t.trim().to_string()).collect(),
        Some(Value::Array(items)) => items.iter().map(text_of).collect(),
        Some(_) => return Err(ApiError::internal()),
    };
    // On update, description and tags are replaced (or reset), tracing kept unless given, the
    // default queue type never changed: RabbitMQ 3.10.8's `defaultqueuetype` (sic) applies on
    // creation only.
    let default_queue_type = match &existing {
        Some(v) => v.default_queue_type.clone(),
        None => match b.get("defaultqueuetype").map(text_of) {
            None => None,
            Some(t) if matches!(t.as_str(), "classic" | "quorum" | "stream") => Some(t),
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error occured while adding vhost",
                    "invalid_queue_type",
                ))
            }
        },
    };
    let vhost = VHost {
        description: b.get("description").map(text_of).unwrap_or_default(),
        tags,
        name: name.clone(),
        tracing: tracing.unwrap_or(existing.as_ref().is_some_and(|v| v.tracing)),
        default_queue_type,
    };
    let put = state.backend.put_vhost(&who.0.name, vhost)?;
    if put == Put::Created {
        // The creator gets every permission in it, as RabbitMQ's API gives it.
        state.backend.set_permission(Permission {
            user: who.0.name.clone(),
            vhost: name,
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })?;
    }
    Ok(put_status(put))
}

async fn delete_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    state.backend.delete_vhost(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_json(u: &crate::backend::User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash,
        "hashing_algorithm": u.hashing_algorithm,
        "tags": u.tags,
        "limits": u.limits,
    })
}

async fn list_users(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    let list = state.backend.users().iter().map(user_json).collect();
    Ok(Json(list_response(list, &q, "name")?))
}

async fn users_without_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    let with: Vec<String> = state
        .backend
        .permissions()
        .into_iter()
        .map(|p| p.user)
        .collect();
    let list = state
        .backend
        .users()
        .iter()
        .filter(|u| !with.contains(&u.name))
        .map(user_json)
        .collect();
    Ok(Json(list_response(list, &q, "name")?))
}

async fn bulk_delete_users(
    S(state): S<Arc<State>>,
    who: Authed,
    body: Bytes,
) -> ApiResult<StatusCode> {
    who.admin()?;
    let b = json_object(&body)?;
    let users = match b.get("users") {
        None => return Err(ApiError::bad_request("[{key_missing,users}]")),
        Some(Value::Array(users)) => users.clone(),
        Some(_) => return Err(ApiError::internal()),
    };
    // One by one, in order, as RabbitMQ: an unknown user stops there.
    for u in users {
        let name = text_of(&u);
        match state.backend.delete_user(&name) {
            Ok(()) => {}
            Err(OpError::NotFound) => {
                return Err(ApiError::bad_request(json!(["no_such_user", name])))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn get_user(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    state
        .backend
        .users()
        .iter()
        .find(|u| u.name == name)
        .map(|u| Json(user_json(u)))
        .ok_or_else(ApiError::not_found)
}

/// User tags: split on ',', trimmed, empty items dropped; a list as it is.
fn user_tags(v: &Value) -> Result<Vec<String>, ApiError> {
    match v {
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .enumerate()
            .filter(|(i, t)| !t.is_empty() || (*i == 0 && !s.is_empty() && s.trim().is_empty()))
            .map(|(_, t)| t.to_string())
            .collect()),
        Value::Array(items) => Ok(items.iter().map(text_of).collect()),
        _ => Err(ApiError::internal()),
    }
}

async fn put_user(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    who.admin()?;
    let b = json_object(&body)?;
    let tags = match (b.get("tags"), b.get("administrator")) {
        (Some(t), _) => user_tags(t)?,
        // The pre-3.0 form.
        (None, Some(a)) if text_of(a) == "true" => vec!["administrator".to_string()],
        (None, Some(_)) => Vec::new(),
        (None, None) => return Err(ApiError::bad_request("tags_not_present")),
    };
    let password = match (b.get("password"), b.get("password_hash")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "both_password_and_password_hash_are_provided",
            ))
        }
        (Some(Value::String(p)), None) => NewPassword::Clear(p.clone()),
        (Some(_), None) => return Err(ApiError::internal()),
        (None, Some(Value::String(h))) if h.is_empty() => NewPassword::None,
        (None, Some(Value::String(h))) => {
            use base64::Engine;
            if base64::engine::general_purpose::STANDARD.decode(h).is_err() {
                return Err(ApiError::bad_request(json!(["not_base64", h])));
            }
            let algorithm = b
                .get("hashing_algorithm")
                .and_then(Value::as_str)
                .map(str::to_string);
            NewPassword::Hash(h.clone(), algorithm)
        }
        (None, Some(_)) => return Err(ApiError::internal()),
        // Without a password: a new user gets the empty password's hash, an existing one
        // loses its password; empty passwords never log in (RabbitMQ 3.10.8, observed).
        (None, None) if state.backend.users().iter().any(|u| u.name == name) => NewPassword::None,
        (None, None) => NewPassword::Clear(String::new()),
    };
    let limits = match b.get("limits") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(ApiError::internal()),
    };
    let put = state.backend.put_user(&name, password, tags)?;
    for (limit, value) in &limits {
        state
            .backend
            .set_user_limit(&name, limit, value)
            .map_err(|_| ApiError::internal())?;
    }
    Ok(put_status(put))
}

async fn delete_user(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    state.backend.delete_user(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

fn permission_json(p: &Permission) -> Value {
    json!({
        "user": p.user, "vhost": p.vhost,
        "configure": p.configure, "write": p.write, "read": p.read,
    })
}

fn topic_json(p: &TopicPermission) -> Value {
    json!({
        "user": p.user, "vhost": p.vhost, "exchange": p.exchange,
        "write": p.write, "read": p.read,
    })
}

async fn list_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    let list = state
        .backend
        .permissions()
        .iter()
        .map(permission_json)
        .collect();
    Ok(Json(list_response(list, &q, "vhost")?))
}

async fn vhost_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(
        state
            .backend
            .permissions()
            .iter()
            .filter(|p| p.vhost == vhost)
            .map(permission_json)
            .collect(),
    )))
}

async fn user_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    if !state.backend.users().iter().any(|u| u.name == user) {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(
        state
            .backend
            .permissions()
            .iter()
            .filter(|p| p.user == user)
            .map(permission_json)
            .collect(),
    )))
}

async fn get_permission(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    state
        .backend
        .permissions()
        .iter()
        .find(|p| p.vhost == vhost && p.user == user)
        .map(|p| Json(permission_json(p)))
        .ok_or_else(ApiError::not_found)
}

/// The string fields `keys` of a body, or RabbitMQ's `[{key_missing,k},...]` for those absent.
fn required(b: &Map<String, Value>, keys: &[&str]) -> Result<Vec<String>, ApiError> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !b.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad_request(format!("[{}]", missing.join(","))));
    }
    keys.iter()
        .map(|k| match &b[*k] {
            Value::String(s) => Ok(s.clone()),
            _ => Err(ApiError::internal()),
        })
        .collect()
}

async fn put_permission(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    who.admin()?;
    let b = json_object(&body)?;
    let v = required(&b, &["configure", "write", "read"])?;
    let (configure, write, read) = (v[0].clone(), v[1].clone(), v[2].clone());
    Ok(put_status(state.backend.set_permission(Permission {
        user,
        vhost,
        configure,
        write,
        read,
    })?))
}

async fn delete_permission(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    let exists = state
        .backend
        .permissions()
        .iter()
        .any(|p| p.vhost == vhost && p.user == user);
    if !exists {
        return Err(ApiError::not_found());
    }
    state.backend.clear_permission(&vhost, &user)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_topic_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    let list = state
        .backend
        .topic_permissions()
        .iter()
        .map(topic_json)
        .collect();
    Ok(Json(list_response(list, &q, "vhost")?))
}

async fn vhost_topic_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(
        state
            .backend
            .topic_permissions()
            .iter()
            .filter(|p| p.vhost == vhost)
            .map(topic_json)
            .collect(),
    )))
}

async fn user_topic_permissions(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(user): Path<String>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    if !state.backend.users().iter().any(|u| u.name == user) {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(
        state
            .backend
            .topic_permissions()
            .iter()
            .filter(|p| p.user == user)
            .map(topic_json)
            .collect(),
    )))
}

async fn get_topic_permission(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.admin()?;
    let list: Vec<Value> = state
        .backend
        .topic_permissions()
        .iter()
        .filter(|p| p.vhost == vhost && p.user == user)
        .map(topic_json)
        .collect();
    if list.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(list)))
}

async fn put_topic_permission(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    who.admin()?;
    let b = json_object(&body)?;
    let v = required(&b, &["exchange", "write", "read"])?;
    let (exchange, write, read) = (v[0].clone(), v[1].clone(), v[2].clone());
    Ok(put_status(state.backend.set_topic_permission(
        TopicPermission {
            user,
            vhost,
            exchange,
            write,
            read,
        },
    )?))
}

async fn delete_topic_permission(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    let any = state
        .backend
        .topic_permissions()
        .iter()
        .any(|p| p.vhost == vhost && p.user == user);
    if !any {
        return Err(ApiError::not_found());
    }
    state.backend.clear_topic_permission(&vhost, &user, None)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_topic_permission_of(
    S(state): S<Arc<State>>,
    who: Authed,
    Path((vhost, user, exchange)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    who.admin()?;
    state
        .backend
        .clear_topic_permission(&vhost, &user, Some(&exchange))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_topic_permission_of(
    st: S<Arc<State>>,
    who: Authed,
    Path((vhost, user, _exchange)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    get_topic_permission(st, who, Path((vhost, user))).await
}
