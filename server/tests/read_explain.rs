//! EXPLAIN evidence over a million rows: the statements behind `GET /api/v1/logs` for
//! a service and a time range, and for a time range alone, use the indexes instead of
//! scanning the whole table. Rows are generated with `generate_series` in one INSERT.
//!
//! Run: `cargo test -p log_ingestion_server --test read_explain -- --ignored --nocapture`
//! (about 30 s on a 2-core machine, most of it generating the rows).

mod read_support;

use std::time::Instant;

use read_support::read::explain_page_query;
use read_support::spawn_read_app;
use serde_json::Value;

const ROWS: i64 = 1_000_000;

/// Every node of a plan, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    if let Some(children) = plan["Plans"].as_array() {
        for child in children {
            all.extend(nodes(child));
        }
    }
    all
}

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Asserts that no node scans `logs` sequentially; returns the node types, the rows the
/// scans touched and the execution time.
fn assert_no_sequential_scan(explained: &Value) -> String {
    let root = &explained[0]["Plan"];
    let all = nodes(root);
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
    assert!(
        !all.iter().any(|node| node["Node Type"] == "Seq Scan"),
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

#[tokio::test]
#[ignore = "generates a million rows (~30 s); run with --ignored"]
async fn service_and_time_range_queries_over_a_million_rows_use_the_indexes() {
    let app = spawn_read_app().await;
    let started = Instant::now();
    // Thirty days of entries in time order, twenty services, five levels.
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) \
         SELECT timestamptz '2026-01-01' + n * (interval '30 days' / $1), \
                'service-' || (n % 20), \
                (ARRAY['DEBUG','INFO','INFO','INFO','WARN','ERROR'])[1 + n % 6], \
                'request ' || n || ' handled in ' || (n % 997) || ' ms', \
                jsonb_build_object('request_id', md5(n::text), 'user_id', n % 5000) \
         FROM generate_series(1, $1::bigint) AS n",
    )
    .bind(ROWS)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE logs")
        .execute(&app.pool)
        .await
        .unwrap();
    eprintln!("generated {ROWS} rows in {:?}", started.elapsed());

    let service_and_range = pairs(&[
        ("service", "service-7"),
        ("since", "2026-01-10T00:00:00Z"),
        ("until", "2026-01-11T00:00:00Z"),
    ]);
    let plan = explain_page_query(&app.pool, service_and_range.clone(), false)
        .await
        .unwrap();
    assert_no_sequential_scan(&plan);
    let analyzed = explain_page_query(&app.pool, service_and_range, true)
        .await
        .unwrap();
    eprintln!("service + 1 day: {}", assert_no_sequential_scan(&analyzed));

    let range_only = pairs(&[
        ("since", "2026-01-20T00:00:00Z"),
        ("until", "2026-01-20T01:00:00Z"),
        ("min_level", "warn"),
    ]);
    let analyzed = explain_page_query(&app.pool, range_only, true)
        .await
        .unwrap();
    eprintln!(
        "1 hour, min_level=warn: {}",
        assert_no_sequential_scan(&analyzed)
    );

    let services = pairs(&[
        ("service", "service-1,service-2"),
        ("since", "2026-01-05T00:00:00Z"),
        ("until", "2026-01-06T00:00:00Z"),
        ("q", "handled in 5"),
    ]);
    let analyzed = explain_page_query(&app.pool, services, true).await.unwrap();
    eprintln!(
        "two services + 1 day + q: {}",
        assert_no_sequential_scan(&analyzed)
    );
    app.stop().await;
}
