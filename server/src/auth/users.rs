//! The `users` table: people, their roles and password hashes. Owns the e-mail
//! address's rules (lower-cased, at most [`MAX_EMAIL_BYTES`], no spaces or control
//! characters) and every read and write of the table, for the users API, the CLI, the
//! sign-in and the SSO proxy. Changes run in the caller's transaction so that the audit
//! row commits with them.
//!
//! Removing a person keeps their row, marked `removed_at`: they are no longer listed or
//! found, cannot sign in, and the SSO proxy does not add them again; their sessions end
//! and their saved searches are no longer theirs (an admin's). Only an admin adding the
//! address again ([`add_or_restore`]) brings the row back, without those searches.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::Role;

/// Longer addresses are refused before any lookup.
pub const MAX_EMAIL_BYTES: usize = 320;

/// One person, as admins see them (never the hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: RoleText,
    /// `password` or `proxy`.
    pub source: String,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A role as stored (checked by the table).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct RoleText(pub Role);

impl TryFrom<String> for RoleText {
    type Error = super::UnknownRole;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(RoleText)
    }
}

/// What a sign-in needs of a person.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub email: String,
    pub role: String,
    pub password_hash: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// An e-mail address as stored: trimmed, lower-cased, checked.
pub fn normalized_email(text: &str) -> Result<String, String> {
    let email = text.trim().to_lowercase();
    if email.is_empty() {
        return Err("email must not be empty".into());
    }
    if email.len() > MAX_EMAIL_BYTES {
        return Err(format!("email must be at most {MAX_EMAIL_BYTES} bytes"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("email must not contain spaces or control characters".into());
    }
    Ok(email)
}

const COLUMNS: &str = "id, email, role, source, locked_until, created_at";

/// The people not removed.
pub async fn list(pool: &PgPool) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE removed_at IS NULL ORDER BY email"
    ))
    .fetch_all(pool)
    .await
}

pub async fn find(connection: &mut PgConnection, email: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE email = $1 AND removed_at IS NULL"
    ))
    .bind(email)
    .fetch_optional(connection)
    .await
}

pub async fn find_by_id(
    connection: &mut PgConnection,
    id: i64,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1 AND removed_at IS NULL"
    ))
    .bind(id)
    .fetch_optional(connection)
    .await
}

pub async fn credentials(pool: &PgPool, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, role, password_hash, locked_until FROM users \
         WHERE email = $1 AND removed_at IS NULL",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Adds a person; `None` when the address is taken (by someone removed too).
pub async fn add(
    connection: &mut PgConnection,
    email: &str,
    role: Role,
    password_hash: Option<&str>,
    source: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO users (email, role, password_hash, source) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (email) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(email)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(source)
    .fetch_optional(connection)
    .await
}

/// Adds a person, or brings back a removed one with `role` and the password (their
/// failed sign-ins and lockout cleared); `None` when the address belongs to someone not
/// removed. Answers when the person had been removed, if they had.
pub async fn add_or_restore(
    connection: &mut PgConnection,
    email: &str,
    role: Role,
    password_hash: &str,
) -> Result<Option<(User, Option<DateTime<Utc>>)>, sqlx::Error> {
    let was_removed_at: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar("SELECT removed_at FROM users WHERE email = $1 FOR UPDATE")
            .bind(email)
            .fetch_optional(&mut *connection)
            .await?;
    let user: Option<User> = sqlx::query_as(&format!(
        "INSERT INTO users (email, role, password_hash, source) VALUES ($1, $2, $3, 'password') \
         ON CONFLICT (email) DO UPDATE SET role = excluded.role, \
             password_hash = excluded.password_hash, source = excluded.source, \
             failed_sign_ins = 0, locked_until = NULL, removed_at = NULL, updated_at = now() \
         WHERE users.removed_at IS NOT NULL RETURNING {COLUMNS}"
    ))
    .bind(email)
    .bind(role.as_str())
    .bind(password_hash)
    .fetch_optional(connection)
    .await?;
    Ok(user.map(|user| (user, was_removed_at.flatten())))
}

/// The audit details of `user.add`: the role, and when the person had been removed if
/// this brought them back.
pub fn added_details(role: Role, was_removed_at: Option<DateTime<Utc>>) -> serde_json::Value {
    match was_removed_at {
        Some(at) => serde_json::json!({"role": role, "restored": true, "removed_at": at}),
        None => serde_json::json!({"role": role}),
    }
}

/// The person the SSO proxy names, added with `role` on first sight; `None` for someone
/// removed (only an admin adds them again).
pub async fn find_or_add_proxied(
    pool: &PgPool,
    email: &str,
    role: Role,
) -> Result<Option<User>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    if let Some(user) = find(&mut connection, email).await? {
        return Ok(Some(user));
    }
    let mut tx = pool.begin().await?;
    let added = add(&mut tx, email, role, None, "proxy").await?;
    if let Some(user) = &added {
        let actor = super::Actor::User {
            id: user.id,
            email: user.email.clone(),
            role,
        };
        super::audit::record(
            &mut tx,
            &actor,
            "user.add",
            &format!("user:{email}"),
            serde_json::json!({"role": role, "source": "proxy"}),
        )
        .await?;
    }
    tx.commit().await?;
    match added {
        Some(user) => Ok(Some(user)),
        // Removed, or another request added them first.
        None => find(&mut connection, email).await,
    }
}

pub async fn set_role(
    connection: &mut PgConnection,
    id: i64,
    role: Role,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE users SET role = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(role.as_str())
        .execute(connection)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a new password hash, clears any lockout and ends the person's sessions.
pub async fn set_password(
    connection: &mut PgConnection,
    id: i64,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $2, failed_sign_ins = 0, locked_until = NULL, \
         updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .execute(&mut *connection)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(id)
        .execute(connection)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether removing person `id`, or giving them `new_role`, would leave no admin among
/// the people. Locks the admins' rows, so two such changes at once cannot both pass.
pub async fn would_leave_no_admin(
    connection: &mut PgConnection,
    id: i64,
    new_role: Option<Role>,
) -> Result<bool, sqlx::Error> {
    if new_role == Some(Role::Admin) {
        return Ok(false);
    }
    let admins: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM users WHERE role = 'admin' AND removed_at IS NULL \
             ORDER BY id FOR UPDATE",
    )
    .fetch_all(connection)
    .await?;
    Ok(admins == [id])
}

/// Removes a person: marks the row, forgets the password, ends their sessions and
/// takes their saved searches from them (what the foreign keys did when the row was
/// deleted).
pub async fn remove(connection: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE users SET removed_at = now(), password_hash = NULL, failed_sign_ins = 0, \
         locked_until = NULL, updated_at = now() WHERE id = $1 AND removed_at IS NULL",
    )
    .bind(id)
    .execute(&mut *connection)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut *connection)
        .await?;
    sqlx::query("UPDATE saved_searches SET owner_user_id = NULL WHERE owner_user_id = $1")
        .bind(id)
        .execute(connection)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lower_cased_and_bounded() {
        assert_eq!(
            normalized_email(" Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        assert!(normalized_email("").is_err());
        assert!(normalized_email("a b@example.com").is_err());
        assert!(normalized_email(&"a".repeat(MAX_EMAIL_BYTES + 1)).is_err());
    }
}
