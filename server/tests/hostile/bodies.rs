//! Attacks through request bodies: error messages that would quote the body, bodies that
//! expand (gzip, zstd, chunked), element counts far past the batch cap, deep JSON.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use tokio::io::AsyncWriteExt;

use crate::harness::{
    connect, gzip, gzip_parts, long_tests, outcome, send_post_head, Outcome, Target, PEAK_RSS_MIB,
};

const MIB: usize = 1024 * 1024;
/// Longest any refusal in this file may take (a hang or quadratic work shows as more).
const REFUSAL_WITHIN: Duration = Duration::from_secs(10);
/// Longest answer body a refusal may have: it must never echo the body.
const ANSWER_BYTES: usize = 4_096;

/// Sends `body` to `path` and returns (status, answer text), asserting it came within
/// [`REFUSAL_WITHIN`] and is short.
async fn send(
    target: &Target,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = target
        .post(path)
        .header("Content-Type", content_type)
        .body(body);
    if let Some(encoding) = encoding {
        request = request.header("Content-Encoding", encoding);
    }
    let started = Instant::now();
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("no answer from {path}: {error}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let elapsed = started.elapsed();
    assert!(
        elapsed < REFUSAL_WITHIN,
        "{path}: answered {status} after {elapsed:?}"
    );
    assert!(
        text.len() <= ANSWER_BYTES,
        "{path}: a {} byte answer starting {:?}",
        text.len(),
        &text[..200.min(text.len())]
    );
    (status, text)
}

/// Sends `body` to the batch route `copies` times at once; asserts each answer is
/// `refusal` or 503 (the in-flight budget refusing first) and returns them.
async fn send_in_parallel(
    target: &Target,
    copies: usize,
    content_type: &str,
    encoding: &str,
    body: &[u8],
    refusal: u16,
) -> Vec<(u16, String)> {
    let answers = futures::future::join_all((0..copies).map(|_| {
        send(
            target,
            "/api/v1/logs/batch",
            content_type,
            Some(encoding),
            body.to_vec(),
        )
    }))
    .await;
    for (status, text) in &answers {
        assert!(*status == refusal || *status == 503, "{status}: {text}");
    }
    answers
}

/// `{"logs":"struct struct …"}` of about `bytes`.
fn struct_echo_body(field: &str, bytes: usize) -> Vec<u8> {
    let words = "struct ".repeat(bytes / 7);
    format!("{{\"{field}\":\"{words}\"}}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_shape_body_quoting_a_long_string_is_refused_in_linear_time() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let plain = if long_tests() { 9 * MIB } else { MIB };
    // Plain, then gzip of 10 MiB (~15 KB on the wire), on both routes.
    let (status, text) = send(
        &target,
        "/api/v1/logs/batch",
        "application/json",
        None,
        struct_echo_body("logs", plain),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Invalid request body"), "{text}");
    for (path, field) in [("/api/v1/logs/batch", "logs"), ("/api/v1/logs", "log")] {
        let words = "struct ".repeat(MIB / 7);
        let head = format!("{{\"{field}\":\"");
        let body = gzip_parts(&[(head.as_bytes(), 1), (words.as_bytes(), 9), (b"\"}", 1)]);
        let (status, text) = send(&target, path, "application/json", Some("gzip"), body).await;
        assert_eq!(status, 400, "{path}: {text}");
    }
    // The same string as one NDJSON entry: a per-entry error, short too.
    let mut line = serde_json::to_vec(&Value::String("struct ".repeat(MIB / 7))).unwrap();
    line.push(b'\n');
    let (status, text) = send(
        &target,
        "/api/v1/logs/batch",
        "application/x-ndjson",
        None,
        line,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["rejected"], 1, "{answer}");
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_values_in_entries_are_quoted_in_part() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    let long = "x".repeat(MIB);
    let entry = json!({"timestamp": long, "service": "s", "level": long, "message": "m"});
    let (status, text) = send(
        &target,
        "/api/v1/logs",
        "application/json",
        None,
        serde_json::to_vec(&json!({ "log": entry })).unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("timestamp"), "{text}");
    assert!(text.contains("level"), "{text}");
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzipped_array_of_ones_stops_at_the_entry_cap() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let ones = "1,".repeat(MIB / 2);
    let compressed = gzip_parts(&[(b"{\"logs\":[", 1), (ones.as_bytes(), 9), (b"1]}", 1)]);
    assert!(compressed.len() < 64 * 1024);
    let parallel = if long_tests() { 32 } else { 8 };
    let answers = send_in_parallel(
        &target,
        parallel,
        "application/json",
        "gzip",
        &compressed,
        400,
    )
    .await;
    assert!(
        answers
            .iter()
            .any(|(status, text)| *status == 400 && text.contains("Batch too large")),
        "{answers:?}"
    );
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_gzip_bombs_are_charged_before_they_expand() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    // 64 MiB of spaces in about 64 KB of gzip.
    let bomb = gzip_parts(&[(&vec![b' '; MIB], 64)]);
    let parallel = if long_tests() { 300 } else { 150 };
    send_in_parallel(&target, parallel, "application/json", "gzip", &bomb, 413).await;
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zstd_bomb_stops_at_the_cap() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    // 256 MiB of spaces in a few KB: one small frame, repeated (decoders read on).
    let frame = zstd::encode_all(&vec![b' '; MIB][..], 3).unwrap();
    let bomb = frame.repeat(256);
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let parallel = if long_tests() { 100 } else { 30 };
    send_in_parallel(&target, parallel, "application/json", "zstd", &bomb, 413).await;
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_are_charged_as_they_are_read() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let parallel = if long_tests() { 32 } else { 8 };
    let answers = futures::future::join_all((0..parallel).map(|_| async {
        // No Content-Length: 9 MiB sent as 64 KiB chunks.
        let mut stream = connect(&target).await;
        send_post_head(
            &mut stream,
            "/api/v1/logs/batch",
            &[
                "Content-Type: application/json".to_owned(),
                "Transfer-Encoding: chunked".to_owned(),
            ],
        )
        .await;
        let started = Instant::now();
        let chunk = "1,".repeat(32 * 1024);
        let mut pieces = vec!["{\"logs\":[".to_owned()];
        pieces.extend(std::iter::repeat_n(chunk, 9 * 16));
        pieces.push("1]}".to_owned());
        for piece in pieces {
            let framed = format!("{:x}\r\n{piece}\r\n", piece.len());
            if stream.write_all(framed.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let got = outcome(&mut stream, REFUSAL_WITHIN).await;
        let elapsed = started.elapsed();
        assert!(elapsed < REFUSAL_WITHIN, "answered after {elapsed:?}");
        match got {
            Outcome::Status(status) => status,
            // Refused while it was still sending: the connection was closed.
            Outcome::Closed => 0,
            Outcome::Hung => panic!("a chunked upload hung"),
        }
    }))
    .await;
    for status in &answers {
        assert!(matches!(status, 0 | 400 | 503), "{answers:?}");
    }
    assert!(answers.contains(&400), "{answers:?}");
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tiny_ndjson_lines_are_counted_before_they_are_built() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let lines = "1\n".repeat(MIB / 2);
    let body = gzip_parts(&[(lines.as_bytes(), 9)]);
    let parallel = if long_tests() { 16 } else { 4 };
    let answers = send_in_parallel(
        &target,
        parallel,
        "application/x-ndjson",
        "gzip",
        &body,
        400,
    )
    .await;
    assert!(
        answers
            .iter()
            .any(|(_, text)| text.contains("Batch too large")),
        "{answers:?}"
    );
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_ndjson_line_is_one_short_refusal() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let head = format!(
        "{{\"timestamp\":\"{}\",\"service\":\"s\",\"level\":\"INFO\",\"message\":\"",
        chrono::Utc::now().to_rfc3339()
    );
    let ms = "m".repeat(MIB);
    let body = gzip_parts(&[(head.as_bytes(), 1), (ms.as_bytes(), 9), (b"\"}\n", 1)]);
    let (status, text) = send(
        &target,
        "/api/v1/logs/batch",
        "application/x-ndjson",
        Some("gzip"),
        body,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["rejected"], 1, "{answer}");
    assert!(
        answer["errors"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("message"),
        "{answer}"
    );
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_json_in_metadata_is_refused() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    let depth = if long_tests() { 1_000_000 } else { 100_000 };
    let deep = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let entry = |metadata: &str| {
        format!(
            "{{\"timestamp\":\"{}\",\"service\":\"s\",\"level\":\"INFO\",\"message\":\"m\",\"metadata\":{metadata}}}",
            chrono::Utc::now().to_rfc3339()
        )
    };
    let single = format!("{{\"log\":{}}}", entry(&deep)).into_bytes();
    let (status, text) = send(
        &target,
        "/api/v1/logs",
        "application/json",
        Some("gzip"),
        gzip(&single),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    let mut ndjson = entry(&deep).into_bytes();
    ndjson.push(b'\n');
    let (status, text) = send(
        &target,
        "/api/v1/logs/batch",
        "application/x-ndjson",
        Some("gzip"),
        gzip(&ndjson),
    )
    .await;
    assert!(status == 400 || status == 200, "{status}: {text}");
    // Just past the depth cap, but within the JSON decoder's: a per-entry refusal.
    let over_cap = format!("{}1{}", "{\"a\":".repeat(17), "}".repeat(17));
    let (status, text) = send(
        &target,
        "/api/v1/logs/batch",
        "application/json",
        None,
        format!("{{\"logs\":[{}]}}", entry(&over_cap)).into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("nested"), "{text}");
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}
