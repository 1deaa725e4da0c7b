//! `/api/overview` and `/api/whoami`.

use crate::auth::Authed;
use crate::error::ApiResult;
use crate::State;
use axum::extract::{Query, State as S};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) async fn whoami(who: Authed) -> Json<Value> {
    Json(json!({ "name": who.0.name, "tags": who.0.tags }))
}

/// `?disable_stats=true`: the overview without statistics (RabbitMQ's lighter answer).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(super) struct OverviewQuery {
    disable_stats: Option<String>,
}

pub(super) async fn overview(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<OverviewQuery>,
) -> ApiResult<Json<Value>> {
    let id = state.backend.identity();
    if q.disable_stats.as_deref() == Some("true") {
        return Ok(Json(without_stats(&state, &who)));
    }
    let totals = if who.0.is_monitor() {
        state.backend.object_totals(None)
    } else {
        let mine = super::access::visible_names(&state, &who);
        state.backend.object_totals(Some(&mine))
    };
    let mut o = json!({
        "management_version": id.rabbitmq_version,
        "rates_mode": "basic",
        "product_version": id.rabbitmq_version,
        "product_name": "RabbitMQ",
        "rabbitmq_version": id.rabbitmq_version,
        "cluster_name": id.cluster_name,
        "warren_version": id.warren_version,
        // No Erlang here: what runs instead.
        "erlang_version": format!("Warren {}", id.warren_version),
        "erlang_full_version": format!("Warren {} (Rust, tokio)", id.warren_version),
        "release_series_support_status": "supported",
        "disable_stats": false,
        "enable_queue_totals": false,
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600],
        },
        "message_stats": state.rates.message_stats(state.backend.global_counters()),
        "churn_rates": {},
        "queue_totals": queue_totals(&state, &who),
        "statistics_db_event_queue": 0,
        "exchange_types": exchange_types(),
    });
    if who.0.is_monitor() {
        o["object_totals"] = json!(totals);
        o["node"] = json!(id.node);
        let listeners: Vec<Value> = state
            .backend
            .listeners()
            .into_iter()
            .map(|(protocol, ip, port)| {
                json!({ "node": id.node, "protocol": protocol, "ip_address": ip.to_string(),
                        "port": port, "socket_opts": {} })
            })
            .collect();
        o["listeners"] = Value::Array(listeners);
        o["contexts"] = json!([]);
    } else {
        // Management and policymaker users: their vhosts only, and no node details.
        o["object_totals"] = json!({
            "channels": totals.channels, "connections": totals.connections,
            "exchanges": totals.exchanges, "queues": totals.queues,
        });
    }
    Ok(Json(o))
}

/// The overview with `disable_stats=true`: who the broker is, its node, and the numbers of
/// queues and exchanges (and, for monitoring users, connections) `who` may see.
fn without_stats(state: &State, who: &Authed) -> Value {
    let id = state.backend.identity();
    let totals = if who.0.is_monitor() {
        state.backend.object_totals(None)
    } else {
        let mine = super::access::visible_names(state, who);
        state.backend.object_totals(Some(&mine))
    };
    let mut object_totals = json!({ "queues": totals.queues, "exchanges": totals.exchanges });
    if who.0.is_monitor() {
        object_totals["connections"] = json!(totals.connections);
    }
    json!({
        "management_version": id.rabbitmq_version,
        "rates_mode": "basic",
        "sample_retention_policies": {
            "global": [600, 3600, 28800, 86400], "basic": [600, 3600], "detailed": [600],
        },
        "exchange_types": exchange_types(),
        "product_version": id.rabbitmq_version,
        "product_name": "RabbitMQ",
        "rabbitmq_version": id.rabbitmq_version,
        "cluster_name": id.cluster_name,
        "erlang_version": format!("Warren {}", id.warren_version),
        "erlang_full_version": format!("Warren {} (Rust, tokio)", id.warren_version),
        "release_series_support_status": "supported",
        "disable_stats": true,
        "enable_queue_totals": false,
        "warren_version": id.warren_version,
        "node": id.node,
        "object_totals": object_totals,
    })
}

/// Messages in the queues `who` may see, as RabbitMQ's `queue_totals`.
fn queue_totals(state: &State, who: &Authed) -> Value {
    let visible = super::access::visible_names(state, who);
    let (mut ready, mut unacked) = (0u64, 0u64);
    for q in state.backend.queues(None).unwrap_or_default() {
        if visible.contains(&q.vhost) {
            ready += q.messages_ready;
            unacked += q.messages_unacknowledged;
        }
    }
    let rate = json!({ "rate": 0.0 });
    json!({
        "messages": ready + unacked, "messages_details": rate,
        "messages_ready": ready, "messages_ready_details": rate,
        "messages_unacknowledged": unacked, "messages_unacknowledged_details": rate,
    })
}

/// The exchange types, as RabbitMQ lists them (sorted by name).
pub(super) fn exchange_types() -> Value {
    json!([
        {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
        {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
        {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
        {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
    ])
}
