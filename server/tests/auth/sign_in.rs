//! Signing in and out: the cookie's attributes, wrong passwords, lockout backoff, the
//! per-address throttle, bounded inputs, idle and absolute expiry, signing out
//! everywhere, and CSRF on changes made with a session.

use log_ingestion_server::auth::ApiKey;
use log_ingestion_test_support::{spawn_app_with, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};

use crate::people::{add_user, app, person, session_cookie, sign_in, try_sign_in, PASSWORD};

#[tokio::test]
async fn a_person_signs_in_sees_who_they_are_and_signs_out() {
    let app = app().await;
    add_user(&app, "ann@example.com", "editor").await;
    let response = try_sign_in(&app, "Ann@Example.com", PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    // The marker the explorer reads holds no secret.
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("log_ingestion_signed_in=1;") && !c.contains("HttpOnly")),
        "{cookies:?}"
    );
    let set_cookie = cookies
        .iter()
        .find(|c| c.starts_with("log_ingestion_session="))
        .unwrap()
        .clone();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let cookie = session_cookie(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["role"], "editor");
    // Only the token's hash is stored.
    let token = cookie.split_once('=').unwrap().1;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE token_hash = sha256($1::bytea)")
            .bind(token.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1);

    let ann = sign_in(&app, "ann@example.com").await;
    let me: Value = ann.get(&app, "/api/v1/session").await.json().await.unwrap();
    assert_eq!(me["actor"], "user:ann@example.com");
    assert_eq!(me["role"], "editor");
    assert_eq!(me["csrf_token"], ann.csrf.as_str());
    assert_eq!(ann.get(&app, "/api/v1/logs").await.status(), 200);

    let out = ann
        .request(&app, Method::DELETE, "/api/v1/session", true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let cleared: Vec<&str> = out
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(
        cleared.iter().all(|c| c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let after = ann.get(&app, "/api/v1/logs").await;
    assert_eq!(after.status(), 401);
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["error"], "Not signed in");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_address_get_the_same_answer() {
    let app = app().await;
    add_user(&app, "ann@example.com", "viewer").await;
    let wrong = try_sign_in(&app, "ann@example.com", "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown = try_sign_in(&app, "bob@example.com", PASSWORD).await;
    assert_eq!(unknown.status(), 401);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["error"], "Invalid email or password");
    // No cookie, no session.
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn inputs_are_bounded_before_any_hashing() {
    let app = app().await;
    add_user(&app, "ann@example.com", "viewer").await;
    let huge = "x".repeat(20_000);
    let response = try_sign_in(&app, "ann@example.com", &huge).await;
    assert_eq!(response.status(), 413);
    let long = "x".repeat(2000);
    let response = try_sign_in(&app, "ann@example.com", &long).await;
    assert_eq!(response.status(), 400);
    let response = try_sign_in(&app, &format!("{}@example.com", "a".repeat(400)), PASSWORD).await;
    assert_eq!(response.status(), 400);
    // A form post (what a cross-site page could send) is refused.
    let form = app
        .client
        .post(app.url("/api/v1/session"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("email=ann%40example.com&password={PASSWORD}"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    // A good client still signs in.
    sign_in(&app, "ann@example.com").await;
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_with_a_doubling_backoff() {
    let app = app().await;
    add_user(&app, "ann@example.com", "viewer").await;
    for _ in 0..5 {
        let response = try_sign_in(&app, "ann@example.com", "not the password at all").await;
        assert_eq!(response.status(), 401);
    }
    let (failures, lock_secs): (i32, f64) = sqlx::query_as(
        "SELECT failed_sign_ins, extract(epoch FROM locked_until - now())::float8 FROM users",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(failures, 5);
    assert!(lock_secs > 0.0 && lock_secs <= 1.0, "{lock_secs}");
    // Locked: even the right password is refused, and the answer is the one an unknown
    // address gets, so a lockout never tells that an account exists.
    let locked = try_sign_in(&app, "ann@example.com", PASSWORD).await;
    let unknown = try_sign_in(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(locked.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert!(!locked.headers().contains_key("retry-after"));
    assert_eq!(locked.text().await.unwrap(), unknown.text().await.unwrap());

    // The lock ends; one more wrong password locks for twice as long.
    sqlx::query("UPDATE users SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let response = try_sign_in(&app, "ann@example.com", "not the password at all").await;
    assert_eq!(response.status(), 401);
    let lock_secs: f64 =
        sqlx::query_scalar("SELECT extract(epoch FROM locked_until - now())::float8 FROM users")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(lock_secs > 1.0 && lock_secs <= 2.0, "{lock_secs}");

    // After the lock, the right password signs in and clears the count.
    sqlx::query("UPDATE users SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    sign_in(&app, "ann@example.com").await;
    let failures: i32 = sqlx::query_scalar("SELECT failed_sign_ins FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 0);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn one_address_may_only_try_so_many_times_a_minute() {
    let app = spawn_app_with(|settings| {
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
        settings.sign_in.attempts_per_minute = 3;
    })
    .await;
    add_user(&app, "ann@example.com", "viewer").await;
    for _ in 0..3 {
        let response = try_sign_in(&app, "nobody@example.com", "whatever it is here").await;
        assert_eq!(response.status(), 401);
    }
    let throttled = try_sign_in(&app, "ann@example.com", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn sessions_end_when_idle_too_long_or_too_old() {
    let app = app().await;
    let idle = person(&app, "ann@example.com", "viewer").await;
    let old = sign_in(&app, "ann@example.com").await;
    let fresh = sign_in(&app, "ann@example.com").await;
    let token_of =
        |person: &crate::people::Person| person.cookie.split_once('=').unwrap().1.to_owned();
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '13 hours' WHERE token_hash = sha256($1::bytea)")
        .bind(token_of(&idle).into_bytes())
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = sha256($1::bytea)")
        .bind(token_of(&old).into_bytes())
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(idle.get(&app, "/api/v1/logs").await.status(), 401);
    assert_eq!(old.get(&app, "/api/v1/logs").await.status(), 401);
    assert_eq!(fresh.get(&app, "/api/v1/logs").await.status(), 200);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_of_that_person_only() {
    let app = app().await;
    let laptop = person(&app, "ann@example.com", "viewer").await;
    let phone = sign_in(&app, "ann@example.com").await;
    let bob = person(&app, "bob@example.com", "viewer").await;
    let out = laptop
        .request(&app, Method::DELETE, "/api/v1/sessions", true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    let body: Value = out.json().await.unwrap();
    assert_eq!(body["ended"], 2);
    assert_eq!(laptop.get(&app, "/api/v1/logs").await.status(), 401);
    assert_eq!(phone.get(&app, "/api/v1/logs").await.status(), 401);
    assert_eq!(bob.get(&app, "/api/v1/logs").await.status(), 200);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_change_made_with_a_session_needs_its_csrf_token() {
    let app = app().await;
    let ann = person(&app, "ann@example.com", "editor").await;
    let path = "/api/v1/errors/999999/status";
    let body = json!({"status": "resolved"});
    let without = ann
        .request(&app, Method::POST, path, false)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 403);
    let without: Value = without.json().await.unwrap();
    assert_eq!(without["error"], "CSRF token missing or invalid");
    let wrong = ann
        .request(&app, Method::POST, path, false)
        .header("X-CSRF-Token", "guessed")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let with = ann
        .request(&app, Method::POST, path, true)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 404, "admitted, and the group does not exist");
    // Signing out is a change too.
    let out = ann
        .request(&app, Method::DELETE, "/api/v1/session", false)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 403);
    // An API key needs no CSRF token.
    let by_key = app
        .client
        .post(app.url(path))
        .header("X-API-Key", ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 404);
    app.stop_and_drop_database().await;
}
