//! Request body decoding for the ingest routes: content type, content encoding (gzip,
//! zstd) with a cap on the decompressed size, and splitting the JSON or NDJSON body
//! into one raw JSON value per entry, counting entries as it goes. Every byte it holds
//! (the body as read, then as decompressed) is charged to the request's in-flight
//! permit before it is allocated, and every wait for the client is bounded by the body
//! read timeouts. It never validates an entry (that is `domain::LogEntry::from_json`),
//! never holds more than the configured cap, and never builds more entries than the
//! batch cap plus one.

use std::cell::Cell;
use std::fmt;
use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use bytes::BytesMut;
use futures::StreamExt;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::config::BodyReadSettings;
use crate::error::ApiError;
use crate::ingest::inflight::{InflightBudget, InflightPermit};

/// Buffers grow by at least this much, so small bodies are charged in few steps.
const MIN_GROWTH_BYTES: usize = 64 * 1024;
/// The largest zstd window a body may need: 8 MiB, the limit RFC 9659 sets for HTTP.
/// A zstd decoder allocates its frame's window up front (a frame may declare 128 MiB
/// by default), so the limit is enforced and the whole window charged.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// What a gzip decoder holds besides its output: the 32 KiB window and its input buffer.
const GZIP_DECODER_BYTES: usize = 64 * 1024;

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
    format: BodyFormat,
    encoding: Encoding,
    bytes: Bytes,
    max_bytes: usize,
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
fn grown_capacity(current: usize, needed: usize, max_bytes: usize) -> usize {
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

    /// Decompresses (off the async workers) to at most `max_bytes`, growing `permit`
    /// to cover the compressed body, the decoder (its piece buffer and window; 8 MiB for
    /// zstd) and the output buffer before the output grows: a bomb is refused (413, or 503 when the budget has no
    /// room) having held no more than it was charged. Each step runs on the blocking
    /// pool until the output is full; waiting for budget happens here, on the async
    /// side, so a flood of bombs never parks blocking threads.
    pub async fn decode(
        self,
        budget: &InflightBudget,
        permit: &mut InflightPermit,
    ) -> Result<Payload, ApiError> {
        let RawBody {
            format,
            encoding,
            bytes: raw,
            max_bytes,
        } = self;
        let raw_len = raw.len();
        let mut inflater = match Inflater::start(encoding, raw, max_bytes)? {
            Inflation::Needed(inflater) => inflater,
            Inflation::None(bytes) => return Ok(Payload { format, bytes }),
        };
        loop {
            let capacity = inflater.next_capacity();
            budget
                .grow(permit, raw_len + inflater.overhead_bytes() + capacity)
                .await?;
            inflater.grow_to(capacity);
            let (back, filled) = tokio::task::spawn_blocking(move || {
                let filled = inflater.fill();
                (inflater, filled)
            })
            .await
            .map_err(|error| ApiError::Internal(format!("decompression task failed: {error}")))?;
            inflater = back;
            if filled? == Fill::Finished {
                let bytes = inflater.finish();
                // The compressed body and the decoder are gone: keep only the output.
                budget.shrink(permit, bytes.len());
                return Ok(Payload { format, bytes });
            }
        }
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

/// What [`Inflater::start`] makes of a body.
enum Inflation {
    /// The body was not compressed: here it is.
    None(Bytes),
    Needed(Inflater),
}

/// Whether [`Inflater::fill`] reached the end of the body or filled its buffer.
#[derive(Debug, PartialEq, Eq)]
enum Fill {
    Finished,
    Full,
}

/// A decompression in progress: the decoder over the owned compressed body, the piece
/// last read, and the output so far in a buffer that only its caller grows (after
/// charging for it). It stops at the first byte past the cap.
struct Inflater {
    reader: Box<dyn Read + Send>,
    name: &'static str,
    /// What the decoder itself may hold, charged with the output.
    decoder_bytes: usize,
    piece: Vec<u8>,
    /// Bytes of `piece` read but not yet in `out` (it was full).
    pending: usize,
    out: Vec<u8>,
    max_bytes: usize,
}

impl Inflater {
    fn start(encoding: Encoding, raw: Bytes, max_bytes: usize) -> Result<Inflation, ApiError> {
        let source = std::io::Cursor::new(raw);
        let (reader, name): (Box<dyn Read + Send>, &'static str) = match encoding {
            Encoding::Identity => return Ok(Inflation::None(source.into_inner())),
            Encoding::Gzip => (Box::new(flate2::read::MultiGzDecoder::new(source)), "gzip"),
            Encoding::Zstd => {
                let corrupt = |_| ApiError::CorruptEncoding { encoding: "zstd" };
                let mut decoder = zstd::stream::read::Decoder::new(source).map_err(corrupt)?;
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(corrupt)?;
                (Box::new(decoder), "zstd")
            }
        };
        let decoder_bytes = match encoding {
            Encoding::Zstd => 1 << ZSTD_WINDOW_LOG_MAX,
            _ => GZIP_DECODER_BYTES,
        };
        Ok(Inflation::Needed(Inflater {
            reader,
            name,
            decoder_bytes,
            piece: vec![0; MIN_GROWTH_BYTES],
            pending: 0,
            out: Vec::new(),
            max_bytes,
        }))
    }

    /// Bytes held besides the output buffer: the piece buffer and the decoder's state.
    fn overhead_bytes(&self) -> usize {
        self.piece.len() + self.decoder_bytes
    }

    /// The output capacity to charge and grow to before the next [`Inflater::fill`].
    fn next_capacity(&self) -> usize {
        let needed = self.out.len() + self.pending.max(1);
        grown_capacity(self.out.capacity(), needed, self.max_bytes)
    }

    fn grow_to(&mut self, capacity: usize) {
        self.out
            .reserve_exact(capacity.saturating_sub(self.out.len()));
    }

    /// Decompresses until the body ends or the output buffer is full; never grows it.
    fn fill(&mut self) -> Result<Fill, ApiError> {
        loop {
            if self.pending == 0 {
                self.pending = match self.reader.read(&mut self.piece) {
                    Ok(0) => return Ok(Fill::Finished),
                    Ok(read) => read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        return Err(ApiError::CorruptEncoding {
                            encoding: self.name,
                        })
                    }
                };
            }
            let needed = self.out.len() + self.pending;
            if needed > self.max_bytes {
                return Err(ApiError::PayloadTooLarge {
                    limit_bytes: self.max_bytes,
                });
            }
            if needed > self.out.capacity() {
                return Ok(Fill::Full);
            }
            self.out.extend_from_slice(&self.piece[..self.pending]);
            self.pending = 0;
        }
    }

    /// The output, trimmed to its length (the copy is at most the size of the output,
    /// and leaves the permit covering exactly what is held).
    fn finish(self) -> Bytes {
        let mut out = self.out;
        out.shrink_to_fit();
        Bytes::from(out)
    }
}

#[derive(Deserialize)]
#[serde(expecting = "an object {\"log\": {...}}")]
struct SingleBody<'a> {
    #[serde(borrow)]
    log: &'a RawValue,
}

