//! Any `/api` path no route serves: it still demands a key, like every `/api` route,
//! so an unauthenticated client learns nothing about which paths exist. Without a key
//! it is 401; with a valid ingestion or admin key it is 404. It never serves content.

use axum::extract::State;
use axum::http::HeaderMap;

use crate::auth::ApiKeys;
use crate::auth::{identify, KeyRefusal};
use crate::error::ApiError;
use crate::state::AppState;

/// 401 without a key or with an unknown one; 404 with a valid ingestion or admin key.
pub async fn unknown_api_path(State(state): State<AppState>, headers: HeaderMap) -> ApiError {
    match identify(&state.settings.api_keys, &headers) {
        Ok(_) => ApiError::UnknownRoute,
        Err(KeyRefusal::Invalid) => {
            let admin = ApiKeys::new(state.settings.admin_api_keys.clone()).ok();
            match admin.map(|keys| identify(&keys, &headers)) {
                Some(Ok(_)) => ApiError::UnknownRoute,
                _ => ApiError::InvalidApiKey,
            }
        }
        Err(refusal) => refusal.into(),
    }
}
