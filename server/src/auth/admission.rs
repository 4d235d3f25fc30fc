//! Admitting a person: by the SSO proxy's header (from a trusted address only) or by a
//! session cookie, with CSRF checked on changes; and the one rule of which role a
//! request needs ([`needed_role`]): reads need `viewer`, changes `editor`, the users and
//! audit routes `admin`. The middleware that also admits admin API keys and applies the
//! rule to every actor is `read::auth::require_admin_key`; handlers check nothing.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::Method;
use sqlx::PgPool;

use super::session::{self, Session};
use super::throttle::AddressThrottle;
use super::users;
use super::{csrf, proxy, Actor, Role};
use crate::config::SignInSettings;
use crate::error::ApiError;

/// What a person's sign-in and admission need. Cheap to share.
#[derive(Debug)]
pub struct SignIn {
    /// The writers' pool: sessions are written on use.
    pub pool: PgPool,
    pub settings: SignInSettings,
    pub throttle: AddressThrottle,
}

impl SignIn {
    pub fn new(pool: PgPool, settings: SignInSettings) -> Arc<Self> {
        let throttle = AddressThrottle::new(settings.attempts_per_minute);
        Arc::new(SignIn {
            pool,
            settings,
            throttle,
        })
    }
}

/// The CSRF token of a request admitted by a session (or the proxy), for
/// `GET /api/v1/session` to hand out.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

/// What the SSO proxy's people send as `X-CSRF-Token`: the proxy's own cookie would ride
/// along on a forged cross-site request, a custom header cannot.
pub const PROXY_CSRF_TOKEN: &str = "proxy";

/// The paths only admins may use, whatever the method.
const ADMIN_PATHS: [&str; 2] = ["/api/v1/users", "/api/v1/audit"];
/// A person's own session: anyone signed in may read it and end it.
const OWN_SESSION_PATHS: [&str; 2] = ["/api/v1/session", "/api/v1/sessions"];

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The role a request needs: admin for the users and audit routes, viewer for reads
/// and one's own session, editor for any other change.
pub fn needed_role(method: &Method, path: &str) -> Role {
    if ADMIN_PATHS.iter().any(|prefix| under(path, prefix)) {
        Role::Admin
    } else if OWN_SESSION_PATHS.contains(&path) || !csrf::changes(method) {
        Role::Viewer
    } else {
        Role::Editor
    }
}

/// The person a request without an API key comes as, with the CSRF token it was
/// checked against; `Ok(None)` when it shows no credential at all.
pub async fn admit_person(
    sign_in: &SignIn,
    request: &Parts,
) -> Result<Option<(Actor, CsrfToken)>, ApiError> {
    let headers = &request.headers;
    let peer = proxy::peer(&request.extensions);
    if let Some(vouched) = proxy::vouched_email(&sign_in.settings.proxy, peer, headers) {
        let email = std::str::from_utf8(vouched)
            .ok()
            .and_then(|text| users::normalized_email(text).ok())
            .ok_or(ApiError::NotSignedIn)?;
        let user =
            users::find_or_add_proxied(&sign_in.pool, &email, sign_in.settings.proxy.default_role)
                .await
                .map_err(|error| ApiError::Internal(format!("finding the proxied user: {error}")))?
                .ok_or(ApiError::NotSignedIn)?;
        csrf::check(&request.method, headers, PROXY_CSRF_TOKEN)?;
        let actor = Actor::User {
            id: user.id,
            email: user.email,
            role: user.role.0,
        };
        return Ok(Some((actor, CsrfToken(PROXY_CSRF_TOKEN.to_owned()))));
    }
    let Some(token) = session::token_from(headers) else {
        return Ok(None);
    };
    let found = session::find(&sign_in.pool, &token, &sign_in.settings)
        .await
        .map_err(|error| ApiError::Internal(format!("finding the session: {error}")))?;
    let Some(Session {
        actor, csrf_token, ..
    }) = found
    else {
        return Err(ApiError::NotSignedIn);
    };
    csrf::check(&request.method, headers, &csrf_token)?;
    Ok(Some((actor, CsrfToken(csrf_token))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_follows_the_method_and_the_path() {
        assert_eq!(needed_role(&Method::GET, "/api/v1/logs"), Role::Viewer);
        assert_eq!(needed_role(&Method::HEAD, "/api/v1/errors"), Role::Viewer);
        assert_eq!(
            needed_role(&Method::POST, "/api/v1/errors/1/status"),
            Role::Editor
        );
        assert_eq!(
            needed_role(&Method::DELETE, "/api/v1/alerts/rules/3"),
            Role::Editor
        );
        assert_eq!(needed_role(&Method::GET, "/api/v1/users"), Role::Admin);
        assert_eq!(needed_role(&Method::PATCH, "/api/v1/users/4"), Role::Admin);
        assert_eq!(needed_role(&Method::GET, "/api/v1/audit"), Role::Admin);
        assert_eq!(needed_role(&Method::GET, "/api/v1/usersx"), Role::Viewer);
        assert_eq!(
            needed_role(&Method::DELETE, "/api/v1/session"),
            Role::Viewer
        );
        assert_eq!(
            needed_role(&Method::DELETE, "/api/v1/sessions"),
            Role::Viewer
        );
    }
}
