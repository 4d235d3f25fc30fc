//! OTLP/HTTP logs ingest through the real server: OTLP/JSON in the shapes of the
//! OpenTelemetry proto repository's examples, protobuf built from
//! `opentelemetry-proto`'s types, gzip, both key headers, partial success, and every
//! refusal in the request's content type with its status and headers.

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{json, Value};

use log_ingestion_server::ingest::otlp::RpcStatus;
use log_ingestion_test_support::{
    spawn_app, spawn_app_with, spawn_full_app, TestApp, ADMIN_KEY, API_KEY,
};

const PROTOBUF: &str = "application/x-protobuf";
const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const SPAN_ID: &str = "eee19b7ec3c1b174";

fn now_nanos() -> u64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap() as u64
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn string_value(text: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(text.to_owned())),
    })
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A protobuf request of `records` for service `checkout`.
fn protobuf_request(records: Vec<LogRecord>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![attribute(
                    "service.name",
                    any_value::Value::StringValue("checkout".into()),
                )],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// OTLP/JSON in the shape of the proto repository's `logs.json` example, with what
/// the mapping allows besides: `intValue` as a string and as a number, `body: {}`,
/// `null` fields, unknown fields, kvlist and array bodies, severity text alone.
fn json_fixture(now: u64) -> Value {
    json!({
        "resourceLogs": [{
            "resource": {
                "attributes": [
                    {"key": "service.name", "value": {"stringValue": "my.service"}},
                    {"key": "host.name", "value": {"stringValue": "web-1"}}
                ],
                "droppedAttributesCount": null
            },
            "unknownField": {"ignored": true},
            "scopeLogs": [{
                "scope": {"name": "my.library", "version": "1.0.0", "attributes": [
                    {"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}
                ]},
                "logRecords": [
                    {
                        "timeUnixNano": now.to_string(),
                        "observedTimeUnixNano": now.to_string(),
                        "severityNumber": 10,
                        "severityText": "Information",
                        "traceId": TRACE_ID,
                        "spanId": SPAN_ID,
                        "flags": 1,
                        "body": {"stringValue": "Example log record"},
                        "attributes": [
                            {"key": "string.attribute", "value": {"stringValue": "some string"}},
                            {"key": "boolean.attribute", "value": {"boolValue": true}},
                            {"key": "int.attribute", "value": {"intValue": "10"}},
                            {"key": "int.number", "value": {"intValue": 11}},
                            {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                            {"key": "array.attribute", "value": {"arrayValue": {"values": [
                                {"stringValue": "many"}, {"stringValue": "values"}
                            ]}}},
                            {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                                {"key": "some.map.key", "value": {"stringValue": "some value"}}
                            ]}}},
                            {"key": "user.password", "value": {"stringValue": "hunter2"}}
                        ]
                    },
                    {"timeUnixNano": now, "severityNumber": 17, "body": {}, "eventName": "checkout.failed",
                     "attributes": [
                        {"key": "exception.type", "value": {"stringValue": "PaymentError"}},
                        {"key": "exception.message", "value": {"stringValue": "card declined"}},
                        {"key": "exception.stacktrace", "value": {"stringValue": "app/pay.rb:1\napp/pay.rb:2"}}
                     ]},
                    {"observedTimeUnixNano": now.to_string(), "severityText": "WARNING",
                     "body": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "5"}}]}},
                     "traceId": null, "spanId": "", "attributes": null},
                    {"timeUnixNano": now, "severityNumber": 1, "severityText": null,
                     "body": {"arrayValue": {"values": [{"intValue": 1}, {"boolValue": false}]}}},
                    {"timeUnixNano": now, "severityNumber": 23, "body": {"stringValue": "fatal one"},
                     "futureField": [1, 2, 3]}
                ]
            }]
        }]
    })
}

async fn stored(app: &TestApp) -> Vec<(String, String, String, Value)> {
    sqlx::query_as::<_, (String, String, String, Option<Value>)>(
        "SELECT service, level, message, metadata FROM logs ORDER BY level, message",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(service, level, message, metadata)| {
        (service, level, message, metadata.unwrap_or(Value::Null))
    })
    .collect()
}

