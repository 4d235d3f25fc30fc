//! Reading error groups: the group as the API shows it (a group merged into it counts
//! as part of it), a page of groups, a group's counts per bucket, its latest
//! occurrence and how many requests and users it affected. Owns these read-only
//! statements over `error_groups`, `error_group_minutes` and `logs`; never writes. Their
//! callers fold first (`storage::error_fold`), so the counts read are exact. A group
//! without an occurrence yet (created by a commit still in flight, or one that failed)
//! is left out.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use sqlx::{PgConnection, Postgres, QueryBuilder};

/// Occurrences looked at for the distinct requests and users a group affected.
pub const AFFECTED_SAMPLE: i64 = 10_000;

/// How groups are ordered (all newest or largest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    LastSeen,
    Count,
    FirstSeen,
}

impl Sort {
    pub fn parse(text: &str) -> Option<Sort> {
        match text {
            "last_seen" => Some(Sort::LastSeen),
            "count" => Some(Sort::Count),
            "first_seen" => Some(Sort::FirstSeen),
            _ => None,
        }
    }

    /// The whole number the page is ordered by (with the id), as SQL over the row.
    fn key(self) -> &'static str {
        match self {
            Sort::LastSeen => "(extract(epoch FROM x.last_seen) * 1000000)::bigint",
            Sort::Count => "x.count_in_range",
            Sort::FirstSeen => "(extract(epoch FROM x.first_seen) * 1000000)::bigint",
        }
    }

    pub fn code(self) -> char {
        match self {
            Sort::LastSeen => 'l',
            Sort::Count => 'c',
            Sort::FirstSeen => 'f',
        }
    }
}

/// The time range counts are taken over: `[since, until)`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Range {
    /// The start of the minute `since` is in: the per-minute counts' first bucket.
    fn first_bucket(&self) -> DateTime<Utc> {
        self.since
            .duration_trunc(Duration::minutes(1))
            .unwrap_or(self.since)
    }
}

/// What to list.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub services: Vec<String>,
    pub statuses: Vec<String>,
    /// A ready ILIKE pattern over the title, and the text itself (an exact fingerprint).
    pub text: Option<(String, String)>,
    pub sort: Sort,
    /// The last row of the previous page: its sort key and id.
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

/// One group as the API returns it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Group {
    pub id: i64,
    pub service: String,
    pub fingerprint: String,
    pub title: String,
    pub exception_class: Option<String>,
    pub message_template: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
    pub count_in_range: i64,
    pub status: String,
    pub resolved_at: Option<DateTime<Utc>>,
    pub regressed_at: Option<DateTime<Utc>>,
    #[sqlx(skip)]
    pub ignore_until: Option<IgnoreUntil>,
    #[serde(skip)]
    ignore_remaining: Option<i64>,
    #[serde(skip)]
    ignore_until_time: Option<DateTime<Utc>>,
    pub sample_log_id: Option<i64>,
    pub new_in_range: bool,
    pub merged_into: Option<i64>,
    pub merged_ids: Vec<i64>,
    #[serde(skip)]
    pub member_ids: Vec<i64>,
    #[serde(skip)]
    pub member_services: Vec<String>,
    #[serde(skip)]
    pub member_fingerprints: Vec<String>,
    #[serde(skip)]
    sort_key: i64,
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Vec<Bucket>>,
}

impl Group {
    /// The page cursor's position of this row.
    pub fn position(&self) -> (i64, i64) {
        (self.sort_key, self.id)
    }

    fn finish(mut self) -> Self {
        self.ignore_until = match (self.ignore_remaining, self.ignore_until_time) {
            (None, None) => None,
            (count, time) => Some(IgnoreUntil {
                count: count.map(|n| n.max(0)),
                time,
            }),
        };
        self
    }
}

/// When an ignore ends: after `count` more occurrences, or at the first at or after
/// `time`.
#[derive(Debug, Clone, Serialize)]
pub struct IgnoreUntil {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
}

/// Occurrences in one bucket starting at `t`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub t: DateTime<Utc>,
    pub count: i64,
}

