//! The middleware of the HTTP surface, which needs `AppState`: the ingest key check
//! (`require_api_key`), the rate limit (`enforce_rate_limit`), and the request metrics
//! of the whole app (`record_request_metrics`). The checks themselves are `auth` and
//! `rate_limit`; this module only runs them on a request and turns their refusals into
//! the `ApiError` answered (the one place those refusals become HTTP). It never decides
//! whether a key is valid or a request within its rate.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{identify, Caller, KeyRefusal};
use crate::error::{ApiError, RejectionReason};
use crate::ingest::connections::ConnectionTrust;
use crate::ingest::rate_limit::RateLimited;
use crate::state::AppState;

impl From<KeyRefusal> for ApiError {
    fn from(refusal: KeyRefusal) -> Self {
        match refusal {
            KeyRefusal::Missing => ApiError::MissingApiKey,
            KeyRefusal::Invalid => ApiError::InvalidApiKey,
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(RateLimited { retry_after_secs }: RateLimited) -> Self {
        ApiError::RateLimited { retry_after_secs }
    }
}

/// 401 unless the request carries a configured API key; otherwise attaches the
/// [`Caller`] and marks the connection as authenticated (see `ingest::connections`).
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = identify(&state.settings.api_keys, request.headers())?;
    if !ConnectionTrust::mark_request(request.extensions()) {
        return Err(ApiError::ConnectionEvicted);
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// (After [`require_api_key`].) 429 with `Retry-After` when the caller is over its rate.
pub async fn enforce_rate_limit(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::Internal("rate limit ran before authentication".to_owned()))?;
    state.limiter.check(caller.key_index)?;
    Ok(next.run(request).await)
}

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
