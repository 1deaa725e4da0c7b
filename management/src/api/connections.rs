//! `/api/connections[/NAME[/channels]]`, `/api/vhosts/V/connections`, `/api/channels[/NAME]`,
//! `/api/vhosts/V/channels`, `/api/consumers[/V]`: what is connected, as RabbitMQ lists it.
//! Administrators and monitoring users see everything; other users their own connections (and
//! their channels and consumers). DELETE on a connection closes it with 320 and the `X-Reason`
//! header's text.

use super::access::has_vhost;
use super::StatsQuery;
use super::{list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::{ChannelRow, ConnectionRow, ConsumerRow};
use crate::error::{ApiError, ApiResult};
use crate::rates::Kind;
use crate::State;
use axum::extract::{Path, Query, State as S};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/connections", get(connections))
        .route(
            "/api/connections/{name}",
            get(connection).delete(close_connection),
        )
        .route("/api/connections/{name}/channels", get(connection_channels))
        .route("/api/vhosts/{vhost}/connections", get(vhost_connections))
        .route("/api/channels", get(channels))
        .route("/api/channels/{name}", get(channel))
        .route("/api/vhosts/{vhost}/channels", get(vhost_channels))
        .route("/api/consumers", get(consumers))
        .route("/api/consumers/{vhost}", get(vhost_consumers))
}

/// RabbitMQ refuses these lists when asked to leave statistics out.
fn stats_refused(q: &StatsQuery) -> ApiResult<()> {
    if q.disabled() {
        return Err(ApiError::bad_request(
            "Stats in management UI are disabled on this node",
        ));
    }
    Ok(())
}

fn sees_all(who: &Authed) -> bool {
    who.0.is_monitor()
}

fn not_object() -> ApiError {
    ApiError::not_authorised("User not authorised to access object")
}

fn rate() -> Value {
    json!({ "rate": 0.0 })
}

/// What Erlang's process statistics would say: Warren has no such process; fixed values keep
/// the key that tools read.
fn garbage_collection() -> Value {
    json!({ "fullsweep_after": 65535, "max_heap_size": 0, "min_bin_vheap_size": 46422,
            "min_heap_size": 233, "minor_gcs": 0 })
}

/// A connection as RabbitMQ shows it; `single` (GET of one) gives `""` for the TLS fields of a
/// plain connection where lists give `null`.
fn connection_json(c: &ConnectionRow, node: &str, single: bool) -> Value {
    let none = if single { json!("") } else { Value::Null };
    let mut v = json!({
        "auth_mechanism": c.auth_mechanism,
        "channel_max": c.channel_max,
        "channels": c.channels,
        "client_properties": c.client_properties,
        "connected_at": c.connected_at,
        "frame_max": c.frame_max,
        "garbage_collection": garbage_collection(),
        "host": c.local.ip().to_string(),
        "name": c.name,
        "node": node,
        "peer_cert_issuer": none,
        "peer_cert_subject": none,
        "peer_cert_validity": none,
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "port": c.local.port(),
        "protocol": "AMQP 0-9-1",
        "recv_cnt": c.recv.1,
        "recv_oct": c.recv.0,
        "recv_oct_details": rate(),
        "reductions": 0,
        "reductions_details": rate(),
        "send_cnt": c.send.1,
        "send_oct": c.send.0,
        "send_oct_details": rate(),
        "send_pend": 0,
        "ssl": c.tls,
        "ssl_cipher": none,
        "ssl_hash": none,
        "ssl_key_exchange": none,
        "ssl_protocol": none,
        "state": "running",
        "timeout": c.heartbeat,
        "type": "network",
        "user": c.user,
        "user_provided_name": c.client_properties.get("connection_name"),
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    });
    if v["user_provided_name"].is_null() {
        if let Some(m) = v.as_object_mut() {
            m.remove("user_provided_name");
        }
    }
    v
}

fn channel_name(c: &ChannelRow) -> String {
    format!("{} ({})", c.connection, c.number)
}

/// Channels as RabbitMQ lists them, each with its `message_stats` once it has counted any.
fn channels_json<'a>(state: &State, rows: impl Iterator<Item = &'a ChannelRow>) -> Vec<Value> {
    let node = state.backend.identity().node;
    let rows: Vec<(&ChannelRow, String)> = rows.map(|c| (c, channel_name(c))).collect();
    state.object_rates.with_message_stats(
        Kind::Channel,
        rows.iter().map(|(c, n)| {
            let json = channel_json(c, &node);
            (c.vhost.as_str(), n.as_str(), &c.counts, json)
        }),
    )
}

fn channel_json(c: &ChannelRow, node: &str) -> Value {
    json!({
        "acks_uncommitted": 0,
        "confirm": c.confirm,
        "connection_details": { "name": c.connection, "peer_host": c.peer.ip().to_string(),
                                "peer_port": c.peer.port() },
        "consumer_count": c.consumers.len(),
        "garbage_collection": garbage_collection(),
        "global_prefetch_count": c.global_prefetch_count,
        "messages_unacknowledged": c.messages_unacknowledged,
        "messages_uncommitted": 0,
        "messages_unconfirmed": 0,
        "name": channel_name(c),
        "node": node,
        "number": c.number,
        "pending_raft_commands": 0,
        "prefetch_count": c.prefetch_count,
        "reductions": 0,
        "reductions_details": rate(),
        "state": "running",
        "transactional": c.transactional,
        "user": c.user,
        "user_who_performed_action": c.user,
        "vhost": c.vhost,
    })
}

