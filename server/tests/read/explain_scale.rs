//! EXPLAIN evidence over 100k rows spread over 30 days, in the mode
//! `LOG_INGESTION_TEST_STORAGE` chooses: the 30-day histogram and the service list read
//! the rollups (`logs_per_hour`/`logs_per_minute`; in TimescaleDB mode their
//! continuous aggregates, materialized first as the refresh policy would) and only the
//! sub-minute edges of `logs`; `meta.KEY=VALUE` on a declared key
//! (`LOG_INGESTION_DECLARED_KEYS`) is served by its column's index (and, in
//! TimescaleDB mode once chunks are compressed, by their bloom filters), and `q=`
//! over 30 days by the trigram index when declared (`LOG_INGESTION_MESSAGE_TRIGRAM_INDEX`);
//! and a newest-first page read over its windows (disjoint, doubling: `read/search.rs`)
//! examines about the span it needs when its filter is rare, and each row of the range
//! once when the filter matches nothing.
//!
//! "Reads `logs`" is measured as the rows the plan's scans of `logs` (or of its chunks)
//! returned, from `EXPLAIN ANALYZE`: before the rollups, a 30-day histogram read all
//! 100,000.

use std::collections::BTreeSet;

use log_ingestion_server::read::{
    explain_histogram_query, explain_page_query, explain_page_windows, explain_services_query,
    ExplainedWindow,
};
use log_ingestion_server::storage::declared_keys::{self, Undeclared};
use log_ingestion_server::storage::trigram_index;
use log_ingestion_server::storage::StorageMode;
use log_ingestion_test_support::{plan_nodes, query_pairs, spawn_read_app_seeded, ReadApp};
use serde_json::Value;

const ROWS: i64 = 100_000;
/// Rows a plan may read from `logs` itself: the edges of a range (under a minute at each
/// end: ~5 rows at this density) with a wide margin.
const MAX_EDGE_ROWS: i64 = 500;

/// The relations that hold rows of `logs`: the table, and its chunks in TimescaleDB mode.
async fn log_relations(app: &ReadApp) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BTreeSet::from(["logs".to_owned()]);
    if app.mode == StorageMode::Timescale {
        let chunks: Vec<String> = sqlx::query_scalar(
            "SELECT chunk_name::text FROM timescaledb_information.chunks WHERE hypertable_name = 'logs'",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        names.extend(chunks);
    }
    names
}

/// The plan's nodes that scan one of `relations`.
fn scans_of<'p>(explained: &'p Value, relations: &BTreeSet<String>) -> Vec<&'p Value> {
    plan_nodes(&explained[0]["Plan"])
        .into_iter()
        .filter(|node| {
            node["Relation Name"]
                .as_str()
                .is_some_and(|name| relations.contains(name))
        })
        .collect()
}

/// Rows the plan's scans of `relations` returned, and a one-line summary of the plan.
fn rows_read_from(explained: &Value, relations: &BTreeSet<String>) -> (i64, String) {
    let all = plan_nodes(&explained[0]["Plan"]);
    let read = scans_of(explained, relations)
        .iter()
        .map(|node| {
            node["Actual Rows"].as_i64().unwrap_or(0) * node["Actual Loops"].as_i64().unwrap_or(1)
        })
        .sum();
    let summary: Vec<String> = all
        .iter()
        .filter_map(|node| {
            let name = node["Relation Name"].as_str()?;
            Some(format!(
                "{} {name} ({} rows)",
                node["Node Type"].as_str().unwrap_or("?"),
                node["Actual Rows"]
            ))
        })
        .collect();
    (
        read,
        format!(
            "{} | execution {} ms",
            summary.join(", "),
            explained[0]["Execution Time"]
        ),
    )
}

