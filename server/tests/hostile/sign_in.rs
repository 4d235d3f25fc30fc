//! Attacks on sign-in: a flood from one address, and a flood through a trusted proxy
//! from a new address each time (so the per-address budget never refuses it and every
//! attempt asks for a password hash), while the good client keeps ingesting.

use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::harness::{Target, PEAK_RSS_MIB};

/// One sign-in attempt with a password of the longest accepted length; its status.
async fn attempt(target: &Target, forwarded_for: Option<String>) -> u16 {
    let body = serde_json::json!({
        "email": "nobody@example.com",
        "password": "x".repeat(1024),
    });
    let mut request = target.http.post(target.url("/api/v1/session")).json(&body);
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", address);
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(error) => panic!("a sign-in got no answer ({error}); the server died?"),
    }
}

/// Sends `count` attempts, `parallel` at a time; the count of each status.
async fn flood(
    target: &Target,
    count: usize,
    parallel: usize,
    forwarded: bool,
) -> std::collections::BTreeMap<u16, usize> {
    let statuses: Vec<u16> = futures::stream::iter(0..count)
        .map(|n| {
            let address =
                forwarded.then(|| format!("10.{}.{}.{}", n / 65_536 % 256, n / 256 % 256, n % 256));
            attempt(target, address)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut counted = std::collections::BTreeMap::new();
    for status in statuses {
        *counted.entry(status).or_default() += 1;
    }
    eprintln!("sign-in flood answers: {counted:?}");
    counted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_from_one_address_is_refused_before_any_hash() {
    let mut target = Target::start(&[("LOG_INGESTION_SIGN_IN_ATTEMPTS_PER_MINUTE", "10")]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let started = Instant::now();
    let answers = flood(&target, 400, 32, false).await;
    let took = started.elapsed();
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    // The first attempts of the minute are hashed and refused; every later one is 429
    // at once (no hash: 390 hashes would take far longer than the bound below).
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        [401, 429],
        "{answers:?}"
    );
    assert!(answers[&401] <= 11, "{answers:?}");
    assert!(took < Duration::from_secs(20), "the flood took {took:?}");
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_flood_from_many_addresses_leaves_ingest_working() {
    let mut target =
        Target::start(&[("LOG_INGESTION_TRUSTED_PROXIES", "127.0.0.1/32,::1/128")]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let answers = flood(&target, 300, 64, true).await;
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    // Every attempt is answered: refused (401), or turned away while the hashing slots
    // are taken (503): never an error or a hang.
    for status in answers.keys() {
        assert!([401, 503].contains(status), "{answers:?}");
    }
    assert!(answers.get(&401).copied().unwrap_or(0) >= 4, "{answers:?}");
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}
