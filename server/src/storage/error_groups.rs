//! Error groups kept at ingest: the occurrences of a group commit's rows tallied per
//! group and per minute ([`ErrorTally`]), and the one statement ([`record`]) that
//! upserts them into `error_groups` and `error_group_minutes` inside the transaction
//! that stores the rows, so an acknowledged error is counted and nothing is counted that
//! was not stored.
//!
//! Two writers (of this instance or another) adding the same new fingerprint at once
//! get one group: the second's insert waits for the first's and then updates the row
//! the first created (`ON CONFLICT … DO UPDATE`), so counts add up exactly. Rows are
//! locked in one order (groups by service and fingerprint, then minutes by group and
//! bucket, each minute row only under its group's lock), so writers cannot deadlock.
//! The same statement moves a group's status: a resolved group seen again is
//! `unresolved` with `regressed_at`; an ignored one stays ignored until its
//! `ignore_until_count` is reached or an occurrence arrives at or after
//! `ignore_until_time`.

use std::collections::BTreeMap;

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

/// Upserts `tally` into the groups and their minutes, on `conn` (inside the
/// transaction that stored the rows, after them: a new group's sample is one of them).
pub async fn record(conn: &mut PgConnection, tally: &ErrorTally) -> Result<(), sqlx::Error> {
    let rows = tally.groups.values().map(|group| group.minutes.len()).sum();
    let mut services = Vec::with_capacity(rows);
    let mut fingerprints = Vec::with_capacity(rows);
    let mut titles = Vec::with_capacity(rows);
    let mut classes = Vec::with_capacity(rows);
    let mut templates = Vec::with_capacity(rows);
    let mut buckets = Vec::with_capacity(rows);
    let mut counts = Vec::with_capacity(rows);
    let mut firsts = Vec::with_capacity(rows);
    let mut lasts = Vec::with_capacity(rows);
    for ((service, fingerprint), group) in &tally.groups {
        for (bucket, occurrences) in &group.minutes {
            services.push(service.as_str());
            fingerprints.push(fingerprint.as_str());
            titles.push(group.title.as_str());
            classes.push(group.exception_class.as_deref());
            templates.push(group.message_template.as_str());
            buckets.push(DateTime::<Utc>::from_timestamp(*bucket, 0).unwrap_or(occurrences.first));
            counts.push(occurrences.count);
            firsts.push(occurrences.first);
            lasts.push(occurrences.last);
        }
    }
    sqlx::query(RECORD)
        .bind(services)
        .bind(fingerprints)
        .bind(titles)
        .bind(classes)
        .bind(templates)
        .bind(buckets)
        .bind(counts)
        .bind(firsts)
        .bind(lasts)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes per-minute counts older than `days` (entry time, as retention deletes
/// entries); the groups and their all-time counts stay. Returns how many.
pub async fn delete_expired_minutes(pool: &sqlx::PgPool, days: u32) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "DELETE FROM error_group_minutes WHERE bucket < now() - make_interval(days => $1)",
    )
    .bind(i32::try_from(days).unwrap_or(i32::MAX))
    .execute(pool)
    .await?
    .rows_affected())
}

/// `$1..$9`: per (group, minute) rows of service, fingerprint, title, class, template,
/// bucket, count, first and last occurrence.
const RECORD: &str = "
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::bigint[], $8::timestamptz[], $9::timestamptz[])
        AS b(service, fingerprint, title, exception_class, message_template, bucket, n,
             first_seen, last_seen)
), seen AS (
    SELECT service, fingerprint, min(title) AS title, min(exception_class) AS exception_class,
           min(message_template) AS message_template, sum(n)::bigint AS n,
           min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM batch GROUP BY service, fingerprint
), upserted AS (
    INSERT INTO error_groups AS g (service, fingerprint, title, exception_class,
                                   message_template, first_seen, last_seen, count, sample_log_id)
    SELECT s.service, s.fingerprint, s.title, s.exception_class, s.message_template,
           s.first_seen, s.last_seen, s.n,
           (SELECT max(l.id) FROM logs l
            WHERE l.fingerprint = s.fingerprint AND l.timestamp = s.last_seen
              AND l.service = s.service)
    FROM seen s
    ORDER BY s.service, s.fingerprint
    ON CONFLICT (service, fingerprint) DO UPDATE SET
        count = g.count + EXCLUDED.count,
        first_seen = least(g.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(g.last_seen, EXCLUDED.last_seen),
        regressed_at = CASE WHEN g.status = 'resolved' THEN now() ELSE g.regressed_at END,
        status = CASE
            WHEN g.status = 'resolved' THEN 'unresolved'
            WHEN g.status = 'ignored'
                 AND (g.ignore_until_count <= g.count + EXCLUDED.count
                      OR g.ignore_until_time <= now()) THEN 'unresolved'
            ELSE g.status END,
        ignore_until_count = CASE WHEN g.status = 'ignored'
                 AND (g.ignore_until_count <= g.count + EXCLUDED.count
                      OR g.ignore_until_time <= now()) THEN NULL
            ELSE g.ignore_until_count END,
        ignore_until_time = CASE WHEN g.status = 'ignored'
                 AND (g.ignore_until_count <= g.count + EXCLUDED.count
                      OR g.ignore_until_time <= now()) THEN NULL
            ELSE g.ignore_until_time END
    RETURNING g.id, g.service, g.fingerprint
)
INSERT INTO error_group_minutes AS m (group_id, bucket, count)
SELECT u.id, b.bucket, b.n
FROM batch b JOIN upserted u ON u.service = b.service AND u.fingerprint = b.fingerprint
ORDER BY u.id, b.bucket
ON CONFLICT (group_id, bucket) DO UPDATE SET count = m.count + EXCLUDED.count";

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
}
