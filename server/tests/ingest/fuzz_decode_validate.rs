//! Fuzz target over request decoding and validation (proptest).
//!
//! Owns the property that no input, however hostile, makes decoding or validation
//! panic, and that every input ends as either an entry that is valid and storable or a
//! clear, non-empty error. It drives the server's own entry points with arbitrary
//! bytes, arbitrary JSON shapes and arbitrary strings (NUL, lone surrogate escapes,
//! huge numbers, deep nesting). It never checks speed and never mocks the server.
//!
//! Three layers, each with its own properties: the entry validator
//! (`domain::LogEntry::{from_json, parse}`), the body decoder (`decode::BodyReader`,
//! `decode::batch_entries`, `decode::single_entry`), and the whole app over real HTTP
//! against a real PostgreSQL (the `log_ingestion_test_support` harness), where no input may ever get a
//! 5xx and every acknowledged entry must be in the table: ingest bodies (JSON, NDJSON,
//! single) and the read API's query strings (`meta.*` keys deep, long and odd
//! included).
//!
//! Case count: `PROPTEST_CASES` (default 256, for CI). The layers before storage (the
//! validator, the decoder, the body reader) do not depend on the storage mode, so the
//! TimescaleDB pass, which runs this binary again for storage's sake, runs them with 32
//! cases (`storage_free_config`); the PostgreSQL pass runs all 256. Longer run:
//! `PROPTEST_CASES=20000 cargo test --release -p log_ingestion_server --test ingest fuzz_decode_validate::`

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};
use log_ingestion_server::config::{BodyReadSettings, EntryLimits};
use log_ingestion_server::domain::{LogEntry, FILTERED};
use log_ingestion_server::error::ApiError;
use log_ingestion_server::ingest::decode::{
    batch_entries, single_entry, Accepts, BodyFormat, BodyReader, Payload,
};
use log_ingestion_server::ingest::inflight::InflightBudget;
use log_ingestion_wire::{BatchResponse, ErrorBody, Level, SingleResponse, WireEntry};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::value::RawValue;
use serde_json::Value;

const DEFAULT_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Cases of the properties that never reach storage on the TimescaleDB pass (the
/// PostgreSQL pass runs them in full), unless `PROPTEST_CASES` says otherwise.
const STORAGE_FREE_CASES_ON_TIMESCALEDB: u32 = 32;

/// [`config`] for the properties before storage: fewer cases on the TimescaleDB pass.
fn storage_free_config() -> Config {
    let mut config = config();
    if std::env::var_os("PROPTEST_CASES").is_none()
        && log_ingestion_test_support::expected_mode()
            == log_ingestion_server::storage::StorageMode::Timescale
    {
        config.cases = STORAGE_FREE_CASES_ON_TIMESCALEDB;
    }
    config
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

// ---------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------

/// Pieces of a JSON string literal's contents: ordinary and exotic characters plus
/// escapes PostgreSQL or UTF-8 cannot take as they are.
fn json_string_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 _.:/-]{0,12}",
        2 => any::<char>()
            .prop_filter("raw JSON string chars", |c| *c != '"' && *c != '\\' && (*c as u32) >= 0x20)
            .prop_map(String::from),
        1 => Just("\\u0000".to_owned()),
        1 => Just("\\ud800".to_owned()),
        1 => Just("\\udfff".to_owned()),
        1 => Just("\\ud83d\\ude00".to_owned()),
        1 => Just("\\ud83d\\u0041".to_owned()),
        1 => Just("\\\"".to_owned()),
        1 => Just("\\\\".to_owned()),
        1 => Just("\\n\\t\\r\\b\\f\\/".to_owned()),
        1 => Just("\u{feff}\u{200b}\u{fffd}".to_owned()),
    ]
}

/// A JSON string literal, quotes included: mostly plain text, sometimes made of
/// `json_string_piece`s (so an entry with several strings is still often valid).
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 _.:/-]{0,24}".prop_map(|text| format!("\"{text}\"")),
        1 => prop::collection::vec(json_string_piece(), 0..8).prop_map(|pieces| {
            let mut out = String::from("\"");
            for piece in pieces {
                out.push_str(&piece);
            }
            out.push('"');
            out
        }),
    ]
}

