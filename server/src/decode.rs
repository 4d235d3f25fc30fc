//! Request body decoding for the ingest routes: content type, content encoding (gzip,
//! zstd) with a cap on the decompressed size, and splitting the JSON or NDJSON body
//! into one raw JSON value per entry. It never validates an entry (that is
//! `domain::LogEntry::parse`) and never holds more than the configured cap.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::ApiError;

/// The shape of a body, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

/// Which formats a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    JsonOnly,
    JsonOrNdjson,
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

/// A decoded, decompressed body.
#[derive(Debug)]
pub struct Payload {
    pub format: BodyFormat,
    pub bytes: Bytes,
}

/// Checks the headers, reads at most `max_bytes`, and decompresses to at most
/// `max_bytes`.
pub async fn read_payload(
    headers: &HeaderMap,
    body: Body,
    accepts: Accepts,
    max_bytes: usize,
) -> Result<Payload, ApiError> {
    BodyReader::new(headers, accepts, max_bytes)?
        .read(body)
        .await?
        .decode()
        .await
}

/// A body whose headers passed the checks, not read yet. Reading is split in steps so
/// a caller can account for the sizes as they become known.
#[derive(Debug)]
pub struct BodyReader {
    format: BodyFormat,
    encoding: Encoding,
    declared_length: Option<usize>,
    max_bytes: usize,
}

/// The body as sent (maybe compressed), within the cap.
#[derive(Debug)]
pub struct RawBody {
    format: BodyFormat,
    encoding: Encoding,
    bytes: Bytes,
    max_bytes: usize,
}

impl BodyReader {
    /// Checks content type, content encoding and a declared `Content-Length`.
    pub fn new(headers: &HeaderMap, accepts: Accepts, max_bytes: usize) -> Result<Self, ApiError> {
        let format = body_format(headers, accepts)?;
        let encoding = content_encoding(headers)?;
        let declared_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<usize>().ok());
        if declared_length.is_some_and(|length| length > max_bytes) {
            return Err(ApiError::PayloadTooLarge {
                limit_bytes: max_bytes,
            });
        }
        Ok(BodyReader {
            format,
            encoding,
            declared_length,
            max_bytes,
        })
    }

    /// The `Content-Length` the client declared (already within the cap), if any.
    pub fn declared_length(&self) -> Option<usize> {
        self.declared_length
    }

    /// Reads the body to its end without keeping it (at most `max_bytes`), so a refusal
    /// sent before the body was read reaches a client that is still sending, on a
    /// connection that stays usable, instead of a reset.
    pub async fn discard(self, body: Body) {
        let mut chunks = body.into_data_stream();
        let mut seen = 0usize;
        while let Some(Ok(chunk)) = chunks.next().await {
            seen = seen.saturating_add(chunk.len());
            if seen > self.max_bytes {
                break;
            }
        }
    }

    /// Reads the body, at most `max_bytes` of it.
    pub async fn read(self, body: Body) -> Result<RawBody, ApiError> {
        let max_bytes = self.max_bytes;
        let bytes = axum::body::to_bytes(body, max_bytes)
            .await
            .map_err(|error| {
                let too_large = std::error::Error::source(&error)
                    .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
                if too_large {
                    ApiError::PayloadTooLarge {
                        limit_bytes: max_bytes,
                    }
                } else {
                    ApiError::IncompleteBody
                }
            })?;
        Ok(RawBody {
            format: self.format,
            encoding: self.encoding,
            bytes,
            max_bytes,
        })
    }
}

impl RawBody {
    /// Bytes as received.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Decompresses (off the async workers) to at most `max_bytes`.
    pub async fn decode(self) -> Result<Payload, ApiError> {
        let RawBody {
            format,
            encoding,
            bytes: raw,
            max_bytes,
        } = self;
        let bytes = match encoding {
            Encoding::Identity => raw,
            Encoding::Gzip | Encoding::Zstd => {
                tokio::task::spawn_blocking(move || decompress(encoding, &raw, max_bytes))
                    .await
                    .map_err(|error| {
                        ApiError::Internal(format!("decompression task failed: {error}"))
                    })??
            }
        };
        Ok(Payload { format, bytes })
    }
}