#[tokio::test]
async fn otlp_json_in_every_shape_is_stored_with_the_mapping() {
    let app = spawn_app().await;
    let response = app
        .post_body(
            "/v1/logs",
            "application/json",
            json_fixture(now_nanos()).to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));

    let rows = stored(&app).await;
    let levels: Vec<&str> = rows.iter().map(|row| row.1.as_str()).collect();
    assert_eq!(levels, ["DEBUG", "ERROR", "FATAL", "INFO", "WARNING"]);
    assert!(rows.iter().all(|row| row.0 == "my.service"));

    let (_, _, message, metadata) = &rows[3];
    assert_eq!(message, "Example log record");
    assert_eq!(metadata["trace_id"], TRACE_ID);
    assert_eq!(metadata["span_id"], SPAN_ID);
    assert_eq!(metadata["trace_flags"], 1);
    assert_eq!(metadata["int.attribute"], 10);
    assert_eq!(metadata["int.number"], 11);
    assert_eq!(metadata["boolean.attribute"], true);
    assert_eq!(metadata["double.attribute"], 637.704);
    assert_eq!(metadata["array.attribute"], json!(["many", "values"]));
    assert_eq!(
        metadata["map.attribute"],
        json!({"some.map.key": "some value"})
    );
    assert_eq!(metadata["user.password"], "[FILTERED]");
    assert_eq!(metadata["resource"]["host.name"], "web-1");
    assert_eq!(metadata["otel"]["severity_number"], 10);
    assert_eq!(metadata["otel"]["severity_text"], "Information");
    assert_eq!(
        metadata["otel"]["scope"],
        json!({"name": "my.library", "version": "1.0.0"})
    );

    let (_, _, message, metadata) = &rows[1];
    assert_eq!(
        message, "checkout.failed",
        "an empty body takes the event name"
    );
    assert_eq!(
        metadata["exception"],
        json!({"class": "PaymentError", "message": "card declined",
               "backtrace": ["app/pay.rb:1", "app/pay.rb:2"]})
    );

    let (_, _, message, metadata) = &rows[4];
    assert_eq!(message, r#"{"k":5}"#);
    assert!(metadata.get("trace_id").is_none());
    assert_eq!(rows[0].2, "[1,false]");
    assert_eq!(rows[2].2, "fatal one");
}

