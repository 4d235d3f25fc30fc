//! Two processes started with the same `LOG_INGESTION_INSTANCE_ID` (one env file for a
//! whole fleet) are still two instances to the shared rate limits.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;

use log_ingestion_test_support::{create_database, metrics, wait_until, ServerProcess, API_KEY};

const RPS: u64 = 5;
const BURST: u64 = 20;

fn start_as_web(url: &str) -> ServerProcess {
    ServerProcess::start_with(
        url,
        API_KEY,
        &[
            ("LOG_INGESTION_INSTANCE_ID", "web".to_owned()),
            ("LOG_INGESTION_SHARED_RATE_LIMITS", "on".to_owned()),
            ("LOG_INGESTION_RATE_LIMIT_SYNC_INTERVAL", "100ms".to_owned()),
            ("LOG_INGESTION_RATE_LIMIT_RPS", RPS.to_string()),
            ("LOG_INGESTION_RATE_LIMIT_BURST", BURST.to_string()),
        ],
    )
}

async fn metric(http: &reqwest::Client, server: &ServerProcess, name: &str) -> Option<f64> {
    metrics::scrape_sample(http, &server.address, name).await
}

/// An empty batch: answered 400 once the rate limiter admitted it, 429 otherwise.
async fn admitted(http: &reqwest::Client, server: &ServerProcess) -> bool {
    let status = http
        .post(format!("{}/api/v1/logs/batch", server.address))
        .header("X-API-Key", API_KEY)
        .json(&json!({"logs": []}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status == 400 || status == 429, "{status}");
    status == 400
}

#[tokio::test]
async fn two_processes_with_one_instance_id_share_one_limit() {
    let (_database, url) = create_database().await;
    let first = start_as_web(&url);
    let second = start_as_web(&url);
    let http = reqwest::Client::new();

    // Each sees the other as a live peer, and says the id is shared.
    for server in [&first, &second] {
        let sees_its_peer = wait_until(Duration::from_secs(30), || async {
            metric(&http, server, "log_ingestion_rate_limit_peers").await == Some(1.0)
        })
        .await;
        assert!(
            sees_its_peer,
            "{} never saw the other process",
            server.address
        );
        assert_eq!(
            metric(&http, server, "log_ingestion_instance_id_shared").await,
            Some(1.0)
        );
    }
    let store = PgPool::connect(&url).await.unwrap();
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT instance_id FROM rate_limit_instances ORDER BY 1")
            .fetch_all(&store)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "one row per process: {rows:?}");
    assert!(rows.iter().all(|row| row.starts_with("web/")), "{rows:?}");

    // Both hammered at once admit about one limit's allowance between them. Each taking
    // the whole limit would admit at least both bursts (40); the slack is for the shares'
    // lag of a sync or two behind demand, which can hand one process most of its burst.
    let started = Instant::now();
    let mut count = 0;
    for _ in 0..2 * BURST {
        count += u64::from(admitted(&http, &first).await);
        count += u64::from(admitted(&http, &second).await);
    }
    let allowance = BURST as f64 + RPS as f64 * started.elapsed().as_secs_f64();
    eprintln!("two processes named web: {count} admitted for an allowance of {allowance:.1}");
    assert!(
        (count as f64) <= allowance * 1.5 && count < 2 * BURST,
        "{count} admitted by two processes named web, for an allowance of {allowance:.1}"
    );
    let warned = |server: &ServerProcess| {
        server
            .log_text()
            .contains("another live process uses this LOG_INGESTION_INSTANCE_ID")
    };
    let both_warned = wait_until(Duration::from_secs(10), || async {
        warned(&first) && warned(&second)
    })
    .await;
    assert!(both_warned, "{}\n{}", first.log_text(), second.log_text());
}
