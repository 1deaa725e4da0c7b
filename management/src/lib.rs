//! Warren's management plane over HTTP: RabbitMQ's management API (`/api/...`, as
//! `rabbitmqadmin`, Terraform and the HTTP-API client libraries use it), and the Prometheus
//! endpoint of RabbitMQ's `rabbitmq_prometheus` plugin ([`serve_prometheus`]). It knows no broker:
//! everything it shows or changes goes through [`Backend`], which the broker implements, so the
//! rules (who may do what, what a name may be) stay in the broker, shared with AMQP and
//! `warren ctl`.

mod api;
mod auth;
pub mod backend;
mod error;
pub mod metrics;
mod prometheus;
mod rates;
mod ui;

pub use backend::{
    AckMode, Backend, BindingInfo, ChannelRow, ConnectionRow, ConsumerRow, ExchangeDeclare,
    ExchangeInfo, GotMessage, Identity, Limits, MessageCounts, MessageProperties, NewPassword,
    NodeStats, ObjectTotals, OpError, Permission, Principal, Publish, Put, QueueDeclare, QueueInfo,
    QueueSizes, TopicPermission, User, VHost,
};
pub use prometheus::serve_prometheus;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every handler shares.
pub(crate) struct State {
    pub(crate) backend: Arc<dyn Backend>,
    /// Samples of the message counters, for the overview's rates.
    pub(crate) rates: rates::Rates,
    /// Samples of each queue's, channel's and exchange's counts, for their rates.
    pub(crate) object_rates: rates::ObjectRates,
}

/// Serves the management API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, backend: Arc<dyn Backend>) -> std::io::Result<()> {
    use axum::ServiceExt;
    use tower::Layer;
    let state = Arc::new(State {
        backend,
        rates: rates::Rates::default(),
        object_rates: rates::ObjectRates::default(),
    });
    // RabbitMQ accepts a trailing slash on every path; trimming it before routing keeps one
    // route per path.
    // The conventions wrap the whole router: they see axum's 405 with its `allow` list.
    let app = axum::middleware::from_fn(conventions).layer(api::router(state));
    let app = tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash().layer(app);
    axum::serve(
        listener,
        ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<SocketAddr>(
            app,
        ),
    )
    .await
}

/// What RabbitMQ's HTTP layer does around every handler: OPTIONS answered without credentials,
/// 405 with its `allow` list, `cache-control: no-cache` on successes, 406 for a client that
/// accepts no JSON.
async fn conventions(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue, Method, StatusCode};
    use axum::response::IntoResponse;
    let accepts_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| {
            a.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t.is_empty() || t == "*/*" || t == "application/*" || t == "application/json"
            })
        });
    let options = req.method() == Method::OPTIONS;
    let mut res = next.run(req).await;
    if res.status() == StatusCode::METHOD_NOT_ALLOWED {
        // axum lists `GET,HEAD,...`; RabbitMQ `HEAD, GET, PUT, POST, DELETE, OPTIONS`.
        let listed = res
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let has = |m: &str| listed.split(',').any(|x| x.trim() == m);
        let allow: Vec<&str> = ["HEAD", "GET", "PUT", "POST", "DELETE"]
            .into_iter()
            .filter(|m| has(m))
            .chain(["OPTIONS"])
            .collect();
        let allow =
            HeaderValue::from_str(&allow.join(", ")).unwrap_or(HeaderValue::from_static("OPTIONS"));
        let status = if options {
            StatusCode::OK
        } else {
            StatusCode::METHOD_NOT_ALLOWED
        };
        let mut r = status.into_response();
        r.headers_mut().insert(header::ALLOW, allow);
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        return r;
    }
    if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error::ApiError::bad_request("Exceeded HTTP request body size limit")
            .into_response();
    }
    if !accepts_json && res.status().is_success() {
        return StatusCode::NOT_ACCEPTABLE.into_response();
    }
    if res.status() == StatusCode::OK {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        res.headers_mut().insert(
            header::VARY,
            HeaderValue::from_static("accept, accept-encoding, origin"),
        );
    }
    res
}
