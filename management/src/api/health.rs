//! Health checks: `/api/healthchecks/node`, `/api/health/checks/*`, and `/api/auth`.

use super::access::has_vhost;
use crate::auth::Authed;
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::extract::{Path, State as S};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/aliveness-test/{vhost}", get(aliveness))
        .route("/api/healthchecks/node", get(node))
        .route("/api/healthchecks/node/{node}", get(node_named))
        .route("/api/health/checks/alarms", get(alarms))
        .route("/api/health/checks/local-alarms", get(local_alarms))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(protocol_listener),
        )
        .route("/api/health/checks/virtual-hosts", get(ok))
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(certificate_expiration),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(single_node),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(single_node),
        )
        .route("/api/auth", get(auth))
}

fn failed(body: Value) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn ok(_who: Authed) -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn single_node(_who: Authed) -> Json<Value> {
    Json(json!({ "status": "ok", "reason": "single node cluster" }))
}

async fn aliveness(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    // Here even monitoring users need a permission record in the vhost (administrators go on
    // and are refused by the vhost login, as RabbitMQ's direct connection is).
    let has_record = state
        .backend
        .permissions()
        .iter()
        .any(|p| p.vhost == vhost && p.user == who.0.name);
    if !has_record && !who.0.is_admin() {
        return Err(ApiError::not_authorised(
            "User not authorised to access virtual host",
        ));
    }
    let backend = state.backend.clone();
    let user = who.0.name.clone();
    let alive = tokio::task::spawn_blocking(move || backend.aliveness_test(&vhost, &user))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(if alive {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        failed(json!({ "status": "failed", "reason": "aliveness-test queue is empty" }))
    })
}

async fn node(S(state): S<Arc<State>>, _who: Authed) -> Response {
    node_check(&state)
}

fn node_check(state: &State) -> Response {
    let alarms = state.backend.alarms();
    if alarms.is_empty() {
        return Json(json!({ "status": "ok" })).into_response();
    }
    let node = state.backend.identity().node;
    let list: Vec<String> = alarms
        .iter()
        .map(|a| format!("{{resource_limit,{a},{node}}}"))
        .collect();
    failed(json!({
        "status": "failed",
        "reason": format!("resource alarm(s) in effect:[{}]", list.join(",")),
    }))
}

async fn node_named(
    S(state): S<Arc<State>>,
    _who: Authed,
    Path(node): Path<String>,
) -> ApiResult<Response> {
    if node != state.backend.identity().node {
        return Err(ApiError::not_found());
    }
    Ok(node_check(&state))
}

fn alarm_check(state: &State, reason: &str) -> Response {
    let alarms = state.backend.alarms();
    if alarms.is_empty() {
        return Json(json!({ "status": "ok" })).into_response();
    }
    let node = state.backend.identity().node;
    let list: Vec<Value> = alarms
        .iter()
        .map(|a| json!({ "node": node, "resource": a }))
        .collect();
    failed(json!({ "alarms": list, "reason": reason, "status": "failed" }))
}

async fn alarms(S(state): S<Arc<State>>, _who: Authed) -> Response {
    alarm_check(&state, "There are alarms in effect in the cluster")
}

async fn local_alarms(S(state): S<Arc<State>>, _who: Authed) -> Response {
    alarm_check(&state, "There are alarms in effect on the node")
}

async fn port_listener(
    S(state): S<Arc<State>>,
    _who: Authed,
    Path(port): Path<String>,
) -> ApiResult<Response> {
    let port: u16 = port
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let ports: Vec<u16> = state
        .backend
        .listeners()
        .into_iter()
        .map(|(_, _, p)| p)
        .collect();
    if ports.contains(&port) {
        return Ok(Json(json!({ "status": "ok", "port": port })).into_response());
    }
    Ok(failed(json!({
        "status": "failed", "reason": "No active listener", "missing": port, "ports": ports,
    })))
}

/// RabbitMQ's normalisation of a protocol name in the listener check.
fn normalise_protocol(p: &str) -> String {
    let p = p.to_lowercase();
    match p.as_str() {
        "amqp091" | "amqp0-9-1" | "amqp0.9.1" | "amqp0_9_1" | "amqp10" | "amqp1.0" | "amqp1_0"
        | "amqp1-0" => "amqp".into(),
        "amqps" => "amqp/ssl".into(),
        "http1" | "http1.1" | "http_api" | "management" | "management_ui" | "ui" => "http".into(),
        "cli" | "distribution" => "clustering".into(),
        _ => p,
    }
}

async fn protocol_listener(
    S(state): S<Arc<State>>,
    _who: Authed,
    Path(protocol): Path<String>,
) -> Response {
    let wanted = normalise_protocol(&protocol);
    let mut protocols: Vec<String> = Vec::new();
    for (p, _, _) in state.backend.listeners() {
        if !protocols.contains(&p) {
            protocols.push(p);
        }
    }
    if protocols.contains(&wanted) {
        return Json(json!({ "status": "ok", "protocol": wanted })).into_response();
    }
    failed(json!({
        "status": "failed", "reason": "No active listener", "missing": wanted,
        "protocols": protocols,
    }))
}

async fn auth() -> Json<Value> {
    Json(json!({ "enable_uaa": false, "uaa_client_id": "", "uaa_location": "" }))
}

/// Fails if an amqps certificate expires within the given time (RabbitMQ's units; a month is
/// 30 days, a year 365). Without TLS there is nothing to expire.
async fn certificate_expiration(
    S(state): S<Arc<State>>,
    _who: Authed,
    Path((within, unit)): Path<(String, String)>,
) -> ApiResult<Response> {
    let Ok(n) = within.parse::<i64>() else {
        return Err(ApiError::bad_request("Invalid expiration value."));
    };
    let day = 86_400i64;
    let seconds = match unit.as_str() {
        "days" => n * day,
        "weeks" => n * 7 * day,
        "months" => n * 30 * day,
        "years" => n * 365 * day,
        _ => {
            return Err(ApiError::bad_request(
                "Time unit not recognised. Supported units: days, weeks, months, years.",
            ))
        }
    };
    let backend = state.backend.clone();
    let expiry = tokio::task::spawn_blocking(move || backend.certificate_expiry())
        .await
        .map_err(|_| ApiError::internal())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let Some((certfile, ends)) = expiry else {
        return Ok(Json(json!({ "status": "ok" })).into_response());
    };
    let node = state.backend.identity().node;
    let expiring: Vec<Value> = ends
        .iter()
        .filter(|end| **end <= now + seconds)
        .map(|end| {
            json!({ "node": node, "protocol": "amqp/ssl", "certfile": certfile,
                           "expiry_date": end })
        })
        .collect();
    Ok(if expiring.is_empty() {
        Json(json!({ "status": "ok" })).into_response()
    } else {
        failed(
            json!({ "status": "failed", "reason": "Certificates expiring",
                       "expired": expiring }),
        )
    })
}