/// Number literals, including ones no f64/i64/u64 holds.
fn json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        Just("1e400".to_owned()),
        Just("-1e400".to_owned()),
        Just("1E-400".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("-0".to_owned()),
        Just("1.7976931348623157e308".to_owned()),
        (1usize..600).prop_map(|n| format!("1{}", "0".repeat(n))),
        (1usize..600).prop_map(|n| format!("0.{}1", "0".repeat(n))),
    ]
}

/// A nesting of `depth` arrays or objects around a leaf, as JSON text.
fn deep_json() -> impl Strategy<Value = String> {
    (0usize..300, any::<bool>()).prop_map(|(depth, objects)| {
        if objects {
            format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth))
        } else {
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
        }
    })
}

/// Any JSON value as text (valid syntax; lone surrogates are syntactically valid JSON).
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        json_number(),
        json_string(),
    ];
    let tree = leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((json_key(), inner), 0..6).prop_map(|fields| {
                let body: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    });
    prop_oneof![8 => tree, 1 => deep_json()]
}

/// A JSON object as text, with fuzzed keys and values (the shape metadata must have).
fn json_object() -> impl Strategy<Value = String> {
    prop::collection::vec((json_key(), json_value()), 0..6).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}

/// Object keys: plain, sensitive in any case and spelling, or exotic.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z_]{1,10}".prop_map(|k| format!("\"{k}\"")),
        1 => sensitive_key().prop_map(|k| format!("\"{k}\"")),
        1 => json_string(),
    ]
}

fn sensitive_key() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "password",
            "token",
            "secret",
            "api_key",
            "authorization",
            "credit_card",
            "ssn",
            "Api-Key",
            "user_password",
            "ACCESS_TOKEN",
        ]),
        any::<bool>(),
    )
        .prop_map(|(key, upper)| {
            if upper {
                key.to_uppercase()
            } else {
                key.to_owned()
            }
        })
}

fn timestamp_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0i64..(4 * 365 * 86_400)).prop_map(|ago| {
            (Utc::now() - chrono::Duration::seconds(ago)).to_rfc3339()
        }),
        1 => Just("2024-01-01T12:00:00Z".to_owned()),
        1 => prop::sample::select(vec![
            "",
            "2024-01-01",
            "2024-02-30T00:00:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01T12:00:00+25:00",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "-0001-01-01T00:00:00Z",
            "2024-01-01T12:00:00.12345678901234567890Z",
            "2024-01-01t12:00:00z",
            "2024-01-01 12:00:00Z",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn level_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::sample::select(Level::ALL.to_vec()), any::<u8>()).prop_map(|(level, mask)| {
            level
                .as_str()
                .chars()
                .enumerate()
                .map(|(i, c)| if mask >> (i % 8) & 1 == 1 { c.to_ascii_lowercase() } else { c })
                .collect()
        }),
        1 => any::<String>(),
    ]
}

/// A JSON entry object as text: each field well-typed, wrongly typed, exotic or absent.
fn entry_json() -> impl Strategy<Value = String> {
    fn field(
        name: &'static str,
        good: BoxedStrategy<String>,
    ) -> impl Strategy<Value = Option<String>> {
        prop_oneof![
            20 => good.prop_map(move |v| Some(format!("\"{name}\":{v}"))),
            3 => json_string().prop_map(move |v| Some(format!("\"{name}\":{v}"))),
            1 => json_value().prop_map(move |v| Some(format!("\"{name}\":{v}"))),
            1 => Just(None),
        ]
    }
    let quoted = |s: String| serde_json::to_string(&s).unwrap_or_default();
    (
        field("timestamp", timestamp_text().prop_map(quoted).boxed()),
        field("service", "[a-z-]{1,20}".prop_map(quoted).boxed()),
        field("level", level_text().prop_map(quoted).boxed()),
        field("message", ".{1,120}".prop_map(quoted).boxed()),
        field("metadata", json_object().boxed()),
        prop::option::of((json_key(), json_value())),
    )
        .prop_map(|(t, s, l, m, md, extra)| {
            let mut fields: Vec<String> = [t, s, l, m, md].into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                fields.push(format!("{k}:{v}"));
            }
            format!("{{{}}}", fields.join(","))
        })
}

