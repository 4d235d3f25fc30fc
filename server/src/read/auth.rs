//! Admin keys: the keys that may read stored logs (`LOG_INGESTION_ADMIN_API_KEYS`), and
//! the middleware that demands one on every read API route. Key extraction and the
//! constant-time comparison are the server's own (`crate::auth::authenticate`), so both
//! sides answer 401 alike. It never logs a key and never accepts an ingestion key
//! (those live in another set).

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use log_ingestion_wire::API_KEY_HEADER;

use crate::auth::authenticate;
use crate::config::{ApiKey, ApiKeys};
use crate::connections::ConnectionTrust;
use crate::error::ApiError;

/// The admin keys. May be empty: then every read request is refused, the safe default
/// for a server configured for ingestion only.
#[derive(Clone, Default)]
pub struct AdminKeys(Option<ApiKeys>);

impl AdminKeys {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        AdminKeys(ApiKeys::new(keys).ok())
    }

    /// Parses a comma-separated list, ignoring blanks (the variable's format).
    pub fn parse(list: &str) -> Self {
        AdminKeys::new(
            list.split(',')
                .map(str::trim)
                .filter(|key| !key.is_empty())
                .map(ApiKey::new)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(keys) => f.debug_list().entries(keys.iter()).finish(),
            None => f.write_str("[]"),
        }
    }
}

/// Middleware: 401 `{"error":"API key is required"}` without a key,
/// 401 `{"error":"Invalid API key"}` with a key that is not an admin key.
pub async fn require_admin_key(
    State(keys): State<Arc<AdminKeys>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match &keys.0 {
        Some(keys) => {
            authenticate(keys, request.headers())?;
            ConnectionTrust::mark_request(request.extensions());
            Ok(next.run(request).await)
        }
        None => {
            let headers = request.headers();
            if headers.contains_key(API_KEY_HEADER) || headers.contains_key(header::AUTHORIZATION) {
                Err(ApiError::InvalidApiKey)
            } else {
                Err(ApiError::MissingApiKey)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_in_the_list_are_ignored() {
        assert!(AdminKeys::parse(" , ,").is_empty());
        assert!(!AdminKeys::parse(" ,admin,").is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let keys = AdminKeys::parse("super-secret-admin-key");
        assert!(!format!("{keys:?}").contains("super-secret"));
    }
}
