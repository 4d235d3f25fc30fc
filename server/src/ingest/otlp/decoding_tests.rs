//! Protobuf read in place against `prost`'s decoding: for a corpus of requests (every
//! value type, ids, exceptions, resources and scopes, nesting at and past the caps,
//! unknown fields) the records mapped from the wire are exactly those mapped from
//! `prost`'s messages; and for bodies mutated at random (truncated, bytes changed,
//! inserted, deleted or repeated) and built hostile (huge lengths, wrong wire types,
//! deep nesting), reading never panics, refuses exactly the bodies `prost` refuses
//! (a 400), and maps the others as `prost`'s messages map (a 200, maybe partial).

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;

use super::mapping::{Mapped, Mapper};
use super::protobuf::{self, Reading};
use super::records;
use crate::config::EntryLimits;

/// A record mapped, as comparable text: the entry, or its problems.
type Outcome = Result<String, Vec<String>>;

fn outcome(entry: Mapped<'_>) -> Outcome {
    entry.map(|entry| format!("{entry:?}"))
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// What the server's protobuf path makes of `body`: the records, or a refusal (400).
fn read_in_place(body: &[u8], limits: &EntryLimits) -> Result<Vec<Outcome>, String> {
    let mapper = Mapper::new(limits, now());
    let mut out = Vec::new();
    let reading = protobuf::check(body, usize::MAX).map_err(|error| error.to_string())?;
    let mapped = match reading {
        Reading::OnWire => {
            records::for_each_on_wire(body, mapper, |entry| out.push(outcome(entry)))
        }
        Reading::Merged => {
            let request = protobuf::decode(body).map_err(|error| error.to_string())?;
            records::for_each_decoded(&request, mapper, |entry| out.push(outcome(entry)))
        }
    };
    mapped.map_err(|error| error.to_string())?;
    Ok(out)
}

/// The reference: `prost` decodes the whole message tree, then it is mapped.
fn through_prost(body: &[u8], limits: &EntryLimits) -> Result<Vec<Outcome>, String> {
    let request = ExportLogsServiceRequest::decode(body).map_err(|error| error.to_string())?;
    let mut out = Vec::new();
    let mapper = Mapper::new(limits, now());
    records::for_each_decoded(&request, mapper, |entry| out.push(outcome(entry)))
        .map_err(|error| error.to_string())?;
    Ok(out)
}

fn some(value: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn text(value: &str) -> any_value::Value {
    any_value::Value::StringValue(value.into())
}

fn pair(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: some(value),
        ..Default::default()
    }
}

/// A kvlist (or an array, every other level) nested `levels` deep around a string.
fn nested(levels: usize) -> any_value::Value {
    let mut value = text("leaf");
    for level in 0..levels {
        value = if level % 2 == 0 {
            any_value::Value::KvlistValue(KeyValueList {
                values: vec![pair("k", value)],
            })
        } else {
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(value) }],
            })
        };
    }
    value
}

fn resource_logs(service: Option<&str>, scopes: Vec<ScopeLogs>) -> ResourceLogs {
    ResourceLogs {
        resource: Some(Resource {
            attributes: service
                .map(|name| pair("service.name", text(name)))
                .into_iter()
                .chain([pair("host.name", text("web-1")), pair("api_key", text("k"))])
                .collect(),
            ..Default::default()
        }),
        scope_logs: scopes,
        schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
    }
}

fn scope(name: &str, version: &str, records: Vec<LogRecord>) -> ScopeLogs {
    ScopeLogs {
        scope: Some(InstrumentationScope {
            name: name.into(),
            version: version.into(),
            attributes: vec![pair("scope.attribute", text("x"))],
            ..Default::default()
        }),
        log_records: records,
        ..Default::default()
    }
}

