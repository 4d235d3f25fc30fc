//! `POST /api/v1/logs/batch`: `{"logs": [...]}` or NDJSON -> 200
//! `{"accepted":N,"rejected":M,"errors":[{"index":i,"error":"..."}]}`. Valid entries
//! are stored, invalid ones reported by index; an empty or oversized batch is a 400.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use log_ingestion_wire::{BatchResponse, EntryError};

use super::decode::{batch_entries, each_batch_entry, Accepts, Payload};
use super::pipeline::{acknowledge, receive, Validated, REPLAYED_HEADER};
use super::rows::Rows;
use crate::config::EntryLimits;
use crate::domain::{EntrySeed, LogEntry};
use crate::error::ApiError;
use crate::state::AppState;

/// The protocol label of the JSON API's entries in `/metrics`.
const PROTOCOL: &str = "json";

/// Body -> entries -> rows -> group commit -> ack (auth and the rate limit ran before).
pub async fn ingest_batch(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let limits = state.settings.limits;
    let max = state.settings.max_batch_entries;
    let received = receive(&state, request, Accepts::JsonOrNdjson).await?;
    let validated = received
        .validate(move |payload, rows| validate_batch(payload, &limits, max, rows))
        .await?;
    let stored = validated.entry_count() as u64;
    let response = acknowledge(&state, validated, StatusCode::OK).await?;
    if !response.headers().contains_key(REPLAYED_HEADER) {
        state.metrics.entries_by_protocol(PROTOCOL, stored);
    }
    Ok(response)
}

