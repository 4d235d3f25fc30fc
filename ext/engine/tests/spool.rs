//! The spool: what the service cannot take at exit is written to `spool_dir` and
//! delivered by the next engine started on it, with its original idempotency keys.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use log_ingestion_engine::{Cancel, Engine, EngineConfig, ErrorKind, ErrorReport};
use support::{entry, start, test_config, wait_until, FaultServer, Reply, SOON};

/// A URL nothing listens on: every connection is refused.
fn refused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// A fresh directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let path = std::env::temp_dir().join(format!("li-spool-{:016x}", rand_u64()));
        Dir(path)
    }

    /// File names in the directory, sorted (none when it does not exist).
    fn names(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Names of the files ready for recovery.
    fn ready(&self) -> Vec<String> {
        self.with_suffix(".spool")
    }

    fn with_suffix(&self, suffix: &str) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| n.ends_with(suffix))
            .collect()
    }

    fn bytes(&self) -> u64 {
        self.names()
            .iter()
            .map(|n| std::fs::metadata(self.0.join(n)).unwrap().len())
            .sum()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos()));
    hasher.finish()
}

fn spooling(url: &str, dir: &Path) -> EngineConfig {
    EngineConfig {
        batch_size: 10,
        max_retry_elapsed: Duration::from_secs(3600),
        spool_dir: Some(dir.to_path_buf()),
        max_spool_bytes: 64 * 1024 * 1024,
        ..test_config(url)
    }
}

/// Every failure report the engine has left, past an outage's own reports (it is shut
/// down: `next_failure` ends when empty).
fn reports(engine: &Engine) -> Vec<ErrorReport> {
    std::iter::from_fn(|| support::next_failure(engine, Duration::from_secs(1))).collect()
}

/// Runs an engine against a refusing URL that logs `messages` and exits: its spool.
fn spool_messages(dir: &Path, messages: impl IntoIterator<Item = String>) -> u64 {
    let engine = start(spooling(&refused_url(), dir));
    for message in messages {
        assert!(engine.enqueue(entry(message)).is_accepted());
    }
    engine.shutdown(SOON).spooled
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// How many times the server accepted each message.
fn counts(server: &FaultServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in server.accepted_messages() {
        *counts.entry(message).or_insert(0) += 1;
    }
    counts
}

#[test]
fn what_a_refusing_service_leaves_at_exit_is_spooled_and_reported_in_one_report() {
    let dir = Dir::new();
    let engine = start(spooling(&refused_url(), &dir.0));
    for message in numbered("m", 35) {
        assert!(engine.enqueue(entry(message)).is_accepted());
    }
    engine.flush(Duration::ZERO, &Cancel::new());
    wait_until(SOON, || engine.stats().retried > 0);

    let report = engine.shutdown(SOON);

    assert_eq!((report.spooled, report.undelivered), (35, 0));
    let stats = engine.stats();
    assert_eq!((stats.spooled, stats.dropped_at_shutdown), (35, 0));
    assert_eq!(
        dir.ready().len(),
        1,
        "one file per process: {:?}",
        dir.names()
    );
    let reports = reports(&engine);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        (reports[0].kind, reports[0].entries_lost),
        (ErrorKind::Shutdown, 0)
    );
    assert!(
        reports[0].message.contains("35 entries spooled to")
            && reports[0].message.contains("refused the connection"),
        "{}",
        reports[0].message
    );
}

#[test]
fn without_a_spool_dir_what_a_refusing_service_leaves_is_lost_in_one_report() {
    let engine = start(EngineConfig {
        spool_dir: None,
        ..spooling(&refused_url(), Path::new("unused"))
    });
    for message in numbered("m", 25) {
        assert!(engine.enqueue(entry(message)).is_accepted());
    }

    let report = engine.shutdown(SOON);

    assert_eq!((report.spooled, report.undelivered), (0, 25));
    assert_eq!(engine.stats().dropped_at_shutdown, 25);
    let reports = reports(&engine);
    assert_eq!(reports.len(), 1, "three batches, one report: {reports:?}");
    assert_eq!(reports[0].entries_lost, 25);
    assert!(
        reports[0].message.contains("no spool_dir"),
        "{}",
        reports[0].message
    );
}

