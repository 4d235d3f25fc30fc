//! EXPLAIN evidence: the statements behind `GET /api/v1/logs` for a service and a time
//! range, for a time range alone, and for one request (`request_id=`) use the indexes
//! instead of scanning the whole table. Rows are generated with `generate_series` in one INSERT and never vacuumed
//! or summarized by hand: only `ANALYZE` (which leaves BRIN summaries alone), so the
//! BRIN time index is as fresh rows leave it.
//!
//! In TimescaleDB mode (`LOG_INGESTION_TEST_STORAGE=timescaledb`) the evidence is chunk
//! exclusion instead: `logs` is a hypertable of 1-day chunks, and a time-bounded query
//! must scan only the chunks its range overlaps (a sequential scan of that one small
//! chunk is the planner's right choice there); the BRIN-summary checks are plain-mode only.
//!
//! The 100k-row test runs by default. The million-row test also proves that the
//! index's `autosummarize` covers fresh rows without a VACUUM (it waits for autovacuum
//! to summarize the filled ranges, then bounds the heap blocks a one-hour query reads):
//! `cargo test -p log_ingestion_server --test read explain:: -- --ignored --nocapture`
//! (about a minute or more on a 2-core machine: generating rows, then autovacuum's
//! naptime).

use std::time::{Duration, Instant};

use log_ingestion_server::read::explain_page_query;
use log_ingestion_server::storage::StorageMode;
use log_ingestion_test_support::{plan_nodes, query_pairs, spawn_read_app, ReadApp};
use serde_json::Value;

const ROWS: i64 = 1_000_000;
const SMALL_ROWS: i64 = 100_000;

/// Blocks a sequential scan may read and still count as a lookup of a tiny relation.
const TINY_SCAN_BLOCKS: u64 = 8;

/// Asserts that no node scans `logs` sequentially beyond a tiny relation; returns the
/// node types, the rows the scans touched and the execution time.
fn assert_no_sequential_scan(explained: &Value) -> String {
    let root = &explained[0]["Plan"];
    let all = plan_nodes(root);
    let summary: Vec<String> = all
        .iter()
        .map(|node| {
            let name = node["Node Type"].as_str().unwrap_or("?");
            match node["Index Name"].as_str() {
                Some(index) => format!("{name} using {index}"),
                None => name.to_owned(),
            }
        })
        .collect();
    // A sequential scan of a tiny relation is the planner's right choice (in TimescaleDB
    // mode: a chunk holding a handful of rows); one over real data reads hundreds of blocks.
    let blocks = |node: &Value| {
        node["Shared Hit Blocks"]
            .as_u64()
            .unwrap_or(u64::MAX)
            .saturating_add(node["Shared Read Blocks"].as_u64().unwrap_or(0))
    };
    assert!(
        !all.iter()
            .any(|node| node["Node Type"] == "Seq Scan" && blocks(node) > TINY_SCAN_BLOCKS),
        "sequential scan in {summary:?}"
    );
    assert!(
        all.iter().any(|node| node["Index Name"].is_string()),
        "no index used: {summary:?}"
    );
    format!(
        "{} | execution {} ms, shared buffers hit+read {}",
        summary.join(" -> "),
        explained[0]["Execution Time"],
        root["Shared Hit Blocks"].as_i64().unwrap_or(0)
            + root["Shared Read Blocks"].as_i64().unwrap_or(0)
    )
}

/// The chunks of `logs` a plan scans (TimescaleDB mode), by relation name.
fn scanned_chunks(explained: &Value) -> std::collections::BTreeSet<String> {
    plan_nodes(&explained[0]["Plan"])
        .iter()
        .filter_map(|node| node["Relation Name"].as_str())
        .filter(|name| name.contains("_chunk"))
        .map(str::to_owned)
        .collect()
}

async fn chunk_count(pool: &sqlx::PgPool) -> usize {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'logs'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    usize::try_from(count).unwrap()
}

