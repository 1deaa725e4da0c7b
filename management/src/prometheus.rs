//! RabbitMQ 3.10.8's `rabbitmq_prometheus` endpoint (port 15692): `/metrics` (every family,
//! per-object families summed into one unlabelled series), `/metrics/per-object` (a series per
//! queue `{vhost,queue}`, channel and connection `{channel}`) and `/metrics/detailed` (the
//! `family=` groups asked for, queue groups filtered by `vhost=`, prefixes
//! `rabbitmq_detailed_` / `rabbitmq_cluster_`). Same family names, types, HELP texts, order
//! and HTTP behaviour as RabbitMQ (see docs/rabbitmq-prometheus-observed.md), so its Grafana
//! dashboards and scrape configs work unchanged. No authentication, as in RabbitMQ.
//!
//! Where Warren has no such figure, the family is still printed, as RabbitMQ prints it on an
//! idle node: value 0 where RabbitMQ prints a series, so dashboards and parsers see the same
//! families. That covers the Erlang VM (`rabbitmq_erlang_*`: processes, GC, scheduler, net
//! ticktime), `node_persister_metrics` (`rabbitmq_io_*`, `schema_db_*`, `msg_store_*`,
//! `queue_index_*`), Raft (no quorum queues: zeros on `/metrics`, no series elsewhere), process
//! reductions, the file descriptor alarm, `connection_pending_packets`, and the per-queue
//! sizes, RAM, persistence, paging and consumer capacity figures (0; the head timestamp NaN).
//! `rabbitmq_queue_messages_published_total` (per channel, queue and exchange) is 0 on
//! `/metrics` and has no per-object series. Known departures from RabbitMQ:
//!
//! * The channel counters RabbitMQ labels `{channel,vhost,exchange}` or `{channel,vhost,queue}`
//!   are `{channel}` here: Warren keeps per-channel totals only.
//! * Channel and connection ids are the management API's names, not Erlang pids.
//! * `rabbitmq_auth_attempts_*` count AMQP logins only (`protocol="amqp091"`, no `http`).
//! * `rabbitmq_build_info`: `erlang_version` is `warren <version>`, `prometheus_client_version`
//!   `4.9.1` (3.10.8's), `prometheus_plugin_version` the RabbitMQ version presented.
//! * `rabbitmq_identity_info`'s `rabbitmq_cluster_permanent_id` is derived from the cluster
//!   name (RabbitMQ's is random, stored once).
//! * Dead-lettering: Warren's counts go to `(rabbit_classic_queue, at_most_once)`; a
//!   `delivery_limit` classic series (absent from RabbitMQ, which has no classic delivery
//!   limit) appears once Warren has counted one.
//! * No `erlang_vm_*`, `erlang_mnesia_*` nor `telemetry_scrape_*` families; only
//!   `process_start_time_seconds` of the non-`rabbitmq_` ones.

mod render;

use crate::metrics::MetricsSnapshot;
use crate::Backend;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use render::{DetailedQuery, Registry};
use std::io::Write;
use std::sync::Arc;
use tokio::net::TcpListener;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4";
const ALLOW: &str = "HEAD, GET, OPTIONS";

/// Serves the Prometheus endpoint (`/metrics`, `/metrics/per-object`, `/metrics/detailed`) on
/// `listener` until the task is dropped; each scrape takes one [`Backend::metrics`] snapshot.
pub async fn serve_prometheus(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
) -> std::io::Result<()> {
    axum::serve(listener, app(Arc::new(move || backend.metrics()))).await
}

/// Takes one snapshot (blocking).
type Source = Arc<dyn Fn() -> MetricsSnapshot + Send + Sync>;

/// The endpoint over any snapshot source (the tests' is a closure, not a whole [`Backend`]).
fn app(source: Source) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(source)
}

/// Where a path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Not under `/metrics`: the JSON 404 of RabbitMQ's web dispatcher.
    Outside,
    /// `/metrics/<name>` with an unknown name: `Unknown Registry`.
    Unknown,
    Registry(Registry),
}

fn route(path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/metrics") else {
        return Route::Outside;
    };
    if rest.is_empty() || rest == "/" {
        return Route::Registry(Registry::Aggregated);
    }
    let Some(name) = rest.strip_prefix('/') else {
        return Route::Outside;
    };
    // A trailing slash is accepted; names are case-sensitive.
    match name.strip_suffix('/').unwrap_or(name) {
        "per-object" => Route::Registry(Registry::PerObject),
        "detailed" => Route::Registry(Registry::Detailed),
        _ => Route::Unknown,
    }
}

