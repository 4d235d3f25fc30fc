//! The SSO proxy's header: believed only from `LOG_INGESTION_TRUSTED_PROXIES`, where it
//! signs the person in (added on first sight with the default role); from any other
//! address it is ignored.

use log_ingestion_server::auth::{ApiKey, Role};
use log_ingestion_server::config::Cidr;
use log_ingestion_test_support::{spawn_app_with, TestApp, ADMIN_KEY};
use serde_json::{json, Value};

pub const HEADER: &str = "x-forwarded-email";

pub async fn app_trusting(network: &str) -> TestApp {
    let network = Cidr::parse(network).unwrap();
    spawn_app_with(move |settings| {
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
        settings.sign_in.proxy.auth_header = Some(HEADER.parse().unwrap());
        settings.sign_in.proxy.proxies = vec![network];
        settings.sign_in.proxy.default_role = Role::Viewer;
    })
    .await
}

async fn users(app: &TestApp) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT email, role, source FROM users ORDER BY email")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_header_is_ignored_from_an_address_not_trusted() {
    // The tests connect from 127.0.0.1, outside 10.0.0.0/8.
    let app = app_trusting("10.0.0.0/8").await;
    let response = app
        .client
        .get(app.url("/api/v1/logs"))
        .header(HEADER, "mallory@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(users(&app).await.is_empty());
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn the_header_signs_a_person_in_from_a_trusted_address() {
    let app = app_trusting("127.0.0.1/32").await;
    let get = |path: &str| {
        app.client
            .get(app.url(path))
            .header(HEADER, "Carol@Example.com")
            .send()
    };
    assert_eq!(get("/api/v1/logs").await.unwrap().status(), 200);
    assert_eq!(
        users(&app).await,
        [("carol@example.com".into(), "viewer".into(), "proxy".into())]
    );
    let me: Value = get("/api/v1/session").await.unwrap().json().await.unwrap();
    assert_eq!(me["actor"], "user:carol@example.com");
    // Signed in as a viewer: a change is refused for the role, not for the header.
    let change = app
        .client
        .post(app.url("/api/v1/errors/1/status"))
        .header(HEADER, "carol@example.com")
        .header("X-CSRF-Token", me["csrf_token"].as_str().unwrap())
        .json(&json!({"status": "resolved"}))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), 403);
    let body: Value = change.json().await.unwrap();
    assert_eq!(body["error"], "Forbidden");
    // Her second request finds her, not a second row.
    assert_eq!(get("/api/v1/logs").await.unwrap().status(), 200);
    assert_eq!(users(&app).await.len(), 1);
    app.stop_and_drop_database().await;
}