// ---------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------

fn json_depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What "a valid entry" means: storable in PostgreSQL and within every limit.
fn assert_valid_entry(entry: &LogEntry, limits: &EntryLimits, now: DateTime<Utc>) {
    let service = entry.service();
    assert!(!service.trim().is_empty(), "blank service accepted");
    assert!(
        service.chars().count() <= 255,
        "service over 255 chars accepted"
    );
    assert!(!service.contains('\0'), "NUL in stored service");

    let message = entry.message();
    assert!(!message.is_empty(), "empty message accepted");
    assert!(
        message.chars().count() <= limits.max_message_bytes,
        "message over the cap accepted"
    );
    assert!(!message.contains('\0'), "NUL in stored message");

    assert!(Level::ALL.contains(&entry.level()));

    let earliest = now - chrono::Duration::from_std(limits.max_timestamp_age).unwrap();
    let latest = now + chrono::Duration::from_std(limits.max_timestamp_ahead).unwrap();
    assert!(
        entry.timestamp() >= earliest && entry.timestamp() <= latest,
        "timestamp {} outside [{earliest}, {latest}]",
        entry.timestamp()
    );

    if let Some(metadata) = entry.metadata() {
        let text = metadata.as_json();
        assert!(
            text.len() <= limits.max_metadata_bytes,
            "metadata over the cap"
        );
        assert!(
            !text.contains("\\u0000"),
            "NUL escape in stored metadata: {text}"
        );
        assert!(!text.contains('\0'), "NUL in stored metadata");
        let parsed: Value = serde_json::from_str(text).expect("stored metadata is JSON");
        assert!(
            parsed.is_object(),
            "stored metadata is not an object: {text}"
        );
        assert!(
            json_depth(&parsed) <= limits.max_metadata_depth,
            "metadata too deep"
        );
    }
}

fn assert_clear_errors(problems: &[String]) {
    assert!(!problems.is_empty(), "rejected without a reason");
    for problem in problems {
        assert!(
            !problem.trim().is_empty(),
            "empty problem text in {problems:?}"
        );
    }
}

/// Decodes `text` as one entry under `limits`: it must be a valid entry or be refused
/// with clear errors. Text that is not even JSON is skipped: it is the body decoder's
/// to refuse (see its properties below).
fn assert_valid_entry_or_clear_errors(text: String, limits: &EntryLimits) {
    let now = now();
    if let Ok(raw) = RawValue::from_string(text) {
        match LogEntry::from_json(&raw, limits, now) {
            Ok(entry) => assert_valid_entry(&entry, limits, now),
            Err(problems) => assert_clear_errors(&problems),
        }
    }
}

// ---------------------------------------------------------------------------------
// Properties: the entry decoder and validator
// ---------------------------------------------------------------------------------