/// The mode's evidence that a time-bounded query reads only its part of the table:
/// index use without a sequential scan of `logs` (plain), or a scan of at most
/// `max_chunks` of the hypertable's chunks (TimescaleDB). Returns a summary to print.
async fn assert_bounded_plan(app: &ReadApp, query: &[(&str, &str)], max_chunks: usize) -> String {
    let analyzed = explain_page_query(&app.pool, query_pairs(query), &[], true)
        .await
        .unwrap();
    match app.mode {
        StorageMode::Postgres => assert_no_sequential_scan(&analyzed),
        StorageMode::Timescale => {
            let scanned = scanned_chunks(&analyzed);
            let total = chunk_count(&app.pool).await;
            assert!(
                total >= 30,
                "expected 30 days of 1-day chunks, found {total}"
            );
            assert!(
                !scanned.is_empty() && scanned.len() <= max_chunks,
                "{query:?} scanned {} of {total} chunks: {scanned:?}",
                scanned.len()
            );
            format!(
                "{} of {total} chunks scanned, execution {} ms",
                scanned.len(),
                analyzed[0]["Execution Time"]
            )
        }
    }
}

/// Thirty days of entries in time order, twenty services, five levels; then `ANALYZE`
/// for the planner's statistics. Never VACUUM: that would summarize the BRIN index.
async fn generate_rows(pool: &sqlx::PgPool, rows: i64) {
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-01' + n * (interval '30 days' / $1), \
                'service-' || (n % 20), \
                (ARRAY['DEBUG','INFO','INFO','INFO','WARN','ERROR'])[1 + n % 6], \
                'request ' || n || ' handled in ' || (n % 997) || ' ms', \
                jsonb_build_object('request_id', md5(n::text), 'user_id', n % 5000) \
         FROM generate_series(1, $1::bigint) AS n",
    )
    .bind(rows)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE logs").execute(pool).await.unwrap();
}

/// Heap blocks the plan's bitmap heap scans read (exact plus lossy).
fn heap_blocks_read(explained: &Value) -> i64 {
    plan_nodes(&explained[0]["Plan"])
        .iter()
        .filter(|node| node["Node Type"] == "Bitmap Heap Scan")
        .map(|node| {
            node["Exact Heap Blocks"].as_i64().unwrap_or(0)
                + node["Lossy Heap Blocks"].as_i64().unwrap_or(0)
        })
        .sum()
}

async fn table_pages(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_relation_size('logs') / current_setting('block_size')::bigint")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_brin_time_index_asks_for_automatic_summaries() {
    let app = spawn_read_app().await;
    if app.mode != StorageMode::Postgres {
        return app.stop().await; // chunks have their own indexes; no table-wide BRIN to summarize
    }
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE relname = 'logs_timestamp_brin'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(options, Some(vec!["autosummarize=on".to_owned()]));
    app.stop().await;
}

#[tokio::test]
async fn service_and_time_range_queries_over_100k_fresh_rows_read_only_their_range() {
    let app = spawn_read_app().await;
    generate_rows(&app.pool, SMALL_ROWS).await;
    let service_and_day = [
        ("service", "service-7"),
        ("since", "2026-01-10T00:00:00Z"),
        ("until", "2026-01-11T00:00:00Z"),
    ];
    eprintln!(
        "service + 1 day: {}",
        assert_bounded_plan(&app, &service_and_day, 2).await
    );
    let one_hour = [
        ("since", "2026-01-20T00:00:00Z"),
        ("until", "2026-01-20T01:00:00Z"),
    ];
    eprintln!("1 hour: {}", assert_bounded_plan(&app, &one_hour, 1).await);
    app.stop().await;
}

#[tokio::test]
async fn a_request_view_over_100k_rows_is_served_by_the_request_index() {
    let app = spawn_read_app().await;
    generate_rows(&app.pool, SMALL_ROWS).await;
    let request_id: String = sqlx::query_scalar("SELECT md5('4242')")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let plan = explain_page_query(
        &app.pool,
        query_pairs(&[("request_id", &request_id)]),
        &[],
        true,
    )
    .await
    .unwrap();
    let summary = assert_no_sequential_scan(&plan);
    assert!(summary.contains("logs_request"), "{summary}");
    println!("request view over {SMALL_ROWS} rows: {summary}");
    app.stop().await;
}

