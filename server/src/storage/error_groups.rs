//! Error groups kept at ingest: the occurrences of a group commit's error rows
//! ([`ErrorTally`], by service and fingerprint and by minute, with what a new group
//! shows), the groups created before the rows are stored ([`GroupIds::ensure`]), and
//! the call that appends the occurrences to `error_group_deltas` in the rows' own
//! transaction ([`OccurrenceDeltas`]): one row per group and minute, however many
//! occurrences, so an acknowledged error is recorded, nothing is recorded that was not
//! stored, and the cost is one statement per group commit, not one per error row.
//! `error_fold` adds the deltas to the groups' counts.
//!
//! Rows stored by anything else (an operator's `INSERT`, an instance of an earlier
//! version) are counted by the row trigger on `logs`, which skips the rows of a
//! transaction that appended its own deltas (the call marks it), so no occurrence is
//! counted twice (migrations `20261208000011_error_occurrences_at_insert.sql` and
//! `20261208000012_error_occurrences_by_writers.sql`).
//!
//! Two writers (of this instance or another) creating the same group at once get one
//! row: the second's insert waits for the first's and then does nothing. Appending
//! deltas locks no existing row, so concurrent commits never wait for one another.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::copy_field::push_timestamp;

/// What a group shows, taken from its first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupTitle {
    title: String,
    exception_class: Option<String>,
    message_template: String,
}

/// Occurrences of one group in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Minute {
    count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

impl Minute {
    fn add(&mut self, other: &Minute) {
        self.count += other.count;
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
    }
}

/// One group's occurrences: what it shows, and its occurrences by minute (the minute's
/// number since the epoch, floored: the same minutes as `date_bin('1 minute', ...)`
/// aligned to 2000-01-01, which is a whole minute).
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupOccurrences {
    title: GroupTitle,
    minutes: BTreeMap<i64, Minute>,
}

/// The groups of some rows' error occurrences, by service and fingerprint, in key
/// order, with their occurrences by minute. Counting an occurrence of a group it holds
/// allocates nothing (both levels are looked up by borrowed text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorTally {
    groups: BTreeMap<String, BTreeMap<String, GroupOccurrences>>,
}

impl ErrorTally {
    /// Counts one occurrence of the group `fingerprint` in `service`, at `timestamp`;
    /// `describe` (title, exception class, message template) is called only for a
    /// group these rows did not hold yet.
    pub fn add(
        &mut self,
        service: &str,
        fingerprint: &str,
        timestamp: DateTime<Utc>,
        describe: impl FnOnce() -> (String, Option<String>, String),
    ) {
        let occurrence = Minute {
            count: 1,
            first_seen: timestamp,
            last_seen: timestamp,
        };
        if !self.groups.contains_key(service) {
            self.groups.insert(service.to_owned(), BTreeMap::new());
        }
        let Some(groups) = self.groups.get_mut(service) else {
            return;
        };
        if !groups.contains_key(fingerprint) {
            let (title, exception_class, message_template) = describe();
            let title = GroupTitle {
                title,
                exception_class,
                message_template,
            };
            groups.insert(
                fingerprint.to_owned(),
                GroupOccurrences {
                    title,
                    minutes: BTreeMap::new(),
                },
            );
        }
        let Some(group) = groups.get_mut(fingerprint) else {
            return;
        };
        group
            .minutes
            .entry(timestamp.timestamp_micros().div_euclid(MINUTE_MICROS))
            .and_modify(|minute| minute.add(&occurrence))
            .or_insert(occurrence);
    }