/// A consumer; `channel_details` as `/api/consumers` gives it.
pub(super) fn consumer_json(k: &ConsumerRow, ch: &ChannelRow, node: &str) -> Value {
    json!({
        "arguments": k.arguments,
        "ack_required": k.ack_required,
        "active": true,
        "activity_status": "up",
        "channel_details": {
            "connection_name": ch.connection, "name": channel_name(ch), "node": node,
            "number": ch.number, "peer_host": ch.peer.ip().to_string(),
            "peer_port": ch.peer.port(), "user": ch.user,
        },
        "consumer_tag": k.tag,
        "exclusive": k.exclusive,
        "prefetch_count": k.prefetch_count,
        "queue": { "name": k.queue, "vhost": k.vhost },
    })
}

fn visible_connections(state: &State, who: &Authed) -> Vec<ConnectionRow> {
    let mut all = state.backend.connections();
    if !sees_all(who) {
        all.retain(|c| c.user == who.0.name);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

fn visible_channels(state: &State, who: &Authed) -> Vec<ChannelRow> {
    let mut all = state.backend.channels();
    if !sees_all(who) {
        all.retain(|c| c.user == who.0.name);
    }
    all.sort_by_key(channel_name);
    all
}

/// The connection named `name`, if `who` may see it (401 if it is someone else's).
fn one_connection(state: &State, who: &Authed, name: &str) -> ApiResult<ConnectionRow> {
    let c = state
        .backend
        .connections()
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(ApiError::not_found)?;
    if !sees_all(who) && c.user != who.0.name {
        return Err(not_object());
    }
    Ok(c)
}

async fn connections(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let node = state.backend.identity().node;
    let items = visible_connections(&state, &who)
        .iter()
        .map(|c| connection_json(c, &node, false))
        .collect();
    Ok(Json(list_response(items, &q, "")?))
}

async fn vhost_connections(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    let node = state.backend.identity().node;
    let items = visible_connections(&state, &who)
        .iter()
        .filter(|c| c.vhost == vhost)
        .map(|c| connection_json(c, &node, false))
        .collect();
    Ok(Json(list_response(items, &q, "")?))
}

async fn connection(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let c = one_connection(&state, &who, &name)?;
    Ok(Json(connection_json(
        &c,
        &state.backend.identity().node,
        true,
    )))
}

async fn close_connection(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    one_connection(&state, &who, &name)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Closed via management plugin");
    state.backend.close_connection(&name, reason)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn connection_channels(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    one_connection(&state, &who, &name)?;
    let rows = visible_channels(&state, &who);
    let items = channels_json(&state, rows.iter().filter(|c| c.connection == name));
    Ok(Json(list_response(items, &q, "")?))
}

async fn channels(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    stats_refused(&s)?;
    let rows = visible_channels(&state, &who);
    let items = channels_json(&state, rows.iter());
    Ok(Json(list_response(items, &q, "")?))
}

async fn vhost_channels(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    stats_refused(&s)?;
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    let rows = visible_channels(&state, &who);
    let items = channels_json(&state, rows.iter().filter(|c| c.vhost == vhost));
    Ok(Json(list_response(items, &q, "")?))
}

async fn channel(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let node = state.backend.identity().node;
    let ch = state
        .backend
        .channels()
        .into_iter()
        .find(|c| channel_name(c) == name)
        .ok_or_else(ApiError::not_found)?;
    if !sees_all(&who) && ch.user != who.0.name {
        return Err(not_object());
    }
    let mut v = channels_json(&state, std::iter::once(&ch))
        .pop()
        .unwrap_or_default();
    v["consumer_details"] = Value::Array(
        ch.consumers
            .iter()
            .map(|k| consumer_json(k, &ch, &node))
            .collect(),
    );
    v["deliveries"] = json!([]);
    v["publishes"] = json!([]);
    Ok(Json(v))
}

fn consumer_list(state: &State, who: &Authed, vhost: Option<&str>) -> Vec<Value> {
    let node = state.backend.identity().node;
    let mut out = Vec::new();
    for ch in visible_channels(state, who) {
        for k in &ch.consumers {
            if vhost.is_none_or(|v| v == k.vhost) {
                out.push(consumer_json(k, &ch, &node));
            }
        }
    }
    out
}

/// Consumer lists take `sort` and `columns`, not pages (RabbitMQ ignores them).
fn plain(items: Vec<Value>, mut q: ListQuery) -> ApiResult<Json<Value>> {
    q.page = None;
    Ok(Json(list_response(items, &q, "")?))
}

async fn consumers(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    stats_refused(&s)?;
    plain(consumer_list(&state, &who, None), q)
}

async fn vhost_consumers(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(s): Query<StatsQuery>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    stats_refused(&s)?;
    if !has_vhost(&state, &vhost) {
        return Err(ApiError::not_found());
    }
    plain(consumer_list(&state, &who, Some(&vhost)), q)
}
