//! The spool: batches the service could not take at exit, kept on disk for the next
//! process that starts an engine on the same directory.
//!
//! Owns the spool directory's file names, the byte bound, claiming
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
//! The file format is [`format`]'s.

mod format;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::transport::PreparedRequest;

pub(crate) use format::Unreadable;
use format::{decode, encode, record_len, HEADER_BYTES};

/// Unreadable files kept aside for inspection; older ones are removed.
pub const MAX_SKIPPED_FILES: usize = 8;

const PREFIX: &str = "log_ingestion-";
const READY: &str = ".spool";
const CLAIMED: &str = ".spool.claimed-";
const SKIPPED: &str = ".spool.skipped";
const TEMP_SUFFIX: &str = ".spool.tmp";
const LOCK: &str = ".lock";

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