    /// Adds `other`'s occurrences to these.
    pub fn merge(&mut self, other: &ErrorTally) {
        for (service, their_groups) in &other.groups {
            if !self.groups.contains_key(service) {
                self.groups.insert(service.clone(), BTreeMap::new());
            }
            let Some(groups) = self.groups.get_mut(service) else {
                continue;
            };
            for (fingerprint, theirs) in their_groups {
                if !groups.contains_key(fingerprint) {
                    let group = GroupOccurrences {
                        title: theirs.title.clone(),
                        minutes: BTreeMap::new(),
                    };
                    groups.insert(fingerprint.clone(), group);
                }
                let Some(ours) = groups.get_mut(fingerprint) else {
                    continue;
                };
                for (number, minute) in &theirs.minutes {
                    ours.minutes
                        .entry(*number)
                        .and_modify(|ours| ours.add(minute))
                        .or_insert(*minute);
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The groups, by (service, fingerprint), in key order.
    fn iter(&self) -> impl Iterator<Item = ((&str, &str), &GroupOccurrences)> {
        self.groups.iter().flat_map(|(service, groups)| {
            groups
                .iter()
                .map(move |(fingerprint, group)| ((service.as_str(), fingerprint.as_str()), group))
        })
    }

    /// The groups' (service, fingerprint), in key order.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(key, _)| key)
    }

    /// How many occurrences in all.
    pub fn occurrences(&self) -> i64 {
        self.iter()
            .flat_map(|(_, group)| group.minutes.values())
            .map(|minute| minute.count)
            .sum()
    }
}

const MINUTE_MICROS: i64 = 60_000_000;

/// The ids of some groups, by (service, fingerprint).
pub type Ids = HashMap<(String, String), i64>;

/// The groups known to exist, with their ids, shared by an instance's writers: a known
/// group costs a commit nothing. Bounded: when full it starts over (fingerprints are a
/// client's to choose).
#[derive(Debug, Default)]
pub struct GroupIds {
    known: Mutex<Ids>,
}

/// Groups kept known at most.
const MAX_KNOWN_GROUPS: usize = 10_000;

impl GroupIds {
    fn known(&self) -> std::sync::MutexGuard<'_, Ids> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes sure every group of `tally` exists before its rows are stored, and returns
    /// their ids. Groups not known yet are created (count 0, no occurrence: readers
    /// leave them out until the fold counts some) in one statement on `conn` outside any
    /// transaction, and their ids read in another; a group that is known costs nothing.
    /// Two writers creating the same group get one row: the second insert waits for the
    /// first (autocommit, short) and does nothing; either way the group exists,
    /// committed, when this returns.
    pub async fn ensure(
        &self,
        conn: &mut PgConnection,
        tally: &ErrorTally,
    ) -> Result<Ids, sqlx::Error> {
        let mut ids = Ids::new();
        let mut missing: Vec<((String, String), &GroupTitle)> = Vec::new();
        {
            let known = self.known();
            for ((service, fingerprint), group) in tally.iter() {
                let key = (service.to_owned(), fingerprint.to_owned());
                match known.get(&key) {
                    Some(id) => {
                        ids.insert(key, *id);
                    }
                    None => missing.push((key, &group.title)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        let created = create_groups(conn, &missing).await?;
        let mut known = self.known();
        if known.len() + created.len() > MAX_KNOWN_GROUPS {
            known.clear();
        }
        for (key, id) in created {
            known.insert(key.clone(), id);
            ids.insert(key, id);
        }
        Ok(ids)
    }
}

/// Creates the groups `missing` that do not exist yet, in key order (so concurrent
/// creators wait for each other in one order), and returns the ids of all of them
/// (read by a statement of its own: one that started before another writer's creation
/// committed would not see its row).
async fn create_groups(
    conn: &mut PgConnection,
    missing: &[((String, String), &GroupTitle)],
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
    sqlx::query_as(
        "SELECT g.service, g.fingerprint, g.id \
         FROM unnest($1::text[], $2::text[]) AS w(service, fingerprint) \
         JOIN error_groups g ON g.service = w.service AND g.fingerprint = w.fingerprint",
    )
    .bind(&services)
    .bind(&fingerprints)
    .fetch_all(conn)
    .await
    .map(|rows: Vec<(String, String, i64)>| {
        rows.into_iter()
            .map(|(service, fingerprint, id)| ((service, fingerprint), id))
            .collect()
    })
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

/// A tally's occurrences as the COPY statement's own text carries them to
/// `error_group_deltas`: one row per group and minute, appended by the statement
/// trigger on `logs` before the first row, in the COPY's transaction
/// (`logs_error_occurrences_carried`, migration
/// `20261208000040_error_occurrences_carried_by_copy.sql`, which hands them to
/// `error_occurrences_written`: the transaction is marked as one that counts its own rows,
/// so the row trigger skips them). Only numbers and timestamps written here go into the
/// text, four array literals separated by `;` in a comment after the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrenceDeltas {
    comment: String,
}

impl OccurrenceDeltas {
    /// The deltas of `tally`, whose groups' ids are in `ids` (from [`GroupIds::ensure`]
    /// of this tally or of one holding it); `None` when there is nothing to append.
    pub fn of(tally: &ErrorTally, ids: &Ids) -> Option<OccurrenceDeltas> {
        let (mut groups, mut counts, mut firsts, mut lasts) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((service, fingerprint), group) in tally.iter() {
            // Every group of a tally is ensured before its rows are written.
            let Some(id) = ids.get(&(service.to_owned(), fingerprint.to_owned())) else {
                debug_assert!(false, "a tally's group without an id");
                continue;
            };
            for minute in group.minutes.values() {
                for (list, number) in [(&mut groups, *id), (&mut counts, minute.count)] {
                    if !list.is_empty() {
                        list.push(b',');
                    }
                    // Writing to a Vec cannot fail.
                    let _ = write!(list, "{number}");
                }
                for (list, time) in [
                    (&mut firsts, minute.first_seen),
                    (&mut lasts, minute.last_seen),
                ] {
                    if !list.is_empty() {
                        list.push(b',');
                    }
                    list.push(b'"');
                    push_timestamp(list, time);
                    list.push(b'"');
                }
            }
        }
        if groups.is_empty() {
            return None;
        }
        // ASCII only: digits, punctuation and the time zone.
        let text = |list: &[u8]| String::from_utf8_lossy(list).into_owned();
        Some(OccurrenceDeltas {
            comment: format!(
                " /* error_occurrences {{{}}};{{{}}};{{{}}};{{{}}} */",
                text(&groups),
                text(&counts),
                text(&firsts),
                text(&lasts)
            ),
        })
    }

    /// `copy` (a `COPY logs ... FROM STDIN` statement, without a trailing `;`) carrying
    /// these occurrences.
    pub fn carried_by(&self, copy: &str) -> String {
        let mut statement = String::with_capacity(copy.len() + self.comment.len());
        statement.push_str(copy);
        statement.push_str(&self.comment);
        statement
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn described() -> (String, Option<String>, String) {
        (
            "E: boom".to_owned(),
            Some("E".to_owned()),
            "boom".to_owned(),
        )
    }

    /// Counts an occurrence, and whether its group had to be described.
    fn add(tally: &mut ErrorTally, service: &str, fingerprint: &str, at: DateTime<Utc>) -> bool {
        let mut new = false;
        tally.add(service, fingerprint, at, || {
            new = true;
            described()
        });
        new
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_796_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn occurrences_are_tallied_per_group_and_minute_and_merged() {
        let mut one = ErrorTally::default();
        assert!(add(&mut one, "web", "a", at(0)));
        // A group the rows hold is not described again.
        assert!(!add(&mut one, "web", "a", at(30)));
        add(&mut one, "jobs", "a", at(0));
        let mut two = ErrorTally::default();
        add(&mut two, "web", "a", at(10));
        add(&mut two, "web", "a", at(70));
        add(&mut two, "web", "b", at(0));
        one.merge(&two);
        assert_eq!(one.occurrences(), 6);
        assert_eq!(
            one.keys().collect::<Vec<_>>(),
            [("jobs", "a"), ("web", "a"), ("web", "b")]
        );
        let web_a = &one.groups["web"]["a"];
        let minutes: Vec<(i64, DateTime<Utc>, DateTime<Utc>)> = web_a
            .minutes
            .values()
            .map(|m| (m.count, m.first_seen, m.last_seen))
            .collect();
        // 1_796_000_000 s is 20 s into a minute: 0, 10 and 30 share it, 70 is the next.
        assert_eq!(minutes, [(3, at(0), at(30)), (1, at(70), at(70))]);
    }

    #[test]
    fn deltas_are_carried_by_the_copy_with_a_row_per_group_and_minute() {
        let mut tally = ErrorTally::default();
        add(&mut tally, "web", "a", at(0));
        add(&mut tally, "web", "a", at(30));
        add(&mut tally, "web", "a", at(70));
        add(&mut tally, "web", "b", at(0));
        let ids = Ids::from([
            (("web".to_owned(), "a".to_owned()), 7),
            (("web".to_owned(), "b".to_owned()), 9),
        ]);
        let deltas = OccurrenceDeltas::of(&tally, &ids).unwrap();
        let (t0, t30, t70) = (
            "2026-11-30 00:53:20.000000+00",
            "2026-11-30 00:53:50.000000+00",
            "2026-11-30 00:54:30.000000+00",
        );
        assert_eq!(
            deltas.carried_by("COPY logs (message) FROM STDIN (FORMAT text)"),
            format!(
                "COPY logs (message) FROM STDIN (FORMAT text) /* error_occurrences {{7,7,9}};\
                 {{2,1,1}};{{\"{t0}\",\"{t70}\",\"{t0}\"}};{{\"{t30}\",\"{t70}\",\"{t0}\"}} */"
            )
        );
        assert_eq!(OccurrenceDeltas::of(&ErrorTally::default(), &ids), None);
    }
}