proptest! {
    #![proptest_config(storage_free_config())]

    /// Any syntactically valid JSON entry decodes to a valid entry or named problems.
    #[test]
    fn any_json_entry_yields_a_valid_entry_or_named_problems(text in entry_json()) {
        assert_valid_entry_or_clear_errors(text, &EntryLimits::default());
    }

    /// Any JSON value at all in an entry's place is decoded or refused, never a panic.
    #[test]
    fn any_json_value_in_an_entrys_place_is_refused_cleanly(text in json_value()) {
        assert_valid_entry_or_clear_errors(text, &EntryLimits::default());
    }

    /// Arbitrary Rust strings (NUL, any code point, any length) in every field.
    #[test]
    fn arbitrary_strings_in_every_field_are_stored_safely_or_refused(
        timestamp in timestamp_text(),
        service in prop_oneof![".{0,300}", "\\PC{0,300}", any::<String>()],
        level in level_text(),
        message in prop_oneof![".{0,200}", any::<String>(), Just("\0".to_owned()), Just(" ".to_owned())],
        metadata in prop::option::of(json_value()),
    ) {
        let now = now();
        let limits = EntryLimits::default();
        let metadata = metadata.and_then(|m| serde_json::from_str::<Value>(&m).ok());
        let wire = WireEntry { timestamp, service, level: level.clone(), message, metadata };
        match LogEntry::parse(wire, &limits, now) {
            Ok(entry) => {
                assert_valid_entry(&entry, &limits, now);
                prop_assert!(entry.level().as_str().eq_ignore_ascii_case(&level));
            }
            Err(problems) => assert_clear_errors(&problems),
        }
    }

    /// Small caps are respected just as the defaults are.
    #[test]
    fn tight_limits_are_enforced(
        text in entry_json(),
        max_message_bytes in 1usize..64,
        max_metadata_bytes in 2usize..256,
        max_metadata_depth in 1usize..4,
    ) {
        let limits = EntryLimits {
            max_message_bytes,
            max_metadata_bytes,
            max_metadata_depth,
            ..EntryLimits::default()
        };
        assert_valid_entry_or_clear_errors(text, &limits);
    }

    /// A secret under a sensitive key, at any depth, never reaches storage.
    #[test]
    fn secrets_under_sensitive_keys_never_survive_validation(
        key in sensitive_key(),
        depth in 0usize..8,
        secret in "[A-Za-z0-9]{16,32}",
        in_array in any::<bool>(),
    ) {
        let mut value = serde_json::json!({ key.clone(): secret.clone(), "kept": "visible" });
        for level in 0..depth {
            value = if in_array && level % 2 == 0 {
                serde_json::json!({ "items": [value] })
            } else {
                serde_json::json!({ "nested": value })
            };
        }
        let wire = WireEntry {
            timestamp: Utc::now().to_rfc3339(),
            service: "svc".into(),
            level: "info".into(),
            message: "m".into(),
            metadata: Some(value),
        };
        let entry = LogEntry::parse(wire, &EntryLimits::default(), now()).expect("a valid entry");
        let stored = entry.metadata().expect("metadata kept").as_json();
        prop_assert!(!stored.contains(&secret), "secret stored: {stored}");
        prop_assert!(stored.contains(FILTERED));
        prop_assert!(stored.contains("visible"));
    }
}

/// The generator is no use if it never reaches one of the outcomes: with a fixed seed,
/// a fair share of fuzzed entries must be accepted and a fair share refused.
#[test]
fn the_entry_generator_reaches_both_valid_and_invalid_entries() {
    let mut runner = TestRunner::deterministic();
    let strategy = entry_json();
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..500 {
        let text = strategy
            .new_tree(&mut runner)
            .expect("a generated entry")
            .current();
        let Ok(raw) = RawValue::from_string(text) else {
            continue;
        };
        match LogEntry::from_json(&raw, &EntryLimits::default(), now()) {
            Ok(_) => valid += 1,
            Err(_) => invalid += 1,
        }
    }
    assert!(valid >= 50, "only {valid} of 500 fuzzed entries were valid");
    assert!(
        invalid >= 50,
        "only {invalid} of 500 fuzzed entries were invalid"
    );
}

// ---------------------------------------------------------------------------------
// Properties: the body decoder
// ---------------------------------------------------------------------------------

fn assert_client_error(error: &ApiError) {
    assert!(
        error.status().is_client_error(),
        "{error:?} answers {} instead of a 4xx",
        error.status()
    );
    assert!(
        !error.to_string().trim().is_empty(),
        "{error:?} has no message"
    );
}

