//! Reading a request body: at most the cap, every buffer growth charged to the
//! request's in-flight permit first, every wait for the client within the body read
//! timeouts.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::time::Instant;

use super::headers::{body_format, content_encoding, Accepts, BodyFormat, Encoding};
use crate::config::BodyReadSettings;
use crate::error::ApiError;
use crate::ingest::inflight::{InflightBudget, InflightPermit};

/// Buffers grow by at least this much, so small bodies are charged in few steps.
pub(super) const MIN_GROWTH_BYTES: usize = 64 * 1024;

/// A body whose headers passed the checks, not read yet. Reading is split in steps so
/// a caller can account for the sizes as they become known.
#[derive(Debug)]
pub struct BodyReader {
    format: BodyFormat,
    encoding: Encoding,
    declared_length: Option<usize>,
    max_bytes: usize,
    timeouts: BodyReadSettings,
}

/// The body as sent (maybe compressed), within the cap.
#[derive(Debug)]
pub struct RawBody {
    pub(super) format: BodyFormat,
    pub(super) encoding: Encoding,
    pub(super) bytes: Bytes,
    pub(super) max_bytes: usize,
}

impl BodyReader {
    /// Checks content type, content encoding and a declared `Content-Length`.
    pub fn new(
        headers: &HeaderMap,
        accepts: Accepts,
        max_bytes: usize,
        timeouts: BodyReadSettings,
    ) -> Result<Self, ApiError> {
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
            timeouts,
        })
    }

    /// The `Content-Length` the client declared (already within the cap), if any.
    pub fn declared_length(&self) -> Option<usize> {
        self.declared_length
    }

    /// Reads the body to its end without keeping it (at most `max_bytes`, within the
    /// body read timeouts), so a refusal sent before the body was read reaches a client
    /// that is still sending, on a connection that stays usable, instead of a reset.
    pub async fn discard(self, body: Body) {
        let mut chunks = TimedChunks::new(body, self.timeouts);
        let mut seen = 0usize;
        while let Ok(Some(chunk)) = chunks.next().await {
            seen = seen.saturating_add(chunk.len());
            if seen > self.max_bytes {
                break;
            }
        }
    }

    /// Reads the body, at most `max_bytes` of it, growing `permit` to cover the buffer
    /// before it grows (a body without `Content-Length` is charged as it arrives).
    /// A pause longer than the idle timeout, or a body slower than the read timeout,
    /// ends the read with [`ApiError::BodyTimeout`].
    pub async fn read(
        self,
        body: Body,
        budget: &InflightBudget,
        permit: &mut InflightPermit,
    ) -> Result<RawBody, ApiError> {
        let max_bytes = self.max_bytes;
        let mut buffer = BytesMut::with_capacity(self.declared_length.unwrap_or(0));
        let mut chunks = TimedChunks::new(body, self.timeouts);
        while let Some(chunk) = chunks.next().await? {
            let needed = buffer.len().saturating_add(chunk.len());
            if needed > max_bytes {
                return Err(ApiError::PayloadTooLarge {
                    limit_bytes: max_bytes,
                });
            }
            if needed > buffer.capacity() {
                let target = grown_capacity(buffer.capacity(), needed, max_bytes);
                budget.grow(permit, target).await?;
                buffer.reserve(target - buffer.len());
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(RawBody {
            format: self.format,
            encoding: self.encoding,
            bytes: buffer.freeze(),
            max_bytes,
        })
    }
}

/// The capacity a buffer holding `needed` bytes grows to: doubling (at least by
/// [`MIN_GROWTH_BYTES`]), never past `max_bytes`, never below `needed`.
pub(super) fn grown_capacity(current: usize, needed: usize, max_bytes: usize) -> usize {
    current
        .saturating_mul(2)
        .max(current.saturating_add(MIN_GROWTH_BYTES))
        .min(max_bytes)
        .max(needed)
}

/// A body's data chunks, each awaited within the idle timeout and all within the read
/// timeout.
struct TimedChunks {
    chunks: axum::body::BodyDataStream,
    idle: std::time::Duration,
    deadline: Instant,
}

impl TimedChunks {
    fn new(body: Body, timeouts: BodyReadSettings) -> Self {
        TimedChunks {
            chunks: body.into_data_stream(),
            idle: timeouts.idle_timeout,
            deadline: Instant::now() + timeouts.total_timeout,
        }
    }

    /// The next chunk, `None` at the end of the body.
    async fn next(&mut self) -> Result<Option<Bytes>, ApiError> {
        let wait_until = (Instant::now() + self.idle).min(self.deadline);
        match tokio::time::timeout_at(wait_until, self.chunks.next()).await {
            Err(_) => Err(ApiError::BodyTimeout),
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(_))) => Err(ApiError::IncompleteBody),
        }
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
}
