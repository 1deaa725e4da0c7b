//! `/api/nodes` and `/api/nodes/NODE` (monitoring users and administrators): the node's
//! resources as RabbitMQ's management plugin reports them. Warren is one node; figures it does
//! not have (Erlang's run queue, garbage collection) are reported as zero.

use super::{list_response, ListQuery};
use crate::auth::Authed;
use crate::backend::NodeStats;
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::extract::{Path, Query, State as S};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/nodes", get(list))
        .route("/api/nodes/{node}", get(one))
}

/// RabbitMQ's descriptions of the SASL mechanisms it knows.
fn mechanism(name: &str, enabled: bool) -> Value {
    let description = match name {
        "PLAIN" => "SASL PLAIN authentication mechanism",
        "AMQPLAIN" => "QPid AMQPLAIN mechanism",
        "EXTERNAL" => "SASL EXTERNAL authentication mechanism using SSL certificates",
        other => other,
    };
    json!({ "name": name, "description": description, "enabled": enabled })
}

fn rate() -> Value {
    json!({ "rate": 0.0 })
}

fn node_json(name: &str, s: &NodeStats, exchange_types: Value) -> Value {
    let mechanisms: Vec<Value> = ["PLAIN", "AMQPLAIN", "EXTERNAL"]
        .iter()
        .map(|m| mechanism(m, s.auth_mechanisms.iter().any(|c| c == m)))
        .collect();
    // Built in two parts: one json! literal of this size exceeds the macro recursion limit.
    let mut node = json!({
        "partitions": [],
        "os_pid": s.os_pid.to_string(),
        "fd_total": s.fd_total,
        "sockets_total": s.fd_total,
        "mem_limit": s.mem_limit,
        "mem_alarm": s.mem_alarm,
        "disk_free_limit": s.disk_free_limit,
        "disk_free_alarm": s.disk_free_alarm,
        "proc_total": 1_048_576,
        "rates_mode": "basic",
        "uptime": s.uptime_ms,
        "run_queue": 0,
        "processors": s.processors,
        "exchange_types": exchange_types,
        "auth_mechanisms": mechanisms,
        "applications": [],
        "contexts": [],
        "log_files": ["<stdout>"],
        "db_dir": s.db_dir,
        "config_files": s.config_files,
        "net_ticktime": 60,
        "enabled_plugins": ["rabbitmq_management"],
        "mem_calculation_strategy": "rss",
        "name": name,
        "type": "disc",
        "running": true,
    });
    let figures = json!({
        "mem_used": s.mem_used,
        "mem_used_details": rate(),
        "fd_used": s.fd_used,
        "fd_used_details": rate(),
        "sockets_used": s.sockets_used,
        "sockets_used_details": rate(),
        "proc_used": s.threads,
        "proc_used_details": rate(),
        "disk_free": s.disk_free,
        "disk_free_details": rate(),
        "cluster_links": [],
        "metrics_gc_queue_length": {
            "connection_closed": 0, "channel_closed": 0, "consumer_deleted": 0,
            "exchange_deleted": 0, "queue_deleted": 0, "vhost_deleted": 0,
            "node_node_deleted": 0, "channel_consumer_deleted": 0,
        },
    });
    if let (Value::Object(n), Value::Object(f)) = (&mut node, figures) {
        n.extend(f);
    }
    node
}

async fn node_value(state: &Arc<State>) -> ApiResult<Value> {
    let backend = state.backend.clone();
    let stats = tokio::task::spawn_blocking(move || backend.node_stats())
        .await
        .map_err(|_| ApiError::internal())?;
    let name = state.backend.identity().node;
    Ok(node_json(&name, &stats, super::overview::exchange_types()))
}

async fn list(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.monitor()?;
    let node = node_value(&state).await?;
    Ok(Json(list_response(vec![node], &q, "name")?))
}

async fn one(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    who.monitor()?;
    if name != state.backend.identity().node {
        return Err(ApiError::not_found());
    }
    Ok(Json(node_value(&state).await?))
}
