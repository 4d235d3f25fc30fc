//! The rules file: loaded at start with its channels (source `file`, read-only in the
//! API), reloaded on SIGHUP (what it no longer names is removed), and a bad file stops
//! the start with an error naming the bad field.

use std::time::Duration;

use log_ingestion_server::startup::Application;
use log_ingestion_test_support::{create_database, spawn_app_with, test_settings};
use reqwest::Method;
use serde_json::json;

use crate::{alert_settings, request, wait_for};

const FILE: &str = r#"
channels:
  - name: ops
    kind: webhook
    url: http://127.0.0.1:9/hook
    secret: file-secret
rules:
  - name: checkout errors
    kind: count
    search: {service: checkout, min_level: error}
    threshold: 10
    window: 5m
    for: 2m
    channels: [ops]
"#;

#[tokio::test]
async fn file_rules_load_at_start_are_read_only_and_follow_the_file_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, FILE).unwrap();
    let file = path.clone();
    let app = spawn_app_with(move |settings| {
        alert_settings(settings);
        settings.alert_rules.rules_file = Some(file);
    })
    .await;
    let (_, list) = request(&app, Method::GET, "/api/v1/alerts/rules", None).await;
    let rule = &list["rules"][0];
    assert_eq!(rule["name"], "checkout errors");
    assert_eq!(rule["source"], "file");
    let id = rule["id"].as_i64().unwrap();
    let (status, body) = request(
        &app,
        Method::PUT,
        &format!("/api/v1/alerts/rules/{id}"),
        Some(json!({"name": "checkout errors", "kind": "absence", "window": "1h", "search": {}})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = request(
        &app,
        Method::DELETE,
        &format!("/api/v1/alerts/rules/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let channel: (String, String) =
        sqlx::query_as("SELECT source, url FROM alert_channels WHERE name = 'ops'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        channel,
        ("file".to_owned(), "http://127.0.0.1:9/hook".to_owned())
    );

    std::fs::write(
        &path,
        FILE.replace("name: checkout errors", "name: checkout failures")
            .replace("name: ops", "name: oncall")
            .replace("[ops]", "[oncall]"),
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(20, "the reloaded file", || async {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM alert_rules ORDER BY name")
            .fetch_all(&app.pool)
            .await
            .unwrap();
        names == ["checkout failures"]
    })
    .await;
    let channels: Vec<String> = sqlx::query_scalar("SELECT name FROM alert_channels")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(channels, ["oncall"]);
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_bad_rules_file_stops_the_start_naming_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, FILE.replace("window: 5m", "window: a while")).unwrap();
    let (_database, url) = create_database().await;
    let mut settings = test_settings(&url);
    alert_settings(&mut settings);
    settings.alert_rules.rules_file = Some(path);
    let error = match tokio::time::timeout(Duration::from_secs(30), Application::build(settings))
        .await
        .unwrap()
    {
        Ok(_) => panic!("a bad rules file was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("rules[0] (checkout errors).window:"),
        "{error}"
    );
}
