//! The router: three read-only endpoints, problem+json for everything else.

use crate::collector;
use crate::pools::pools_doc;
use crate::problem::Problem;
use crate::sources::AdminSources;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use crate::exposition::to_prometheus_text;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The content type of the OpenMetrics text format, which Prometheus negotiates.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    sources: AdminSources,
    registry: Arc<Registry>,
}

/// The admin router over `sources`.
pub fn router(sources: AdminSources) -> Router {
    let state = AppState { registry: Arc::new(collector::registry(sources.clone())), sources };
    Router::new()
        .route("/metrics", read_only(get(metrics)))
        .route("/healthz", read_only(get(healthz)))
        .route("/api/v1/pools", read_only(get(pools)))
        .fallback(not_found)
        .with_state(state)
}

/// `route` answering `405` problem+json (with `Allow`) to methods other than GET/HEAD.
fn read_only(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(|method: Method, uri: Uri| async move {
        Problem::method_not_allowed(&method, uri.path(), "GET, HEAD")
    })
}

/// The content type of the Prometheus text format 0.0.4, for everyone else.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics when the client's `Accept` names it (Prometheus does), else the
/// Prometheus text format.
async fn metrics(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    match collector::render(&state.registry) {
        Ok(text) if openmetrics => ([(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))], text).into_response(),
        Ok(text) => ([(header::CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT))], to_prometheus_text(&text))
            .into_response(),
        Err(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, uri.path(), "the metrics could not be encoded")
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn pools(State(state): State<AppState>) -> Response {
    // The views take short locks and the health status clones small vectors: no await.
    Json(pools_doc(&state.sources)).into_response()
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(uri.path())
}
