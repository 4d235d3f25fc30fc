//! Error groups kept at ingest: the groups of a group commit's error rows
//! ([`ErrorTally`], by service and fingerprint, with what a new group shows), created
//! before the rows are stored ([`GroupIds::ensure`]). The occurrences are counted by
//! the statement that stores the rows: a row trigger on `logs` (migration
//! `20261208000011_error_occurrences_at_insert.sql`) appends a delta to
//! `error_group_deltas` for every row with a fingerprint, in the rows' own transaction,
//! so an acknowledged error is recorded, nothing is recorded that was not stored, and a
//! group commit stays one `COPY`. `error_fold` adds the deltas to the groups' counts.
//!
//! Two writers (of this instance or another) creating the same group at once get one
//! row: the second's insert waits for the first's and then does nothing. Appending
//! deltas locks no existing row, so concurrent commits never wait for one another.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use sqlx::PgConnection;

use crate::errors::fingerprint::ErrorFingerprint;

/// What a group shows, taken from its first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupTitle {
    title: String,
    exception_class: Option<String>,
    message_template: String,
}

/// The groups of some rows' error occurrences, by (service, fingerprint), in key
/// order, with how many occurrences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTally {
    groups: BTreeMap<(String, String), (GroupTitle, i64)>,
}

impl ErrorTally {
    /// Counts one occurrence of `error` in `service`.
    pub fn add(&mut self, service: &str, error: ErrorFingerprint) {
        let ErrorFingerprint {
            fingerprint,
            title,
            exception_class,
            message_template,
        } = error;
        self.groups
            .entry((service.to_owned(), fingerprint))
            .or_insert_with(|| {
                (
                    GroupTitle {
                        title,
                        exception_class,
                        message_template,
                    },
                    0,
                )
            })
            .1 += 1;
    }

    /// Adds `other`'s occurrences to these.
    pub fn merge(&mut self, other: &ErrorTally) {
        for (key, (title, count)) in &other.groups {
            self.groups
                .entry(key.clone())
                .or_insert_with(|| (title.clone(), 0))
                .1 += count;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many occurrences in all.
    pub fn occurrences(&self) -> i64 {
        self.groups.values().map(|(_, count)| count).sum()
    }
}

/// The groups known to exist, by (service, fingerprint), shared by an instance's
/// writers: a known group costs a commit nothing. Bounded: when full it starts over
/// (fingerprints are a client's to choose).
#[derive(Debug, Default)]
pub struct GroupIds {
    known: Mutex<HashSet<(String, String)>>,
}

/// Groups kept known at most.
const MAX_KNOWN_GROUPS: usize = 10_000;

impl GroupIds {
    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes sure every group of `tally` exists before its rows are stored (the rows'
    /// trigger counts an occurrence only for a group that exists). Groups not known yet
    /// are created (count 0, no occurrence: readers leave them out until the fold counts
    /// some) in one statement on `conn` outside any transaction; a group that exists
    /// costs nothing. Two writers creating the same group get one row: the second insert
    /// waits for the first (autocommit, short) and does nothing; either way the group
    /// exists, committed, when this returns.
    pub async fn ensure(
        &self,
        conn: &mut PgConnection,
        tally: &ErrorTally,
    ) -> Result<(), sqlx::Error> {
        let missing: Vec<(&(String, String), &GroupTitle)> = {
            let known = self.known();
            tally
                .groups
                .iter()
                .filter(|(key, _)| !known.contains(*key))
                .map(|(key, (title, _))| (key, title))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        create_groups(conn, &missing).await?;
        let mut known = self.known();
        if known.len() + missing.len() > MAX_KNOWN_GROUPS {
            known.clear();
        }
        for (key, _) in missing {
            known.insert(key.clone());
        }
        Ok(())
    }
}

/// Creates the groups `missing` that do not exist yet, in key order (so concurrent
/// creators wait for each other in one order).
async fn create_groups(
    conn: &mut PgConnection,
    missing: &[(&(String, String), &GroupTitle)],
) -> Result<(), sqlx::Error> {
    let services: Vec<&str> = missing.iter().map(|((s, _), _)| s.as_str()).collect();
    let fingerprints: Vec<&str> = missing.iter().map(|((_, f), _)| f.as_str()).collect();
    let titles: Vec<&str> = missing.iter().map(|(_, g)| g.title.as_str()).collect();
    let classes: Vec<Option<&str>> = missing
        .iter()
        .map(|(_, g)| g.exception_class.as_deref())
        .collect();
    let templates: Vec<&str> = missing
        .iter()
        .map(|(_, g)| g.message_template.as_str())
        .collect();
    sqlx::query(
        "INSERT INTO error_groups (service, fingerprint, title, exception_class, \
                                   message_template, count) \
         SELECT service, fingerprint, title, exception_class, message_template, 0 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
              AS w(service, fingerprint, title, exception_class, message_template) \
         ORDER BY service, fingerprint \
         ON CONFLICT (service, fingerprint) DO NOTHING",
    )
    .bind(services)
    .bind(fingerprints)
    .bind(titles)
    .bind(classes)
    .bind(templates)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes per-minute counts older than `days` (entry time, as retention deletes
/// entries); the groups and their all-time counts stay. Returns how many.
/// Under the group writers' lock, so it never deadlocks with a fold.
pub async fn delete_expired_minutes(pool: &sqlx::PgPool, days: u32) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    super::error_fold::lock_groups(&mut tx).await?;
    let deleted = sqlx::query(
        "DELETE FROM error_group_minutes WHERE bucket < now() - make_interval(days => $1)",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(fingerprint: &str) -> ErrorFingerprint {
        ErrorFingerprint {
            fingerprint: fingerprint.to_owned(),
            title: "E: boom".to_owned(),
            exception_class: Some("E".to_owned()),
            message_template: "boom".to_owned(),
        }
    }

    #[test]
    fn occurrences_are_tallied_per_group_and_merged() {
        let mut one = ErrorTally::default();
        one.add("web", error("a"));
        one.add("web", error("a"));
        one.add("jobs", error("a"));
        let mut two = ErrorTally::default();
        two.add("web", error("a"));
        two.add("web", error("b"));
        one.merge(&two);
        assert_eq!(one.occurrences(), 5);
        assert_eq!(one.groups.len(), 3);
        assert_eq!(one.groups[&("web".to_owned(), "a".to_owned())].1, 3);
    }
}
