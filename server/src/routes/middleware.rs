//! The middleware of the whole app, which needs `AppState`: the request metrics
//! (`record_request_metrics`). It never refuses a request.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::RejectionReason;
use crate::state::AppState;

/// For the whole app: latency by method and route, and refusals by reason.
pub async fn record_request_metrics(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // A method axum knows is one of a few fixed names; anything else is one label.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_finished(method, &route, started.elapsed());
    if let Some(RejectionReason(reason)) = response.extensions().get::<RejectionReason>() {
        state.metrics.request_rejected(reason);
    }
    response
}
