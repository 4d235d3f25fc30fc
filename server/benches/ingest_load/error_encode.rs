//! The server's own share of the price of error grouping, measured in this process:
//! the request bodies of both sides of the pairs read, validated and encoded as `COPY`
//! rows exactly as `POST /api/v1/logs/batch` does (`LogEntry::from_json`,
//! `CopyRows::push`: fingerprints and tallies included), then each group commit's
//! tallies merged and its deltas written (`ErrorTally::merge`, `OccurrenceDeltas::of`),
//! in rounds of one group commit's requests, the two sides alternately, each round
//! repeated and its fastest time kept: a round is short (a fraction of a millisecond),
//! so its fastest repetition is one no other process interrupted. No network, no
//! database, no other process in it: the price the noise of the HTTP pairs hides.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use log_ingestion_server::config::EntryLimits;
use log_ingestion_server::domain::LogEntry;
use log_ingestion_server::storage::copy_text::CopyRows;
use log_ingestion_server::storage::error_groups::{ErrorTally, Ids, OccurrenceDeltas};
use log_ingestion_test_support::bench::{BenchError, Result};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Repetitions of each round; the fastest counts (one in a smoke run).
const REPEATS: usize = 7;
/// Bodies measured (of batch 100: 20,000 entries).
const BODIES: usize = 200;
/// Requests per group commit in the HTTP phases (~216 rows per `COPY`): one round.
const BODIES_PER_GROUP: usize = 2;

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    logs: Vec<&'a RawValue>,
}

/// One group commit's requests read and encoded, their tallies merged and the deltas
/// written; returns the time and the entries.
fn one_group(bodies: &[(usize, Bytes)]) -> Result<(Duration, usize)> {
    let limits = EntryLimits::default();
    let started = Instant::now();
    let mut entries = 0;
    let mut tally = ErrorTally::default();
    for (_, body) in bodies {
        let batch: Batch<'_> = serde_json::from_slice(body)?;
        let now = Utc::now();
        let mut rows = CopyRows::with_capacity(body.len(), Default::default());
        for raw in batch.logs {
            let entry = LogEntry::from_json(raw, &limits, now)
                .map_err(|problems| BenchError::Setup(problems.join("; ")))?;
            rows.push(&entry);
        }
        entries += rows.len();
        tally.merge(rows.errors());
        std::hint::black_box(rows.as_bytes());
    }
    if !tally.is_empty() {
        // The ids are the database's; any will do for the text's cost.
        let ids: Ids = tally
            .keys()
            .map(|(service, fingerprint)| ((service.to_owned(), fingerprint.to_owned()), 1_000))
            .collect();
        std::hint::black_box(OccurrenceDeltas::of(&tally, &ids));
    }
    Ok((started.elapsed(), entries))
}

/// µs per entry of `clean` and of `failing`: the sum over rounds of each round's
/// fastest repetition, the two sides alternating round by round; `measuring`: else a
/// smoke run, which repeats nothing.
pub(crate) fn measure(
    clean: &[(usize, Bytes)],
    failing: &[(usize, Bytes)],
    measuring: bool,
) -> Result<(f64, f64)> {
    let sides = [
        &clean[..BODIES.min(clean.len())],
        &failing[..BODIES.min(failing.len())],
    ];
    let rounds = sides[0]
        .len()
        .min(sides[1].len())
        .div_ceil(BODIES_PER_GROUP);
    let mut best = vec![[Duration::MAX; 2]; rounds];
    let mut entries = [0usize; 2];
    for repeat in 0..if measuring { REPEATS } else { 1 } {
        for (round, fastest) in best.iter_mut().enumerate() {
            for (side, bodies) in sides.iter().enumerate() {
                let at = round * BODIES_PER_GROUP;
                let end = (at + BODIES_PER_GROUP).min(bodies.len());
                let (elapsed, count) = one_group(&bodies[at..end])?;
                fastest[side] = fastest[side].min(elapsed);
                if repeat == 0 {
                    entries[side] += count;
                }
            }
        }
    }
    let micros = |side: usize| {
        let total: Duration = best.iter().map(|fastest| fastest[side]).sum();
        total.as_secs_f64() * 1e6 / entries[side].max(1) as f64
    };
    Ok((micros(0), micros(1)))
}