#[tokio::test]
async fn protobuf_gzip_and_both_key_headers_are_accepted_on_both_paths() {
    let app = spawn_full_app().await;
    let record = |message: &str| LogRecord {
        time_unix_nano: now_nanos(),
        severity_number: 13,
        body: string_value(message),
        trace_id: hex(TRACE_ID),
        span_id: hex(SPAN_ID),
        flags: 1,
        ..Default::default()
    };
    let plain = app
        .client
        .post(app.url("/v1/logs"))
        .header("Content-Type", PROTOBUF)
        .header("Authorization", format!("Bearer {API_KEY}"))
        .body(protobuf_request(vec![record("by bearer")]))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], PROTOBUF);
    let answer = ExportLogsServiceResponse::decode(plain.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success, None);

    let zipped = app
        .client
        .post(app.url("/otlp/v1/logs"))
        .header("Content-Type", PROTOBUF)
        .header("Content-Encoding", "gzip")
        .header("X-API-Key", API_KEY)
        .body(gzip(&protobuf_request(vec![
            record("gzip one"),
            record("gzip two"),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.status(), 200);

    let rows = stored(&app).await;
    let messages: Vec<&str> = rows.iter().map(|row| row.2.as_str()).collect();
    assert_eq!(messages, ["by bearer", "gzip one", "gzip two"]);
    assert!(rows
        .iter()
        .all(|row| row.0 == "checkout" && row.1 == "WARN"));
    assert_eq!(rows[0].3["trace_id"], TRACE_ID);

    // The trace context is in its columns, and the query API finds a trace by them.
    let columns: Vec<(String, String, i16)> =
        sqlx::query_as("SELECT trace_id, span_id, trace_flags FROM logs")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        columns,
        vec![(TRACE_ID.to_owned(), SPAN_ID.to_owned(), 1); 3]
    );
    let other = LogRecord {
        time_unix_nano: now_nanos(),
        body: string_value("another trace"),
        trace_id: vec![7; 16],
        ..Default::default()
    };
    let response = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(vec![other]))
        .await;
    assert_eq!(response.status(), 200);
    for query in [
        format!("trace_id={}", TRACE_ID.to_uppercase()),
        format!("span_id={SPAN_ID}"),
    ] {
        let page: Value = app
            .client
            .get(app.url(&format!("/api/v1/logs?{query}")))
            .header("X-API-Key", ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found: Vec<&str> = page["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|log| log["message"].as_str().unwrap())
            .collect();
        assert_eq!(found, ["gzip two", "gzip one", "by bearer"], "{query}");
    }
    // Counts of one trace come from `logs`, never the rollups (they have no trace
    // columns): the histogram counts the three, the service list names their service.
    for (path, expected) in [
        (
            format!("/api/v1/logs/histogram?since=1h&bucket=1h&trace_id={TRACE_ID}"),
            "3",
        ),
        (
            format!("/api/v1/services?since=1h&span_id={SPAN_ID}"),
            "checkout",
        ),
    ] {
        let response = app
            .client
            .get(app.url(&path))
            .header("X-API-Key", ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        let found = match path.contains("histogram") {
            true => body["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|bucket| bucket["total"].as_i64().unwrap())
                .sum::<i64>()
                .to_string(),
            false => body.to_string(),
        };
        assert!(found.contains(expected), "{path}: {body}");
    }
    let refused = app
        .client
        .get(app.url("/api/v1/logs?trace_id=nothex"))
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains("log_ingestion_entries_by_protocol_total{protocol=\"otlp\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_invalid_record_of_ten_is_a_partial_success_and_nine_are_stored() {
    let app = spawn_app().await;
    let now = now_nanos();
    let records: Vec<Value> = (0..10)
        .map(|index| {
            json!({
                "timeUnixNano": now.to_string(),
                "severityNumber": 9,
                "body": {"stringValue": format!("record {index}")},
                // A trace id must be 16 bytes.
                "traceId": if index == 6 { "abcd" } else { TRACE_ID },
            })
        })
        .collect();
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]});
    let response = app
        .post_body("/v1/logs", "application/json", body.to_string())
        .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("log record 6: trace_id"), "{message}");
    assert_eq!(app.row_count().await, 9);
    let services: Vec<String> = sqlx::query_scalar("SELECT DISTINCT service FROM logs")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(services, ["unknown_service"]);

    // The same in protobuf: the answer's partial_success counts the refusal.
    let records = (0..3)
        .map(|index| LogRecord {
            time_unix_nano: now,
            body: string_value(&format!("proto {index}")),
            span_id: if index == 1 {
                vec![1, 2, 3]
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .collect();
    let response = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(records))
        .await;
    assert_eq!(response.status(), 200);
    let answer = ExportLogsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 1);
    assert_eq!(app.row_count().await, 11);
}

/// The `google.rpc.Status` of a refusal, read in the content type it came in.
async fn status_of(response: reqwest::Response, content_type: &str) -> RpcStatus {
    assert_eq!(response.headers()["content-type"], content_type);
    let bytes = response.bytes().await.unwrap();
    if content_type == PROTOBUF {
        RpcStatus::decode(bytes).unwrap()
    } else {
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        RpcStatus {
            code: value["code"].as_i64().unwrap() as i32,
            message: value["message"].as_str().unwrap().to_owned(),
        }
    }
}

#[tokio::test]
async fn malformed_bodies_are_400_with_a_status_in_their_content_type() {
    let app = spawn_app().await;
    let response = app
        .post_body("/v1/logs", PROTOBUF, vec![0x0a, 0xff, 0x01])
        .await;
    assert_eq!(response.status(), 400);
    let status = status_of(response, PROTOBUF).await;
    assert_eq!(status.code, 3);
    assert!(
        status.message.contains("ExportLogsServiceRequest"),
        "{}",
        status.message
    );

    let response = app
        .post_body(
            "/v1/logs",
            "application/json",
            r#"{"resourceLogs": [{"scopeLogs": 7}]}"#,
        )
        .await;
    assert_eq!(response.status(), 400);
    let status = status_of(response, "application/json").await;
    assert_eq!(status.code, 3);
    assert_eq!(app.row_count().await, 0);
}

#[tokio::test]
async fn refusals_keep_their_status_headers_and_the_request_content_type() {
    let app = spawn_app_with(|settings| {
        settings.max_body_bytes = 4 * 1024;
        settings.max_batch_entries = 5;
    })
    .await;
    // Too many bytes.
    let records = (0..4)
        .map(|_| LogRecord {
            body: string_value(&"x".repeat(2000)),
            ..Default::default()
        })
        .collect();
    let response = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(records))
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(status_of(response, PROTOBUF).await.code, 8);

    // Too many records.
    let records = (0..6).map(|_| LogRecord::default()).collect();
    let response = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(records))
        .await;
    assert_eq!(response.status(), 413);
    let status = status_of(response, PROTOBUF).await;
    assert!(status.message.contains("at most 5"), "{}", status.message);
    let body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{}, {}, {}, {}, {}, {}]}]}]});
    let response = app
        .post_body("/v1/logs", "application/json", body.to_string())
        .await;
    assert_eq!(response.status(), 413);
    status_of(response, "application/json").await;

    // No key, a wrong key.
    let response = app
        .client
        .post(app.url("/v1/logs"))
        .header("Content-Type", PROTOBUF)
        .body(protobuf_request(vec![]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(status_of(response, PROTOBUF).await.code, 16);
    let response = app
        .client
        .post(app.url("/v1/logs"))
        .header("Content-Type", "application/json")
        .header("Authorization", "Bearer wrong")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    status_of(response, "application/json").await;
    assert_eq!(app.row_count().await, 0);

    // A good client keeps working.
    let record = LogRecord {
        time_unix_nano: now_nanos(),
        body: string_value("fine"),
        ..Default::default()
    };
    let response = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(vec![record]))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.stored_messages().await, ["fine"]);
}

