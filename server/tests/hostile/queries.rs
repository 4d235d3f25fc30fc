//! Attacks on the read API's query string: user-controlled nesting in `meta.*` paths and
//! in their JSON values.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{long_tests, Target, PEAK_RSS_MIB};

/// `meta.a.a.a…=1` with `segments` segments.
fn deep_meta_query(segments: usize) -> String {
    let mut key = String::from("meta.");
    key.push_str(&vec!["a"; segments].join("."));
    format!("{key}=1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_path_of_thirty_thousand_segments_is_a_400_not_a_crash() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(5).await;
    // ~60 KB: fits in the request line hyper accepts.
    let segments = if long_tests() { 32_000 } else { 30_000 };
    let query = deep_meta_query(segments);
    for route in [
        "/api/v1/logs",
        "/api/v1/logs/histogram",
        "/api/v1/services",
        "/api/v1/logs/tail",
    ] {
        let started = Instant::now();
        let response = target
            .read(&format!("{route}?{query}"))
            .send()
            .await
            .unwrap_or_else(|error| panic!("{route}: no answer ({error}); the server died?"));
        assert_eq!(response.status(), 400, "{route}");
        let text = response.text().await.unwrap();
        assert!(text.len() < 4_096, "{route}: a {} byte answer", text.len());
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], "Invalid query", "{route}: {body}");
        let details = body["details"].to_string();
        assert!(details.contains("nested"), "{route}: {details}");
        assert!(started.elapsed() < Duration::from_secs(5), "{route}");
    }
    good.wait_for_batches(5).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
    assert!(
        target
            .metric("log_ingestion_requests_rejected_total{reason=\"invalid_query\"}")
            .await
            >= 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_at_the_depth_cap_still_works_and_one_past_it_is_refused() {
    let mut target = Target::start(&[("LOG_INGESTION_MAX_METADATA_DEPTH", "4")]).await;
    let good = target.good_client();
    let at_cap = target
        .read(&format!("/api/v1/logs?{}", deep_meta_query(4)))
        .send()
        .await
        .unwrap();
    assert_eq!(at_cap.status(), 200);
    let past = target
        .read(&format!("/api/v1/logs?{}", deep_meta_query(5)))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), 400);
    let body: Value = past.json().await.unwrap();
    assert!(body["details"].to_string().contains("at most 4"), "{body}");
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_in_a_metadata_filter_value_is_refused_cleanly() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    // 5,000 levels: ~30 KB once percent-encoded, within the request line's limit.
    let depth = 5_000;
    let value = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let response = target
        .read("/api/v1/logs")
        .query(&[("meta.k", value.as_str())])
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(text.len() < 4_096, "a {} byte answer", text.len());
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}
