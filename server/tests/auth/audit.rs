//! The audit log: a change to a person is recorded with who made it, in the change's
//! transaction; admins read it newest first, a page at a time; nobody else may.

use log_ingestion_test_support::ADMIN_KEY;
use reqwest::Method;
use serde_json::{json, Value};

use crate::people::{add_user, app, person};

#[tokio::test]
async fn changes_to_people_are_audited_and_only_admins_read_the_log() {
    let app = app().await;
    let added = add_user(&app, "ann@example.com", "viewer").await;
    let id = added["user"]["id"].as_i64().unwrap();
    assert!(
        added.get("password").is_none(),
        "a given password is not echoed"
    );
    let admin = person(&app, "admin@example.com", "admin").await;
    let promoted = admin
        .request(&app, Method::PATCH, &format!("/api/v1/users/{id}"), true)
        .json(&json!({"role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.status(), 200);
    let removed = admin
        .request(&app, Method::DELETE, &format!("/api/v1/users/{id}"), true)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);

    let page: Value = admin
        .get(&app, "/api/v1/audit?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "user.remove",
                "user:admin@example.com",
                "user:ann@example.com"
            ),
            (
                "user.set_role",
                "user:admin@example.com",
                "user:ann@example.com"
            ),
        ]
    );
    assert_eq!(
        entries[1]["details"],
        json!({"from": "viewer", "to": "editor"})
    );
    let before = page["next_before"].as_i64().expect("more pages");
    let next: Value = admin
        .get(&app, &format!("/api/v1/audit?limit=2&before={before}"))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = next["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // The admin's own addition, then Ann's, made with the admin key.
    assert_eq!(actions, ["user.add", "user.add"]);
    assert!(next["entries"][1]["actor"]
        .as_str()
        .unwrap()
        .starts_with("key:"));

    let editor = person(&app, "ed@example.com", "editor").await;
    assert_eq!(editor.get(&app, "/api/v1/audit").await.status(), 403);
    assert_eq!(editor.get(&app, "/api/v1/users").await.status(), 403);
    let by_key = app
        .client
        .get(app.url("/api/v1/audit?limit=1000"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(by_key.status(), 400, "limit is bounded");
    app.stop_and_drop_database().await;
}