/// Every raw entry the decoder yields goes through validation cleanly.
fn validate_all(raws: &[&RawValue]) {
    let now = now();
    let limits = EntryLimits::default();
    for raw in raws {
        match LogEntry::from_json(raw, &limits, now) {
            Ok(entry) => assert_valid_entry(&entry, &limits, now),
            Err(problems) => assert_clear_errors(&problems),
        }
    }
}

/// A batch body as JSON or NDJSON text, with 0 to 12 fuzzed entries.
fn batch_text(ndjson: bool) -> impl Strategy<Value = String> {
    prop::collection::vec(entry_json(), 0..12).prop_map(move |entries| {
        if ndjson {
            entries.join("\n")
        } else {
            format!("{{\"logs\":[{}]}}", entries.join(","))
        }
    })
}

/// Byte-level damage to an otherwise plausible body: overwrite, insert, truncate.
fn damaged(body: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    let mut body = body;
    for (position, kind, byte) in edits {
        let at = if body.is_empty() {
            0
        } else {
            position % (body.len() + 1)
        };
        match kind % 3 {
            0 if at < body.len() => body[at] = byte,
            1 => body.insert(at, byte),
            _ => body.truncate(at),
        }
    }
    body
}

/// Arbitrary bytes, and plausible bodies damaged byte by byte.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (
            any::<bool>().prop_flat_map(batch_text),
            prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
        )
            .prop_map(|(text, edits)| damaged(text.into_bytes(), edits)),
        any::<bool>()
            .prop_flat_map(batch_text)
            .prop_map(String::into_bytes),
        deep_json().prop_map(|inner| format!("{{\"logs\":[{inner}]}}").into_bytes()),
    ]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("in-memory gzip");
    encoder.finish().expect("in-memory gzip")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 1).expect("in-memory zstd")
}

/// How a body travels: its Content-Encoding header and the bytes actually sent.
#[derive(Debug, Clone)]
struct Encoded {
    content_encoding: Option<String>,
    bytes: Vec<u8>,
}

/// Honest gzip/zstd, truncated or lying compression, unknown encodings.
fn encoded(body: Vec<u8>) -> impl Strategy<Value = Encoded> {
    let plain = Encoded {
        content_encoding: None,
        bytes: body.clone(),
    };
    let gz = gzip(&body);
    let zs = zstd(&body);
    prop_oneof![
        3 => Just(plain),
        2 => Just(Encoded { content_encoding: Some("gzip".into()), bytes: gz.clone() }),
        2 => Just(Encoded { content_encoding: Some("zstd".into()), bytes: zs.clone() }),
        1 => (0usize..64).prop_map(move |cut| Encoded {
            content_encoding: Some("gzip".into()),
            bytes: gz[..gz.len().saturating_sub(cut)].to_vec(),
        }),
        1 => (0usize..64).prop_map(move |cut| Encoded {
            content_encoding: Some("zstd".into()),
            bytes: zs[..zs.len().saturating_sub(cut)].to_vec(),
        }),
        1 => prop::sample::select(vec!["gzip", "zstd", "br", "deflate", "GZIP", "identity", "", "gzip, zstd"])
            .prop_map(move |name| Encoded {
                content_encoding: Some(name.to_owned()),
                bytes: body.clone(),
            }),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(Some("application/json".to_owned())),
        2 => Just(Some("application/x-ndjson".to_owned())),
        1 => prop::sample::select(vec![
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/ndjson",
            "text/plain",
            "application/x-www-form-urlencoded",
            "",
            ";",
        ])
        .prop_map(|t| Some(t.to_owned())),
        1 => "[ -~]{0,40}".prop_map(Some),
        1 => Just(None),
    ]
}

fn headers_for(
    content_type: Option<&str>,
    encoded: &Encoded,
    declared_length: Option<usize>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(value) = encoded
        .content_encoding
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(header::CONTENT_ENCODING, value);
    }
    if let Some(length) = declared_length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    headers
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

