//! API keys: the configured keys (`api_key`, whose secret never leaves it), and which
//! of them a request carries (`X-API-Key` or `Authorization:
//! Bearer`), compared in constant time against every configured key. `identify` is the
//! pure check and answers with a [`KeyRefusal`]; the middleware that puts the
//! [`Caller`] on a request lives with the routes (`ingest::admission`). It never logs
//! or echoes a presented key and never knows about `AppState`. Who acts on a request
//! ([`Actor`], with a [`Role`]) and the audit log are here too.

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use log_ingestion_wire::API_KEY_HEADER;
use subtle::ConstantTimeEq;

mod actor;
pub mod admission;
mod api_key;
pub mod audit;
mod audit_api;
pub mod cli;
pub mod csrf;
pub mod password;
pub mod proxy;
pub mod routes;
pub mod session;
mod session_api;
pub mod throttle;
pub mod users;
mod users_api;

pub use actor::{Actor, Role, UnknownRole};
pub use api_key::{ApiKey, ApiKeys, NoKeys};

/// Who is calling: which configured key matched, by index and fingerprint.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_index: usize,
    pub fingerprint: Arc<str>,
}

/// Why a request's key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No key at all (neither header, or an empty one).
    Missing,
    /// A key that is not among the configured ones.
    Invalid,
}

/// Finds the caller's key. Every configured key is compared, so the time taken does not
/// depend on which one matched.
pub fn identify(keys: &ApiKeys, headers: &HeaderMap) -> Result<Caller, KeyRefusal> {
    let presented = presented_key(headers).ok_or(KeyRefusal::Missing)?;
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
    matched.ok_or(KeyRefusal::Invalid)
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
        assert_eq!(identify(&keys(), &headers).unwrap().key_index, 1);
    }

    #[test]
    fn a_missing_key_differs_from_a_wrong_one() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            identify(&keys(), &headers).map(|caller| caller.key_index),
            Err(KeyRefusal::Missing)
        );
        headers.insert(API_KEY_HEADER, HeaderValue::from_static("firs"));
        assert_eq!(
            identify(&keys(), &headers).map(|caller| caller.key_index),
            Err(KeyRefusal::Invalid)
        );
    }
}