/// Records in every shape the mapping tells apart.
fn records(now: u64) -> Vec<LogRecord> {
    let depth = EntryLimits::default().max_metadata_depth;
    let record = |body: Option<any_value::Value>, attributes: Vec<KeyValue>| LogRecord {
        time_unix_nano: now,
        severity_number: 9,
        body: body.and_then(some),
        attributes,
        ..Default::default()
    };
    let mut every_type = record(
        Some(text("every type")),
        vec![
            pair("s", text("quote \" tab \t é 😀 nul \0")),
            pair("b", any_value::Value::BoolValue(true)),
            pair("i", any_value::Value::IntValue(-7)),
            pair("d", any_value::Value::DoubleValue(637.704)),
            pair("nan", any_value::Value::DoubleValue(f64::NAN)),
            pair("inf", any_value::Value::DoubleValue(f64::NEG_INFINITY)),
            pair("bytes", any_value::Value::BytesValue(vec![0, 1, 254, 255])),
            pair("index", any_value::Value::StringValueStrindex(3)),
            pair("list", nested(3)),
            pair("user.password", text("hunter2")),
            KeyValue {
                key: "unset".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
            KeyValue {
                key: "absent".into(),
                ..Default::default()
            },
            pair("s", text("repeated key")),
        ],
    );
    every_type.trace_id = (1..=16).collect();
    every_type.span_id = (1..=8).collect();
    every_type.flags = 0x101;
    every_type.severity_text = "Information".into();
    let exception = record(
        None,
        vec![
            pair("exception.type", text("PaymentError")),
            pair("exception.message", text("card declined")),
            pair("exception.stacktrace", text("a.rb:1\n\n  b.rb:2  \nc.rb:3")),
            pair("exception.other", text("kept")),
        ],
    );
    let mut event = record(None, vec![]);
    event.event_name = "checkout.failed".into();
    event.body = Some(AnyValue { value: None });
    let mut observed = record(Some(nested(2)), vec![]);
    observed.time_unix_nano = 0;
    observed.observed_time_unix_nano = now;
    observed.severity_number = 0;
    observed.severity_text = "WARNING".into();
    let mut no_time = record(Some(text("")), vec![]);
    no_time.time_unix_nano = 0;
    let mut ancient = record(Some(text("ancient")), vec![]);
    ancient.time_unix_nano = 1;
    let mut bad_ids = record(Some(text("bad ids")), vec![]);
    bad_ids.trace_id = vec![1, 2, 3];
    bad_ids.span_id = vec![0; 8];
    let mut zero_ids = record(Some(text("zero ids")), vec![]);
    zero_ids.trace_id = vec![0; 16];
    vec![
        every_type,
        exception,
        event,
        observed,
        no_time,
        ancient,
        bad_ids,
        zero_ids,
        record(Some(text("at the cap")), vec![pair("a", nested(depth - 1))]),
        record(Some(text("past the cap")), vec![pair("a", nested(depth))]),
        record(Some(nested(depth + 1)), vec![]),
        record(Some(any_value::Value::BytesValue(vec![7; 5])), vec![]),
        record(Some(text(&"m".repeat(70_000))), vec![]),
        record(
            Some(text("big metadata")),
            vec![pair("big", text(&"x".repeat(70_000)))],
        ),
    ]
}

/// The corpus: protobuf bodies, the last ones with fields `prost`'s types cannot
/// write (unknown fields, a group) or merge (a repeated resource).
fn corpus() -> Vec<Vec<u8>> {
    let now = now().timestamp_nanos_opt().unwrap() as u64;
    let mut bodies: Vec<Vec<u8>> = [
        ExportLogsServiceRequest {
            resource_logs: vec![
                resource_logs(
                    Some("checkout"),
                    vec![
                        scope("my.library", "1.0.0", records(now)),
                        scope("", "", records(now).into_iter().take(3).collect()),
                        scope("", "", vec![]),
                    ],
                ),
                resource_logs(Some("  "), vec![scope("lib", "", records(now))]),
                resource_logs(None, vec![scope("", "2", records(now))]),
                ResourceLogs::default(),
            ],
        },
        ExportLogsServiceRequest::default(),
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        },
    ]
    .iter()
    .map(Message::encode_to_vec)
    .collect();
    let small = bodies[2].clone();
    // An unknown varint and an unknown group (field 15) at the top.
    bodies.push([small.as_slice(), &[0x78, 0x05, 0x7b, 0x08, 0x01, 0x7c]].concat());
    // One resource with one scope.
    let twice = ExportLogsServiceRequest {
        resource_logs: vec![resource_logs(
            Some("a"),
            vec![scope("s", "1", records(now))],
        )],
    }
    .encode_to_vec();
    bodies.push(twice);
    bodies
}

#[test]
fn the_corpus_read_in_place_maps_as_prost_decoded_does() {
    let limits = EntryLimits::default();
    for (index, body) in corpus().iter().enumerate() {
        let reference = through_prost(body, &limits).unwrap();
        let got = read_in_place(body, &limits).unwrap();
        assert_eq!(got, reference, "body {index}");
    }
    // Enough of the corpus is valid, and refused, to compare something.
    let first = read_in_place(&corpus()[0], &limits).unwrap();
    assert!(first.iter().filter(|entry| entry.is_ok()).count() > 20);
    assert!(first.iter().filter(|entry| entry.is_err()).count() > 10);
    assert!(first[0]
        .as_ref()
        .unwrap()
        .contains("0102030405060708090a0b0c0d0e0f10"));
}