/// Appends the statement selecting groups (as [`Group`]) whose own row matches
/// `roots` (SQL over `g`, with its binds pushed by `push_roots`).
fn push_groups(
    sql: &mut QueryBuilder<'_, Postgres>,
    range: Range,
    sort: Sort,
    push_roots: impl FnOnce(&mut QueryBuilder<'_, Postgres>),
) {
    sql.push("SELECT * FROM (SELECT x.*, ")
        .push(sort.key())
        .push(
            " AS sort_key FROM (\
             WITH roots AS (SELECT g.* FROM error_groups g WHERE g.first_seen IS NOT NULL AND ",
        );
    push_roots(sql);
    sql.push(
        "), members AS (\
             SELECT r.id AS root, m.id, m.service, m.fingerprint, m.count, m.first_seen, \
                    m.last_seen, m.regressed_at, m.status \
             FROM roots r JOIN error_groups m \
               ON m.id = r.id OR (r.merged_into IS NULL AND m.merged_into = r.id)\
         ), totals AS (\
             SELECT root, sum(count)::bigint AS count, min(first_seen) AS first_seen, \
                    max(last_seen) AS last_seen, max(regressed_at) AS regressed_at, \
                    bool_or(status = 'unresolved') AS any_unresolved, \
                    coalesce(array_agg(id ORDER BY id) FILTER (WHERE id <> root), '{}') AS merged_ids, \
                    array_agg(id ORDER BY id) AS member_ids, \
                    array_agg(service ORDER BY id) AS member_services, \
                    array_agg(fingerprint ORDER BY id) AS member_fingerprints \
             FROM members GROUP BY root\
         ), ranged AS (\
             SELECT m.root, sum(c.count)::bigint AS n \
             FROM members m JOIN error_group_minutes c ON c.group_id = m.id \
             WHERE c.bucket >= ",
    )
    .push_bind(range.first_bucket())
    .push(" AND c.bucket < ")
    .push_bind(range.until)
    .push(
        " GROUP BY m.root\
         ) \
         SELECT r.id, r.service, r.fingerprint, r.title, r.exception_class, r.message_template, \
                t.first_seen, t.last_seen, t.count, coalesce(n.n, 0)::bigint AS count_in_range, \
                CASE WHEN t.any_unresolved THEN 'unresolved' ELSE r.status END AS status, \
                r.resolved_at, t.regressed_at, \
                r.ignore_until_count - r.count AS ignore_remaining, r.ignore_until_time, \
                r.sample_log_id, t.first_seen >= ",
    )
    .push_bind(range.since)
    .push(
        " AS new_in_range, r.merged_into, t.merged_ids, t.member_ids, t.member_services, \
                t.member_fingerprints \
         FROM roots r JOIN totals t ON t.root = r.id LEFT JOIN ranged n ON n.root = r.id\
         ) x) y WHERE TRUE",
    );
}

/// A page of root groups matching `filter` seen in `range` (last seen at or after its
/// start, first seen before its end), in `filter.sort` order.
pub async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter,
    range: Range,
) -> Result<Vec<Group>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new("");
    push_groups(&mut sql, range, filter.sort, |sql| {
        sql.push("g.merged_into IS NULL");
        if !filter.services.is_empty() {
            sql.push(" AND g.service = ANY(")
                .push_bind(filter.services.clone())
                .push(")");
        }
        if let Some((pattern, exact)) = &filter.text {
            sql.push(" AND (g.title ILIKE ")
                .push_bind(pattern.clone())
                .push(" OR g.fingerprint = ")
                .push_bind(exact.clone())
                .push(")");
        }
    });
    sql.push(" AND y.last_seen >= ")
        .push_bind(range.since)
        .push(" AND y.first_seen < ")
        .push_bind(range.until);
    if !filter.statuses.is_empty() {
        sql.push(" AND y.status = ANY(")
            .push_bind(filter.statuses.clone())
            .push(")");
    }
    if let Some((key, id)) = filter.after {
        sql.push(" AND (y.sort_key, y.id) < (")
            .push_bind(key)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    sql.push(" ORDER BY y.sort_key DESC, y.id DESC LIMIT ")
        .push_bind(filter.limit);
    let groups: Vec<Group> = sql.build_query_as().fetch_all(conn).await?;
    Ok(groups.into_iter().map(Group::finish).collect())
}

