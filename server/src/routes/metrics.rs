//! `GET /metrics`: the Prometheus text exposition of `crate::metrics::Metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(
            state.inflight.reserved_bytes(),
            state.inflight.limit_bytes(),
        ),
    )
}
