//! CSRF: a change (any method but GET, HEAD and OPTIONS) made with a session cookie must
//! carry `X-CSRF-Token` equal to that session's token, compared in constant time. A
//! request with an API key needs none: a browser never adds one on its own.

use axum::http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

pub const HEADER: &str = "x-csrf-token";

/// Whether `method` changes something.
pub fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Ok` for a read, or a change carrying `expected`; else 403.
pub fn check(method: &Method, headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    if !changes(method) {
        return Ok(());
    }
    let presented = headers
        .get(HEADER)
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    let equal: bool = presented.ct_eq(expected.as_bytes()).into();
    if equal && !expected.is_empty() {
        Ok(())
    } else {
        Err(ApiError::CsrfRejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn changes_need_the_token_reads_do_not() {
        let mut headers = HeaderMap::new();
        assert!(check(&Method::GET, &headers, "tok").is_ok());
        assert!(check(&Method::POST, &headers, "tok").is_err());
        headers.insert(HEADER, HeaderValue::from_static("tok"));
        assert!(check(&Method::DELETE, &headers, "tok").is_ok());
        assert!(check(&Method::PATCH, &headers, "other").is_err());
    }
}
