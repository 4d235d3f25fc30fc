//! Removing a person takes their access away for good: their sessions end, password
//! sign-in and the SSO proxy refuse them (the proxy does not add them again), the users
//! list leaves them out, and only an admin adding the address again brings them back,
//! audited, without their private saved searches.

use log_ingestion_test_support::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

use crate::people::{add_user, app, sign_in, try_sign_in, PASSWORD};
use crate::proxy::{app_trusting, HEADER};

async fn admin(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    app.admin().send(method, path, body).await
}

async fn listed(app: &TestApp) -> Vec<String> {
    let (status, body) = admin(app, Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, 200);
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap().to_owned())
        .collect()
}

async fn audited(app: &TestApp, action: &str, target: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = $1 AND target = $2 ORDER BY id",
    )
    .bind(action)
    .bind(target)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_removed_sso_person_is_refused_not_added_again_until_an_admin_adds_them() {
    let app = app_trusting("127.0.0.1/32").await;
    let get = |path: &str| {
        app.client
            .get(app.url(path))
            .header(HEADER, "carol@example.com")
            .send()
    };
    assert_eq!(get("/api/v1/logs").await.unwrap().status(), 200);
    let carol: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'carol@example.com'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let path = format!("/api/v1/users/{carol}");
    assert_eq!(admin(&app, Method::DELETE, &path, None).await.0, 204);

    assert_eq!(get("/api/v1/logs").await.unwrap().status(), 401);
    assert_eq!(get("/api/v1/session").await.unwrap().status(), 401);
    assert!(listed(&app).await.is_empty());
    assert_eq!(
        audited(&app, "user.add", "user:carol@example.com")
            .await
            .len(),
        1,
        "the proxy did not add her again"
    );
    assert_eq!(admin(&app, Method::DELETE, &path, None).await.0, 404);
    let (status, _) = admin(&app, Method::PATCH, &path, Some(json!({"role": "admin"}))).await;
    assert_eq!(status, 404, "a removed person is not changed");

    let (status, body) = admin(
        &app,
        Method::POST,
        "/api/v1/users",
        Some(json!({"email": "carol@example.com", "role": "editor"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["id"], carol);
    let added = audited(&app, "user.add", "user:carol@example.com").await;
    assert_eq!(added.len(), 2);
    assert_eq!(added[1]["restored"], true);
    assert_eq!(added[1]["role"], "editor");
    let me: Value = get("/api/v1/session").await.unwrap().json().await.unwrap();
    assert_eq!(me["role"], "editor");
    assert_eq!(listed(&app).await, ["carol@example.com"]);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_removed_person_loses_their_sessions_and_password_until_added_again() {
    let app = app().await;
    add_user(&app, "root@example.com", "admin").await;
    let ann_id = add_user(&app, "ann@example.com", "editor").await["user"]["id"]
        .as_i64()
        .unwrap();
    let ann = sign_in(&app, "ann@example.com").await;
    let saved = ann
        .request(&app, Method::POST, "/api/v1/saved-searches", true)
        .json(&json!({"name": "mine", "search": "since=1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 201);
    let saved: Value = saved.json().await.unwrap();
    let search = format!("/api/v1/saved-searches/{}", saved["id"]);
    assert_eq!(ann.get(&app, &search).await.status(), 200);

    let path = format!("/api/v1/users/{ann_id}");
    assert_eq!(admin(&app, Method::DELETE, &path, None).await.0, 204);
    assert_eq!(ann.get(&app, "/api/v1/session").await.status(), 401);
    assert_eq!(
        try_sign_in(&app, "ann@example.com", PASSWORD)
            .await
            .status(),
        401
    );
    assert_eq!(listed(&app).await, ["root@example.com"]);
    let (status, _) = admin(
        &app,
        Method::PATCH,
        &path,
        Some(json!({"password": "another long password"})),
    )
    .await;
    assert_eq!(
        status, 404,
        "a removed person gets no password back but by adding"
    );

    // Added again, the address signs in, but the removed person's private search stays
    // theirs no more: an admin sees it, she does not.
    add_user(&app, "ann@example.com", "viewer").await;
    let again = sign_in(&app, "ann@example.com").await;
    assert_eq!(again.get(&app, &search).await.status(), 404);
    let mine: Value = again
        .get(&app, "/api/v1/saved-searches")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["saved_searches"], json!([]));
    assert_eq!(admin(&app, Method::GET, &search, None).await.0, 200);
    app.stop_and_drop_database().await;
}