#[test]
fn a_repeated_singular_message_is_merged_as_prost_merges_it() {
    let limits = EntryLimits::default();
    let record = |body: &str| LogRecord {
        time_unix_nano: now().timestamp_nanos_opt().unwrap() as u64,
        body: some(text(body)),
        ..Default::default()
    };
    let one = ExportLogsServiceRequest {
        resource_logs: vec![resource_logs(
            Some("a"),
            vec![scope("s", "1", vec![record("x")])],
        )],
    }
    .encode_to_vec();
    // The resource logs message with its resource twice: the attributes of both.
    let request = ExportLogsServiceRequest::decode(one.as_slice()).unwrap();
    let mut inner = request.resource_logs[0].encode_to_vec();
    let resource = ResourceLogs {
        resource: Some(Resource {
            attributes: vec![pair("second", text("y"))],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    inner.extend_from_slice(&resource);
    let merged = [&[0x0a][..], &prost_length(inner.len()), &inner].concat();
    assert_eq!(protobuf::check(&merged, 10).unwrap(), Reading::Merged);
    let got = read_in_place(&merged, &limits).unwrap();
    assert_eq!(got, through_prost(&merged, &limits).unwrap());
    assert!(got[0].as_ref().unwrap().contains("second"), "{got:?}");
    // As prost writes the merged request back: read in place, the same.
    let body = ExportLogsServiceRequest::decode(merged.as_slice())
        .unwrap()
        .encode_to_vec();
    assert_eq!(protobuf::check(&body, 10).unwrap(), Reading::OnWire);
    assert_eq!(got, read_in_place(&body, &limits).unwrap());
}

fn prost_length(length: usize) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(length as u64, &mut out);
    out
}

#[test]
fn hostile_bodies_are_refused_as_prost_refuses_them() {
    let limits = EntryLimits::default();
    let deep = |levels: usize| {
        ExportLogsServiceRequest {
            resource_logs: vec![resource_logs(
                Some("a"),
                vec![scope(
                    "",
                    "",
                    vec![LogRecord {
                        body: some(nested(levels)),
                        ..Default::default()
                    }],
                )],
            )],
        }
        .encode_to_vec()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a length past the body",
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ),
        (
            "a length of 2^63",
            [&[0x0a][..], &prost_length(1 << 63)].concat(),
        ),
        (
            "a varint of eleven bytes",
            [&[0x08][..], &[0xff; 10], &[0x01]].concat(),
        ),
        ("resource logs as a varint", vec![0x08, 0x01]),
        (
            "a record's time as a varint",
            vec![0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x08, 0x01],
        ),
        (
            "a string that is not UTF-8",
            vec![0x0a, 0x04, 0x1a, 0x02, 0xc3, 0x28],
        ),
        ("an end group alone", vec![0x0c]),
        ("wire type 7", vec![0x0f]),
        ("tag zero", vec![0x02, 0x00]),
        ("nesting past the recursion limit", deep(60)),
    ];
    for (name, body) in cases {
        assert!(
            through_prost(&body, &limits).is_err(),
            "{name}: prost took it"
        );
        assert!(read_in_place(&body, &limits).is_err(), "{name}: taken");
    }
    // Nested deep, yet within prost's limit: read, and the record refused.
    let body = deep(30);
    let got = read_in_place(&body, &limits).unwrap();
    assert_eq!(got, through_prost(&body, &limits).unwrap());
    assert!(got[0]
        .as_ref()
        .is_err_and(|problems| problems[0].contains("nested")));
}

/// A body where the string `MARK` is written as bytes that are not UTF-8.
fn with_bad_utf8(request: &ExportLogsServiceRequest) -> Vec<u8> {
    let body = request.encode_to_vec();
    let at = body
        .windows(4)
        .position(|window| window == b"MARK")
        .expect("the marker");
    [&body[..at], &[0xff, 0xfe, 0x41, 0x41][..], &body[at + 4..]].concat()
}

#[test]
fn a_string_that_is_not_utf8_refuses_the_body_wherever_it_is_read() {
    let limits = EntryLimits::default();
    let request = |record: LogRecord, scope_attribute: Option<&str>| {
        let mut scope = scope("", "", vec![record]);
        if let Some(value) = scope_attribute {
            scope.scope.as_mut().unwrap().attributes = vec![pair("s", text(value))];
        }
        ExportLogsServiceRequest {
            resource_logs: vec![resource_logs(Some("a"), vec![scope])],
        }
    };
    let record = LogRecord {
        body: some(text("body")),
        ..Default::default()
    };
    let bad_ids = LogRecord {
        trace_id: vec![1, 2, 3],
        ..record.clone()
    };
    let depth = limits.max_metadata_depth;
    let resource_request = |attributes: Vec<KeyValue>| ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_logs: vec![scope("", "", vec![record.clone()])],
            ..Default::default()
        }],
    };
    let cases: Vec<(&str, ExportLogsServiceRequest)> = vec![
        (
            "the body",
            request(
                LogRecord {
                    body: some(text("MARK")),
                    ..Default::default()
                },
                None,
            ),
        ),
        (
            "the body of a record refused for its ids",
            request(
                LogRecord {
                    body: some(text("MARK")),
                    ..bad_ids.clone()
                },
                None,
            ),
        ),
        (
            "the severity text",
            request(
                LogRecord {
                    severity_text: "MARK".into(),
                    ..record.clone()
                },
                None,
            ),
        ),
        (
            "the event name",
            request(
                LogRecord {
                    event_name: "MARK".into(),
                    ..bad_ids.clone()
                },
                None,
            ),
        ),
        (
            "a kvlist body",
            request(
                LogRecord {
                    body: some(any_value::Value::KvlistValue(KeyValueList {
                        values: vec![pair("k", text("MARK"))],
                    })),
                    ..Default::default()
                },
                None,
            ),
        ),
        (
            "an attribute of a record refused for its ids",
            request(
                LogRecord {
                    attributes: vec![pair("k", text("MARK"))],
                    ..bad_ids.clone()
                },
                None,
            ),
        ),
        ("a scope attribute", request(record.clone(), Some("MARK"))),
        (
            "an attribute's key",
            request(
                LogRecord {
                    attributes: vec![pair("MARK", text("v"))],
                    ..record.clone()
                },
                None,
            ),
        ),
        (
            "an attribute's value",
            request(
                LogRecord {
                    attributes: vec![pair("k", text("MARK"))],
                    ..record.clone()
                },
                None,
            ),
        ),
        (
            "an attribute's key in a record refused for its ids",
            request(
                LogRecord {
                    attributes: vec![pair("MARK", text("v"))],
                    ..bad_ids.clone()
                },
                None,
            ),
        ),
        (
            "an attribute after one nested too deep",
            request(
                LogRecord {
                    attributes: vec![pair("deep", nested(depth)), pair("MARK", text("v"))],
                    ..record.clone()
                },
                None,
            ),
        ),
        (
            "an attribute of a record whose body is nested too deep",
            request(
                LogRecord {
                    body: some(nested(depth + 1)),
                    attributes: vec![pair("k", text("MARK"))],
                    ..Default::default()
                },
                None,
            ),
        ),
        (
            "a resource attribute",
            resource_request(vec![pair("MARK", text("v"))]),
        ),
        (
            "a resource attribute after one nested too deep",
            resource_request(vec![
                pair("service.name", text("s")),
                pair("deep", nested(depth)),
                pair("k", text("MARK")),
            ]),
        ),
        (
            "a resource attribute after the service name",
            resource_request(vec![
                pair("service.name", text("s")),
                pair("k", text("MARK")),
            ]),
        ),
    ];
    for (name, request) in cases {
        let body = with_bad_utf8(&request);
        assert!(
            through_prost(&body, &limits).is_err(),
            "{name}: prost took it"
        );
        assert!(read_in_place(&body, &limits).is_err(), "{name}: taken");
    }
}

