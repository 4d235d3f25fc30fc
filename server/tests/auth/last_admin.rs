//! The last admin among the people can be neither demoted nor removed (409), so someone
//! can always manage people; with a second admin both changes go through.

use log_ingestion_test_support::{TestApp, ADMIN_KEY};
use reqwest::Method;
use serde_json::json;

use crate::people::{add_user, app};

async fn change(app: &TestApp, method: Method, id: i64, body: Option<serde_json::Value>) -> u16 {
    let mut request = app
        .client
        .request(method, app.url(&format!("/api/v1/users/{id}")))
        .header("X-API-Key", ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_last_admin_is_neither_demoted_nor_removed() {
    let app = app().await;
    let ann = add_user(&app, "ann@example.com", "admin").await["user"]["id"]
        .as_i64()
        .unwrap();
    let demote = Some(json!({"role": "editor"}));
    assert_eq!(change(&app, Method::PATCH, ann, demote.clone()).await, 409);
    assert_eq!(change(&app, Method::DELETE, ann, None).await, 409);

    let bob = add_user(&app, "bob@example.com", "admin").await["user"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(change(&app, Method::PATCH, ann, demote).await, 200);
    assert_eq!(
        change(&app, Method::DELETE, bob, None).await,
        409,
        "bob is the last admin now"
    );
    assert_eq!(change(&app, Method::DELETE, ann, None).await, 204);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_removed_admin_does_not_count_as_one() {
    let app = app().await;
    let ann = add_user(&app, "ann@example.com", "admin").await["user"]["id"]
        .as_i64()
        .unwrap();
    let bob = add_user(&app, "bob@example.com", "admin").await["user"]["id"]
        .as_i64()
        .unwrap();
    assert_eq!(change(&app, Method::DELETE, ann, None).await, 204);
    assert_eq!(
        change(&app, Method::DELETE, bob, None).await,
        409,
        "ann is removed: bob is the last admin"
    );
    assert_eq!(
        change(&app, Method::PATCH, bob, Some(json!({"role": "viewer"}))).await,
        409
    );
    app.stop_and_drop_database().await;
}
