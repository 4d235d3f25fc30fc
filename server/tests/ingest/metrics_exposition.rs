//! `/metrics` as Prometheus reads it: the built binary's exposition, after accepted,
//! partly rejected, unauthenticated and rate-limited requests, passes
//! `promtool check metrics` (Debian's `prometheus` package; `bin/setup` installs it).

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::json;

use log_ingestion_test_support::{create_database, entry, ServerProcess, API_KEY};

/// `promtool check metrics` over `text`: its exit status and what it printed.
fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run promtool ({error}): install Debian's prometheus package (bin/setup does)")
        });
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

async fn send(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> u16 {
    http.post(url)
        .header("X-API-Key", API_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_exposition_after_refusals_passes_promtool() {
    let (_database, url) = create_database().await;
    // A burst of 2 so that the third request of the key is refused with 429.
    let server = ServerProcess::start_with(
        &url,
        API_KEY,
        &[
            ("LOG_INGESTION_RATE_LIMIT_RPS", "1".to_owned()),
            ("LOG_INGESTION_RATE_LIMIT_BURST", "2".to_owned()),
        ],
    );
    let http = reqwest::Client::new();
    let batch = format!("{}/api/v1/logs/batch", server.address);
    let mut invalid = entry("no level");
    invalid["level"] = json!("LOUD");
    let statuses = [
        json!({"logs": [entry("a"), entry("b")]}),
        json!({"logs": [entry("c"), invalid]}),
        json!({"logs": [entry("d")]}),
    ];
    let mut answered = Vec::new();
    for body in &statuses[..2] {
        answered.push(send(&http, &batch, body).await);
    }
    assert_eq!(answered, [200, 200]);
    // The third is refused unless a token came back meanwhile (a second on a busy
    // machine): sent again until it is, each accepted one counted.
    let mut late_accepted = 0;
    loop {
        match send(&http, &batch, &statuses[2]).await {
            429 => break,
            200 if late_accepted < 20 => late_accepted += 1,
            other => panic!("{other} after {late_accepted} more accepted"),
        }
    }
    let unauthenticated = http.post(&batch).json(&statuses[2]).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let response = http
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let batch_requests = 4 + late_accepted;
    for sample in [
        format!("log_ingestion_entries_accepted_total {}", 3 + late_accepted),
        "log_ingestion_entries_rejected_total{reason=\"validation\"} 1".to_owned(),
        "log_ingestion_requests_rejected_total{reason=\"rate_limited\"} 1".to_owned(),
        "log_ingestion_requests_rejected_total{reason=\"missing_api_key\"} 1".to_owned(),
        "log_ingestion_rate_limited_total 1".to_owned(),
        format!(
            "log_ingestion_request_duration_seconds_count\
             {{method=\"POST\",route=\"/api/v1/logs/batch\"}} {batch_requests}"
        ),
    ] {
        assert!(text.contains(&sample), "{sample} missing from {text}");
    }
    let (passed, printed) = promtool_check(&text);
    assert!(
        passed && printed.trim().is_empty(),
        "promtool check metrics: {printed}\n{text}"
    );
    drop(server);
}
