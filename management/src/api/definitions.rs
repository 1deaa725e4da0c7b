//! `/api/definitions` and `/api/definitions/V`: export (GET) in RabbitMQ's format.

use crate::auth::Authed;
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::extract::{Path, Query, State as S};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/definitions", get(export_all))
        .route("/api/definitions/{vhost}", get(export_vhost))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExportQuery {
    /// A file name: the answer is sent as an attachment.
    download: Option<String>,
}

fn answer(defs: serde_json::Value, q: &ExportQuery) -> Response {
    let mut r = Json(defs).into_response();
    if let Some(name) = &q.download {
        let value = format!("attachment; filename={name}");
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    r
}

async fn export_all(
    S(state): S<Arc<State>>,
    who: Authed,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    who.admin()?;
    Ok(answer(state.backend.export_definitions(None)?, &q))
}

async fn export_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    who.admin()?;
    let defs = state
        .backend
        .export_definitions(Some(&vhost))
        .map_err(|_| ApiError::bad_request("vhost_not_found"))?;
    Ok(answer(defs, &q))
}
