//! The users API, for admins (the admitting middleware refuses everyone else):
//! `GET /api/v1/users`, `POST /api/v1/users` (`{"email", "role", "password"?}`: without a
//! password one is generated and answered once), `PATCH /api/v1/users/{id}`
//! (`{"role"}`, `{"password"}` or both; a new password ends the person's sessions) and
//! `DELETE /api/v1/users/{id}` (the person is marked removed: see [`users`]; adding the
//! address again brings them back). Every change is audited in its own transaction.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::admission::SignIn;
use super::{audit, password, users, Actor, Role};
use crate::error::ApiError;

/// A user body is an address, a role and a password.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    role: String,
    password: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Option<String>,
    password: Option<String>,
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("users API: {error}"))
}

fn parse_role(text: &str, problems: &mut Vec<String>) -> Option<Role> {
    text.parse()
        .map_err(|error: super::UnknownRole| problems.push(error.to_string()))
        .ok()
}

async fn hashed(password: String) -> Result<String, ApiError> {
    password::hash(password).await.map_err(|error| match error {
        password::PasswordError::Hashing(cause) => internal(cause),
        password::PasswordError::Busy => ApiError::SignInBusy,
        refused => ApiError::Validation(vec![refused.to_string()]),
    })
}

/// 409: the change would leave nobody who may manage people.
fn last_admin() -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"error": "Conflict", "details": "this is the last admin; make another person admin first"})),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "Not found", "details": "no such user"})),
    )
        .into_response()
}

/// `GET /api/v1/users`.
pub async fn list(State(sign_in): State<Arc<SignIn>>) -> Result<Response, ApiError> {
    let users = users::list(&sign_in.pool).await.map_err(internal)?;
    Ok(Json(json!({ "users": users })).into_response())
}

/// `POST /api/v1/users`.
pub async fn add(
    State(sign_in): State<Arc<SignIn>>,
    actor: Actor,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewUser =
        serde_json::from_slice(&body).map_err(|error| ApiError::from_json(&error))?;
    let mut problems = Vec::new();
    let email = users::normalized_email(&new.email)
        .map_err(|problem| problems.push(problem))
        .ok();
    let role = parse_role(&new.role, &mut problems);
    if let Some(password) = &new.password {
        if let Err(problem) = password::check_new(password) {
            problems.push(problem.to_string());
        }
    }
    let (Some(email), Some(role), true) = (email, role, problems.is_empty()) else {
        return Err(ApiError::Validation(problems));
    };
    let generated = new.password.is_none();
    let password = new.password.unwrap_or_else(password::generate);
    let hash = hashed(password.clone()).await?;
    let mut tx = sign_in.pool.begin().await.map_err(internal)?;
    let Some((user, was_removed_at)) = users::add_or_restore(&mut tx, &email, role, &hash)
        .await
        .map_err(internal)?
    else {
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({"error": "Conflict", "details": "a user with that email exists"})),
        )
            .into_response());
    };
    audit::record(
        &mut tx,
        &actor,
        "user.add",
        &format!("user:{email}"),
        users::added_details(role, was_removed_at),
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    let mut answer = json!({ "user": user });
    if generated {
        answer["password"] = json!(password);
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `PATCH /api/v1/users/{id}`.
pub async fn change(
    State(sign_in): State<Arc<SignIn>>,
    actor: Actor,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let change: UserChange =
        serde_json::from_slice(&body).map_err(|error| ApiError::from_json(&error))?;
    let mut problems = Vec::new();
    let role = change
        .role
        .as_deref()
        .and_then(|role| parse_role(role, &mut problems));
    if let Some(password) = &change.password {
        if let Err(problem) = password::check_new(password) {
            problems.push(problem.to_string());
        }
    }
    if change.role.is_none() && change.password.is_none() {
        problems.push("give a role, a password or both".into());
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let hash = match change.password {
        Some(password) => Some(hashed(password).await?),
        None => None,
    };
    let mut tx = sign_in.pool.begin().await.map_err(internal)?;
    let Some(user) = users::find_by_id(&mut tx, id).await.map_err(internal)? else {
        return Ok(not_found());
    };
    let target = format!("user:{}", user.email);
    if let Some(role) = role {
        if users::would_leave_no_admin(&mut tx, id, Some(role))
            .await
            .map_err(internal)?
        {
            return Ok(last_admin());
        }
        users::set_role(&mut tx, id, role).await.map_err(internal)?;
        audit::record(
            &mut tx,
            &actor,
            "user.set_role",
            &target,
            json!({"from": user.role, "to": role}),
        )
        .await
        .map_err(internal)?;
    }
    if let Some(hash) = hash {
        users::set_password(&mut tx, id, &hash)
            .await
            .map_err(internal)?;
        audit::record(&mut tx, &actor, "user.reset_password", &target, json!({}))
            .await
            .map_err(internal)?;
    }
    let user = users::find_by_id(&mut tx, id).await.map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(Json(json!({ "user": user })).into_response())
}

/// `DELETE /api/v1/users/{id}`.
pub async fn remove(
    State(sign_in): State<Arc<SignIn>>,
    actor: Actor,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let mut tx = sign_in.pool.begin().await.map_err(internal)?;
    let Some(user) = users::find_by_id(&mut tx, id).await.map_err(internal)? else {
        return Ok(not_found());
    };
    if users::would_leave_no_admin(&mut tx, id, None)
        .await
        .map_err(internal)?
    {
        return Ok(last_admin());
    }
    users::remove(&mut tx, id).await.map_err(internal)?;
    audit::record(
        &mut tx,
        &actor,
        "user.remove",
        &format!("user:{}", user.email),
        json!({"role": user.role}),
    )
    .await
    .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
