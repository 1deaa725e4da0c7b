//! The `/api` routes, one module per kind of object, as RabbitMQ's management API lays them out.

mod access;
mod bindings;
mod connections;
mod definitions;
mod exchanges;
mod health;
mod limits;
mod messages;
mod nodes;
mod overview;
mod policies;
mod queues;

use crate::error::ApiError;
use crate::State;
use axum::body::Bytes;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Every route.
pub(crate) fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(overview::whoami))
        .merge(access::routes())
        .merge(health::routes())
        .merge(limits::routes())
        .merge(definitions::routes())
        .merge(queues::routes())
        .merge(messages::routes())
        .merge(connections::routes())
        .merge(policies::routes())
        .merge(exchanges::routes())
        .merge(bindings::routes())
        .merge(nodes::routes())
        .merge(crate::ui::routes())
        .fallback(|| async { ApiError::not_found() })
        // Bodies up to RabbitMQ's limit (8 MB) are read; larger ones are refused.
        .layer(axum::extract::DefaultBodyLimit::max(8_000_000))
        .with_state(state)
}

/// A JSON body as RabbitMQ reads it: empty or `null` means `{}`; anything that is not a JSON
/// object is 400 `not_json` (a string gets RabbitMQ's hint about double encoding).
pub(crate) fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(Value::String(_)) => Err(ApiError::bad_request(
            "invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?",
        )),
        _ => Err(ApiError::bad_request("not_json")),
    }
}

/// The query parameters of list endpoints (RabbitMQ 3.10's): `columns`, `sort`,
/// `sort_reverse`, `page`, `page_size`, `name`, `use_regex`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListQuery {
    columns: Option<String>,
    sort: Option<String>,
    sort_reverse: Option<String>,
    pub(crate) page: Option<String>,
    page_size: Option<String>,
    name: Option<String>,
    use_regex: Option<String>,
}

fn sort_key(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for part in path.split('.') {
        match cur.get(part) {
            Some(x) => cur = x,
            None => return Value::Null,
        }
    }
    cur.clone()
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// `disable_stats` and `enable_queue_totals` of a request: the lighter answers RabbitMQ gives
/// without statistics.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(crate) struct StatsQuery {
    disable_stats: Option<String>,
    enable_queue_totals: Option<String>,
}

impl StatsQuery {
    /// `disable_stats=true`.
    pub(crate) fn disabled(&self) -> bool {
        self.disable_stats.as_deref() == Some("true")
    }

    /// None: with statistics; Some(totals): without them, with a queue's message totals or not.
    pub(crate) fn bare(&self) -> Option<bool> {
        self.disabled()
            .then(|| self.enable_queue_totals.as_deref() == Some("true"))
    }
}

/// A single object's answer with the `columns` the query asks for (all without it).
pub(crate) fn with_columns(v: Value, q: &ListQuery) -> Value {
    match q.columns.as_deref().filter(|c| !c.is_empty()) {
        Some(cols) => {
            let cols: Vec<&str> = cols.split(',').map(str::trim).collect();
            keep_columns(v, &cols)
        }
        None => v,
    }
}

/// Keeps only `columns` (dotted paths allowed) of an object.
fn keep_columns(v: Value, columns: &[&str]) -> Value {
    let Value::Object(obj) = v else { return v };
    let mut out = Map::new();
    for col in columns {
        let mut parts = col.splitn(2, '.');
        let head = parts.next().unwrap_or_default();
        if let Some(x) = obj.get(head) {
            match parts.next() {
                None => {
                    out.insert(head.to_string(), x.clone());
                }
                Some(rest) => {
                    let inner = keep_columns(x.clone(), &[rest]);
                    match out.get_mut(head) {
                        Some(Value::Object(m)) => {
                            if let Value::Object(add) = inner {
                                m.extend(add);
                            }
                        }
                        _ => {
                            out.insert(head.to_string(), inner);
                        }
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// RabbitMQ's 400 for paging parameters that are not integers, or a name regex that does not
/// compile.
fn bad_paging() -> ApiError {
    ApiError::bad_request("Pagination parameters are invalid")
}

/// Applies a list endpoint's query to `items` (sorted by `default_sort` unless asked). The
/// `name` filter (a case-insensitive substring, or with `use_regex=true` a case-insensitive
/// regex) applies to paged requests only, as in RabbitMQ.
pub(crate) fn list_response(
    mut items: Vec<Value>,
    q: &ListQuery,
    default_sort: &str,
) -> Result<Value, ApiError> {
    let total = items.len();
    let paging = match q.page.as_deref() {
        None => None,
        Some(page) => {
            let page: i64 = page.trim().parse().map_err(|_| bad_paging())?;
            let size: Option<i64> = match q.page_size.as_deref() {
                None => None,
                Some(s) => Some(s.trim().parse().map_err(|_| bad_paging())?),
            };
            if page < 1 || size.is_some_and(|n| !(1..=500).contains(&n)) {
                let shown = size.map_or("undefined".to_string(), |n| n.to_string());
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "invalid_pagination_parameters",
                    format!("Invalid pagination parameters: page number {page}, page size {shown}"),
                ));
            }
            Some((page as usize, size.unwrap_or(100) as usize))
        }
    };
    if let Some(name) = q
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && paging.is_some())
    {
        let re = if q.use_regex.as_deref() == Some("true") {
            Some(
                regex::RegexBuilder::new(name)
                    .case_insensitive(true)
                    .build()
                    .map_err(|_| bad_paging())?,
            )
        } else {
            None
        };
        let lower = name.to_lowercase();
        items.retain(|v| {
            let n = v.get("name").and_then(Value::as_str).unwrap_or_default();
            match &re {
                Some(re) => re.is_match(n),
                None => n.to_lowercase().contains(&lower),
            }
        });
    }
    let key = q
        .sort
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(default_sort);
    if !key.is_empty() {
        items.sort_by(|a, b| cmp_values(&sort_key(a, key), &sort_key(b, key)));
    }
    if q.sort_reverse.as_deref() == Some("true") {
        items.reverse();
    }
    if let Some(cols) = q.columns.as_deref().filter(|c| !c.is_empty()) {
        let cols: Vec<&str> = cols.split(',').map(str::trim).collect();
        items = items.into_iter().map(|v| keep_columns(v, &cols)).collect();
    }
    let Some((page, page_size)) = paging else {
        return Ok(Value::Array(items));
    };
    let filtered = items.len();
    let page_count = filtered.div_ceil(page_size);
    if page > page_count.max(1) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "page_out_of_range",
            format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}"),
        ));
    }
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    Ok(json!({
        "filtered_count": filtered,
        "item_count": page_items.len(),
        "items": page_items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}
