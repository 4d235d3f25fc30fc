//! What a request's headers say of its body: the format (`Content-Type`) against what
//! the route accepts, and the content encoding.

use axum::http::{header, HeaderMap};

use crate::error::ApiError;

/// The shape of a body, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
    /// OTLP's protobuf (`application/x-protobuf`), read by `otlp`.
    Protobuf,
}

/// Which formats a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    JsonOnly,
    JsonOrNdjson,
    /// OTLP/HTTP: protobuf or JSON.
    Otlp,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

pub(super) fn body_format(headers: &HeaderMap, accepts: Accepts) -> Result<BodyFormat, ApiError> {
    let expected = match accepts {
        Accepts::JsonOnly => "application/json",
        Accepts::JsonOrNdjson => "application/json or application/x-ndjson",
        Accepts::Otlp => "application/x-protobuf or application/json",
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
        ("application/x-protobuf" | "application/protobuf", Accepts::Otlp) => {
            Ok(BodyFormat::Protobuf)
        }
        _ => Err(ApiError::UnsupportedContentType { got: raw, expected }),
    }
}

pub(super) fn content_encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
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
