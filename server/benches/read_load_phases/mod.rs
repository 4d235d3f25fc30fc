//! The read benchmark's two phases beside the query shapes, each printed beside its
//! target: filters on service and level that match few or no entries of the 30 days
//! (the data set holds `rows / 20000` FATAL entries of `svc3`, none of `svc4`, and no
//! service `nosuch`), and the histogram and service list right after a backfill of 30
//! days (rows inserted by another writer, all older than the newest entries): each
//! answer's latency from the moment the backfill committed, and how long until its
//! counts include every backfilled row. Judges nothing: targets are printed, never
//! asserted.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use log_ingestion_test_support::bench::{BenchError, Result};
use log_ingestion_test_support::Latencies;
use sqlx::PgConnection;

/// The service the backfill writes, so its rows are found (and removed) again.
const BACKFILL_SERVICE: &str = "backfill";
/// How long the backfill phase watches the answers at most.
const BACKFILL_WATCH: Duration = Duration::from_secs(120);
/// Calls of each answer after both are complete.
const CALLS_AFTER_COMPLETE: usize = 10;
/// Pause between two rounds of the backfill phase's calls.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// One rare filter: its label, query pairs and target p50 in ms.
type RareShape = (&'static str, &'static [(&'static str, &'static str)], f64);

const RARE_SHAPES: [RareShape; 4] = [
    (
        "service=svc3&level=fatal (few)",
        &[("service", "svc3"), ("level", "fatal")],
        20.0,
    ),
    (
        "service=svc3&min_level=fatal (few)",
        &[("service", "svc3"), ("min_level", "fatal")],
        20.0,
    ),
    (
        "service=svc3,svc4&level=fatal (few)",
        &[("service", "svc3,svc4"), ("level", "fatal")],
        20.0,
    ),
    (
        "service=nosuch&level=error (none)",
        &[("service", "nosuch"), ("level", "error")],
        20.0,
    ),
];

fn text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn millis(latency: Option<Duration>) -> f64 {
    latency.map_or(f64::NAN, |latency| latency.as_secs_f64() * 1_000.0)
}