#[tokio::test]
#[ignore = "generates a million rows and waits for autovacuum; run with --ignored"]
async fn service_and_time_range_queries_over_a_million_rows_use_the_indexes() {
    let app = spawn_read_app().await;
    let started = Instant::now();
    generate_rows(&app.pool, ROWS).await;
    eprintln!("generated {ROWS} rows in {:?}", started.elapsed());
    if app.mode == StorageMode::Timescale {
        return million_rows_in_timescaledb_mode_exclude_chunks(app).await;
    }

    // No VACUUM, no brin_summarize_new_values: autosummarize must get the filled
    // ranges summarized by autovacuum on its own. Until it has, the one-hour query
    // reads every block; afterwards only the matching ranges and the last, still
    // filling one. Waits for autovacuum's next visit of this database.
    let pages = table_pages(&app.pool).await;
    let one_hour = query_pairs(&[
        ("since", "2026-01-20T00:00:00Z"),
        ("until", "2026-01-20T01:00:00Z"),
    ]);
    let bound = pages / 20;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut read = i64::MAX;
    while Instant::now() < deadline {
        let analyzed = explain_page_query(&app.pool, one_hour.clone(), &[], true)
            .await
            .unwrap();
        read = heap_blocks_read(&analyzed);
        if read <= bound {
            eprintln!(
                "1 hour after autosummarize ({:?} after the insert): {} heap blocks of {pages}: {}",
                started.elapsed(),
                read,
                assert_no_sequential_scan(&analyzed)
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    assert!(
        read <= bound,
        "the one-hour query still reads {read} of {pages} heap blocks: the BRIN ranges were never summarized"
    );

    let service_and_range = query_pairs(&[
        ("service", "service-7"),
        ("since", "2026-01-10T00:00:00Z"),
        ("until", "2026-01-11T00:00:00Z"),
    ]);
    let plan = explain_page_query(&app.pool, service_and_range.clone(), &[], false)
        .await
        .unwrap();
    assert_no_sequential_scan(&plan);
    let analyzed = explain_page_query(&app.pool, service_and_range, &[], true)
        .await
        .unwrap();
    eprintln!("service + 1 day: {}", assert_no_sequential_scan(&analyzed));

    let range_only = query_pairs(&[
        ("since", "2026-01-20T00:00:00Z"),
        ("until", "2026-01-20T01:00:00Z"),
        ("min_level", "warn"),
    ]);
    let analyzed = explain_page_query(&app.pool, range_only, &[], true)
        .await
        .unwrap();
    eprintln!(
        "1 hour, min_level=warn: {}",
        assert_no_sequential_scan(&analyzed)
    );

    let services = query_pairs(&[
        ("service", "service-1,service-2"),
        ("since", "2026-01-05T00:00:00Z"),
        ("until", "2026-01-06T00:00:00Z"),
        ("q", "handled in 5"),
    ]);
    let analyzed = explain_page_query(&app.pool, services, &[], true)
        .await
        .unwrap();
    eprintln!(
        "two services + 1 day + q: {}",
        assert_no_sequential_scan(&analyzed)
    );
    app.stop().await;
}

/// Query parameters of the read API, as pairs.
type Query = &'static [(&'static str, &'static str)];

/// The million-row check in TimescaleDB mode: every time-bounded query scans only the
/// chunks its range overlaps.
async fn million_rows_in_timescaledb_mode_exclude_chunks(app: ReadApp) {
    let queries: [(&str, Query, usize); 3] = [
        (
            "service + 1 day",
            &[
                ("service", "service-7"),
                ("since", "2026-01-10T00:00:00Z"),
                ("until", "2026-01-11T00:00:00Z"),
            ],
            2,
        ),
        (
            "1 hour, min_level=warn",
            &[
                ("since", "2026-01-20T00:00:00Z"),
                ("until", "2026-01-20T01:00:00Z"),
                ("min_level", "warn"),
            ],
            1,
        ),
        (
            "two services + 1 day + q",
            &[
                ("service", "service-1,service-2"),
                ("since", "2026-01-05T00:00:00Z"),
                ("until", "2026-01-06T00:00:00Z"),
                ("q", "handled in 5"),
            ],
            2,
        ),
    ];
    for (name, query, max_chunks) in queries {
        eprintln!(
            "{name}: {}",
            assert_bounded_plan(&app, query, max_chunks).await
        );
    }
    app.stop().await;
}
