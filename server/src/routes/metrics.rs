//! `GET /metrics`: the Prometheus text exposition of `crate::metrics::Metrics` and of
//! the TimescaleDB policy jobs' status.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render(
        state.inflight.reserved_bytes(),
        state.inflight.limit_bytes(),
    );
    crate::metrics::render_policy_jobs(&mut text, &state.policy_jobs.snapshot());
    state.alert_delivery.render(&mut text);
    state.alert_evaluation.render(&mut text);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}
