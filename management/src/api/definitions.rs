//! `/api/definitions` and `/api/definitions/V`: export (GET) and import (POST, a JSON body or
//! a multipart form's `file`, as RabbitMQ's UI uploads it) in RabbitMQ's format.

use crate::auth::Authed;
use crate::error::{ApiError, ApiResult};
use crate::State;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State as S};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

pub(super) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/api/definitions", get(export_all).post(import_all))
        .route(
            "/api/definitions/{vhost}",
            get(export_vhost).post(import_vhost),
        )
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

/// What an import request carries: the definitions, and where to send the browser after a
/// form upload (`redirect`).
struct Upload {
    definitions: serde_json::Value,
    redirect: Option<String>,
}

/// Reads an import body: `application/json`, or `multipart/form-data` with the file in `file`;
/// any other type is 415, a body that is not a JSON object 400 `failed_to_parse_json`.
async fn upload(state: &Arc<State>, req: Request) -> ApiResult<Upload> {
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let parse = |bytes: &[u8]| match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request("failed_to_parse_json")),
    };
    if kind.starts_with("application/json") {
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_request("failed_to_parse_json"))?;
        return Ok(Upload {
            definitions: parse(&body)?,
            redirect: None,
        });
    }
    if kind.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, state)
            .await
            .map_err(|_| ApiError::bad_request("failed_to_parse_json"))?;
        let (mut file, mut redirect) = (None, None);
        while let Ok(Some(field)) = form.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let data = field
                .bytes()
                .await
                .map_err(|_| ApiError::bad_request("failed_to_parse_json"))?;
            match name.as_str() {
                "file" => file = Some(parse(&data)?),
                "redirect" => redirect = Some(String::from_utf8_lossy(&data).into_owned()),
                _ => {}
            }
        }
        let definitions = file.ok_or_else(|| ApiError::bad_request("failed_to_parse_json"))?;
        return Ok(Upload {
            definitions,
            redirect,
        });
    }
    Err(ApiError::empty(StatusCode::UNSUPPORTED_MEDIA_TYPE))
}

async fn import(state: Arc<State>, vhost: Option<String>, req: Request) -> ApiResult<Response> {
    let up = upload(&state, req).await?;
    let backend = state.backend.clone();
    let defs = up.definitions;
    tokio::task::spawn_blocking(move || backend.import_definitions(vhost.as_deref(), &defs))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(match up.redirect {
        Some(to) => {
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn import_all(S(state): S<Arc<State>>, who: Authed, req: Request) -> ApiResult<Response> {
    who.admin()?;
    import(state, None, req).await
}

async fn import_vhost(
    S(state): S<Arc<State>>,
    who: Authed,
    Path(vhost): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    who.admin()?;
    import(state, Some(vhost), req).await
}
