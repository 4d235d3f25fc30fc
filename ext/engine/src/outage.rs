//! `Outage`: whether delivery is failing now, since when, and what the failure cost.
//!
//! Owns the two reports of an outage: one when delivery starts failing (the first
//! failed attempt after a success, or since the engine started) and one when it
//! recovers (the next 2xx), the second with what happened in between -- how long it
//! lasted, how many entries waited, requests were retried and entries were dropped.
//! A 429 is not an outage (the server is there and asked for a pause). It never
//! reports per batch or per attempt, never blocks (one short lock per attempt's
//! outcome) and never decides about retrying.

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::stats::Counters;

/// Counter values when an outage began, to tell what it cost at its end.
#[derive(Debug, Clone, Copy)]
struct Open {
    since: Instant,
    retried: u64,
    dropped: u64,
    failed_attempts: u64,
}

/// The outage in course, if any.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    open: Mutex<Option<Open>>,
}

impl Outage {
    /// An attempt failed with `error`: the message of the report that says delivery
    /// started failing, when this opens an outage; None when one is already open.
    pub fn failed(&self, counters: &Counters, error: &str, waiting: u64) -> Option<String> {
        let mut open = self.lock();
        if let Some(outage) = open.as_mut() {
            outage.failed_attempts += 1;
            return None;
        }
        *open = Some(Open {
            since: Instant::now(),
            retried: counters.retried.load(Ordering::Relaxed),
            dropped: counters.dropped_total(),
            failed_attempts: 1,
        });
        Some(format!(
            "log delivery is failing: {error}; {waiting} {} kept and retried \
             (one more line when it recovers)",
            entries(waiting)
        ))
    }

    /// An attempt was answered 2xx: the message of the report that says delivery
    /// recovered, when this closes an outage; None when none was open.
    pub fn succeeded(&self, counters: &Counters, waiting: u64) -> Option<String> {
        let outage = self.lock().take()?;
        let retried = counters
            .retried
            .load(Ordering::Relaxed)
            .saturating_sub(outage.retried);
        let dropped = counters.dropped_total().saturating_sub(outage.dropped);
        Some(format!(
            "log delivery recovered after {}: {waiting} {} waiting, {} failed {}, {retried} {} \
             retried, {dropped} {} dropped during the outage",
            seconds(outage.since.elapsed()),
            entries(waiting),
            outage.failed_attempts,
            plural(outage.failed_attempts, "attempt", "attempts"),
            plural(retried, "request", "requests"),
            entries(dropped),
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn entries(n: u64) -> &'static str {
    plural(n, "entry", "entries")
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.1} s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_failure_opens_an_outage() {
        let (outage, counters) = (Outage::default(), Counters::default());
        let first = outage.failed(&counters, "connection refused", 3).unwrap();
        assert!(first.contains("connection refused"), "{first}");
        assert!(first.contains("3 entries kept"), "{first}");
        assert_eq!(outage.failed(&counters, "connection refused", 4), None);
        assert!(outage.succeeded(&counters, 0).is_some());
    }

    #[test]
    fn a_success_closes_the_outage_once_with_what_it_cost() {
        let (outage, counters) = (Outage::default(), Counters::default());
        Counters::add(&counters.retried, 10);
        Counters::add(&counters.dropped_queue_full, 1);
        outage.failed(&counters, "HTTP 503", 1);
        outage.failed(&counters, "HTTP 503", 1);
        Counters::add(&counters.retried, 2);
        Counters::add(&counters.dropped_retries_exhausted, 5);
        let recovered = outage.succeeded(&counters, 7).unwrap();
        assert!(
            recovered.contains(
                "7 entries waiting, 2 failed attempts, 2 requests retried, 5 entries dropped"
            ),
            "{recovered}"
        );
        assert_eq!(outage.succeeded(&counters, 0), None);
    }

    #[test]
    fn a_success_without_an_outage_reports_nothing() {
        assert_eq!(Outage::default().succeeded(&Counters::default(), 0), None);
    }
}
