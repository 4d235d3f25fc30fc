//! Error groups kept at ingest: the occurrences of a group commit's rows tallied per
//! group and per minute ([`ErrorTally`]), and turned into deltas ([`Delta`]: rows of
//! `error_group_deltas`) that the group commit appends inside the transaction that
//! stores the rows, so an acknowledged error is recorded and nothing is recorded that
//! was not stored. `error_fold` adds the deltas to the groups' counts and statuses.
//!
//! A delta names its group by id ([`GroupIds`]: known ids are kept; a group seen for
//! the first time is created, with no occurrence, just before the commit). Two writers
//! (of this instance or another) creating the same group at once get one row: the
//! second's insert waits for the first's and then does nothing. Appending deltas locks
//! no existing row, so concurrent commits never wait for one another.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::errors::fingerprint::ErrorFingerprint;

/// One group's occurrences within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupTally {
    title: String,
    exception_class: Option<String>,
    message_template: String,
    /// Occurrences per minute bucket (its start, as seconds since the epoch).
    minutes: BTreeMap<i64, Occurrences>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Occurrences {
    count: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Occurrences {
    fn add(&mut self, other: Occurrences) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

/// The error occurrences of some rows, by (service, fingerprint), in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTally {
    groups: BTreeMap<(String, String), GroupTally>,
}

impl ErrorTally {
    /// Counts one occurrence of `error` in `service` at `timestamp`.
    pub fn add(&mut self, service: &str, error: ErrorFingerprint, timestamp: DateTime<Utc>) {
        let ErrorFingerprint {
            fingerprint,
            title,
            exception_class,
            message_template,
        } = error;
        let group = self
            .groups
            .entry((service.to_owned(), fingerprint))
            .or_insert_with(|| GroupTally {
                title,
                exception_class,
                message_template,
                minutes: BTreeMap::new(),
            });
        let one = Occurrences {
            count: 1,
            first: timestamp,
            last: timestamp,
        };
        group
            .minutes
            .entry(timestamp.timestamp().div_euclid(60) * 60)
            .and_modify(|occurrences| occurrences.add(one))
            .or_insert(one);
    }

    /// Adds `other`'s occurrences to these.
    pub fn merge(&mut self, other: &ErrorTally) {
        for (key, tally) in &other.groups {
            match self.groups.get_mut(key) {
                None => {
                    self.groups.insert(key.clone(), tally.clone());
                }
                Some(group) => {
                    for (bucket, occurrences) in &tally.minutes {
                        group
                            .minutes
                            .entry(*bucket)
                            .and_modify(|mine| mine.add(*occurrences))
                            .or_insert(*occurrences);
                    }
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// How many occurrences in all.
    pub fn occurrences(&self) -> i64 {
        self.groups
            .values()
            .flat_map(|group| group.minutes.values())
            .map(|occurrences| occurrences.count)
            .sum()
    }
}

/// Groups' ids by (service, fingerprint), shared by an instance's writers: a known
/// group costs a commit nothing before its delta. Bounded: when full it starts over
/// (fingerprints are a client's to choose).
#[derive(Debug, Default)]
pub struct GroupIds {
    known: Mutex<HashMap<(String, String), i64>>,
}

/// Groups whose ids are kept at most.
const MAX_KNOWN_GROUPS: usize = 10_000;

impl GroupIds {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), i64>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The deltas of `tally`: one per (group, minute). Groups not known yet are created
    /// first (count 0, no occurrence: readers leave them out until the fold counts
    /// some), in their own statement on `conn` outside any transaction, so the commit
    /// that follows only appends. Two writers creating the same group get one row: the
    /// second insert waits for the first (autocommit, short) and does nothing.
    pub async fn deltas(
        &self,
        conn: &mut PgConnection,
        tally: &ErrorTally,
    ) -> Result<Vec<Delta>, sqlx::Error> {
        let mut ids: Vec<Option<i64>> = {
            let known = self.known();
            tally
                .groups
                .keys()
                .map(|key| known.get(key).copied())
                .collect()
        };
        if ids.iter().any(Option::is_none) {
            let missing: Vec<(&(String, String), &GroupTally)> = tally
                .groups
                .iter()
                .zip(&ids)
                .filter(|(_, id)| id.is_none())
                .map(|(group, _)| group)
                .collect();
            let found = create_groups(conn, &missing).await?;
            let mut known = self.known();
            if known.len() + found.len() > MAX_KNOWN_GROUPS {
                known.clear();
            }
            for (key, id) in found {
                known.insert(key, id);
            }
            ids = tally
                .groups
                .keys()
                .map(|key| known.get(key).copied())
                .collect();
        }
        let mut deltas = Vec::new();
        for (group, id) in tally.groups.values().zip(ids) {
            let Some(group_id) = id else {
                // Created above and read back: only a row deleted in between is missing.
                return Err(sqlx::Error::RowNotFound);
            };
            for (bucket, occurrences) in &group.minutes {
                deltas.push(Delta {
                    group_id,
                    bucket: DateTime::<Utc>::from_timestamp(*bucket, 0)
                        .unwrap_or(occurrences.first),
                    count: occurrences.count,
                    first: occurrences.first,
                    last: occurrences.last,
                });
            }
        }
        Ok(deltas)
    }
}

/// Creates the groups `missing` that do not exist yet (in key order, so concurrent
/// creators wait for each other in one order) and returns every one's id.
async fn create_groups(
    conn: &mut PgConnection,
    missing: &[(&(String, String), &GroupTally)],
) -> Result<Vec<((String, String), i64)>, sqlx::Error> {
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
    .bind(&services)
    .bind(&fingerprints)
    .bind(titles)
    .bind(classes)
    .bind(templates)
    .execute(&mut *conn)
    .await?;
    let found: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT g.service, g.fingerprint, g.id \
         FROM unnest($1::text[], $2::text[]) AS w(service, fingerprint) \
         JOIN error_groups g USING (service, fingerprint)",
    )
    .bind(&services)
    .bind(&fingerprints)
    .fetch_all(conn)
    .await?;
    Ok(found
        .into_iter()
        .map(|(service, fingerprint, id)| ((service, fingerprint), id))
        .collect())
}

/// A group's occurrences in one minute of one commit: a row of `error_group_deltas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    group_id: i64,
    bucket: DateTime<Utc>,
    count: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// `BEGIN` and the insert of `deltas`, as one simple-query text (one round trip): the
/// values are numbers and timestamps this server formats, no client text.
pub fn begin_with_deltas(deltas: &[Delta]) -> String {
    let mut sql = String::with_capacity(120 + deltas.len() * 120);
    sql.push_str(
        "BEGIN; INSERT INTO error_group_deltas (group_id, bucket, count, first_seen, last_seen) VALUES ",
    );
    for (index, delta) in deltas.iter().enumerate() {
        if index > 0 {
            sql.push(',');
        }
        let _ = write!(
            sql,
            "({},'{}',{},'{}','{}')",
            delta.group_id,
            timestamp(delta.bucket),
            delta.count,
            timestamp(delta.first),
            timestamp(delta.last)
        );
    }
    sql
}

/// `at` as the `COPY` rows write it (what PostgreSQL already reads for any entry).
fn timestamp(at: DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(40);
    super::copy_field::push_timestamp(&mut out, at);
    String::from_utf8_lossy(&out).into_owned()
}

/// Appends `deltas` on `conn` (inside the transaction that stores their rows).
pub async fn insert_deltas(conn: &mut PgConnection, deltas: &[Delta]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO error_group_deltas (group_id, bucket, count, first_seen, last_seen) \
         SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], \
                              $4::timestamptz[], $5::timestamptz[])",
    )
    .bind(deltas.iter().map(|d| d.group_id).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.bucket).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.count).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.first).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.last).collect::<Vec<_>>())
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

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn occurrences_are_tallied_per_group_and_minute_and_merged() {
        let mut one = ErrorTally::default();
        one.add("web", error("a"), at("2026-01-01T00:00:10Z"));
        one.add("web", error("a"), at("2026-01-01T00:00:50Z"));
        one.add("web", error("a"), at("2026-01-01T00:01:00Z"));
        one.add("jobs", error("a"), at("2026-01-01T00:00:00Z"));
        let mut two = ErrorTally::default();
        two.add("web", error("a"), at("2026-01-01T00:00:05Z"));
        one.merge(&two);
        assert_eq!(one.occurrences(), 5);
        let web = &one.groups[&("web".to_owned(), "a".to_owned())];
        let first_minute = web.minutes[&at("2026-01-01T00:00:00Z").timestamp()];
        assert_eq!(first_minute.count, 3);
        assert_eq!(first_minute.first, at("2026-01-01T00:00:05Z"));
        assert_eq!(first_minute.last, at("2026-01-01T00:00:50Z"));
        assert_eq!(web.minutes.len(), 2);
        // Before 1970 a minute starts below its time too.
        let mut old = ErrorTally::default();
        old.add("web", error("b"), at("1969-12-31T23:59:30Z"));
        let key = ("web".to_owned(), "b".to_owned());
        assert_eq!(old.groups[&key].minutes.keys().next(), Some(&-60));
    }

    #[test]
    fn deltas_begin_a_transaction_in_one_text_of_numbers_and_timestamps() {
        let delta = |group_id, at: &str| Delta {
            group_id,
            bucket: at.parse().unwrap(),
            count: 3,
            first: at.parse().unwrap(),
            last: "2026-01-01T00:00:59.123456Z".parse().unwrap(),
        };
        let sql = begin_with_deltas(&[
            delta(7, "2026-01-01T00:00:00Z"),
            delta(9, "2026-01-01T00:01:00Z"),
        ]);
        assert!(
            sql.starts_with("BEGIN; INSERT INTO error_group_deltas "),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "VALUES (7,'2026-01-01 00:00:00.000000+00',3,'2026-01-01 00:00:00.000000+00',\
                 '2026-01-01 00:00:59.123456+00'),(9,'2026-01-01 00:01:00.000000+00',3,\
                 '2026-01-01 00:01:00.000000+00','2026-01-01 00:00:59.123456+00')"
            ),
            "{sql}"
        );
    }
}