/// One change to a body.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set(at, byte)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..40).prop_map(|(at, length)| Mutation::Delete(at, length)),
        (any::<usize>(), 1usize..200).prop_map(|(at, length)| Mutation::Repeat(at, length)),
    ]
}

fn mutate(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        let at = |position: usize, body: &Vec<u8>| position % (body.len() + 1);
        match mutation.clone() {
            Mutation::Truncate(position) => body.truncate(at(position, &body)),
            Mutation::Set(position, byte) => {
                if !body.is_empty() {
                    let index = position % body.len();
                    body[index] = byte;
                }
            }
            Mutation::Insert(position, bytes) => {
                let index = at(position, &body);
                body.splice(index..index, bytes);
            }
            Mutation::Delete(position, length) => {
                let index = at(position, &body);
                body.drain(index..(index + length).min(body.len()));
            }
            Mutation::Repeat(position, length) => {
                let index = at(position, &body);
                let slice = body[index..(index + length).min(body.len())].to_vec();
                body.splice(index..index, slice);
            }
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn mutated_bodies_are_read_as_prost_reads_them(
        index in 0usize..5,
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        // Small bodies keep the cases fast; the first is cut to its first resource.
        let corpus = corpus();
        let body = match index {
            0 => {
                let request = ExportLogsServiceRequest::decode(corpus[0].as_slice()).unwrap();
                ExportLogsServiceRequest {
                    resource_logs: request.resource_logs.into_iter().skip(2).take(1).collect(),
                }
                .encode_to_vec()
            }
            other => corpus[other].clone(),
        };
        let body = mutate(body, &mutations);
        let limits = EntryLimits::default();
        let reference = through_prost(&body, &limits);
        let got = read_in_place(&body, &limits);
        match reference {
            Ok(entries) => prop_assert_eq!(got, Ok(entries)),
            Err(_) => prop_assert!(got.is_err(), "taken: {:?}", got),
        }
    }
}