proptest! {
    #![proptest_config(storage_free_config())]

    /// Arbitrary bytes split into entries or refused with a 4xx, in both formats.
    #[test]
    fn arbitrary_bytes_split_into_entries_or_a_client_error(
        bytes in body_bytes(),
        ndjson in any::<bool>(),
    ) {
        let format = if ndjson { BodyFormat::Ndjson } else { BodyFormat::Json };
        let payload = Payload { format, bytes: Bytes::from(bytes) };
        match batch_entries(&payload, 5_000) {
            Ok(raws) => validate_all(&raws),
            Err(error) => assert_client_error(&error),
        }
        match single_entry(&payload) {
            Ok(raw) => validate_all(&[raw]),
            Err(error) => assert_client_error(&error),
        }
    }
}

proptest! {
    #![proptest_config(storage_free_config())]

    /// NDJSON bodies of entries, blank lines and garbage: split into at most `max`
    /// entries (more is a 400 naming the count), each one validated or refused.
    #[test]
    fn ndjson_lines_split_within_the_entry_cap_or_a_client_error(
        lines in prop::collection::vec(
            prop_oneof![
                4 => entry_json(),
                1 => Just(String::new()),
                1 => Just("   \r".to_owned()),
                1 => json_value(),
                1 => ".{0,40}",
            ],
            0..40,
        ),
        max in 1usize..30,
    ) {
        let text = lines.join("\n");
        let payload = Payload { format: BodyFormat::Ndjson, bytes: Bytes::from(text.clone()) };
        let non_blank = text.split('\n').filter(|line| !line.trim_ascii().is_empty()).count();
        match batch_entries(&payload, max) {
            Ok(raws) => {
                prop_assert!(raws.len() <= max);
                prop_assert_eq!(raws.len(), non_blank);
                validate_all(&raws);
            }
            Err(ApiError::BatchTooLarge { got, .. }) => {
                prop_assert!(non_blank > max);
                prop_assert_eq!(got, Some(non_blank));
            }
            Err(error) => assert_client_error(&error),
        }
    }
}

/// Any headers and any (possibly compressed, possibly lying) body: a payload within
/// the cap, or a 4xx.
#[test]
fn any_headers_and_body_read_within_the_cap_or_a_client_error() {
    let rt = runtime();
    let strategy = (
        body_bytes().prop_flat_map(encoded),
        content_type(),
        prop::option::of(0usize..8192),
        64usize..8192,
        any::<bool>(),
    );
    let mut runner = TestRunner::new(storage_free_config());
    runner
        .run(
            &strategy,
            |(encoded, content_type, declared, max_bytes, ndjson_route)| {
                let headers = headers_for(content_type.as_deref(), &encoded, declared);
                let accepts = if ndjson_route {
                    Accepts::JsonOrNdjson
                } else {
                    Accepts::JsonOnly
                };
                let body = Body::from(encoded.bytes.clone());
                let read = rt.block_on(async {
                    let budget = InflightBudget::new(1 << 20, std::time::Duration::ZERO);
                    let mut permit = budget.empty_permit();
                    let reader =
                        BodyReader::new(&headers, accepts, max_bytes, BodyReadSettings::default())?;
                    let raw = reader.read(body, &budget, &mut permit).await?;
                    raw.decode(&budget, &mut permit).await
                });
                match read {
                    Ok(payload) => {
                        prop_assert!(payload.bytes.len() <= max_bytes, "payload over the cap");
                        match batch_entries(&payload, 5_000) {
                            Ok(raws) => validate_all(&raws),
                            Err(error) => assert_client_error(&error),
                        }
                    }
                    Err(error) => assert_client_error(&error),
                }
                Ok(())
            },
        )
        .unwrap();
}

// ---------------------------------------------------------------------------------
// Properties: the whole app over HTTP, real PostgreSQL
// ---------------------------------------------------------------------------------

/// One request of the HTTP fuzz: where it goes and what it carries.
#[derive(Debug, Clone)]
struct FuzzRequest {
    single: bool,
    content_type: Option<String>,
    encoded: Encoded,
}