/// The one entry of `{"log": {...}}`, borrowed from the payload.
pub fn single_entry(payload: &Payload) -> Result<&RawValue, ApiError> {
    let body: SingleBody<'_> =
        serde_json::from_slice(&payload.bytes).map_err(|error| ApiError::from_json(&error))?;
    Ok(body.log)
}

/// The entries of `{"logs": [...]}` or of an NDJSON body, one raw value each, borrowed
/// from the payload. More than `max` entries is [`ApiError::BatchTooLarge`], found
/// while parsing: at most `max + 1` values are ever built.
pub fn batch_entries(payload: &Payload, max: usize) -> Result<Vec<&RawValue>, ApiError> {
    match payload.format {
        BodyFormat::Json => {
            let too_many = Cell::new(false);
            let mut deserializer = serde_json::Deserializer::from_slice(&payload.bytes);
            let parsed = CappedBatch {
                max,
                too_many: &too_many,
            }
            .deserialize(&mut deserializer)
            .and_then(|entries| deserializer.end().map(|()| entries));
            match parsed {
                Ok(entries) => Ok(entries),
                Err(_) if too_many.get() => Err(ApiError::BatchTooLarge { max, got: None }),
                Err(error) => Err(ApiError::from_json(&error)),
            }
        }
        BodyFormat::Ndjson => {
            let lines = || {
                payload
                    .bytes
                    .split(|byte| *byte == b'\n')
                    .enumerate()
                    .filter(|(_, line)| !line.trim_ascii().is_empty())
            };
            // Counted before anything is built: a line costs nothing until it is parsed.
            let count = lines().count();
            if count > max {
                return Err(ApiError::BatchTooLarge {
                    max,
                    got: Some(count),
                });
            }
            lines()
                .map(|(index, line)| {
                    serde_json::from_slice::<&RawValue>(line)
                        .map_err(|error| ApiError::from_json_at(&error, index + 1))
                })
                .collect()
        }
    }
}

/// `{"logs": [...]}` with at most `max` entries; sets `too_many` when it stops early.
struct CappedBatch<'c> {
    max: usize,
    too_many: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedBatch<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CappedBatch<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object {\"logs\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut logs = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key != "logs" {
                map.next_value::<IgnoredAny>()?;
            } else if logs.is_some() {
                return Err(de::Error::duplicate_field("logs"));
            } else {
                logs = Some(map.next_value_seed(CappedEntries {
                    max: self.max,
                    too_many: self.too_many,
                })?);
            }
        }
        logs.ok_or_else(|| de::Error::missing_field("logs"))
    }
}

