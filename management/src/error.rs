//! HTTP errors as RabbitMQ's management API answers them: a status and, mostly, a JSON body
//! `{"error": ..., "reason": ...}` (the reason is sometimes a list, Erlang-flavoured); made in
//! one place from an [`OpError`] or a refusal.

use crate::backend::OpError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// An error response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    status: StatusCode,
    /// `(error, reason)`; None: an empty body.
    body: Option<(String, Value)>,
    /// Send the Basic challenge (no or wrong credentials).
    challenge: bool,
}

impl ApiError {
    /// Any status with RabbitMQ's words.
    pub(crate) fn new(status: StatusCode, error: &str, reason: impl Into<Value>) -> Self {
        ApiError {
            status,
            body: Some((error.to_string(), reason.into())),
            challenge: false,
        }
    }

    /// A status with an empty body.
    pub(crate) fn empty(status: StatusCode) -> Self {
        ApiError {
            status,
            body: None,
            challenge: false,
        }
    }

    /// 404 `Object Not Found`.
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    /// 400 `bad_request`.
    pub(crate) fn bad_request(reason: impl Into<Value>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401 without credentials: the challenge and an empty body.
    pub(crate) fn no_credentials() -> Self {
        ApiError {
            challenge: true,
            ..Self::empty(StatusCode::UNAUTHORIZED)
        }
    }

    /// 401 for wrong credentials (`not_authorized`, with a z, and the challenge).
    pub(crate) fn login_failed() -> Self {
        ApiError {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "not_authorized", "Login failed")
        }
    }

    /// 401 for a logged-in user that may not do this (`not_authorised`, with an s).
    pub(crate) fn not_authorised(reason: impl Into<Value>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 500 with an empty body (where RabbitMQ crashes on bad input).
    pub(crate) fn internal() -> Self {
        Self::empty(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound => ApiError::not_found(),
            OpError::NotFoundReason(r) => ApiError::new(StatusCode::NOT_FOUND, "not_found", r),
            OpError::BadRequest(r) | OpError::Amqp(r) => ApiError::bad_request(r),
            OpError::Reason(v) => ApiError::bad_request(v),
            OpError::Forbidden(r) => ApiError::not_authorised(r),
            OpError::Internal(r) => {
                tracing::error!("management API: {r}");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = match self.body {
            Some((error, reason)) => (
                self.status,
                Json(json!({ "error": error, "reason": reason })),
            )
                .into_response(),
            None => self.status.into_response(),
        };
        if self.challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        r
    }
}

/// What handlers return.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