/// Whether the plan reads one of the rollups (their tables, or in TimescaleDB mode the
/// materialization hypertables behind the continuous aggregates).
async fn reads_a_rollup(app: &ReadApp, explained: &Value) -> bool {
    let mut rollups: BTreeSet<String> =
        BTreeSet::from(["logs_per_minute".to_owned(), "logs_per_hour".to_owned()]);
    if app.mode == StorageMode::Timescale {
        let materialized: Vec<String> = sqlx::query_scalar(
            "SELECT c.chunk_name::text FROM timescaledb_information.continuous_aggregates a \
             JOIN timescaledb_information.chunks c \
               ON c.hypertable_schema = a.materialization_hypertable_schema \
              AND c.hypertable_name = a.materialization_hypertable_name \
             UNION SELECT materialization_hypertable_name::text \
             FROM timescaledb_information.continuous_aggregates",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap();
        rollups.extend(materialized);
    }
    plan_nodes(&explained[0]["Plan"]).iter().any(|node| {
        node["Relation Name"]
            .as_str()
            .is_some_and(|name| rollups.contains(name))
    })
}

/// 100k rows over the 30 days before 2026-02-01, ten services, six levels, `user_id`
/// metadata; then `ANALYZE`, and in TimescaleDB mode the aggregates materialized. The
/// read app's policy jobs are paused (`spawn_read_app`): these rows are older than the
/// compression policy's 7 days, and a compressed chunk has none of the indexes the
/// plans here are about.
async fn app_with_rows() -> ReadApp {
    // Made once per test process and copied for each test (a file copy, where inserting,
    // materializing and analyzing take most of a minute on a busy machine).
    spawn_read_app_seeded("explain_scale: 100k rows over 30 days", seed_rows).await
}

async fn seed_rows(app: ReadApp) -> ReadApp {
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-02' + n * (interval '30 days' / $1), \
                'svc' || (n % 10), \
                (ARRAY['DEBUG','INFO','INFO','WARN','ERROR','FATAL'])[1 + n % 6], \
                'order ' || n || ' shipped', \
                jsonb_build_object('user_id', n % 5000) \
         FROM generate_series(1, $1::bigint) AS n",
    )
    .bind(ROWS)
    .execute(&app.pool)
    .await
    .unwrap();
    app.materialize_rollups().await;
    sqlx::query("ANALYZE").execute(&app.pool).await.unwrap();
    app
}

const THIRTY_DAYS: [(&str, &str); 2] = [
    ("since", "2026-01-02T00:00:17Z"),
    ("until", "2026-02-01T00:00:43Z"),
];

