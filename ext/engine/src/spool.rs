//! The spool: batches the service could not take at exit, kept on disk for the next
//! process that starts an engine on the same directory.
//!
//! Owns the spool directory's file names, the file format, the byte bound, claiming
//! files (a rename, so two processes never deliver one file), and moving unreadable
//! files aside. It performs blocking file I/O only (callers run it off the caller's
//! thread or at shutdown); it never sends anything, never touches counters, and never
//! panics on what it reads: every file in the directory is untrusted input.
//!
//! Names in the directory (`<id>` is `<pid>-<16 hex random>` of the writing process):
//! - `log_ingestion-<id>.spool`: ready for recovery;
//! - `log_ingestion-<id>.spool.claimed-<pid>`: being delivered by process `<pid>`;
//!   reclaimable when that process is gone;
//! - `.log_ingestion-<id>.spool.tmp`: being written (removed when its writer is gone);
//! - `log_ingestion-<id>.spool.skipped`: unreadable, moved aside (at most
//!   [`MAX_SKIPPED_FILES`] are kept, the oldest removed first);
//! - `.lock`: taken (`flock`) while a file is written, so that two processes exiting
//!   at once stay within the bound together.
//!
//! File format (integers little-endian): the magic `LGISPOOL`, a `u32` version (1),
//! then records until the end of the file, each a `u32` payload length, a `u32` CRC-32
//! of the payload, and the payload: `u8` endpoint (0 batch, 1 single), `u8` gzipped
//! (0/1), `u32` entry count, `u8` idempotency key length, the key (ASCII), the request
//! body exactly as it was (or would have been) sent.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

use crate::transport::{Endpoint, PreparedRequest};

/// The first bytes of every spool file.
pub(crate) const MAGIC: &[u8; 8] = b"LGISPOOL";
/// The format this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Unreadable files kept aside for inspection; older ones are removed.
pub const MAX_SKIPPED_FILES: usize = 8;

const PREFIX: &str = "log_ingestion-";
const READY: &str = ".spool";
const CLAIMED: &str = ".spool.claimed-";
const SKIPPED: &str = ".spool.skipped";
const TEMP_SUFFIX: &str = ".spool.tmp";
const LOCK: &str = ".lock";
const HEADER_BYTES: usize = 12;
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

/// A spool file claimed by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Where it is now (`...spool.claimed-<our pid>`).
    pub path: PathBuf,
    /// Its ready name, for handing it back.
    pub ready: PathBuf,
}

/// What writing a spool file achieved.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The file written (None when nothing was).
    pub path: Option<PathBuf>,
    pub spooled_entries: u64,
    /// Entries of batches that did not fit the bound.
    pub over_bound_entries: u64,
    /// Set when nothing could be written at all.
    pub error: Option<String>,
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

/// Writes `batches` to one new spool file in `dir`, oldest first, within
/// `max_spool_bytes` for the whole directory: a batch that does not fit is left out
/// (its entries are counted in `over_bound_entries`). Written to a temporary name,
/// fsynced, renamed, and the directory fsynced.
pub(crate) fn write(dir: &Path, max_spool_bytes: u64, batches: &[PreparedRequest]) -> Written {
    let total: u64 = batches.iter().map(|b| b.entries as u64).sum();
    match write_locked(dir, max_spool_bytes, batches) {
        Ok(written) => written,
        Err(error) => Written {
            path: None,
            spooled_entries: 0,
            over_bound_entries: 0,
            error: Some(format!(
                "could not write the spool in {}: {error} ({total} entries)",
                dir.display()
            )),
        },
    }
}

fn write_locked(
    dir: &Path,
    max_spool_bytes: u64,
    batches: &[PreparedRequest],
) -> std::io::Result<Written> {
    fs::create_dir_all(dir)?;
    let lock = DirLock::take(dir)?;
    let used = usage(dir)?;
    let mut budget = max_spool_bytes
        .saturating_sub(used)
        .saturating_sub(HEADER_BYTES as u64);
    let mut kept = Vec::new();
    let mut written = Written::default();
    for batch in batches {
        let len = record_len(batch) as u64;
        if len <= budget {
            budget -= len;
            written.spooled_entries += batch.entries as u64;
            kept.push(batch);
        } else {
            written.over_bound_entries += batch.entries as u64;
        }
    }
    if kept.is_empty() {
        return Ok(written);
    }
    let id = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
    let temp = dir.join(format!(".{PREFIX}{id}{TEMP_SUFFIX}"));
    let ready = dir.join(format!("{PREFIX}{id}{READY}"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(&encode(&kept))?;
        file.sync_all()?;
        fs::rename(&temp, &ready)?;
        sync_dir(dir)
    })();
    drop(lock);
    if let Err(error) = result {
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    written.path = Some(ready);
    Ok(written)
}

/// Bytes of the spool's own files in `dir` (ready, claimed, skipped, being written).
pub(crate) fn usage(dir: &Path) -> std::io::Result<u64> {
    let mut used = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) || name.starts_with(&format!(".{PREFIX}")) {
            used += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    Ok(used)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// An exclusive `flock` on `dir/.lock`, released when dropped (or when the process ends).
struct DirLock(#[allow(dead_code)] File);

impl DirLock {
    fn take(dir: &Path) -> std::io::Result<DirLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))?;
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            // SAFETY: flock on a descriptor this function owns; no memory is shared.
            let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if status != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(DirLock(file))
    }
}

