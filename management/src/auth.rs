//! HTTP basic authentication with the broker's users, and what their tags allow, as RabbitMQ's
//! management plugin decides it: only users with a management tag may use the API;
//! `monitoring` sees everything, `management` its own vhosts, `administrator` may do anything.

use crate::backend::Principal;
use crate::error::ApiError;
use crate::State;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;

/// The logged-in user of a request.
#[derive(Debug, Clone)]
pub(crate) struct Authed(pub(crate) Principal);

impl FromRequestParts<Arc<State>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let (user, password) = match basic_credentials(parts) {
            Credentials::Missing => return Err(ApiError::no_credentials()),
            Credentials::Malformed => return Err(ApiError::empty(StatusCode::BAD_REQUEST)),
            Credentials::Basic(user, password) => (user, password),
        };
        let Some(principal) = state.backend.authenticate(&user, &password, peer) else {
            tracing::warn!("HTTP access denied: user '{user}' - invalid credentials");
            return Err(ApiError::login_failed());
        };
        if !principal.is_management() {
            tracing::warn!("HTTP access denied: user '{user}' - Not management user");
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(Authed(principal))
    }
}

enum Credentials {
    Missing,
    Malformed,
    Basic(String, String),
}

/// `Authorization: Basic base64(user:password)`; RabbitMQ answers a header that is not that
/// with 400, except a `Bearer` token, which fails as a login.
fn basic_credentials(parts: &Parts) -> Credentials {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return query_credentials(parts);
    };
    let Ok(value) = value.to_str() else {
        return Credentials::Malformed;
    };
    if value.starts_with("Bearer ") {
        return Credentials::Basic(String::new(), String::new());
    }
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Credentials::Malformed;
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim());
    let text = decoded.ok().and_then(|d| String::from_utf8(d).ok());
    match text.as_deref().and_then(|t| t.split_once(':')) {
        Some((user, password)) => Credentials::Basic(user.to_string(), password.to_string()),
        None => Credentials::Malformed,
    }
}

/// `?auth=base64(user:password)`, which RabbitMQ takes on definitions downloads (a browser
/// link cannot set a header).
fn query_credentials(parts: &Parts) -> Credentials {
    if !parts.uri.path().starts_with("/api/definitions") {
        return Credentials::Missing;
    }
    let token = parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "auth")
            .map(|(_, v)| {
                v.replace("%2B", "+")
                    .replace("%2F", "/")
                    .replace("%3D", "=")
            })
    });
    let Some(token) = token else {
        return Credentials::Missing;
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim());
    let text = decoded.ok().and_then(|d| String::from_utf8(d).ok());
    match text.as_deref().and_then(|t| t.split_once(':')) {
        Some((user, password)) => Credentials::Basic(user.to_string(), password.to_string()),
        None => Credentials::Malformed,
    }
}

impl Authed {
    /// Administrators only (401 `Not administrator user` otherwise, as RabbitMQ).
    pub(crate) fn admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not administrator user"))
        }
    }

    /// Monitoring users and administrators (401 `Not monitor user` otherwise).
    pub(crate) fn monitor(&self) -> Result<(), ApiError> {
        if self.0.is_monitor() {
            Ok(())
        } else {
            Err(ApiError::not_authorised("Not monitor user"))
        }
    }
}