#[tokio::test]
async fn histogram_and_services_over_30_days_read_the_rollups_not_the_rows() {
    let app = app_with_rows().await;
    let relations = log_relations(&app).await;
    let cases: [(&str, Vec<(&str, &str)>); 3] = [
        ("30 days", THIRTY_DAYS.to_vec()),
        (
            "30 days, one service, min_level=warn",
            [
                THIRTY_DAYS.as_slice(),
                &[("service", "svc3"), ("min_level", "warn")],
            ]
            .concat(),
        ),
        (
            "1 hour (1-minute buckets)",
            vec![
                ("since", "2026-01-20T10:00:05Z"),
                ("until", "2026-01-20T11:00:05Z"),
            ],
        ),
    ];
    for (name, query) in cases {
        let plan = explain_histogram_query(&app.pool, app.mode, query_pairs(&query), true)
            .await
            .unwrap();
        let (read, summary) = rows_read_from(&plan, &relations);
        println!("histogram {name}: {read} rows of logs read: {summary}");
        assert!(
            read <= MAX_EDGE_ROWS,
            "histogram {name} read {read} rows of logs: {summary}"
        );
        assert!(
            reads_a_rollup(&app, &plan).await,
            "histogram {name}: {summary}"
        );
    }
    for (name, query) in [("all time", vec![]), ("30 days", THIRTY_DAYS.to_vec())] {
        let plan = explain_services_query(&app.pool, query_pairs(&query), true)
            .await
            .unwrap();
        let (read, summary) = rows_read_from(&plan, &relations);
        println!("services {name}: {read} rows of logs read: {summary}");
        // One newest-entry probe per service (ten services) besides the edges.
        assert!(
            read <= MAX_EDGE_ROWS,
            "services {name} read {read} rows of logs: {summary}"
        );
        assert!(
            reads_a_rollup(&app, &plan).await,
            "services {name}: {summary}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_declared_metadata_key_is_found_through_its_column_index() {
    let app = app_with_rows().await;
    let keys = vec!["user_id".to_owned()];
    declared_keys::apply_metadata_keys(&app.pool, &keys, Undeclared::Drop)
        .await
        .unwrap();
    sqlx::query("ANALYZE logs")
        .execute(&app.pool)
        .await
        .unwrap();
    let query = query_pairs(&[THIRTY_DAYS.as_slice(), &[("meta.user_id", "42")]].concat());

    let plan = explain_page_query(&app.pool, query.clone(), &keys, true)
        .await
        .unwrap();
    let relations = log_relations(&app).await;
    let (read, summary) = rows_read_from(&plan, &relations);
    let indexes: BTreeSet<&str> = plan_nodes(&plan[0]["Plan"])
        .iter()
        .filter_map(|node| node["Index Name"].as_str())
        .collect();
    println!("meta.user_id=42 over 30 days: {read} rows read, indexes {indexes:?}: {summary}");
    assert!(
        indexes
            .iter()
            .any(|name| name.contains("logs_meta_user_id")),
        "{indexes:?}: {summary}"
    );
    // 100k rows / 5000 users: 20 entries carry user 42.
    assert!(read <= 100, "{read} rows read: {summary}");

    // Undeclared again: `migrate` drops the index, and the filter still answers.
    declared_keys::apply_metadata_keys(&app.pool, &[], Undeclared::Drop)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'logs' AND indexname LIKE 'logs_meta_%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let (status, page) = app
        .get_json("/api/v1/logs?since=2026-01-01T00:00:00Z&meta.user_id=42&limit=1000")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["logs"].as_array().map(Vec::len), Some(20));
    app.stop().await;
}

/// The rows the scans of `relations` examined: returned plus removed by their filters
/// (the rows a page's window evaluated its filter on; in a compressed chunk, the rows
/// decompressed, every row of the range without a usable sparse index).
fn rows_examined_in(explained: &Value, relations: &BTreeSet<String>) -> i64 {
    scans_of(explained, relations)
        .iter()
        .map(|node| {
            let loops = node["Actual Loops"].as_i64().unwrap_or(1);
            (node["Actual Rows"].as_i64().unwrap_or(0)
                + node["Rows Removed by Filter"].as_i64().unwrap_or(0))
                * loops
        })
        .sum()
}

#[tokio::test]
async fn a_declared_metadata_key_over_compressed_chunks_reads_only_the_batches_its_bloom_filters_admit(
) {
    let app = app_with_rows().await;
    if app.mode != StorageMode::Timescale {
        return; // compression is TimescaleDB's
    }
    let compress_all = "SELECT count(compress_chunk(c, if_not_compressed => true)) \
                        FROM show_chunks('logs') c";
    let compressed: i64 = sqlx::query_scalar(compress_all)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(compressed >= 30, "{compressed} chunks compressed");
    // Declared once compressed, as an operator would: `migrate` fills the column of
    // every stored row (decompressing them), the compression policy compresses again.
    let keys = vec!["user_id".to_owned()];
    declared_keys::apply_metadata_keys(&app.pool, &keys, Undeclared::Drop)
        .await
        .unwrap();
    let unfilled: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE meta_user_id IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(unfilled, 0);
    sqlx::query_scalar::<_, i64>(compress_all)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE logs")
        .execute(&app.pool)
        .await
        .unwrap();
    let relations = log_relations(&app).await;
    let query = query_pairs(&[THIRTY_DAYS.as_slice(), &[("meta.user_id", "42")]].concat());
    let plan = explain_page_query(&app.pool, query.clone(), &keys, true)
        .await
        .unwrap();
    let examined = rows_examined_in(&plan, &relations);
    let (_, summary) = rows_read_from(&plan, &relations);
    println!("meta.user_id=42 over 30 compressed days: {examined} rows decompressed: {summary}");
    // 20 entries carry user 42, in at most 20 batches (one per chunk and service here,
    // ~333 rows each); without the bloom filters every one of the 100k rows is read.
    assert!(
        examined <= 20 * 400,
        "{examined} rows decompressed: {summary}"
    );
    assert!(plan.to_string().contains("bloom1_contains"), "{plan}");
    // The filter without the declared column reads every row of the range.
    let undeclared = explain_page_query(&app.pool, query, &[], true)
        .await
        .unwrap();
    assert!(rows_examined_in(&undeclared, &relations) >= ROWS - 10);
    let (status, page) = app
        .get_json("/api/v1/logs?since=2026-01-01T00:00:00Z&meta.user_id=42&limit=1000")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["logs"].as_array().map(Vec::len), Some(20));
    app.stop().await;
}

