//! The CPU of validation alone, OTLP protobuf beside the JSON batch API, in process:
//! the same entries as the ingest benchmark (a ~100-byte message, five metadata keys,
//! four services, batches of 100) decoded, mapped and written as `COPY` rows, each
//! path timed in turn. A measurement (`--ignored`, release build), not a check:
//! `cargo test --release -p log_ingestion_server --lib otlp::cpu_tests -- --ignored
//! --nocapture` (`OTLP_CPU_ONLY=json` or `protobuf` runs one path, for a profiler).
//! Each pass is timed by the thread's CPU time (`/proc/thread-self/sched`), so other
//! load on the machine moves it little; where that file is missing, by the wall clock.

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::mapping::Mapper;
use super::protobuf::{self, Reading};
use super::records;
use crate::config::EntryLimits;
use crate::domain::{EntrySeed, LogEntry};
use crate::ingest::decode::{batch_entries, each_batch_entry, BodyFormat, Payload};
use crate::storage::copy_text::CopyRows;

const BATCH: usize = 100;
const BATCHES: usize = 200;
const SERVICES: [&str; 4] = ["web", "api-gateway", "billing-worker", "search"];
const PATHS: [&str; 5] = [
    "/api/v1/orders",
    "/api/v1/users/profile",
    "/checkout/payment",
    "/search",
    "/admin/reports/daily",
];