/// One GET with the admin key: the answer's JSON and how long it took.
async fn get(
    client: &reqwest::Client,
    url: &str,
    query: &[(&str, String)],
    admin_key: &str,
) -> Result<(serde_json::Value, Duration)> {
    let started = Instant::now();
    let response = client
        .get(url)
        .query(query)
        .header("authorization", format!("Bearer {admin_key}"))
        .timeout(Duration::from_secs(120))
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Err(BenchError::Setup(format!(
            "{url}: answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        )));
    }
    Ok((serde_json::from_slice(&body)?, elapsed))
}

/// The 30 days before `anchor` (to a minute past it), as the shapes ask.
fn month(anchor: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("since", text(anchor - chrono::Duration::days(30))),
        ("until", text(anchor + chrono::Duration::minutes(1))),
    ]
}

/// Each rare filter over the 30 days, a page of 100: entries found, p50/p95/max
/// beside the target.
pub async fn rare_filters(
    client: &reqwest::Client,
    base_url: &str,
    admin_key: &str,
    anchor: DateTime<Utc>,
    calls: usize,
) -> Result<()> {
    println!();
    println!("filters on service and level matching few or none of the 30 days, limit=100:");
    println!(
        "{:<42} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "shape (since=30d)", "entries", "p50 ms", "p95 ms", "max ms", "target ms"
    );
    let url = format!("{base_url}/api/v1/logs");
    for (label, pairs, target) in RARE_SHAPES {
        let mut query: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        query.extend(month(anchor));
        query.push(("limit", "100".to_owned()));
        let mut times = Latencies::new();
        let mut found = 0;
        for call in 0..=calls {
            let (page, elapsed) = get(client, &url, &query, admin_key).await?;
            found = page["logs"].as_array().map_or(0, Vec::len);
            if call > 0 {
                times.record(elapsed);
            }
        }
        println!(
            "{:<42} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>10}",
            label,
            found,
            millis(times.percentile(50.0)),
            millis(times.percentile(95.0)),
            millis(times.max()),
            format!("<= {target:.0}")
        );
    }
    Ok(())
}

/// What one answer of the backfill phase saw.
#[derive(Default)]
struct Watched {
    times: Latencies,
    complete_after: Option<Duration>,
    calls_complete: usize,
}

/// Inserts `rows` entries of service `backfill` spread over the 30 days before
/// `anchor` (one statement, as an import or a catching-up writer would), then calls
/// the 30-day histogram and the service list in turn from the moment it committed,
/// until both count every backfilled row (and a few calls more) or two minutes pass;
/// prints latencies from the commit on and when each became complete. Removes the
/// rows afterwards so the data set stays as it was built.
pub async fn backfill(
    db: &mut PgConnection,
    client: &reqwest::Client,
    base_url: &str,
    admin_key: &str,
    anchor: DateTime<Utc>,
    rows: i64,
) -> Result<()> {
    let range = month(anchor);
    let since = anchor - chrono::Duration::days(30);
    let until = anchor + chrono::Duration::minutes(1);
    let before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM logs WHERE timestamp >= $1 AND timestamp < $2")
            .bind(since)
            .bind(until)
            .fetch_one(&mut *db)
            .await?;
    let inserted = Instant::now();
    // Oldest first, ending an hour before the anchor: every row is older than the
    // newest entries, as a backfill is.
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata, received_at) \
         SELECT $2::timestamptz - interval '1 hour' \
                  - (interval '30 days' - interval '1 hour') * (($1 - i)::float8 / $1), \
                $3, CASE WHEN i % 10 = 0 THEN 'ERROR' ELSE 'INFO' END, 'backfilled ' || i, '{}'::jsonb, now() \
         FROM generate_series(1::int8, $1::int8) AS i",
    )
    .bind(rows)
    .bind(anchor)
    .bind(BACKFILL_SERVICE)
    .execute(&mut *db)
    .await?;
    let insert_secs = inserted.elapsed().as_secs_f64();
    let committed = Instant::now();
    let expected = before + rows;

    let histogram_url = format!("{base_url}/api/v1/logs/histogram");
    let services_url = format!("{base_url}/api/v1/services");
    let mut histogram = Watched::default();
    let mut services = Watched::default();
    while committed.elapsed() < BACKFILL_WATCH
        && (histogram.calls_complete < CALLS_AFTER_COMPLETE
            || services.calls_complete < CALLS_AFTER_COMPLETE)
    {
        let (answer, elapsed) = get(client, &histogram_url, &range, admin_key).await?;
        histogram.times.record(elapsed);
        let total: i64 = answer["buckets"]
            .as_array()
            .map(|buckets| buckets.iter().filter_map(|b| b["total"].as_i64()).sum())
            .unwrap_or(0);
        watch(&mut histogram, total == expected, committed);

        let (answer, elapsed) = get(client, &services_url, &[], admin_key).await?;
        services.times.record(elapsed);
        let counted = answer["services"].as_array().and_then(|list| {
            list.iter()
                .find(|s| s["service"] == BACKFILL_SERVICE)
                .and_then(|s| s["count"].as_i64())
        });
        watch(&mut services, counted == Some(rows), committed);
        tokio::time::sleep(ROUND_PAUSE).await;
    }
    println!();
    println!(
        "right after a backfill of {rows} rows over 30 days (inserted in {insert_secs:.1} s, \
         {before} rows before), called in turn from its commit on:"
    );
    println!(
        "{:<28} {:>6} {:>9} {:>9} {:>9} {:>10} {:>16}",
        "answer", "calls", "p50 ms", "p95 ms", "max ms", "target ms", "complete after"
    );
    for (label, watched, target) in [
        ("histogram?since=30d", &histogram, 50.0),
        ("/api/v1/services", &services, 20.0),
    ] {
        println!(
            "{:<28} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>10} {:>16}",
            label,
            watched.times.len(),
            millis(watched.times.percentile(50.0)),
            millis(watched.times.percentile(95.0)),
            millis(watched.times.max()),
            format!("<= {target:.0}"),
            watched
                .complete_after
                .map_or("never".to_owned(), |after| format!(
                    "{:.1} s",
                    after.as_secs_f64()
                ))
        );
    }
    let removed = Instant::now();
    sqlx::query("DELETE FROM logs WHERE service = $1")
        .bind(BACKFILL_SERVICE)
        .execute(&mut *db)
        .await?;
    println!(
        "backfilled rows removed in {:.1} s",
        removed.elapsed().as_secs_f64()
    );
    Ok(())
}

fn watch(watched: &mut Watched, complete: bool, committed: Instant) {
    if complete {
        watched
            .complete_after
            .get_or_insert_with(|| committed.elapsed());
        watched.calls_complete += 1;
    }
}