#[tokio::test]
async fn text_search_over_30_days_uses_the_trigram_index_when_declared() {
    let app = app_with_rows().await;
    trigram_index::apply_message_trigram(&app.pool, true)
        .await
        .unwrap();
    sqlx::query("ANALYZE logs")
        .execute(&app.pool)
        .await
        .unwrap();
    let query = query_pairs(&[THIRTY_DAYS.as_slice(), &[("q", "order 4242 ")]].concat());
    let plan = explain_page_query(&app.pool, query, &[], true)
        .await
        .unwrap();
    let (read, summary) = rows_read_from(&plan, &log_relations(&app).await);
    let indexes: BTreeSet<&str> = plan_nodes(&plan[0]["Plan"])
        .iter()
        .filter_map(|node| node["Index Name"].as_str())
        .collect();
    println!("q=order 4242 over 30 days: {read} rows read, indexes {indexes:?}: {summary}");
    assert!(
        indexes
            .iter()
            .any(|name| name.contains("logs_message_trgm")),
        "{indexes:?}: {summary}"
    );
    assert!(read <= 100, "{read} rows read: {summary}");

    // Off again: `migrate` drops it.
    trigram_index::apply_message_trigram(&app.pool, false)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'logs' AND indexname LIKE '%trgm%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}

/// What a page's statements read, two ways.
/// - `covered`: the rows of `logs` inside each statement's time bounds, summed: what the
///   windows ask the database to look at (a row two windows both cover counts twice).
/// - `examined`: from `EXPLAIN ANALYZE`, what each scan of `logs` (or of a chunk)
///   returned plus what its filter removed: the rows the filter (`q=`'s `ILIKE`) was
///   evaluated on. Rows a lossy BRIN block range brought in and the time recheck dropped
///   (`Rows Removed by Index Recheck`) are not counted: they measure the index's
///   granularity, not the windows. In plain mode that is the window (BRIN narrows the
///   heap to it); in TimescaleDB mode at this size a chunk (one day, 3,333 rows) is
///   scanned whole by any window inside it, so only `covered` is asserted there (over
///   10M rows, a chunk's 333k rows are narrowed by its own BRIN index).
struct PageCost {
    covered: i64,
    examined: i64,
    summary: String,
}

async fn page_cost(app: &ReadApp, windows: &[ExplainedWindow]) -> PageCost {
    let relations = log_relations(app).await;
    let mut cost = PageCost {
        covered: 0,
        examined: 0,
        summary: String::new(),
    };
    for window in windows {
        let covered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM logs WHERE ($1::timestamptz IS NULL OR timestamp >= $1) \
             AND ($2::timestamptz IS NULL OR timestamp < $2)",
        )
        .bind(window.since)
        .bind(window.until)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let scans = scans_of(&window.plan, &relations);
        let examined = rows_examined_in(&window.plan, &relations);
        cost.covered += covered;
        cost.examined += examined;
        cost.summary.push_str(&format!(
            "\n  [{:?}, {:?}): {} rows found, {covered} covered, {examined} examined in {} scans",
            window.since.map(|t| t.to_rfc3339()),
            window.until.map(|t| t.to_rfc3339()),
            window.plan[0]["Plan"]["Actual Rows"],
            scans.len()
        ));
    }
    cost
}

