//! The trail sign-in leaves in the server's own log (the real binary, at `RUST_LOG=info`):
//! a line for a successful sign-in and one warning when wrong passwords lock an account,
//! each naming the address and the client, never a password; the refused attempts
//! themselves write nothing at info, so a flood of them does not flood the log.

use std::time::Duration;

use log_ingestion_test_support::{create_database, wait_until, ServerProcess, API_KEY};
use serde_json::{json, Value};

const ADMIN: &str = "trail-admin-key";
const PASSWORD: &str = "the right password, long";
const WRONG: &str = "a wrong password, guessed";

fn events_naming(server: &ServerProcess, email: &str) -> Vec<Value> {
    server
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(email))
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn a_sign_in_and_a_lockout_are_logged_without_the_password_and_failures_are_quiet() {
    let (_database, url) = create_database().await;
    let server = ServerProcess::start_with(
        &url,
        API_KEY,
        &[
            ("LOG_INGESTION_ADMIN_API_KEYS", ADMIN.to_owned()),
            (
                "LOG_INGESTION_SIGN_IN_ATTEMPTS_PER_MINUTE",
                "1000".to_owned(),
            ),
        ],
    );
    let http = reqwest::Client::new();
    let added = http
        .post(format!("{}/api/v1/users", server.address))
        .header("X-API-Key", ADMIN)
        .json(&json!({"email": "dana@example.com", "role": "viewer", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let sign_in = |password: &'static str| {
        http.post(format!("{}/api/v1/session", server.address))
            .json(&json!({"email": "dana@example.com", "password": password}))
            .send()
    };
    assert_eq!(sign_in(PASSWORD).await.unwrap().status(), 200);
    let signed_in = wait_until(Duration::from_secs(10), || async {
        !events_naming(&server, "dana@example.com").is_empty()
    })
    .await;
    assert!(signed_in, "no line for the sign-in: {}", server.log_tail());
    // Up to the fifth wrong password in a row, which locks the account.
    for _ in 0..5 {
        assert_eq!(sign_in(WRONG).await.unwrap().status(), 401);
    }
    let locked = wait_until(Duration::from_secs(10), || async {
        events_naming(&server, "dana@example.com").len() >= 2
    })
    .await;
    assert!(locked, "no line for the lockout: {}", server.log_tail());
    // The same 401 while locked, and no line for it: the next line naming her is her
    // sign-in once the lock (1 s) is over.
    assert_eq!(sign_in(WRONG).await.unwrap().status(), 401);
    let back = wait_until(Duration::from_secs(30), || async {
        sign_in(PASSWORD).await.unwrap().status() == 200
    })
    .await;
    assert!(back, "the lock never ended");
    let logged = wait_until(Duration::from_secs(10), || async {
        events_naming(&server, "dana@example.com").len() >= 3
    })
    .await;
    assert!(
        logged,
        "no line for the second sign-in: {}",
        server.log_tail()
    );

    let events = events_naming(&server, "dana@example.com");
    let summary: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|event| {
            (
                event["level"].as_str().unwrap_or_default(),
                event["fields"]["message"].as_str().unwrap_or_default(),
                event["fields"]["email"].as_str().unwrap_or_default(),
                event["fields"]["client"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("INFO", "signed in", "dana@example.com", "127.0.0.1"),
            (
                "WARN",
                "sign-in: account locked after wrong passwords in a row",
                "dana@example.com",
                "127.0.0.1"
            ),
            ("INFO", "signed in", "dana@example.com", "127.0.0.1"),
        ],
        "{events:?}"
    );
    assert_eq!(events[1]["fields"]["failures"], 5);
    let log = server.log_text();
    assert!(
        !log.contains(PASSWORD) && !log.contains(WRONG),
        "a password was logged"
    );
}
