//! The web UI: three static files embedded in the binary (no build step), served beside the
//! API. The page logs in with the broker's users and does everything through `/api`.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// `/`, `/index.html`, `/app.js`, `/app.css`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let page = || async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) };
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route(
            "/app.js",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/javascript; charset=utf-8",
                    )],
                    APP_JS,
                )
                    .into_response()
            }),
        )
        .route(
            "/app.css",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
            }),
        )
}