/// The single handler: RabbitMQ's answers depend on path, method and headers together.
async fn handle(State(source): State<Source>, req: Request) -> Response {
    let route = route(req.uri().path());
    if route == Route::Outside {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(r#"{"error":"Object Not Found","reason":"Not Found"}"#),
        )
            .into_response();
    }
    match *req.method() {
        Method::GET => {}
        // RabbitMQ (Cowboy) answers HEAD with a bare 204.
        Method::HEAD => return StatusCode::NO_CONTENT.into_response(),
        Method::OPTIONS => return allow(StatusCode::OK),
        _ => return allow(StatusCode::METHOD_NOT_ALLOWED),
    }
    let headers = req.headers();
    if !accepts_text(headers) {
        return (StatusCode::NOT_ACCEPTABLE, Body::empty()).into_response();
    }
    let registry = match route {
        Route::Registry(r) => r,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain")],
                Body::from("Unknown Registry"),
            )
                .into_response()
        }
    };
    let gzip = wants_gzip(headers);
    // Query parameters mean something on /metrics/detailed only.
    let query = match registry {
        Registry::Detailed => DetailedQuery::parse(req.uri().query().unwrap_or_default()),
        _ => DetailedQuery::default(),
    };
    // The snapshot reads /proc; rendering and compressing a large node's output is CPU work:
    // all of it off the runtime's workers.
    let scrape = tokio::task::spawn_blocking(move || {
        let snap = source();
        encode(render::render(&snap, registry, &query), gzip)
    })
    .await;
    match scrape {
        Ok(Ok((body, encoding))) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, TEXT_FORMAT),
                (header::CONTENT_ENCODING, encoding),
            ],
            Body::from(body),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::warn!("prometheus: compressing a scrape failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(e) => {
            tracing::warn!("prometheus: a scrape failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// 405 or OPTIONS' 200: empty, with the methods RabbitMQ lists.
fn allow(status: StatusCode) -> Response {
    (
        status,
        [
            (header::ALLOW, HeaderValue::from_static(ALLOW)),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response()
}

/// The body, gzipped when asked, and its `content-encoding`.
fn encode(text: String, gzip: bool) -> std::io::Result<(Vec<u8>, &'static str)> {
    if !gzip {
        return Ok((text.into_bytes(), "identity"));
    }
    // Exposition text compresses about tenfold.
    let buf = Vec::with_capacity(text.len() / 8 + 64);
    let mut enc = flate2::write::GzEncoder::new(buf, flate2::Compression::default());
    enc.write_all(text.as_bytes())?;
    Ok((enc.finish()?, "gzip"))
}

/// The media types (or encodings) of an `Accept`-style header with their `q` (1 when absent).
fn weighted(value: &str) -> impl Iterator<Item = (&str, f32)> {
    value.split(',').filter_map(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() {
            return None;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        Some((name, q))
    })
}

/// Whether the client takes the text format: no `Accept`, or `text/plain`, `text/*`, `*/*`
/// with q > 0. The text format is the only one offered (never OpenMetrics nor protobuf).
fn accepts_text(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return true;
    };
    let Ok(accept) = accept.to_str() else {
        return false;
    };
    if accept.trim().is_empty() {
        return true;
    }
    weighted(accept).any(|(ty, q)| {
        q > 0.0
            && (ty.eq_ignore_ascii_case("text/plain")
                || ty.eq_ignore_ascii_case("text/*")
                || ty == "*/*")
    })
}

/// Whether `Accept-Encoding` names gzip with q > 0 (gzip is the only encoding offered).
fn wants_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            weighted(v).any(|(enc, q)| {
                q > 0.0 && (enc.eq_ignore_ascii_case("gzip") || enc.eq_ignore_ascii_case("x-gzip"))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request as HttpRequest;
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            node: "warren@host".into(),
            cluster: "warren@host".into(),
            rabbitmq_version: "3.10.8".into(),
            warren_version: "0.1.0".into(),
            ..Default::default()
        }
    }

    struct Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: header::HeaderName) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    async fn call_with(
        source: Source,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = HttpRequest::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::empty()).expect("request");
        let res = app(source).oneshot(req).await.expect("infallible");
        let (parts, body) = res.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.to_vec(),
        }
    }

    async fn call(method: Method, uri: &str, headers: &[(&str, &str)]) -> Reply {
        call_with(Arc::new(snapshot), method, uri, headers).await
    }

    async fn get(uri: &str, headers: &[(&str, &str)]) -> Reply {
        call(Method::GET, uri, headers).await
    }

    #[tokio::test]
    async fn the_three_registries_answer_text() {
        for uri in [
            "/metrics",
            "/metrics/",
            "/metrics?family=queue_coarse_metrics",
            "/metrics/per-object",
            "/metrics/per-object/",
            "/metrics/detailed",
            "/metrics/detailed/",
            "/metrics/detailed?family=queue_coarse_metrics&vhost=%2F",
        ] {
            // Credentials are neither needed nor checked.
            let r = get(uri, &[("authorization", "Basic Z3Vlc3Q6d3Jvbmc=")]).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}");
            assert_eq!(r.header(header::CONTENT_TYPE), Some(TEXT_FORMAT), "{uri}");
            assert_eq!(
                r.header(header::CONTENT_ENCODING),
                Some("identity"),
                "{uri}"
            );
            assert!(r.text().contains("# TYPE rabbitmq_identity_info untyped\n# HELP rabbitmq_identity_info RabbitMQ node & cluster identity info\nrabbitmq_identity_info{"), "{uri}");
        }
        let agg = get("/metrics?family=queue_coarse_metrics", &[])
            .await
            .text();
        assert_eq!(agg, get("/metrics", &[]).await.text());
        assert!(agg.contains("\nrabbitmq_alarms_memory_used_watermark 0\n"));
        assert!(!get("/metrics/per-object", &[])
            .await
            .text()
            .contains("rabbitmq_alarms_"));
        let detailed = get("/metrics/detailed?family=connection_churn_metrics", &[])
            .await
            .text();
        assert!(detailed.starts_with("# TYPE rabbitmq_detailed_connections_opened_total counter\n"));
    }

    #[tokio::test]
    async fn gzip_when_asked() {
        let plain = get("/metrics/per-object", &[]).await.body;
        for enc in ["gzip", "gzip, deflate", "deflate, GZIP;q=0.5", "x-gzip"] {
            let r = get("/metrics/per-object", &[("accept-encoding", enc)]).await;
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(r.header(header::CONTENT_TYPE), Some(TEXT_FORMAT));
            assert_eq!(r.header(header::CONTENT_ENCODING), Some("gzip"), "{enc}");
            let mut body = vec![];
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut body)
                .expect("gzip");
            assert_eq!(body, plain);
            assert!(r.body.len() < plain.len());
        }
        for enc in ["deflate", "gzip;q=0, identity", "identity", "br"] {
            let r = get("/metrics", &[("accept-encoding", enc)]).await;
            assert_eq!(
                r.header(header::CONTENT_ENCODING),
                Some("identity"),
                "{enc}"
            );
        }
    }

    #[tokio::test]
    async fn accept_negotiation() {
        for accept in [
            "text/plain",
            "text/plain;version=0.0.4",
            "text/*",
            "*/*",
            "",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            "application/json, */*;q=0.1",
        ] {
            let r = get("/metrics", &[("accept", accept)]).await;
            assert_eq!(r.status, StatusCode::OK, "{accept}");
            assert_eq!(r.header(header::CONTENT_TYPE), Some(TEXT_FORMAT));
        }
        for accept in [
            "text/html",
            "application/json",
            "application/openmetrics-text; version=1.0.0",
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
            "text/plain;q=0",
        ] {
            let r = get("/metrics", &[("accept", accept)]).await;
            assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{accept}");
            assert!(r.body.is_empty());
        }
    }

    #[tokio::test]
    async fn not_found_and_methods() {
        for uri in [
            "/metrics/foo",
            "/metrics/Detailed",
            "/metrics/per_object",
            "/metrics/foo/",
        ] {
            let r = get(uri, &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(r.header(header::CONTENT_TYPE), Some("text/plain"));
            assert_eq!(r.text(), "Unknown Registry");
        }
        for uri in ["/", "/api/overview", "/metricsfoo", "/nope"] {
            let r = get(uri, &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(r.header(header::CONTENT_TYPE), Some("application/json"));
            assert_eq!(
                r.text(),
                r#"{"error":"Object Not Found","reason":"Not Found"}"#
            );
        }
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let r = call(m.clone(), "/metrics", &[]).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
            assert_eq!(r.header(header::ALLOW), Some("HEAD, GET, OPTIONS"));
            assert!(r.body.is_empty());
        }
        let r = call(Method::OPTIONS, "/metrics/detailed", &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header(header::ALLOW), Some("HEAD, GET, OPTIONS"));
        assert!(r.body.is_empty());
        let r = call(Method::HEAD, "/metrics", &[]).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }

    #[tokio::test]
    async fn one_snapshot_per_scrape() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let source: Source = Arc::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            snapshot()
        });
        call_with(source.clone(), Method::GET, "/metrics", &[]).await;
        call_with(source.clone(), Method::GET, "/metrics/detailed", &[]).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Refused requests never take one.
        call_with(source.clone(), Method::POST, "/metrics", &[]).await;
        call_with(source.clone(), Method::GET, "/metrics/foo", &[]).await;
        call_with(source, Method::GET, "/metrics", &[("accept", "text/html")]).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn routes() {
        assert_eq!(route("/metrics"), Route::Registry(Registry::Aggregated));
        assert_eq!(route("/metrics/"), Route::Registry(Registry::Aggregated));
        assert_eq!(
            route("/metrics/per-object/"),
            Route::Registry(Registry::PerObject)
        );
        assert_eq!(
            route("/metrics/detailed"),
            Route::Registry(Registry::Detailed)
        );
        assert_eq!(route("/metrics/x"), Route::Unknown);
        assert_eq!(route("/metricsx"), Route::Outside);
        assert_eq!(route("/api/metrics"), Route::Outside);
    }
}
