//! The ingest side: `POST /api/v1/logs` and `POST /api/v1/logs/batch` from the socket to
//! the acknowledgement. It owns the connection caps (`connections`), the in-flight body
//! budget (`inflight`), per-key rate limits and their fleet split (`rate_limit`,
//! `rate_limit_sharing`), body reading, decompression and framing (`decode`), the text
//! of client-facing errors (`client_text`), the steps both handlers share (`pipeline`)
//! and the handlers themselves (`logs_single`, `logs_batch`). It never reads stored
//! logs back: that is `read`.

pub mod client_text;
pub mod connections;
pub mod decode;
pub mod inflight;
pub(crate) mod logs_batch;
pub(crate) mod logs_single;
mod pipeline;
pub mod rate_limit;
pub mod rate_limit_sharing;