/// The group `id` (merged into another or not), with counts over `range`.
pub async fn one(
    conn: &mut PgConnection,
    id: i64,
    range: Range,
) -> Result<Option<Group>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new("");
    push_groups(&mut sql, range, Sort::LastSeen, |sql| {
        sql.push("g.id = ").push_bind(id);
    });
    let group: Option<Group> = sql.build_query_as().fetch_optional(conn).await?;
    Ok(group.map(Group::finish))
}

/// Each group's occurrences in `slots` equal buckets over `range` (whole minutes, at
/// least one), oldest first and zero-filled, in the order of `groups`.
pub async fn buckets(
    conn: &mut PgConnection,
    groups: &[&Group],
    range: Range,
    slots: i64,
) -> Result<Vec<Vec<Bucket>>, sqlx::Error> {
    let span = (range.until - range.since).num_seconds().max(60);
    let width = ((span + slots * 60 - 1) / (slots * 60)).max(1) * 60;
    let mut roots = Vec::new();
    let mut members = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        for member in &group.member_ids {
            roots.push(index as i64);
            members.push(*member);
        }
    }
    let counted: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT m.root, floor(extract(epoch FROM (c.bucket - $3)) / $5)::bigint AS slot, \
                sum(c.count)::bigint \
         FROM unnest($1::bigint[], $2::bigint[]) AS m(root, id) \
         JOIN error_group_minutes c ON c.group_id = m.id AND c.bucket >= $4 AND c.bucket < $6 \
         GROUP BY 1, 2",
    )
    .bind(roots)
    .bind(members)
    .bind(range.since)
    .bind(range.first_bucket())
    .bind(width as f64)
    .bind(range.until)
    .fetch_all(conn)
    .await?;
    let mut all: Vec<Vec<Bucket>> = groups
        .iter()
        .map(|_| {
            (0..slots)
                .map(|slot| Bucket {
                    t: range.since + Duration::seconds(slot * width),
                    count: 0,
                })
                .collect()
        })
        .collect();
    for (root, slot, count) in counted {
        if let Some(buckets) = all.get_mut(root as usize) {
            let slot = slot.clamp(0, slots - 1) as usize;
            if let Some(bucket) = buckets.get_mut(slot) {
                bucket.count += count;
            }
        }
    }
    Ok(all)
}

/// The group's newest occurrence: its id and stored metadata as JSON text.
pub async fn latest_occurrence(
    conn: &mut PgConnection,
    group: &Group,
) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
    // One index scan per member (the newest of each), then the newest of those.
    sqlx::query_as(
        "SELECT l.id, l.metadata::text \
         FROM unnest($1::text[], $2::text[]) AS m(fingerprint, service) \
         CROSS JOIN LATERAL (\
             SELECT id, timestamp, metadata FROM logs \
             WHERE fingerprint = m.fingerprint AND service = m.service \
             ORDER BY timestamp DESC LIMIT 1) l \
         ORDER BY l.timestamp DESC, l.id DESC LIMIT 1",
    )
    .bind(&group.member_fingerprints)
    .bind(&group.member_services)
    .fetch_optional(conn)
    .await
}

/// Distinct `request_id`s and `user_id`s among the group's newest
/// [`AFFECTED_SAMPLE`] occurrences in `range`.
pub async fn affected(
    conn: &mut PgConnection,
    group: &Group,
    range: Range,
) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(DISTINCT metadata->>'request_id'), count(DISTINCT metadata->>'user_id') \
         FROM (SELECT metadata FROM logs \
               WHERE fingerprint = ANY($1) AND service = ANY($2) \
                 AND timestamp >= $3 AND timestamp < $4 \
               ORDER BY timestamp DESC LIMIT $5) occurrences",
    )
    .bind(&group.member_fingerprints)
    .bind(&group.member_services)
    .bind(range.since)
    .bind(range.until)
    .bind(AFFECTED_SAMPLE)
    .fetch_one(conn)
    .await
}