/// Mostly coherent requests (route, content type and body shape agree; honest
/// compression), so fuzzed entries reach storage; the rest mix everything up.
fn fuzz_request() -> impl Strategy<Value = FuzzRequest> {
    let honest = |bytes: Vec<u8>| {
        prop_oneof![
            3 => Just(Encoded { content_encoding: None, bytes: bytes.clone() }),
            1 => Just(Encoded { content_encoding: Some("gzip".into()), bytes: gzip(&bytes) }),
            1 => Just(Encoded { content_encoding: Some("zstd".into()), bytes: zstd(&bytes) }),
        ]
    };
    let json_batch = batch_text(false)
        .prop_flat_map(move |text| honest(text.into_bytes()))
        .prop_map(|encoded| FuzzRequest {
            single: false,
            content_type: Some("application/json".into()),
            encoded,
        });
    let ndjson_batch = batch_text(true)
        .prop_flat_map(move |text| honest(text.into_bytes()))
        .prop_map(|encoded| FuzzRequest {
            single: false,
            content_type: Some("application/x-ndjson".into()),
            encoded,
        });
    let single = entry_json().prop_map(|entry| FuzzRequest {
        single: true,
        content_type: Some("application/json".into()),
        encoded: Encoded {
            content_encoding: None,
            bytes: format!("{{\"log\":{entry}}}").into_bytes(),
        },
    });
    let chaotic_body = prop_oneof![
        any::<bool>()
            .prop_flat_map(batch_text)
            .prop_map(String::into_bytes),
        entry_json().prop_map(|e| format!("{{\"log\":{e}}}").into_bytes()),
        body_bytes(),
    ];
    let chaotic = (
        any::<bool>(),
        content_type(),
        chaotic_body.prop_flat_map(encoded),
    )
        .prop_map(|(single, content_type, encoded)| FuzzRequest {
            single,
            content_type,
            encoded,
        });
    prop_oneof![3 => json_batch, 1 => ndjson_batch, 2 => single, 3 => chaotic]
}

/// Nothing a client sends gets a 5xx; every 2xx names what it stored, every 4xx says
/// why; the table holds exactly the entries acknowledged.
#[test]
fn no_request_body_gets_a_server_error_and_every_acknowledged_entry_is_stored() {
    let rt = runtime();
    let mut app = rt.block_on(log_ingestion_test_support::spawn_app());
    // Counted across every case run, shrinking included: each one really was sent.
    let acknowledged = std::cell::Cell::new(0i64);
    let mut runner = TestRunner::new(config());
    let outcome = runner.run(&fuzz_request(), |request| {
        let path = if request.single {
            "/api/v1/logs"
        } else {
            "/api/v1/logs/batch"
        };
        let (status, text) = rt.block_on(async {
            let mut builder = app.post(path).body(request.encoded.bytes.clone());
            if let Some(t) = request.content_type.as_deref() {
                if HeaderValue::from_str(t).is_ok() {
                    builder = builder.header(header::CONTENT_TYPE, t);
                }
            }
            if let Some(e) = request.encoded.content_encoding.as_deref() {
                builder = builder.header(header::CONTENT_ENCODING, e);
            }
            let response = builder.send().await.expect("the server answers");
            let status = response.status();
            (status, response.text().await.expect("an answer body"))
        });
        prop_assert!(
            !status.is_server_error(),
            "{status} for {request:?}: {text}"
        );
        if status.is_success() {
            let accepted = if request.single {
                serde_json::from_str::<SingleResponse>(&text)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?
                    .accepted
            } else {
                let answer: BatchResponse = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
                prop_assert_eq!(answer.rejected as usize, answer.errors.len());
                prop_assert!(answer.errors.iter().all(|e| !e.error.trim().is_empty()));
                answer.accepted
            };
            acknowledged.set(acknowledged.get() + accepted as i64);
        } else {
            prop_assert!(status.is_client_error(), "{status}: {text}");
            let body: ErrorBody = serde_json::from_str(&text).map_err(|e| {
                TestCaseError::fail(format!("{status} without an error body: {e}: {text}"))
            })?;
            prop_assert!(!body.error.trim().is_empty());
        }
        Ok(())
    });
    let stored = rt.block_on(app.row_count());
    rt.block_on(async {
        app.stop().await;
        log_ingestion_test_support::drop_database(&app.database_name).await;
    });
    outcome.unwrap();
    eprintln!(
        "HTTP fuzz: {} entries acknowledged, {stored} rows stored",
        acknowledged.get()
    );
    if config().cases >= 100 {
        assert!(
            acknowledged.get() > 0,
            "no fuzzed request was ever accepted"
        );
    }
    assert_eq!(
        stored,
        acknowledged.get(),
        "rows stored differ from entries acknowledged"
    );
}