#[tokio::test]
async fn rate_limited_requests_get_429_with_retry_after_in_protobuf() {
    let app = spawn_app_with(|settings| {
        settings.rate_limit.rps = 1;
        settings.rate_limit.burst = 1;
    })
    .await;
    let first = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(vec![]))
        .await;
    assert_eq!(first.status(), 200);
    let second = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(vec![]))
        .await;
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    assert_eq!(status_of(second, PROTOBUF).await.code, 8);
}

#[tokio::test]
async fn storage_failure_is_503_with_retry_after_never_500() {
    let app = spawn_app().await;
    sqlx::query("ALTER TABLE logs ADD CONSTRAINT refuses_poison CHECK (message <> 'poison')")
        .execute(&app.pool)
        .await
        .unwrap();
    let records = ["fine", "poison"]
        .iter()
        .map(|message| LogRecord {
            time_unix_nano: now_nanos(),
            body: string_value(message),
            ..Default::default()
        })
        .collect();
    let response = app
        .post_body("/v1/logs", PROTOBUF, protobuf_request(records))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(status_of(response, PROTOBUF).await.code, 14);
    assert_eq!(app.row_count().await, 0);
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
        .collect()
}

/// Every column of every row, as text, in a stable order.
async fn rows_as_text(app: &TestApp) -> Vec<Vec<Option<String>>> {
    sqlx::query_as::<
        _,
        (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
    >(
        "SELECT timestamp::text, service, level, message, metadata::text, fingerprint, \
         trace_id, span_id, trace_flags::text FROM logs ORDER BY message",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(a, b, c, d, e, f, g, h, i)| vec![a, b, c, d, e, f, g, h, i])
    .collect()
}

#[tokio::test]
async fn the_same_records_through_protobuf_and_the_json_api_are_the_same_rows() {
    let nanos = now_nanos();
    let at = |offset: u64| nanos - offset * 1_000_003;
    let timestamp = |offset: u64| {
        chrono::DateTime::from_timestamp_nanos(at(offset) as i64)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    let tricky = "tab\t newline\n quote\" backslash\\ nul\0 é 😀";
    let kvlist = |pairs: Vec<KeyValue>| {
        any_value::Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
            values: pairs,
        })
    };
    let records = vec![
        LogRecord {
            time_unix_nano: at(1),
            severity_number: 9,
            severity_text: "Information".into(),
            body: string_value(tricky),
            trace_id: hex(TRACE_ID),
            span_id: hex(SPAN_ID),
            flags: 1,
            attributes: vec![
                attribute("text", any_value::Value::StringValue(tricky.into())),
                attribute("count", any_value::Value::IntValue(-42)),
                attribute("ratio", any_value::Value::DoubleValue(637.704)),
                attribute("whole", any_value::Value::DoubleValue(100.0)),
                attribute("flag", any_value::Value::BoolValue(true)),
                attribute("raw", any_value::Value::BytesValue(vec![0, 1, 254, 255])),
                attribute(
                    "user.password",
                    any_value::Value::StringValue("hunter2".into()),
                ),
                attribute(
                    "nested",
                    kvlist(vec![
                        attribute("apiKey", any_value::Value::IntValue(1)),
                        attribute(
                            "list",
                            any_value::Value::ArrayValue(
                                opentelemetry_proto::tonic::common::v1::ArrayValue {
                                    values: vec![
                                        AnyValue {
                                            value: Some(any_value::Value::StringValue("a".into())),
                                        },
                                        AnyValue { value: None },
                                    ],
                                },
                            ),
                        ),
                    ]),
                ),
            ],
            ..Default::default()
        },
        LogRecord {
            time_unix_nano: at(2),
            severity_number: 17,
            body: string_value("payment failed"),
            attributes: vec![
                attribute(
                    "exception.type",
                    any_value::Value::StringValue("PaymentError".into()),
                ),
                attribute(
                    "exception.message",
                    any_value::Value::StringValue("card 42 declined".into()),
                ),
                attribute(
                    "exception.stacktrace",
                    any_value::Value::StringValue(
                        "app/pay.rb:10:in `charge'\n  \napp/pay.rb:2:in `call'".into(),
                    ),
                ),
            ],
            ..Default::default()
        },
        LogRecord {
            observed_time_unix_nano: at(3),
            severity_text: "warning".into(),
            body: Some(AnyValue {
                value: Some(kvlist(vec![attribute(
                    "k",
                    any_value::Value::StringValue("v".into()),
                )])),
            }),
            event_name: "an.event".into(),
            span_id: hex(SPAN_ID),
            ..Default::default()
        },
    ];
    // The same entries as a JSON API client sends them, with the mapping's metadata.
    let resource = json!({"service.name": "checkout", "auth_token": "[FILTERED]"});
    let scope = json!({"name": "my.library", "version": "1.0.0"});
    let entries = vec![
        json!({"timestamp": timestamp(1), "service": "checkout", "level": "INFO", "message": tricky,
               "metadata": {"text": tricky, "count": -42, "ratio": 637.704, "whole": 100.0,
                            "flag": true, "raw": "AAH+/w==", "user.password": "x",
                            "nested": {"apiKey": 1, "list": ["a", null]},
                            "resource": resource, "otel": {"severity_number": 9,
                            "severity_text": "Information", "scope": scope},
                            "trace_id": TRACE_ID, "trace_flags": 1, "span_id": SPAN_ID}}),
        json!({"timestamp": timestamp(2), "service": "checkout", "level": "ERROR",
               "message": "payment failed",
               "metadata": {"exception": {"class": "PaymentError", "message": "card 42 declined",
                                          "backtrace": ["app/pay.rb:10:in `charge'", "app/pay.rb:2:in `call'"]},
                            "resource": resource, "otel": {"severity_number": 17, "scope": scope}}}),
        json!({"timestamp": timestamp(3), "service": "checkout", "level": "WARNING",
               "message": r#"{"k":"v"}"#,
               "metadata": {"resource": resource, "otel": {"severity_text": "warning",
                            "event_name": "an.event", "scope": scope}, "span_id": SPAN_ID}}),
    ];
    let mut request = ExportLogsServiceRequest::decode(&protobuf_request(records)[..]).unwrap();
    let attributes = &mut request.resource_logs[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes;
    attributes.push(attribute(
        "auth_token",
        any_value::Value::StringValue("s3cret".into()),
    ));

    let otlp = spawn_app().await;
    let response = otlp
        .post_body("/v1/logs", PROTOBUF, request.encode_to_vec())
        .await;
    assert_eq!(response.status(), 200);
    let api = spawn_app().await;
    let response = api.post_batch(entries).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    let (through_otlp, through_api) = (rows_as_text(&otlp).await, rows_as_text(&api).await);
    assert_eq!(through_otlp.len(), 3);
    assert_eq!(through_otlp, through_api);
    // What the comparison covers: filtered secrets, the fingerprint, the trace columns.
    let all = format!("{through_otlp:?}");
    assert!(!all.contains("hunter2") && !all.contains("s3cret"), "{all}");
    assert!(through_otlp.iter().any(|row| row[5].is_some()), "{all}");
    assert!(
        through_otlp
            .iter()
            .any(|row| row[6].as_deref() == Some(TRACE_ID)),
        "{all}"
    );
}