/// Validates every entry: each valid one is written to `rows` while its text is still
/// borrowed from the body, the others are reported by index. A JSON batch of valid
/// entries is read once, each entry validated and written as the parser reaches it;
/// any other body (or a refused entry) is split first and each entry read on its own,
/// the way that names every problem.
fn validate_batch(
    payload: &Payload,
    limits: &EntryLimits,
    max: usize,
    rows: &mut Rows,
) -> Result<Validated<BatchResponse>, ApiError> {
    let now = Utc::now();
    let seed = EntrySeed::new(limits, now);
    if let Some(accepted) = each_batch_entry(payload, max, seed, |entry| rows.push(&entry)) {
        return Ok(Validated {
            rejected: 0,
            answer: BatchResponse {
                accepted: accepted as u64,
                rejected: 0,
                errors: Vec::new(),
            },
        });
    }
    rows.clear();
    let raws = batch_entries(payload, max)?;
    if raws.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let mut errors = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match LogEntry::from_json(raw, limits, now) {
            Ok(entry) => rows.push(&entry),
            Err(problems) => errors.push(EntryError {
                index,
                error: problems.join("; "),
            }),
        }
    }
    let rejected = errors.len() as u64;
    Ok(Validated {
        rejected,
        answer: BatchResponse {
            accepted: rows.len() as u64,
            rejected,
            errors,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode::BodyFormat;
    use crate::storage::copy_text::CopyRows;
    use axum::body::Bytes;

    fn payload(body: &[u8]) -> Payload {
        Payload {
            format: BodyFormat::Json,
            bytes: Bytes::copy_from_slice(body),
        }
    }

    /// The rows and refusals of the batch split first, each entry read on its own.
    fn split(body: &[u8], max: usize) -> Option<(Vec<u8>, usize)> {
        let limits = EntryLimits::default();
        let payload = payload(body);
        let raws = batch_entries(&payload, max)
            .ok()
            .filter(|raws| !raws.is_empty())?;
        let mut rows = CopyRows::with_capacity(0, Default::default());
        let mut refused = 0;
        for raw in raws {
            match LogEntry::from_json(raw, &limits, Utc::now()) {
                Ok(entry) => rows.push(&entry),
                Err(_) => refused += 1,
            }
        }
        Some((rows.as_bytes().to_vec(), refused))
    }

    /// The rows of the batch read in one pass, if it was.
    fn one_pass(body: &[u8], max: usize) -> Option<Vec<u8>> {
        let limits = EntryLimits::default();
        let payload = payload(body);
        let mut rows = CopyRows::with_capacity(0, Default::default());
        let seed = EntrySeed::new(&limits, Utc::now());
        let count = each_batch_entry(&payload, max, seed, |entry| rows.push(&entry))?;
        assert_eq!(count, rows.len());
        Some(rows.as_bytes().to_vec())
    }

    fn entry(fields: &str) -> String {
        let now = Utc::now().to_rfc3339();
        format!(r#"{{"timestamp":"{now}","service":"svc","level":"INFO",{fields}}}"#)
    }

    #[test]
    fn a_batch_read_in_one_pass_is_stored_as_the_split_batch_is() {
        let exception = r#""metadata":{"exception":{"class":"KeyError","message":"key \"a\"","backtrace":["app/a.rb:1:in `b'"]}}"#;
        let bodies = [
            format!(r#"{{"logs":[{}]}}"#, entry(r#""message":"plain""#)),
            format!(
                r#"{{"other":{{"logs":1}},"logs":[{},{}],"more":[1,"\u00e9"]}}"#,
                entry(r#""message":"tab\tquote\"nul\u0000é","unknown":{"a":[1,2]}"#),
                entry(r#""message":"m","metadata":null"#),
            ),
            format!(
                r#"{{"logs":[{}]}}"#,
                r#"{"metadata":{"password":"p","n":[1,-2.5,1e3,null,true],"o":{"api_key":{"x":1},"k\u0000":"v\nw"},"trace_id":"0af7651916cd43dd8448eb211c80319c"},"message":"m","level":"warn","service":"s\u0000vc","timestamp":"TS"}"#
                    .replace("TS", &Utc::now().to_rfc3339())
            ),
            format!(
                r#"{{"logs":[{}]}}"#,
                entry(&format!(r#""message":"boom","serv\u0069ce":"x",{exception}"#))
                    .replace(r#""service":"svc","#, "")
                    .replace(r#""level":"INFO""#, r#""level":"ERROR""#)
            ),
            format!(" {{ \"logs\" : [ {} ] }} \n", entry(r#""message" : "spaced""#)),
        ];
        for body in &bodies {
            let (split_rows, refused) = split(body.as_bytes(), 10).unwrap();
            assert_eq!(refused, 0, "{body}");
            assert_eq!(one_pass(body.as_bytes(), 10), Some(split_rows), "{body}");
        }
    }

    #[test]
    fn anything_but_a_batch_of_valid_entries_is_left_to_the_split_read() {
        let valid = entry(r#""message":"m""#);
        let deep = format!("{}1{}", r#"{"k":"#.repeat(20), "}".repeat(20));
        let bodies: Vec<Vec<u8>> = [
            r#"{"logs":[]}"#.to_owned(),
            r#"{"logs":{}}"#.to_owned(),
            format!(r#"{{"logs":[{valid}],"logs":[{valid}]}}"#),
            format!(r#"{{"logs":[{valid},{valid},{valid}]}}"#),
            format!(r#"{{"logs":[{valid}]}} x"#),
            format!(r#"{{"logs":[{valid},1]}}"#),
            format!(r#"{{"logs":[{}]}}"#, entry(r#""message":"""#)),
            format!(
                r#"{{"logs":[{}]}}"#,
                entry(r#""message":"m","message":"n""#)
            ),
            format!(r#"{{"logs":[{}]}}"#, entry(r#""message":5"#)),
            format!(
                r#"{{"logs":[{}]}}"#,
                entry(r#""message":"m","metadata":[1]"#)
            ),
            format!(
                r#"{{"logs":[{}]}}"#,
                entry(&format!(r#""message":"m","metadata":{deep}"#))
            ),
            format!(
                r#"{{"logs":[{}]}}"#,
                entry(r#""message":"m","metadata":{"a":"\ud800"}"#)
            ),
            format!(
                r#"{{"logs":[{}]}}"#,
                entry(r#""message":"m","level":"loud""#).replace(r#""level":"INFO","#, "")
            ),
            r#"{"logs":[{"timestamp":"yesterday","service":"s","level":"INFO","message":"m"}]}"#
                .to_owned(),
            r#"{"logs":[["2024-01-01T00:00:00Z","s","INFO","m"]]}"#.to_owned(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect();
        let mut invalid_text =
            format!(r#"{{"logs":[{}]}}"#, entry(r#""message":"m","x":"XX""#)).into_bytes();
        let at = invalid_text.windows(2).position(|w| w == b"XX").unwrap();
        invalid_text[at] = 0xff;
        for body in bodies.iter().chain([&invalid_text]) {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(one_pass(body, 2), None, "{shown}");
            // The split read names a problem, or (an entry in an array's form) reads it.
            let fine = split(body, 2).is_some_and(|(_, refused)| refused == 0);
            assert!(!fine || shown.contains(r#"[["#), "{shown}");
        }
    }
}