/// The `logs` array, refused at its `max + 1`th element.
struct CappedEntries<'c> {
    max: usize,
    too_many: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for CappedEntries<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CappedEntries<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of log entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(entry) = seq.next_element::<&'de RawValue>()? {
            if entries.len() == self.max {
                self.too_many.set(true);
                return Err(de::Error::custom(format_args!(
                    "more than {} entries",
                    self.max
                )));
            }
            entries.push(entry);
        }
        Ok(entries)
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

    /// Drives an [`Inflater`] as `RawBody::decode` does, with `charge` in place of the
    /// budget (it gets each new output capacity).
    fn decompress(
        encoding: Encoding,
        raw: &[u8],
        max_bytes: usize,
        mut charge: impl FnMut(usize) -> Result<(), ApiError>,
    ) -> Result<Bytes, ApiError> {
        let mut inflater = match Inflater::start(encoding, Bytes::copy_from_slice(raw), max_bytes)?
        {
            Inflation::Needed(inflater) => inflater,
            Inflation::None(bytes) => return Ok(bytes),
        };
        loop {
            let capacity = inflater.next_capacity();
            charge(capacity)?;
            inflater.grow_to(capacity);
            assert!(inflater.out.capacity() < capacity + MIN_GROWTH_BYTES);
            if inflater.fill()? == Fill::Finished {
                return Ok(inflater.finish());
            }
        }
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let error =
            batch_entries(&payload(BodyFormat::Ndjson, "{\"a\":1}\n\n{oops\n"), 10).unwrap_err();
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
        let error = batch_entries(&payload(BodyFormat::Json, "\"logs\""), 10).unwrap_err();
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
            decompress(Encoding::Gzip, &compressed, 10_000, |_| Ok(())),
            Err(ApiError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn decompression_is_charged_before_the_buffer_grows_and_stops_when_refused() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&vec![b' '; 4_000_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        let mut charged = Vec::new();
        let decoded = decompress(Encoding::Gzip, &compressed, 10_000_000, |capacity| {
            charged.push(capacity);
            Ok(())
        })
        .unwrap();
        assert_eq!(decoded.len(), 4_000_000);
        assert!(
            charged.windows(2).all(|pair| pair[0] < pair[1]),
            "{charged:?}"
        );
        assert!(*charged.last().unwrap() >= decoded.len());
        assert!(charged.len() < 20, "{} steps", charged.len());
        // A refusal (the budget has no room) ends decompression at once.
        let refused = decompress(Encoding::Gzip, &compressed, 10_000_000, |capacity| {
            if capacity > 100_000 {
                Err(ApiError::ServerBusy)
            } else {
                Ok(())
            }
        });
        assert!(matches!(refused, Err(ApiError::ServerBusy)));
    }

    #[test]
    fn a_batch_stops_at_its_entry_cap_while_parsing() {
        let ones = format!("{{\"logs\":[{}1]}}", "1,".repeat(100_000));
        match batch_entries(&payload(BodyFormat::Json, &ones), 5) {
            Err(ApiError::BatchTooLarge { max: 5, got: None }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let lines = "1\n".repeat(100_000);
        match batch_entries(&payload(BodyFormat::Ndjson, &lines), 5) {
            Err(ApiError::BatchTooLarge {
                max: 5,
                got: Some(100_000),
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let fits = r#"{"other":[1,2],"logs":[{"a":1},2]}"#;
        let fits = payload(BodyFormat::Json, fits);
        let entries = batch_entries(&fits, 2).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].get(), r#"{"a":1}"#);
    }

    #[test]
    fn a_batch_body_of_the_wrong_shape_keeps_serdes_messages() {
        for (body, expected) in [
            (r#"{"logs":[1],"logs":[2]}"#, "duplicate field `logs`"),
            (r#"{"log":[1]}"#, "missing field `logs`"),
            (r#"{"logs":"x"}"#, "expected an array of log entries"),
            (r#"{"logs":[1]} x"#, "trailing characters"),
        ] {
            let error = batch_entries(&payload(BodyFormat::Json, body), 10).unwrap_err();
            let shown = format!("{:?}", error);
            assert!(shown.contains(expected), "{body}: {shown}");
        }
    }

    #[test]
    fn a_zstd_frame_asking_for_a_window_past_8_mib_is_refused() {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(24).unwrap();
        encoder.include_contentsize(false).unwrap();
        encoder.write_all(&vec![b'x'; 100_000]).unwrap();
        let wide = encoder.finish().unwrap();
        assert!(matches!(
            decompress(Encoding::Zstd, &wide, 10_000_000, |_| Ok(())),
            Err(ApiError::CorruptEncoding { encoding: "zstd" })
        ));
        let usual = zstd::encode_all(&vec![b'x'; 100_000][..], 19).unwrap();
        assert_eq!(
            decompress(Encoding::Zstd, &usual, 10_000_000, |_| Ok(()))
                .unwrap()
                .len(),
            100_000
        );
    }

    #[test]
    fn garbage_gzip_is_a_clear_error() {
        assert!(matches!(
            decompress(Encoding::Gzip, b"not gzip", 10_000, |_| Ok(())),
            Err(ApiError::CorruptEncoding { .. })
        ));
    }
}