fn body_format(headers: &HeaderMap, accepts: Accepts) -> Result<BodyFormat, ApiError> {
    let expected = match accepts {
        Accepts::JsonOnly => "application/json",
        Accepts::JsonOrNdjson => "application/json or application/x-ndjson",
    };
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match (essence.as_str(), accepts) {
        ("application/json", _) => Ok(BodyFormat::Json),
        ("application/x-ndjson" | "application/ndjson", Accepts::JsonOrNdjson) => {
            Ok(BodyFormat::Ndjson)
        }
        _ => Err(ApiError::UnsupportedContentType { got: raw, expected }),
    }
}

fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "zstd" => Ok(Encoding::Zstd),
        _ => Err(ApiError::UnsupportedContentEncoding {
            got: text.into_owned(),
        }),
    }
}

/// Decompresses reading at most one byte past the cap, so a bomb never expands in memory.
fn decompress(encoding: Encoding, raw: &[u8], max_bytes: usize) -> Result<Bytes, ApiError> {
    let (reader, name): (Box<dyn Read + '_>, &'static str) = match encoding {
        Encoding::Gzip => (Box::new(flate2::read::MultiGzDecoder::new(raw)), "gzip"),
        Encoding::Zstd => (
            Box::new(
                zstd::stream::read::Decoder::new(raw)
                    .map_err(|_| ApiError::CorruptEncoding { encoding: "zstd" })?,
            ),
            "zstd",
        ),
        Encoding::Identity => return Ok(Bytes::copy_from_slice(raw)),
    };
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| ApiError::CorruptEncoding { encoding: name })?;
    if out.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge {
            limit_bytes: max_bytes,
        });
    }
    Ok(Bytes::from(out))
}

#[derive(Deserialize)]
#[serde(expecting = "an object {\"log\": {...}}")]
struct SingleBody {
    log: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(expecting = "an object {\"logs\": [...]}")]
struct BatchBody {
    logs: Vec<Box<RawValue>>,
}

/// The one entry of `{"log": {...}}`.
pub fn single_entry(payload: &Payload) -> Result<Box<RawValue>, ApiError> {
    let body: SingleBody =
        serde_json::from_slice(&payload.bytes).map_err(|error| ApiError::from_json(&error))?;
    Ok(body.log)
}

/// The entries of `{"logs": [...]}` or of an NDJSON body, one raw value each.
pub fn batch_entries(payload: &Payload) -> Result<Vec<Box<RawValue>>, ApiError> {
    match payload.format {
        BodyFormat::Json => {
            let body: BatchBody = serde_json::from_slice(&payload.bytes)
                .map_err(|error| ApiError::from_json(&error))?;
            Ok(body.logs)
        }
        BodyFormat::Ndjson => payload
            .bytes
            .split(|byte| *byte == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.trim_ascii().is_empty())
            .map(|(index, line)| {
                serde_json::from_slice::<Box<RawValue>>(line)
                    .map_err(|error| ApiError::from_json_at(&error, index + 1))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn payload(format: BodyFormat, text: &str) -> Payload {
        Payload {
            format,
            bytes: Bytes::copy_from_slice(text.as_bytes()),
        }
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let error =
            batch_entries(&payload(BodyFormat::Ndjson, "{\"a\":1}\n\n{oops\n")).unwrap_err();
        match error {
            ApiError::MalformedJson { line, message, .. } => {
                assert_eq!(line, 3);
                assert!(message.ends_with("at line 3 column 2"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_body_of_the_wrong_shape_never_names_an_internal_type() {
        let error = single_entry(&payload(BodyFormat::Json, "5")).unwrap_err();
        match error {
            ApiError::InvalidBody { message, .. } => {
                assert!(
                    message.contains(r#"expected an object {"log": {...}}"#),
                    "{message}"
                );
                assert!(!message.contains("SingleBody"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = batch_entries(&payload(BodyFormat::Json, "\"logs\"")).unwrap_err();
        match error {
            ApiError::InvalidBody { message, .. } => {
                assert!(
                    message.contains(r#"expected an object {"logs": [...]}"#),
                    "{message}"
                );
                assert!(!message.contains("BatchBody"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let error = single_entry(&payload(BodyFormat::Json, "{\n  \"log\": {,}\n}")).unwrap_err();
        match error {
            ApiError::MalformedJson { line, column, .. } => assert_eq!((line, column), (2, 11)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_cap() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&vec![b' '; 1_000_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert!(matches!(
            decompress(Encoding::Gzip, &compressed, 10_000),
            Err(ApiError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_gzip_is_a_clear_error() {
        assert!(matches!(
            decompress(Encoding::Gzip, b"not gzip", 10_000),
            Err(ApiError::CorruptEncoding { .. })
        ));
    }
}
