//! The spool file format, and nothing else: encoding batches into one file's bytes and
//! decoding them back, rejecting any fault (every byte read is untrusted input).
//!
//! File format (integers little-endian): the magic `LGISPOOL`, a `u32` version (1),
//! then records until the end of the file, each a `u32` payload length, a `u32` CRC-32
//! of the payload, and the payload: `u8` endpoint (0 batch, 1 single), `u8` gzipped
//! (0/1), `u32` entry count, `u8` idempotency key length, the key (ASCII), the request
//! body exactly as it was (or would have been) sent.

use bytes::Bytes;

use crate::transport::{Endpoint, PreparedRequest};

/// The first bytes of every spool file.
pub(crate) const MAGIC: &[u8; 8] = b"LGISPOOL";
/// The format this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Bytes of the file header (magic and version).
pub(super) const HEADER_BYTES: usize = 12;
const RECORD_HEADER_BYTES: usize = 8;
/// Most entries one record may claim (the gem's batch_size is at most 10,000).
const MAX_RECORD_ENTRIES: u32 = 100_000;

/// Why a spool file was skipped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Unreadable {
    #[error("not a spool file (unknown magic)")]
    Foreign,
    #[error("written by a newer version of the gem (format {0})")]
    FutureVersion(u32),
    #[error("truncated")]
    Truncated,
    #[error("corrupt record {0} (checksum or fields)")]
    Corrupt(usize),
    #[error("larger than max_spool_bytes ({0} bytes)")]
    TooLarge(u64),
    #[error("could not be read: {0}")]
    Io(String),
}

/// Encodes `batches` as one spool file's bytes.
pub(crate) fn encode(batches: &[&PreparedRequest]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(HEADER_BYTES + batches.iter().map(|b| record_len(b)).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    for batch in batches {
        encode_record(&mut out, batch);
    }
    out
}

/// Bytes one batch takes in a spool file.
pub(crate) fn record_len(batch: &PreparedRequest) -> usize {
    RECORD_HEADER_BYTES + payload_len(batch)
}

fn payload_len(batch: &PreparedRequest) -> usize {
    1 + 1 + 4 + 1 + key_bytes(batch).len() + batch.body.len()
}

fn key_bytes(batch: &PreparedRequest) -> &[u8] {
    let key = batch.idempotency_key.as_bytes();
    &key[..key.len().min(255)]
}

fn encode_record(out: &mut Vec<u8>, batch: &PreparedRequest) {
    let mut payload = Vec::with_capacity(payload_len(batch));
    payload.push(match batch.endpoint {
        Endpoint::Batch => 0,
        Endpoint::Single => 1,
    });
    payload.push(u8::from(batch.gzipped));
    let entries = u32::try_from(batch.entries).unwrap_or(u32::MAX);
    payload.extend_from_slice(&entries.to_le_bytes());
    let key = key_bytes(batch);
    payload.push(key.len() as u8);
    payload.extend_from_slice(key);
    payload.extend_from_slice(&batch.body);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Reads a whole spool file's bytes back into batches; any fault rejects the file.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<PreparedRequest>, Unreadable> {
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            Unreadable::Truncated
        } else {
            Unreadable::Foreign
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Unreadable::Foreign);
    }
    let version = read_u32(bytes, MAGIC.len()).ok_or(Unreadable::Truncated)?;
    if version != VERSION {
        return Err(Unreadable::FutureVersion(version));
    }
    let mut batches = Vec::new();
    let mut at = HEADER_BYTES;
    while at < bytes.len() {
        let index = batches.len();
        let len = read_u32(bytes, at).ok_or(Unreadable::Truncated)? as usize;
        let crc = read_u32(bytes, at + 4).ok_or(Unreadable::Truncated)?;
        let start = at + RECORD_HEADER_BYTES;
        let end = start.checked_add(len).ok_or(Unreadable::Corrupt(index))?;
        let payload = bytes.get(start..end).ok_or(Unreadable::Truncated)?;
        if crc32fast::hash(payload) != crc {
            return Err(Unreadable::Corrupt(index));
        }
        batches.push(decode_payload(payload).ok_or(Unreadable::Corrupt(index))?);
        at = end;
    }
    Ok(batches)
}

fn decode_payload(payload: &[u8]) -> Option<PreparedRequest> {
    let endpoint = match *payload.first()? {
        0 => Endpoint::Batch,
        1 => Endpoint::Single,
        _ => return None,
    };
    let gzipped = match *payload.get(1)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let entries = read_u32(payload, 2)?;
    if entries == 0 || entries > MAX_RECORD_ENTRIES {
        return None;
    }
    let key_len = usize::from(*payload.get(6)?);
    let key = payload.get(7..7 + key_len)?;
    let key_is_header_safe = !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic());
    if !key_is_header_safe {
        return None;
    }
    let body = payload.get(7 + key_len..)?;
    if body.is_empty() {
        return None;
    }
    Some(PreparedRequest {
        endpoint,
        body: Bytes::copy_from_slice(body),
        gzipped,
        idempotency_key: String::from_utf8(key.to_vec()).ok()?,
        entries: entries as usize,
    })
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(key: &str, body: &str, entries: usize) -> PreparedRequest {
        PreparedRequest {
            endpoint: Endpoint::Batch,
            body: Bytes::from(body.to_owned()),
            gzipped: false,
            idempotency_key: key.to_owned(),
            entries,
        }
    }

    #[test]
    fn batches_come_back_with_their_keys_and_bodies() {
        let a = batch("key-a", r#"{"logs":[{"m":1}]}"#, 1);
        let b = batch("key-b", r#"{"logs":[{"m":2},{"m":3}]}"#, 2);
        let back = decode(&encode(&[&a, &b])).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].idempotency_key, "key-b");
        assert_eq!(&back[1].body[..], b.body.as_ref());
        assert_eq!(back[1].entries, 2);
    }

    #[test]
    fn a_flipped_byte_is_a_corrupt_record() {
        let mut bytes = encode(&[&batch("k", "{}", 1)]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert_eq!(decode(&bytes).unwrap_err(), Unreadable::Corrupt(0));
    }

    #[test]
    fn a_cut_file_is_truncated() {
        let bytes = encode(&[&batch("k", r#"{"logs":[]}"#, 1)]);
        assert_eq!(
            decode(&bytes[..bytes.len() - 3]).unwrap_err(),
            Unreadable::Truncated
        );
    }

    #[test]
    fn another_magic_is_foreign_and_a_newer_version_is_refused() {
        assert_eq!(
            decode(b"GIF89a-something").unwrap_err(),
            Unreadable::Foreign
        );
        let mut bytes = encode(&[]);
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap_err(), Unreadable::FutureVersion(2));
    }

    #[test]
    fn a_huge_record_length_is_truncated_not_a_panic() {
        let mut bytes = encode(&[]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(decode(&bytes).unwrap_err(), Unreadable::Truncated);
    }
}
