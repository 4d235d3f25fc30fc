//! OTLP/HTTP batches through the fleet while one instance is killed with `kill -9`:
//! clients that behave as OpenTelemetry's exporters do (retry 429, 502, 503, 504 and
//! lost connections; anything else is a dropped batch, which fails the test) see every
//! batch acknowledged, and every record of an acknowledged batch is stored. OTLP has no
//! idempotency key, so a batch whose answer was lost with the instance may be stored
//! twice: the duplicates are counted and bounded by the batches that were retried.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use log_ingestion_test_support::fleet::Fleet;

const CLIENTS: usize = 6;
const BATCHES: usize = 20;
const BATCH_SIZE: usize = 50;
const BATCH_DEADLINE: Duration = Duration::from_secs(60);

fn batch(client: usize, batch: usize) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let records = (0..BATCH_SIZE)
        .map(|i| LogRecord {
            time_unix_nano: now,
            severity_number: 9,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "otlp-{client}-{batch}-{i}"
                ))),
            }),
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("fleet-otlp".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Exports one batch until it is acknowledged, retrying as an OTLP exporter does;
/// returns how many attempts it took.
async fn export(http: &reqwest::Client, url: &str, body: Vec<u8>, id: &str) -> usize {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = http
            .post(format!("{url}/v1/logs"))
            .header("Content-Type", "application/x-protobuf")
            .header("Authorization", "Bearer fleet-otlp")
            .body(body.clone())
            .send()
            .await;
        if let Ok(response) = sent {
            let status = response.status().as_u16();
            if status == 200 {
                return attempts;
            }
            assert!(
                matches!(status, 429 | 502 | 503 | 504),
                "batch {id}: {status} would make an OTLP exporter drop the batch"
            );
        }
        assert!(
            started.elapsed() < BATCH_DEADLINE,
            "batch {id} not acknowledged within {BATCH_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn every_acknowledged_otlp_record_is_stored_while_an_instance_is_killed() {
    let fleet = Fleet::start("otlp", &["fleet-otlp"], &[]);
    let url = fleet.url();
    let http = reqwest::Client::new();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, acked) = (http.clone(), url.clone(), Arc::clone(&acked));
        clients.push(tokio::spawn(async move {
            let mut retried = 0;
            for number in 0..BATCHES {
                let attempts = export(
                    &http,
                    &url,
                    batch(client, number),
                    &format!("{client}-{number}"),
                )
                .await;
                retried += usize::from(attempts > 1);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            retried
        }));
    }
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < CLIENTS * BATCHES / 3 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "load never got going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.kill_instance(1);
    let killed_at = acked.load(Ordering::Relaxed);
    let mut retried_batches = 0;
    for client in clients {
        retried_batches += client.await.expect("client task");
    }

    let primary = fleet.primary().await;
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT message) FROM logs WHERE service = 'fleet-otlp'",
    )
    .fetch_one(&primary)
    .await
    .unwrap();
    let total = (CLIENTS * BATCHES * BATCH_SIZE) as i64;
    assert_eq!(
        distinct, total,
        "every record of every acknowledged batch is stored"
    );
    let duplicates = rows - distinct;
    assert!(
        duplicates <= (retried_batches * BATCH_SIZE) as i64,
        "{duplicates} duplicates, more than the {retried_batches} retried batches hold"
    );
    eprintln!(
        "fleet OTLP: {distinct} records stored, {duplicates} duplicates from {retried_batches} \
         retried batches; instance 1 killed after {killed_at}/{} batches",
        CLIENTS * BATCHES
    );
}
