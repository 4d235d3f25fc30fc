//! Request body decoding for the ingest routes: content type, content encoding (gzip,
//! zstd) with a cap on the decompressed size, and splitting the JSON or NDJSON body
//! into one raw JSON value per entry, counting entries as it goes. Every byte it holds
//! (the body as read, then as decompressed) is charged to the request's in-flight
//! permit before it is allocated, and every wait for the client is bounded by the body
//! read timeouts. It never validates an entry (that is `domain::LogEntry::from_json`),
//! never holds more than the configured cap, and never builds more entries than the
//! batch cap plus one.//!
//! One job a module: `headers` (format and encoding from the request's headers), `body`
//! (reading the body within its cap and timeouts), `inflate` (decompression, charged
//! step by step), `framing` (JSON or NDJSON into one raw value per entry), `one_pass` (a JSON batch
//! read once, each entry handed over as it is reached).

mod body;
mod framing;
mod headers;
mod inflate;
mod one_pass;

use axum::body::Bytes;

pub use body::{BodyReader, RawBody};
pub use framing::{batch_entries, single_entry};
pub use headers::{Accepts, BodyFormat};
pub use one_pass::each_batch_entry;

/// A decoded, decompressed body.
#[derive(Debug)]
pub struct Payload {
    pub format: BodyFormat,
    pub bytes: Bytes,
}