// ---------------------------------------------------------------------------------
// Properties: the read API's query string over HTTP
// ---------------------------------------------------------------------------------

const FUZZ_ADMIN_KEY: &str = "fuzz-admin-key";

/// A `meta.*` key: ordinary, deep (up to thousands of segments), with empty or odd
/// segments.
fn meta_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec("[a-z_]{1,8}", 1..5).prop_map(|p| p.join(".")),
        2 => (1usize..3_000).prop_map(|n| vec!["a"; n].join(".")),
        1 => "[.a-z]{0,12}",
        1 => any::<String>(),
    ]
    .prop_map(|path| format!("meta.{path}"))
}

/// A query value: text, JSON (deep too), relative times, numbers, junk.
fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => json_value(),
        1 => deep_json(),
        1 => (1usize..1_500).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => prop_oneof![Just("15m"), Just("now"), Just("7d"), Just("2024-01-01T00:00:00Z")]
            .prop_map(str::to_owned),
        1 => "-?[0-9]{1,25}",
        1 => any::<String>(),
        1 => (0usize..3_000).prop_map(|n| "x".repeat(n)),
    ]
}

/// The pairs of one query string: known parameters, `meta.*` keys, unknown ones.
fn query_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        3 => meta_key(),
        4 => prop_oneof![
            Just("service"), Just("level"), Just("min_level"), Just("since"), Just("until"),
            Just("q"), Just("limit"), Just("cursor"), Just("bucket"),
        ]
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    // At most 5 pairs, each under ~10 KB encoded: the whole fits hyper's request line.
    prop::collection::vec((key, query_value()), 0..5)
}

/// No query string gets a 5xx or kills the server: every answer is a 200 or a short
/// 400 `Invalid query` (the read routes, with an admin key).
#[test]
fn no_query_string_gets_a_server_error_or_a_long_answer() {
    let rt = runtime();
    let mut app = rt.block_on(log_ingestion_test_support::spawn_app_with(|settings| {
        settings.admin_api_keys = vec![log_ingestion_server::auth::ApiKey::new(FUZZ_ADMIN_KEY)];
    }));
    let routes = prop_oneof![
        Just("/api/v1/logs"),
        Just("/api/v1/logs/histogram"),
        Just("/api/v1/services"),
    ];
    let mut runner = TestRunner::new(config());
    let outcome = runner.run(&(routes, query_pairs()), |(route, pairs)| {
        let (status, text) = rt.block_on(async {
            let response = app
                .client
                .get(app.url(route))
                .query(&pairs)
                .header("X-API-Key", FUZZ_ADMIN_KEY)
                .send()
                .await
                .expect("the server answers");
            let status = response.status();
            (status, response.text().await.expect("an answer body"))
        });
        prop_assert!(
            status == 200 || status == 400 || status == 414 || status == 431,
            "{status} for {route} {pairs:?}: {text}"
        );
        if status == 400 {
            let body: ErrorBody = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert_eq!(body.error, "Invalid query");
            prop_assert!(text.len() <= 16_384, "a {} byte answer", text.len());
        }
        Ok(())
    });
    rt.block_on(async {
        app.stop().await;
        log_ingestion_test_support::drop_database(&app.database_name).await;
    });
    outcome.unwrap();
}
