//! Server-side sessions in PostgreSQL: a random token in the browser's cookie, only its
//! SHA-256 in `sessions` (a copied table signs nobody in), with the session's CSRF
//! token, an idle and an absolute expiry. Owns the cookie's name and attributes
//! (`HttpOnly; SameSite=Lax; Path=/`, `Secure` when asked) and reading it back, and the
//! marker cookie beside it (`log_ingestion_signed_in=1`, no secret, readable by the
//! page) that tells the explorer a session may exist before it asks; it never logs a
//! token.

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{Actor, Role};
use crate::config::SignInSettings;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "log_ingestion_session";
/// The page-readable marker set beside the session cookie.
pub const MARKER_COOKIE_NAME: &str = "log_ingestion_signed_in";
/// A token is 43 characters; anything much longer is not one of ours.
const MAX_TOKEN_CHARS: usize = 64;
/// `last_seen_at` is written at most this often per session (seconds).
const TOUCH_EVERY_SECS: f64 = 60.0;

/// A session as a request finds it.
#[derive(Debug, Clone)]
pub struct Session {
    pub actor: Actor,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// A session just made: the cookie's token (shown once) and the CSRF token.
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The session token in the request's `Cookie` headers, if any.
pub fn token_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, token)| token.trim().to_owned())
        .filter(|token| !token.is_empty() && token.len() <= MAX_TOKEN_CHARS)
}

/// The `Set-Cookie` value that stores `token` for `max_age_secs`.
pub fn cookie(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` value of the marker (`1` while signed in, empty to drop it).
pub fn marker_cookie(signed_in: bool, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = if signed_in { "1" } else { "" };
    let text = format!(
        "{MARKER_COOKIE_NAME}={value}; SameSite=Lax; Path=/; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The `Set-Cookie` values that drop the session cookie and its marker.
pub fn cleared_cookies(secure: bool) -> [HeaderValue; 2] {
    [cookie("", 0, secure), marker_cookie(false, 0, secure)]
}

/// Opens a session for `user_id` (and drops that person's ended ones).
pub async fn create(
    pool: &PgPool,
    user_id: i64,
    settings: &SignInSettings,
) -> Result<NewSession, sqlx::Error> {
    let token = random_token();
    let csrf_token = random_token();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "DELETE FROM sessions WHERE user_id = $1 \
         AND (expires_at <= now() OR last_seen_at <= now() - make_interval(secs => $2))",
    )
    .bind(user_id)
    .bind(settings.idle_timeout.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at",
    )
    .bind(token_hash(&token))
    .bind(user_id)
    .bind(&csrf_token)
    .bind(settings.max_age.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(NewSession {
        token,
        csrf_token,
        expires_at,
    })
}

/// The live session of `token`: not past its absolute expiry, used within the idle
/// timeout. Marks it used (at most once a minute).
pub async fn find(
    pool: &PgPool,
    token: &str,
    settings: &SignInSettings,
) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<(String, DateTime<Utc>, i64, String, String)> = sqlx::query_as(
        "WITH found AS ( \
             SELECT s.csrf_token, s.expires_at, u.id, u.email, u.role, s.last_seen_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > now() AND u.removed_at IS NULL \
               AND s.last_seen_at > now() - make_interval(secs => $2)), \
         touched AS ( \
             UPDATE sessions SET last_seen_at = now() WHERE token_hash = $1 \
               AND last_seen_at < now() - make_interval(secs => $3) \
               AND EXISTS (SELECT 1 FROM found)) \
         SELECT csrf_token, expires_at, id, email, role FROM found",
    )
    .bind(token_hash(token))
    .bind(settings.idle_timeout.as_secs_f64())
    .bind(TOUCH_EVERY_SECS)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(csrf_token, expires_at, id, email, role)| {
        let role: Role = role.parse().ok()?;
        Some(Session {
            actor: Actor::User { id, email, role },
            csrf_token,
            expires_at,
        })
    }))
}

/// Ends the session of `token`.
pub async fn end(pool: &PgPool, token: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash(token))
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends every session of `user_id`; answers how many.
pub async fn end_all(pool: &PgPool, user_id: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_read_back_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; log_ingestion_session=abc123 ; x=y"),
        );
        assert_eq!(token_from(&headers).as_deref(), Some("abc123"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}={}", "a".repeat(500))).unwrap(),
        );
        assert_eq!(token_from(&headers), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_lax() {
        let value = cookie("tok", 60, true);
        let text = value.to_str().unwrap();
        assert!(text.contains("HttpOnly; SameSite=Lax; Path=/"), "{text}");
        assert!(text.ends_with("; Secure"), "{text}");
        assert!(!cookie("tok", 60, false)
            .to_str()
            .unwrap()
            .contains("Secure"));
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 43);
    }
}
