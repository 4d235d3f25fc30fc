//! Decompressing a body (gzip, zstd) to at most the cap, off the async workers, with
//! the output buffer, the decoder and the compressed body charged to the in-flight
//! permit before the output grows.

use std::io::Read;

use axum::body::Bytes;

use super::body::{grown_capacity, RawBody, MIN_GROWTH_BYTES};
use super::headers::Encoding;
use super::Payload;
use crate::error::ApiError;
use crate::ingest::inflight::{InflightBudget, InflightPermit};

/// The largest zstd window a body may need: 8 MiB, the limit RFC 9659 sets for HTTP.
/// A zstd decoder allocates its frame's window up front (a frame may declare 128 MiB
/// by default), so the limit is enforced and the whole window charged.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// What a gzip decoder holds besides its output: the 32 KiB window and its input buffer.
const GZIP_DECODER_BYTES: usize = 64 * 1024;

/// A body of at most this many compressed bytes is decompressed on the async worker
/// while its output buffer holds at most this many (the first step: a small body, the
/// fleet's usual, never hops to the blocking pool); any other step runs on the
/// blocking pool. An inline step reads and writes at most this much.
const INLINE_FILL_BYTES: usize = MIN_GROWTH_BYTES;

impl RawBody {
    /// Decompresses to at most `max_bytes`, growing `permit` to cover the compressed
    /// body, the decoder (its piece buffer and window; 8 MiB for zstd) and the output
    /// buffer before the output grows: a bomb is refused (413, or 503 when the budget
    /// has no room) having held no more than it was charged. Each step but a small
    /// body's first ([`INLINE_FILL_BYTES`]) runs on the blocking pool until the output
    /// is full; waiting for budget happens here, on the async side, so a flood of bombs
    /// never parks blocking threads.
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
            let filled = if raw_len <= INLINE_FILL_BYTES && capacity <= INLINE_FILL_BYTES {
                inflater.fill()
            } else {
                let (back, filled) = tokio::task::spawn_blocking(move || {
                    let filled = inflater.fill();
                    (inflater, filled)
                })
                .await
                .map_err(|error| {
                    ApiError::Internal(format!("decompression task failed: {error}"))
                })?;
                inflater = back;
                filled
            };
            if filled? == Fill::Finished {
                let bytes = inflater.finish();
                // The compressed body and the decoder are gone: keep only the output.
                budget.shrink(permit, bytes.len());
                return Ok(Payload { format, bytes });
            }
        }
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
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