#[test]
fn the_next_engine_delivers_the_spool_with_the_original_idempotency_keys() {
    let dir = Dir::new();
    let down = FaultServer::start(vec![Reply::Unavailable(None); 10_000]);
    let first = start(spooling(&down.url, &dir.0));
    for message in numbered("kept", 3) {
        assert!(first.enqueue(entry(message)).is_accepted());
    }
    first.flush(Duration::ZERO, &Cancel::new());
    let sent = down.wait_for_requests(1, SOON);
    let key = sent[0].header("idempotency-key").unwrap();
    // Still retrying when the timeout passes: the batch in flight is spooled.
    assert_eq!(first.shutdown(Duration::from_millis(200)).spooled, 3);
    drop(down);

    let up = FaultServer::start(vec![]);
    let next = start(spooling(&up.url, &dir.0));

    assert_eq!(up.wait_for_messages(3, SOON), numbered("kept", 3));
    assert_eq!(up.received()[0].header("idempotency-key"), Some(key));
    assert!(wait_until(SOON, || dir
        .names()
        .iter()
        .all(|n| n == ".lock")));
    assert_eq!(next.stats().recovered, 3);
    next.shutdown(SOON);
}

#[test]
fn two_engines_starting_at_once_deliver_each_spooled_entry_once() {
    let dir = Dir::new();
    let mut expected = Vec::new();
    for file in 0..4 {
        let messages = numbered(&format!("f{file}"), 30);
        expected.extend(messages.clone());
        assert_eq!(spool_messages(&dir.0, messages), 30);
    }
    assert_eq!(dir.ready().len(), 4);

    let server = FaultServer::start(vec![]);
    let barrier = Arc::new(Barrier::new(2));
    let engines: Vec<Engine> = (0..2)
        .map(|_| {
            let barrier = Arc::clone(&barrier);
            let config = spooling(&server.url, &dir.0);
            std::thread::spawn(move || {
                barrier.wait();
                start(config)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();

    assert!(wait_until(SOON, || dir
        .names()
        .iter()
        .all(|n| n == ".lock")));
    expected.sort();
    let counts = counts(&server);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let recovered: u64 = engines.iter().map(|e| e.stats().recovered).sum();
    assert_eq!(recovered, 120);
}

#[test]
fn unreadable_spool_files_are_skipped_counted_and_moved_aside() {
    let dir = Dir::new();
    assert_eq!(spool_messages(&dir.0, numbered("good", 5)), 5);
    let good = dir.0.join(&dir.ready()[0]);
    let bytes = std::fs::read(&good).unwrap();
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&9u32.to_le_bytes());
    let bad: [(&str, Vec<u8>); 4] = [
        ("corrupt", flipped),
        ("truncated", bytes[..bytes.len() - 7].to_vec()),
        ("future", future),
        ("foreign", b"PK\x03\x04 not a spool at all".to_vec()),
    ];
    for (name, content) in &bad {
        std::fs::write(dir.0.join(format!("log_ingestion-1-{name}.spool")), content).unwrap();
    }
    std::fs::write(dir.0.join("notes.txt"), "not ours").unwrap();

    let server = FaultServer::start(vec![]);
    let engine = start(spooling(&server.url, &dir.0));

    assert_eq!(server.wait_for_messages(5, SOON), numbered("good", 5));
    assert!(wait_until(SOON, || engine.stats().spool_skipped == 4));
    assert!(wait_until(SOON, || dir.with_suffix(".skipped").len() == 4));
    assert!(dir.ready().is_empty(), "{:?}", dir.names());
    assert!(dir.names().contains(&"notes.txt".to_owned()));
    let mut skipped = Vec::new();
    let four = wait_until(SOON, || {
        while let Some(report) = support::next_failure(&engine, Duration::ZERO) {
            skipped.push(report);
        }
        skipped.len() >= 4
    });
    assert!(four, "{skipped:?}");
    assert!(skipped.iter().all(|r| r.kind == ErrorKind::Internal
        && r.entries_lost == 0
        && r.message.contains("skipped")));
    engine.shutdown(SOON);
}

#[test]
fn the_spool_stays_within_max_spool_bytes_and_counts_what_did_not_fit() {
    let dir = Dir::new();
    let bounded = |url: &str| EngineConfig {
        batch_size: 5,
        max_spool_bytes: 4096,
        ..spooling(url, &dir.0)
    };
    let engine = start(bounded(&refused_url()));
    for message in numbered(&"x".repeat(200), 50) {
        assert!(engine.enqueue(entry(message)).is_accepted());
    }

    let report = engine.shutdown(SOON);

    assert!(report.spooled > 0 && report.undelivered > 0, "{report:?}");
    assert_eq!(report.spooled + report.undelivered, 50);
    assert!(dir.bytes() <= 4096, "{} bytes", dir.bytes());
    let stats = engine.stats();
    assert_eq!(
        (stats.spooled, stats.dropped_at_shutdown),
        (report.spooled, report.undelivered)
    );
    let reports = reports(&engine);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].entries_lost, report.undelivered);
    assert!(
        reports[0].message.contains("did not fit max_spool_bytes"),
        "{}",
        reports[0].message
    );

    // A full spool takes nothing more.
    let full = start(bounded(&refused_url()));
    for _ in 0..5 {
        full.enqueue(entry("x".repeat(600)));
    }
    assert_eq!(full.shutdown(SOON).spooled, 0);
    assert!(dir.bytes() <= 4096);
}

#[test]
fn a_claim_of_a_dead_process_is_taken_over_and_a_live_ones_is_left() {
    let dir = Dir::new();
    assert_eq!(spool_messages(&dir.0, numbered("dead", 3)), 3);
    assert_eq!(spool_messages(&dir.0, numbered("live", 3)), 3);
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let ready = dir.ready();
    let (first, second) = (&ready[0], &ready[1]);
    let (dead_file, live_file) = {
        let first_is_dead = std::fs::read(dir.0.join(first))
            .unwrap()
            .windows(4)
            .any(|w| w == b"dead");
        if first_is_dead {
            (first, second)
        } else {
            (second, first)
        }
    };
    std::fs::rename(
        dir.0.join(dead_file),
        dir.0.join(format!("{dead_file}.claimed-{dead_pid}")),
    )
    .unwrap();
    // Process 1 always exists.
    let live_claim = format!("{live_file}.claimed-1");
    std::fs::rename(dir.0.join(live_file), dir.0.join(&live_claim)).unwrap();

    let server = FaultServer::start(vec![]);
    let engine = start(spooling(&server.url, &dir.0));

    assert_eq!(server.wait_for_messages(3, SOON), numbered("dead", 3));
    assert!(wait_until(SOON, || dir.names().len() == 2));
    assert_eq!(dir.names(), vec![".lock".to_owned(), live_claim]);
    engine.shutdown(SOON);
}

#[test]
fn a_spool_still_being_recovered_at_shutdown_is_handed_back_whole() {
    let dir = Dir::new();
    assert_eq!(spool_messages(&dir.0, numbered("again", 4)), 4);
    let name = dir.ready()[0].clone();
    let down = FaultServer::start(vec![Reply::Unavailable(None); 10_000]);
    let engine = start(spooling(&down.url, &dir.0));
    down.wait_for_requests(1, SOON);
    assert!(dir.ready().is_empty(), "claimed while recovering");

    let report = engine.shutdown(Duration::from_millis(100));

    assert_eq!((report.spooled, report.undelivered), (0, 0));
    assert_eq!(dir.ready(), vec![name]);
    assert_eq!(engine.stats().recovered, 0);
}

#[test]
fn a_spool_dir_that_cannot_be_written_loses_the_entries_and_says_why() {
    let dir = Dir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let not_a_dir = dir.0.join("a-file");
    std::fs::write(&not_a_dir, "in the way").unwrap();
    let engine = start(spooling(&refused_url(), &not_a_dir));
    for message in numbered("m", 12) {
        assert!(engine.enqueue(entry(message)).is_accepted());
    }

    let report = engine.shutdown(SOON);

    assert_eq!((report.spooled, report.undelivered), (0, 12));
    assert_eq!(engine.stats().dropped_at_shutdown, 12);
    let exit = reports(&engine)
        .into_iter()
        .find(|r| r.kind == ErrorKind::Shutdown)
        .expect("the exit's report");
    assert_eq!(exit.entries_lost, 12);
    assert!(
        exit.message.contains("could not write the spool"),
        "{}",
        exit.message
    );
}
