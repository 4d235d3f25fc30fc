//! Attacks through OTLP/protobuf bodies, which the server reads in place: truncated
//! bodies, lengths past the body, fields of the wrong wire type, nesting past the
//! recursion limit, and a valid request mutated at random. Every one is answered 400
//! with a `google.rpc.Status` in protobuf, or 200 with an `ExportLogsServiceResponse`
//! (its records stored or refused), never a crash or a hang.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rand::{Rng, SeedableRng};

use log_ingestion_server::ingest::otlp::RpcStatus;

use crate::harness::{Target, PEAK_RSS_MIB};

const PROTOBUF: &str = "application/x-protobuf";
/// Longest any answer here may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Random mutations of the valid request.
const MUTATIONS: usize = 150;

fn value(value: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

/// A kvlist nested `levels` deep around a string.
fn nested(levels: usize) -> any_value::Value {
    let mut inner = any_value::Value::StringValue("leaf".into());
    for _ in 0..levels {
        inner = any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: value(inner),
                ..Default::default()
            }],
        });
    }
    inner
}

/// A request of ten records, the last one's body nested `levels` deep.
fn request(levels: usize) -> Vec<u8> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let records = (0..10)
        .map(|index| LogRecord {
            time_unix_nano: now,
            severity_number: 9,
            body: value(if index == 9 {
                nested(levels)
            } else {
                any_value::Value::StringValue(format!("record {index}"))
            }),
            attributes: vec![KeyValue {
                key: "index".into(),
                value: value(any_value::Value::IntValue(index)),
                ..Default::default()
            }],
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: value(any_value::Value::StringValue("hostile".into())),
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

/// Sends `body`; the status, after checking the answer is OTLP's for it.
async fn export(target: &Target, body: Vec<u8>) -> u16 {
    let started = Instant::now();
    let response = target
        .post("/v1/logs")
        .header("Content-Type", PROTOBUF)
        .body(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap_or_default().to_owned());
    let bytes = response.bytes().await.expect("the answer's body");
    assert!(
        started.elapsed() < ANSWER_WITHIN,
        "{status} after {:?}",
        started.elapsed()
    );
    assert_eq!(content_type.as_deref(), Some(PROTOBUF), "{status}");
    match status {
        200 => {
            ExportLogsServiceResponse::decode(&bytes[..]).expect("an ExportLogsServiceResponse");
        }
        400 => {
            let rpc = RpcStatus::decode(&bytes[..]).expect("a google.rpc.Status");
            assert_eq!(rpc.code, 3, "{rpc:?}");
        }
        other => panic!("answered {other}"),
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mutated_protobuf_bodies_get_400_or_a_200_answer() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;

    let valid = request(1);
    let mut huge_length = vec![0x0a];
    huge_length.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", valid[..valid.len() - 5].to_vec()),
        ("a length past the body", huge_length),
        ("resource logs as a varint", vec![0x08, 0x01]),
        (
            "a record's time as a varint",
            vec![0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x08, 0x01],
        ),
        (
            "a string that is not UTF-8",
            vec![0x0a, 0x04, 0x1a, 0x02, 0xc3, 0x28],
        ),
        ("a group's end alone", vec![0x0c]),
        ("nesting past the recursion limit", request(200)),
    ];
    for (name, body) in refused {
        assert_eq!(export(&target, body).await, 400, "{name}");
    }
    // Deep, yet within the recursion limit: nine records stored, the tenth refused.
    assert_eq!(export(&target, request(25)).await, 200);
    assert_eq!(export(&target, valid.clone()).await, 200);

    let mut random = rand::rngs::StdRng::seed_from_u64(24);
    let mut statuses = Vec::new();
    for _ in 0..MUTATIONS {
        let mut body = valid.clone();
        for _ in 0..random.random_range(1..4) {
            let at = random.random_range(0..body.len());
            match random.random_range(0..4) {
                0 => body.truncate(at),
                1 => body[at] = random.random(),
                2 => body.insert(at, random.random()),
                _ => {
                    let end = (at + random.random_range(1..40)).min(body.len());
                    let slice = body[at..end].to_vec();
                    body.splice(at..at, slice);
                }
            }
            if body.is_empty() {
                body.push(0);
            }
        }
        statuses.push(export(&target, body).await);
    }
    // Both answers came up: the mutations reached the reading, not only its edge.
    assert!(
        statuses.contains(&400) && statuses.contains(&200),
        "{statuses:?}"
    );

    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}

/// `{"resourceLogs":[{"resource":{"attributes":[{},{},…]}}]}` of about `bytes`.
fn empty_attributes_json(bytes: usize) -> Vec<u8> {
    let mut body = br#"{"resourceLogs":[{"resource":{"attributes":["#.to_vec();
    body.extend_from_slice(b"{}");
    while body.len() < bytes {
        body.extend_from_slice(b",{}");
    }
    body.extend_from_slice(b"]}}]}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_of_empty_attributes_is_refused_before_it_expands() {
    let mut target = Target::start(&[]).await;
    let good = target.good_client();
    good.wait_for_batches(3).await;
    // 8 MiB of `{}` in ~8 KiB of gzip: each `{}` would be a ~100-byte struct.
    let body = crate::harness::gzip(&empty_attributes_json(8 << 20));
    for _ in 0..2 {
        let started = Instant::now();
        let response = target
            .post("/v1/logs")
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .body(body.clone())
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 400, "{text}");
        assert!(
            text.contains("more elements than a body of its size may"),
            "{text}"
        );
        assert!(
            started.elapsed() < ANSWER_WITHIN,
            "after {:?}",
            started.elapsed()
        );
    }
    good.wait_for_batches(3).await;
    let record = good.stop().await;
    target.assert_survived(&record, PEAK_RSS_MIB).await;
}