/// The files this process holds claims on, and whether it may claim more.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    state: Mutex<ClaimsState>,
}

#[derive(Debug, Default)]
struct ClaimsState {
    closed: bool,
    held: Vec<Claim>,
}

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, ClaimsState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Renames `from` to `claim.path` unless claims are closed; false when not claimed.
    fn take(&self, from: &Path, claim: &Claim) -> bool {
        let mut state = self.lock();
        if state.closed || fs::rename(from, &claim.path).is_err() {
            return false;
        }
        state.held.push(claim.clone());
        true
    }

    /// A claimed file was delivered: removed.
    pub fn delivered(&self, claim: &Claim) {
        self.lock().held.retain(|held| held != claim);
        let _ = fs::remove_file(&claim.path);
    }

    /// A claimed file could not be read: moved aside.
    pub fn unreadable(&self, dir: &Path, claim: &Claim) -> Option<PathBuf> {
        self.lock().held.retain(|held| held != claim);
        set_aside(dir, claim)
    }

    /// No more claims; every file still held is handed back for the next process
    /// (batches of it already delivered are sent again with their keys: stored once).
    pub fn release_all(&self) -> usize {
        let mut state = self.lock();
        state.closed = true;
        let held = std::mem::take(&mut state.held);
        for claim in &held {
            let _ = fs::rename(&claim.path, &claim.ready);
        }
        held.len()
    }
}

/// Claims every spool file of `dir` this process may deliver: ready files, and files
/// claimed by a process that is gone. Also removes temporary files of writers that are
/// gone. A missing directory is an empty spool. Answers the claims made, in name order.
pub(crate) fn claim_all(dir: &Path, pid: u32, claims: &Claims) -> std::io::Result<Vec<Claim>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut claimed = Vec::new();
    for name in names {
        if let Some(rest) = name.strip_prefix(&format!(".{PREFIX}")) {
            if let Some(id) = rest.strip_suffix(TEMP_SUFFIX) {
                if writer_pid(id).is_some_and(|p| p != pid && !alive(p)) {
                    let _ = fs::remove_file(dir.join(&name));
                }
            }
            continue;
        }
        if !name.starts_with(PREFIX) {
            continue;
        }
        let ready_name = if name.ends_with(READY) {
            name.clone()
        } else if let Some(at) = name.find(CLAIMED) {
            let holder: Option<u32> = name[at + CLAIMED.len()..].parse().ok();
            match holder {
                Some(holder) if holder != pid && !alive(holder) => {
                    name[..at + READY.len()].to_owned()
                }
                _ => continue,
            }
        } else {
            continue;
        };
        let claim = Claim {
            path: dir.join(format!("{ready_name}{CLAIMED}{pid}")),
            ready: dir.join(&ready_name),
        };
        if claims.take(&dir.join(&name), &claim) {
            claimed.push(claim);
        }
    }
    Ok(claimed)
}

/// The pid in `<pid>-<random>`.
fn writer_pid(id: &str) -> Option<u32> {
    id.split('-').next()?.parse().ok()
}

/// Reads a claimed file, refusing one larger than `max_bytes`.
pub(crate) fn read(path: &Path, max_bytes: u64) -> Result<Vec<PreparedRequest>, Unreadable> {
    let file = File::open(path).map_err(|e| Unreadable::Io(e.to_string()))?;
    let len = file
        .metadata()
        .map_err(|e| Unreadable::Io(e.to_string()))?
        .len();
    if len > max_bytes {
        return Err(Unreadable::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Unreadable::Io(e.to_string()))?;
    if bytes.len() as u64 > max_bytes {
        return Err(Unreadable::TooLarge(bytes.len() as u64));
    }
    decode(&bytes)
}

/// Moves an unreadable claimed file aside (`.skipped`), keeping at most
/// [`MAX_SKIPPED_FILES`] of them; answers where it went (None: removed).
fn set_aside(dir: &Path, claim: &Claim) -> Option<PathBuf> {
    let name = claim.ready.file_name()?.to_string_lossy().into_owned();
    let base = name.strip_suffix(READY).unwrap_or(&name);
    let aside = dir.join(format!("{base}{SKIPPED}"));
    if fs::rename(&claim.path, &aside).is_err() {
        let _ = fs::remove_file(&claim.path);
        return None;
    }
    prune_skipped(dir);
    aside.exists().then_some(aside)
}

fn prune_skipped(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut skipped: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(PREFIX) && name.ends_with(SKIPPED)
        })
        .map(|e| {
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, e.path())
        })
        .collect();
    if skipped.len() <= MAX_SKIPPED_FILES {
        return;
    }
    skipped.sort();
    for (_, path) in &skipped[..skipped.len() - MAX_SKIPPED_FILES] {
        let _ = fs::remove_file(path);
    }
}

/// Whether process `pid` exists (a process we may not signal exists too).
#[cfg(unix)]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks whether the process exists; nothing is sent.
    let status = unsafe { libc::kill(pid, 0) };
    status == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_pid: u32) -> bool {
    true
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
