//! Admin keys: the keys that may read stored logs (`LOG_INGESTION_ADMIN_API_KEYS`), and
//! the middleware that admits every `/api/v1` read and change route: a request with an
//! admin key, or a person (session cookie or SSO proxy, `auth::admission`), and then
//! refuses it below the role the request needs (`auth::admission::needed_role`). Key extraction and the
//! constant-time comparison are the server's own (`crate::auth::identify`, its refusal
//! mapped by the one `From<KeyRefusal> for ApiError`), so both sides answer 401 alike.
//! It never logs a key and never accepts an ingestion key (those live in another set):
//! one is answered 403 with a message saying that key may only ingest, so an operator
//! who pasted the wrong key learns why at once.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use log_ingestion_wire::API_KEY_HEADER;

use crate::auth::admission::{self, SignIn};
use crate::auth::{identify, Actor};
use crate::auth::{ApiKey, ApiKeys};
use crate::error::ApiError;
use crate::ingest::connections::ConnectionTrust;

/// The admin keys. May be empty: then every read request is refused, the safe default
/// for a server configured for ingestion only. The ingestion keys are known too, only
/// to tell their holders why they are refused.
#[derive(Clone, Default)]
pub struct AdminKeys {
    admin: Option<ApiKeys>,
    ingest: Option<ApiKeys>,
    /// People: sessions and the SSO proxy; `None` admits keys only.
    sign_in: Option<Arc<SignIn>>,
}

impl AdminKeys {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        AdminKeys {
            admin: ApiKeys::new(keys).ok(),
            ingest: None,
            sign_in: None,
        }
    }

    /// The same admin keys, answering a read made with one of +ingest+ with 403
    /// [`ApiError::IngestOnlyKey`] instead of 401.
    pub fn with_ingest_keys(self, ingest: ApiKeys) -> Self {
        AdminKeys {
            ingest: Some(ingest),
            ..self
        }
    }

    /// The same keys, also admitting people signed in through `sign_in`.
    pub fn with_sign_in(self, sign_in: Arc<SignIn>) -> Self {
        AdminKeys {
            sign_in: Some(sign_in),
            ..self
        }
    }

    pub fn is_empty(&self) -> bool {
        self.admin.is_none()
    }

    /// The refusal for a request whose key is not an admin key: 403 for an ingestion
    /// key, else 401 (missing or invalid).
    fn refusal(&self, headers: &HeaderMap, refused: ApiError) -> ApiError {
        match (&refused, &self.ingest) {
            (ApiError::InvalidApiKey, Some(ingest)) if identify(ingest, headers).is_ok() => {
                ApiError::IngestOnlyKey
            }
            _ => refused,
        }
    }
}

impl fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.admin {
            Some(keys) => f.debug_list().entries(keys.iter()).finish(),
            None => f.write_str("[]"),
        }
    }
}

/// Middleware: 401 `{"error":"API key is required"}` without a key (or a session), 403
/// `{"error":"This API key may only ingest"}` with an ingestion key, 401
/// `{"error":"Invalid API key"}` with any other key that is not an admin key, 401
/// `{"error":"Not signed in"}` with an ended session, 403 without the CSRF token on a
/// change made with a session, and 403 `{"error":"Forbidden"}` below the role the
/// request needs. An admitted request carries its [`Actor`].
pub async fn require_admin_key(
    State(keys): State<Arc<AdminKeys>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let shows_key =
        headers.contains_key(API_KEY_HEADER) || headers.contains_key(header::AUTHORIZATION);
    let mut csrf = None;
    let checked = match (&keys.admin, &keys.sign_in) {
        (_, Some(sign_in)) if !shows_key => match admission::admit_person(sign_in, &parts).await {
            Ok(Some((actor, token))) => {
                csrf = Some(token);
                Ok(actor)
            }
            Ok(None) => Err(ApiError::MissingApiKey),
            Err(refused) => return Err(refused),
        },
        (Some(admin), _) => identify(admin, headers)
            .map(|caller| Actor::AdminKey {
                fingerprint: caller.fingerprint.to_string(),
            })
            .map_err(ApiError::from),
        (None, _) if shows_key => Err(ApiError::InvalidApiKey),
        (None, _) => Err(ApiError::MissingApiKey),
    };
    match checked {
        Ok(_) if !ConnectionTrust::mark_request(&parts.extensions) => {
            Err(ApiError::ConnectionEvicted)
        }
        Ok(actor) => {
            actor.require(admission::needed_role(&parts.method, parts.uri.path()))?;
            let mut request = Request::from_parts(parts, body);
            request.extensions_mut().insert(actor);
            if let Some(csrf) = csrf {
                request.extensions_mut().insert(csrf);
            }
            Ok(next.run(request).await)
        }
        Err(refused) => Err(keys.refusal(headers, refused)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_admin_keys_is_empty() {
        assert!(AdminKeys::new(Vec::new()).is_empty());
        assert!(!AdminKeys::new(vec![ApiKey::new("admin")]).is_empty());
    }

    #[test]
    fn debug_output_never_shows_a_key() {
        let keys = AdminKeys::new(vec![ApiKey::new("super-secret-admin-key")]);
        assert!(!format!("{keys:?}").contains("super-secret"));
    }
}
