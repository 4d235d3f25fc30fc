//! API key authentication for every `/api` route: `X-API-Key` or `Authorization:
//! Bearer`, compared in constant time against every configured key. It attaches the
//! [`Caller`] to the request, marks the connection as authenticated (see
//! `connections`), and never logs or echoes a presented key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use log_ingestion_wire::API_KEY_HEADER;
use subtle::ConstantTimeEq;

use crate::config::ApiKeys;
use crate::connections::ConnectionTrust;
use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling: which configured key matched, by index and fingerprint.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_index: usize,
    pub fingerprint: Arc<str>,
}

/// Middleware: 401 unless the request carries a configured API key.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = authenticate(&state.settings.api_keys, request.headers())?;
    ConnectionTrust::mark_request(request.extensions());
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// Finds the caller's key. Every configured key is compared, so the time taken does not
/// depend on which one matched.
pub fn authenticate(keys: &ApiKeys, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let presented = presented_key(headers).ok_or(ApiError::MissingApiKey)?;
    let mut matched = None;
    for (index, key) in keys.iter().enumerate() {
        let equal: bool = key.secret_bytes().ct_eq(presented).into();
        if equal && matched.is_none() {
            matched = Some(Caller {
                key_index: index,
                fingerprint: Arc::from(key.fingerprint()),
            });
        }
    }
    matched.ok_or(ApiError::InvalidApiKey)
}

fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    let from_header = headers
        .get(API_KEY_HEADER)
        .map(|value| value.as_bytes().trim_ascii())
        .filter(|value| !value.is_empty());
    from_header.or_else(|| {
        let value = headers.get(header::AUTHORIZATION)?.as_bytes().trim_ascii();
        let (scheme, token) = value.split_at_checked(7)?;
        let token = token.trim_ascii();
        (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;
    use axum::http::HeaderValue;

    fn keys() -> ApiKeys {
        ApiKeys::new(vec![ApiKey::new("first"), ApiKey::new("second")]).unwrap()
    }

    #[test]
    fn bearer_tokens_are_accepted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer second"),
        );
        assert_eq!(authenticate(&keys(), &headers).unwrap().key_index, 1);
    }

    #[test]
    fn a_missing_key_differs_from_a_wrong_one() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            authenticate(&keys(), &headers),
            Err(ApiError::MissingApiKey)
        ));
        headers.insert(API_KEY_HEADER, HeaderValue::from_static("firs"));
        assert!(matches!(
            authenticate(&keys(), &headers),
            Err(ApiError::InvalidApiKey)
        ));
    }
}