/// One entry's fields: service, level (severity number), message, and the metadata.
struct Sample {
    nanos: u64,
    service: &'static str,
    severity: (i32, &'static str),
    message: String,
    request_id: String,
    user_id: i64,
    path: &'static str,
    status: i64,
    duration_ms: f64,
}

fn samples(now: DateTime<Utc>) -> Vec<Sample> {
    let mut state = 0x10_6e57u64;
    let mut next = move |below: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    (0..BATCH * BATCHES)
        .map(|index| {
            let severity = match next(10) {
                6 => (5, "DEBUG"),
                7 => (13, "WARN"),
                8 => (17, "ERROR"),
                _ => (9, "INFO"),
            };
            let status = [200, 200, 200, 201, 204, 302, 404, 500][next(8) as usize];
            let path = PATHS[next(5) as usize];
            let duration_ms = next(90_000) as f64 / 100.0 + 0.5;
            let user_id = next(5_000_000) as i64 + 1;
            Sample {
                nanos: (now.timestamp_nanos_opt().unwrap_or_default() as u64)
                    .saturating_sub(next(600_000) * 1_000_000),
                service: SERVICES[index % SERVICES.len()],
                severity,
                message: format!(
                    "Completed {status} GET {path} in {duration_ms}ms for user {user_id} \
                     (views: {}ms, db: {}ms, host web-{:02})",
                    next(400),
                    next(400),
                    next(12) + 1
                ),
                request_id: format!("{:016x}{:016x}", next(u64::MAX), next(u64::MAX)),
                user_id,
                path,
                status,
                duration_ms,
            }
        })
        .collect()
}

fn json_body(batch: &[Sample]) -> Bytes {
    let logs: Vec<serde_json::Value> = batch
        .iter()
        .map(|sample| {
            let timestamp = DateTime::from_timestamp_nanos(sample.nanos as i64)
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            serde_json::json!({
                "timestamp": timestamp,
                "service": sample.service,
                "level": sample.severity.1,
                "message": sample.message,
                "metadata": {
                    "request_id": sample.request_id,
                    "user_id": sample.user_id,
                    "path": sample.path,
                    "status": sample.status,
                    "duration_ms": sample.duration_ms,
                },
            })
        })
        .collect();
    Bytes::from(serde_json::to_vec(&serde_json::json!({ "logs": logs })).unwrap_or_default())
}

fn protobuf_body(batch: &[Sample]) -> Bytes {
    let value = |value: any_value::Value| Some(AnyValue { value: Some(value) });
    let pair = |key: &str, value: any_value::Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let text = |text: &str| any_value::Value::StringValue(text.into());
    let resource_logs = SERVICES
        .iter()
        .map(|&service| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![pair("service.name", text(service))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: batch
                    .iter()
                    .filter(|sample| sample.service == service)
                    .map(|sample| LogRecord {
                        time_unix_nano: sample.nanos,
                        severity_number: sample.severity.0,
                        body: value(text(&sample.message)),
                        attributes: vec![
                            pair(
                                "duration_ms",
                                any_value::Value::DoubleValue(sample.duration_ms),
                            ),
                            pair("path", text(sample.path)),
                            pair("request_id", text(&sample.request_id)),
                            pair("status", any_value::Value::IntValue(sample.status)),
                            pair("user_id", any_value::Value::IntValue(sample.user_id)),
                        ],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    Bytes::from(ExportLogsServiceRequest { resource_logs }.encode_to_vec())
}

/// The CPU time this thread has run, in µs (the scheduler's `se.sum_exec_runtime`).
fn thread_cpu_micros() -> Option<f64> {
    let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
    let line = sched
        .lines()
        .find(|line| line.starts_with("se.sum_exec_runtime"))?;
    let millis: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(millis * 1e3)
}

/// A pass's clock: the thread's CPU time, else the wall clock.
struct Clock {
    cpu: Option<f64>,
    wall: Instant,
}

impl Clock {
    fn start() -> Self {
        Clock {
            cpu: thread_cpu_micros(),
            wall: Instant::now(),
        }
    }

    /// µs since the start.
    fn micros(&self) -> f64 {
        match (self.cpu, thread_cpu_micros()) {
            (Some(start), Some(now)) => now - start,
            _ => self.wall.elapsed().as_secs_f64() * 1e6,
        }
    }
}

/// Validates every batch as the JSON batch route does: µs of CPU per entry.
fn json_pass(bodies: &[Payload], limits: &EntryLimits, now: DateTime<Utc>) -> (f64, usize) {
    let started = Clock::start();
    let mut rows_bytes = 0;
    for payload in bodies {
        let mut rows = CopyRows::with_capacity(payload.bytes.len(), Default::default());
        for raw in batch_entries(payload, BATCH).unwrap_or_default() {
            if let Ok(entry) = LogEntry::from_json(raw, limits, now) {
                rows.push(&entry);
            }
        }
        rows_bytes += rows.as_bytes().len();
    }
    let micros = started.micros();
    (micros / (BATCH * BATCHES) as f64, rows_bytes)
}

/// Validates every batch as the JSON batch route reads a batch of valid entries, in
/// one pass: µs of CPU per entry.
fn json_one_pass(bodies: &[Payload], limits: &EntryLimits, now: DateTime<Utc>) -> (f64, usize) {
    let started = Clock::start();
    let mut rows_bytes = 0;
    for payload in bodies {
        let mut rows = CopyRows::with_capacity(payload.bytes.len(), Default::default());
        let seed = EntrySeed::new(limits, now);
        let read = each_batch_entry(payload, BATCH, seed, |entry| rows.push(&entry));
        assert_eq!(read, Some(BATCH));
        rows_bytes += rows.as_bytes().len();
    }
    let micros = started.micros();
    (micros / (BATCH * BATCHES) as f64, rows_bytes)
}

/// Validates every batch as the OTLP route does for protobuf: µs of CPU per entry.
fn protobuf_pass(bodies: &[Payload], limits: &EntryLimits, now: DateTime<Utc>) -> (f64, usize) {
    let started = Clock::start();
    let mut rows_bytes = 0;
    for payload in bodies {
        let mut rows = CopyRows::with_capacity(payload.bytes.len(), Default::default());
        assert!(matches!(
            protobuf::check(&payload.bytes, BATCH),
            Ok(Reading::OnWire)
        ));
        let mapper = Mapper::new(limits, now);
        let walked = records::for_each_on_wire(&payload.bytes, mapper, |entry| {
            if let Ok(entry) = entry {
                rows.push(&entry);
            }
        });
        assert_eq!(walked, Ok(()));
        rows_bytes += rows.as_bytes().len();
    }
    let micros = started.micros();
    (micros / (BATCH * BATCHES) as f64, rows_bytes)
}

#[test]
#[ignore = "a measurement: run in a release build with --nocapture"]
fn validation_cpu_per_entry_protobuf_beside_json() {
    let now = Utc::now();
    let limits = EntryLimits::default();
    let samples = samples(now);
    let json: Vec<Payload> = samples
        .chunks(BATCH)
        .map(|batch| Payload {
            format: BodyFormat::Json,
            bytes: json_body(batch),
        })
        .collect();
    let protobuf: Vec<Payload> = samples
        .chunks(BATCH)
        .map(|batch| Payload {
            format: BodyFormat::Protobuf,
            bytes: protobuf_body(batch),
        })
        .collect();
    // `OTLP_CPU_ONLY=json|protobuf` runs one path alone (under a profiler).
    let only = std::env::var("OTLP_CPU_ONLY").unwrap_or_default();
    let (mut json_micros, mut protobuf_micros) = (vec![0.0; 15], vec![0.0; 15]);
    let mut one_pass_micros = [0.0; 15];
    let (mut json_bytes, mut protobuf_bytes) = (0, 0);
    for round in 0..15 {
        if only != "protobuf" {
            let one_pass_bytes;
            (one_pass_micros[round], one_pass_bytes) = json_one_pass(&json, &limits, now);
            (json_micros[round], json_bytes) = json_pass(&json, &limits, now);
            assert_eq!(one_pass_bytes, json_bytes, "the same rows either way");
        }
        if only != "json" {
            (protobuf_micros[round], protobuf_bytes) = protobuf_pass(&protobuf, &limits, now);
        }
    }
    json_micros.sort_by(f64::total_cmp);
    one_pass_micros.sort_by(f64::total_cmp);
    protobuf_micros.sort_by(f64::total_cmp);
    println!(
        "validation µs/entry (median of 15): JSON {:.3} (split, then each entry read on its \
         own: {:.3}), OTLP protobuf {:.3}; row bytes per entry JSON {}, protobuf {}",
        one_pass_micros[7],
        json_micros[7],
        protobuf_micros[7],
        json_bytes / (BATCH * BATCHES),
        protobuf_bytes / (BATCH * BATCHES)
    );
}
