//! The session API: `POST /api/v1/session` (sign in with `{"email", "password"}`),
//! `GET /api/v1/session` (who am I: the actor, role and CSRF token),
//! `DELETE /api/v1/session` (sign out) and `DELETE /api/v1/sessions` (sign out
//! everywhere). Sign-in bounds the body, the address and the password before hashing,
//! throttles per address and per account, and answers the same 401 for an unknown
//! address and a wrong password.
//!
//! The trail it leaves (never a password): a successful sign-in at info, an account
//! locked at warn (once per lock, so a flood of wrong passwords writes one line per
//! lockout, each at least twice as long as the last), and each refused attempt at
//! debug only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::admission::{CsrfToken, SignIn};
use super::{password, proxy, session, throttle, users, Actor, Role};
use crate::error::ApiError;

/// A sign-in body is an address and a password.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

fn internal(what: &str, error: sqlx::Error) -> ApiError {
    ApiError::Internal(format!("{what}: {error}"))
}

/// `POST /api/v1/session`.
pub async fn sign_in(
    State(sign_in): State<Arc<SignIn>>,
    request: Request,
) -> Result<Response, ApiError> {
    let peer = proxy::peer(request.extensions());
    let headers = request.headers().clone();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        let got = headers
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        return Err(ApiError::UnsupportedContentType {
            got,
            expected: "application/json",
        });
    }
    let address = proxy::client_address(&sign_in.settings.proxy, peer, &headers);
    if let Some(address) = address {
        sign_in
            .throttle
            .check(address)
            .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit_bytes: MAX_BODY_BYTES,
        })?;
    let credentials: Credentials =
        serde_json::from_slice(&body).map_err(|error| ApiError::from_json(&error))?;
    let mut problems = Vec::new();
    let email = users::normalized_email(&credentials.email).unwrap_or_else(|problem| {
        problems.push(problem);
        String::new()
    });
    if credentials.password.len() > password::MAX_PASSWORD_BYTES {
        problems.push(format!(
            "password must be at most {} bytes",
            password::MAX_PASSWORD_BYTES
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let client = address.map_or_else(|| "unknown".to_owned(), |address| address.to_string());
    let found = users::credentials(&sign_in.pool, &email)
        .await
        .map_err(|error| internal("reading the user", error))?;
    let Some(user) = found else {
        password::verify(None, credentials.password)
            .await
            .map_err(hashing_failed)?;
        tracing::debug!(%email, %client, reason = "unknown address", "sign-in refused");
        return Err(ApiError::SignInFailed);
    };
    // A locked account answers exactly as an unknown address or a wrong password do, at
    // the price of a hash too: neither the answer nor its time tells that it exists.
    if user.locked_until.is_some_and(|until| until > Utc::now()) {
        password::verify(None, credentials.password)
            .await
            .map_err(hashing_failed)?;
        tracing::debug!(%email, %client, reason = "account locked", "sign-in refused");
        return Err(ApiError::SignInFailed);
    }
    let role: Role = user
        .role
        .parse()
        .map_err(|_| ApiError::Internal("a stored role is unknown".into()))?;
    let mut connection = sign_in
        .pool
        .acquire()
        .await
        .map_err(|error| internal("connecting", error))?;
    let right = password::verify(user.password_hash, credentials.password)
        .await
        .map_err(hashing_failed)?;
    if !right {
        let locked = throttle::record_failure(&mut connection, user.id)
            .await
            .map_err(|error| internal("counting a failed sign-in", error))?;
        tracing::debug!(%email, %client, reason = "wrong password", "sign-in refused");
        if let Some(throttle::Locked { failures, secs }) = locked {
            tracing::warn!(
                %email,
                %client,
                failures,
                locked_secs = secs,
                "sign-in: account locked after wrong passwords in a row"
            );
        }
        return Err(ApiError::SignInFailed);
    }
    throttle::record_success(&mut connection, user.id)
        .await
        .map_err(|error| internal("clearing failed sign-ins", error))?;
    let opened = session::create(&sign_in.pool, user.id, &sign_in.settings)
        .await
        .map_err(|error| internal("opening a session", error))?;
    tracing::info!(%email, %client, role = role.as_str(), "signed in");
    let max_age = i64::try_from(sign_in.settings.max_age.as_secs()).unwrap_or(i64::MAX);
    let secure = proxy::over_tls(&sign_in.settings, peer, &headers);
    let body = json!({
        "actor": format!("user:{}", user.email),
        "email": user.email,
        "role": role,
        "csrf_token": opened.csrf_token,
        "expires_at": opened.expires_at,
    });
    Ok((
        AppendHeaders([
            (
                header::SET_COOKIE,
                session::cookie(&opened.token, max_age, secure),
            ),
            (
                header::SET_COOKIE,
                session::marker_cookie(true, max_age, secure),
            ),
        ]),
        Json(body),
    )
        .into_response())
}

fn hashing_failed(error: password::PasswordError) -> ApiError {
    match error {
        password::PasswordError::Busy => ApiError::SignInBusy,
        other => ApiError::Internal(format!("checking a password: {other}")),
    }
}

/// `GET /api/v1/session`: who is acting, their role, and the CSRF token a change made
/// with this session must carry (`null` for an API key, which needs none).
pub async fn show(actor: Actor, csrf: Option<Extension<CsrfToken>>) -> Response {
    let email = match &actor {
        Actor::User { email, .. } => Some(email.clone()),
        Actor::AdminKey { .. } => None,
    };
    Json(json!({
        "actor": actor.label(),
        "email": email,
        "role": actor.role(),
        "csrf_token": csrf.map(|Extension(CsrfToken(token))| token),
    }))
    .into_response()
}

fn cleared(
    sign_in: &SignIn,
    request_headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
) -> AppendHeaders<[(header::HeaderName, axum::http::HeaderValue); 2]> {
    let secure = proxy::over_tls(&sign_in.settings, peer, request_headers);
    let [session, marker] = session::cleared_cookies(secure);
    AppendHeaders([(header::SET_COOKIE, session), (header::SET_COOKIE, marker)])
}

/// `DELETE /api/v1/session`: ends this browser's session.
pub async fn sign_out(
    State(sign_in): State<Arc<SignIn>>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let peer = proxy::peer(request.extensions());
    if let Some(token) = session::token_from(request.headers()) {
        session::end(&sign_in.pool, &token)
            .await
            .map_err(|error| internal("ending the session", error))?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        cleared(&sign_in, request.headers(), peer),
    )
        .into_response())
}

/// `DELETE /api/v1/sessions`: ends every session of the person signed in.
pub async fn sign_out_everywhere(
    State(sign_in): State<Arc<SignIn>>,
    actor: Actor,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let peer = proxy::peer(request.extensions());
    let ended = match actor.user_id() {
        Some(id) => session::end_all(&sign_in.pool, id)
            .await
            .map_err(|error| internal("ending the sessions", error))?,
        None => 0,
    };
    Ok((
        cleared(&sign_in, request.headers(), peer),
        Json(json!({ "ended": ended })),
    )
        .into_response())
}