async fn rows_between(app: &ReadApp, from: &str, to: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM logs WHERE timestamp >= $1::timestamptz AND timestamp < $2::timestamptz",
    )
    .bind(from)
    .bind(to)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// A page whose filter is rare reads about the span it needs, not windows that re-read
/// each other: `q=000 shipped` matches every 1000th row (one every 7.2 hours), so a page
/// of 8 (9 rows read, the last tells whether there is a next page) needs the newest ~58
/// hours. Growing windows that each re-read the last (1h, 6h, 1d, 7d) read 199 hours
/// (27,634 rows examined, plain mode); disjoint doubling ones (1h, 2h, ... 32h) read 63.
#[tokio::test]
async fn a_rare_filter_reads_about_the_span_its_page_needs() {
    let app = app_with_rows().await;
    let until = THIRTY_DAYS[1].1;
    let query = query_pairs(
        &[
            THIRTY_DAYS.as_slice(),
            &[("q", "000 shipped"), ("limit", "8")],
        ]
        .concat(),
    );
    let now = chrono::DateTime::parse_from_rfc3339(until)
        .unwrap()
        .to_utc();
    let windows = explain_page_windows(&app.pool, query, &[], now)
        .await
        .unwrap();
    let cost = page_cost(&app, &windows).await;
    // The 9th match, the oldest row the page needs, is row 92,000.
    let needed = rows_between(&app, "2026-01-29T14:24:00Z", until).await;
    println!(
        "q=000 shipped, limit 8: {} covered, {} examined for a span of {needed} rows:{}",
        cost.covered, cost.examined, cost.summary
    );
    let found: i64 = windows
        .iter()
        .map(|w| w.plan[0]["Plan"]["Actual Rows"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(found, 9, "{}", cost.summary);
    assert!(
        cost.covered <= 2 * needed,
        "{needed} needed:{}",
        cost.summary
    );
    if app.mode == StorageMode::Postgres {
        assert!(
            cost.examined <= 2 * needed,
            "{needed} needed:{}",
            cost.summary
        );
    }
    app.stop().await;
}

/// A filter that matches nothing reads each row of the range once, not the newest
/// windows again before the whole range (1h + 6h + 1d + 7d + 30d: 1.28 times).
#[tokio::test]
async fn a_filter_matching_nothing_reads_the_range_once() {
    let app = app_with_rows().await;
    let (since, until) = (THIRTY_DAYS[0].1, THIRTY_DAYS[1].1);
    let query = query_pairs(&[THIRTY_DAYS.as_slice(), &[("q", "no such text")]].concat());
    let now = chrono::DateTime::parse_from_rfc3339(until)
        .unwrap()
        .to_utc();
    let windows = explain_page_windows(&app.pool, query, &[], now)
        .await
        .unwrap();
    let cost = page_cost(&app, &windows).await;
    let in_range = rows_between(&app, since, until).await;
    println!(
        "q=no such text over 30 days: {} covered, {} examined of {in_range} in range:{}",
        cost.covered, cost.examined, cost.summary
    );
    assert_eq!(cost.covered, in_range, "{}", cost.summary);
    if app.mode == StorageMode::Postgres {
        assert!(
            cost.examined <= in_range + in_range / 20,
            "{in_range} in range:{}",
            cost.summary
        );
    }
    app.stop().await;
}
