//! Read benchmark of the ingestion server: the explorer's query shapes over a
//! large `logs` table, through the real server binary, in one storage mode per run.
//!
//! Owns one measurement run: a database of its own holding `BENCH_READ_ROWS` rows
//! generated in the database with `generate_series` (never through HTTP): 10 services,
//! six levels (mostly INFO/DEBUG), `user_id` (50,000 users) and `request_id` (one per
//! five entries) metadata, a ~40-byte message, spread evenly over the 30 days before
//! the build (one entry in 20,000 is a FATAL entry of `svc3`, which otherwise has none,
//! for the rare filters of `read_load_phases`). The database is kept after the run and reused by the next one when its
//! marker says it holds the same row count in the same mode (building 10M rows takes
//! minutes on a shared 2-core machine); queries name absolute times relative to the
//! build's anchor (the newest row), so a reused data set answers the same questions. It
//! starts the server binary with an admin key, runs each query shape `BENCH_READ_CALLS`
//! times (after one warm-up call), and prints p50/p95 per shape and the table and
//! index sizes. It never asserts speed: it exits non-zero only when the run is broken
//! (setup failure or a non-200 answer).
//!
//! Run: `cargo bench -p log_ingestion_server --bench read_load`.
//! `cargo test --benches` runs it without `--bench`: a smoke run over a few thousand
//! rows in a throwaway database, proving the program works and judging nothing.
//!
//! Environment:
//! - `BENCH_READ_ROWS` rows in the data set (default 10,000,000).
//! - `BENCH_READ_CALLS` timed calls per query shape (default 20).
//! - `BENCH_STORAGE` `timescaledb` or `postgresql` (default `timescaledb`); the data set of
//!   each mode lives in its own database `bench_read_<mode>_<rows>`.
//! - `BENCH_READ_REBUILD=1` drops and rebuilds the data set even when it could be reused;
//!   `BENCH_READ_DROP=1` drops the database at the end (disk is shared).
//! - `BENCH_READ_COMPRESS=1` (TimescaleDB mode) compresses the chunks older than 7 days
//!   before measuring, as the compression policy would, and prints the sizes before and
//!   after (the data set stays compressed for later runs).
//! - `BENCH_READ_BACKFILL` rows of the backfill phase (default a tenth of the data set;
//!   0 skips it).
//! - `BENCH_SERVER_BIN` server binary (default: the one cargo built for this bench);
//!   `BENCH_SERVER_ENV` extra `NAME=VALUE;NAME=VALUE` settings for the server.
//! - `DATABASE_URL` PostgreSQL to use (default: `bin/postgres-dev start`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use log_ingestion_server::config::comma_list;
use log_ingestion_server::storage::declared_keys::{self, DeclaredKeys};
use log_ingestion_test_support::bench::{BenchError, LoggedServer, Result};
use log_ingestion_test_support::{proc_stats, start_private_postgres, with_database, Latencies};
use sqlx::{Connection, PgConnection};

#[path = "read_load_phases/mod.rs"]
mod phases;

const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";
const INGEST_KEY: &str = "bench-ingest-key-0123456789abcdef";
const DEFAULT_ROWS: i64 = 10_000_000;
const SMOKE_ROWS: i64 = 5_000;
const DEFAULT_CALLS: usize = 20;
const SMOKE_CALLS: usize = 2;
/// Rows generated per INSERT statement, so the build prints progress.
const BUILD_STEP: i64 = 1_000_000;
/// Bumped whenever the generated data changes shape: an older data set is rebuilt.
const DATA_VERSION: i32 = 2;
const STARTUP_DEADLINE: Duration = Duration::from_secs(120);
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Settings of one run, read once from the environment.
struct BenchConfig {
    rows: i64,
    calls: usize,
    storage: String,
    measuring: bool,
    rebuild: bool,
    drop_at_end: bool,
    compress: bool,
    backfill: i64,
    server_bin: PathBuf,
    server_env: Vec<(String, String)>,
    database_url: Option<String>,
}

impl BenchConfig {
    fn from_env(measuring: bool) -> Result<Self> {
        let (default_rows, default_calls) = if measuring {
            (DEFAULT_ROWS, DEFAULT_CALLS)
        } else {
            (SMOKE_ROWS, SMOKE_CALLS)
        };
        let rows = env_number("BENCH_READ_ROWS", default_rows)?;
        let calls = env_number("BENCH_READ_CALLS", default_calls as i64)?;
        if rows < 1_000 || calls < 1 {
            return Err(BenchError::Setup(
                "BENCH_READ_ROWS must be at least 1000 and BENCH_READ_CALLS positive".into(),
            ));
        }
        let storage = std::env::var("BENCH_STORAGE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "timescaledb".into());
        if storage != "timescaledb" && storage != "postgresql" {
            return Err(BenchError::Setup(format!(
                "BENCH_STORAGE={storage:?}: must be timescaledb or postgresql"
            )));
        }
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
        // `;` between settings: values may hold commas (a list of keys).
        let server_env = std::env::var("BENCH_SERVER_ENV")
            .unwrap_or_default()
            .split(';')
            .filter(|pair| !pair.trim().is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) => Ok((name.trim().to_owned(), value.to_owned())),
                None => Err(BenchError::Setup(format!(
                    "BENCH_SERVER_ENV: {pair:?} is not NAME=VALUE"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            rows,
            calls: calls as usize,
            storage,
            measuring,
            // The smoke run never leaves a database behind.
            rebuild: flag("BENCH_READ_REBUILD") || !measuring,
            drop_at_end: flag("BENCH_READ_DROP") || !measuring,
            compress: flag("BENCH_READ_COMPRESS"),
            backfill: env_number("BENCH_READ_BACKFILL", rows / 10)?,
            server_bin: std::env::var_os("BENCH_SERVER_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_log-ingestion-server"))),
            server_env,
            database_url: std::env::var("DATABASE_URL").ok().filter(|s| !s.is_empty()),
        })
    }

    fn database_name(&self) -> String {
        let purpose = if self.measuring {
            "bench_read"
        } else {
            "smoke_read"
        };
        format!("{purpose}_{}_{}", self.storage, self.rows)
    }
}

fn env_number(name: &str, default: i64) -> Result<i64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|e| BenchError::Setup(format!("{name}={v:?}: {e}"))),
        Err(_) => Ok(default),
    }
}

/// The newest row's time of a data set that matches this run, if the database holds one.
async fn reusable_anchor(url: &str, config: &BenchConfig) -> Option<DateTime<Utc>> {
    let mut db = PgConnection::connect(url).await.ok()?;
    let marker: Option<(i64, i32, DateTime<Utc>)> =
        sqlx::query_as("SELECT rows, version, anchor FROM bench_read_marker")
            .fetch_optional(&mut db)
            .await
            .ok()?;
    let _ = db.close().await;
    match marker {
        Some((rows, version, anchor)) if rows == config.rows && version == DATA_VERSION => {
            Some(anchor)
        }
        _ => None,
    }
}

/// Creates the database, lets the server's own `migrate` shape it in the run's mode,
/// generates the rows and records the marker. Returns the anchor (newest row's time).
async fn build_data_set(
    admin_url: &str,
    name: &str,
    url: &str,
    config: &BenchConfig,
) -> Result<DateTime<Utc>> {
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let log_path =
        std::env::temp_dir().join(format!("read_load_migrate_{}.log", std::process::id()));
    server(config, url, &log_path).migrate()?;

    let mut db = PgConnection::connect(url).await?;
    let anchor: DateTime<Utc> = sqlx::query_scalar("SELECT date_trunc('minute', now())")
        .fetch_one(&mut db)
        .await?;
    let started = Instant::now();
    let mut first = 0i64;
    let generate = generate_rows(config);
    while first < config.rows {
        let last = (first + BUILD_STEP).min(config.rows) - 1;
        sqlx::query(&generate)
            .bind(first)
            .bind(last)
            .bind(config.rows)
            .bind(anchor)
            .execute(&mut db)
            .await?;
        first = last + 1;
        println!(
            "  built {first} of {} rows ({:.0} s)",
            config.rows,
            started.elapsed().as_secs_f64()
        );
    }
    // The steady state of a table that has been live for a month: vacuumed (visibility
    // map set, BRIN ranges summarized) and analyzed.
    sqlx::query("VACUUM ANALYZE logs").execute(&mut db).await?;
    sqlx::query(
        "CREATE TABLE bench_read_marker (rows bigint NOT NULL, version int NOT NULL, \
         anchor timestamptz NOT NULL, build_seconds float8 NOT NULL)",
    )
    .execute(&mut db)
    .await?;
    sqlx::query("INSERT INTO bench_read_marker VALUES ($1, $2, $3, $4)")
        .bind(config.rows)
        .bind(DATA_VERSION)
        .bind(anchor)
        .bind(started.elapsed().as_secs_f64())
        .execute(&mut db)
        .await?;
    db.close().await?;
    println!(
        "data set built in {:.0} s (generate_series, VACUUM ANALYZE)",
        started.elapsed().as_secs_f64()
    );
    Ok(anchor)
}

/// Rows `$1..=$2` of `$3`, evenly spread over the 30 days before `$4` (row `$3 - 1` is
/// at `$4`), oldest first as a live table receives them. Levels: 20% DEBUG, 62% INFO,
/// 10% WARN, 6% ERROR, 1.5% FATAL, 0.5% CRITICAL; `svc3` has FATAL entries only at one row
/// in 20,000 and no CRITICAL ones. Messages like `order 123456 shipped
/// in 87 ms` (so `q=order 123` matches about one message in 900). The declared keys'
/// columns are appended by [`generate_rows`].
const GENERATE_ROWS: &str = "\
SELECT ts AS timestamp, 'svc' || (i % 10) AS service,
       CASE WHEN i % 20000 = 3 THEN 'FATAL' WHEN i % 200 < 40 THEN 'DEBUG' WHEN i % 200 < 164 THEN 'INFO'
            WHEN i % 200 < 184 THEN 'WARN' WHEN i % 200 < 196 THEN 'ERROR'
            WHEN i % 200 < 199 THEN 'FATAL' ELSE 'CRITICAL' END AS level,
       'order ' || ((i * 7919) % 1000000) || ' shipped in ' || (i % 997) || ' ms' AS message,
       jsonb_build_object('user_id', (i * 31) % 50000,
                          'request_id', md5((i / 5)::text),
                          'path', '/orders/' || (i % 1000)) AS metadata,
       ts AS received_at
FROM (SELECT i, $4::timestamptz - interval '30 days' * (($3 - 1 - i)::float8 / $3) AS ts
      FROM generate_series($1::int8, $2::int8) AS i) AS g";

/// The statement generating the rows: [`GENERATE_ROWS`] with a column per metadata key
/// the server declares (`LOG_INGESTION_DECLARED_KEYS`, or its older name, in `BENCH_SERVER_ENV`),
/// filled by the rule `migrate` fills stored rows with, as the server's `COPY` would.
fn generate_rows(config: &BenchConfig) -> String {
    let keys: Vec<String> = config
        .server_env
        .iter()
        .filter(|(name, _)| {
            name == "LOG_INGESTION_DECLARED_KEYS" || name == "LOG_INGESTION_INDEXED_METADATA_KEYS"
        })
        .flat_map(|(_, list)| comma_list(list))
        .map(str::to_owned)
        .collect();
    let declared = DeclaredKeys::new(&keys);
    let columns = declared.column_list();
    let values: String = declared
        .keys()
        .iter()
        .map(|key| format!(", {}", declared_keys::indexed_text_sql(key)))
        .collect();
    format!(
        "INSERT INTO logs (timestamp, service, level, message, metadata, received_at{columns}) \
         SELECT timestamp, service, level, message, metadata, received_at{values} \
         FROM ({GENERATE_ROWS}) AS generated"
    )
}

/// The server binary with this run's settings on `url`, its log in `log_path`.
fn server(config: &BenchConfig, url: &str, log_path: &Path) -> LoggedServer {
    config.server_env.iter().fold(
        LoggedServer::new(&config.server_bin, log_path)
            .env("DATABASE_URL", url)
            .env("LOG_INGESTION_STORAGE", &config.storage)
            .env("LOG_INGESTION_API_KEYS", INGEST_KEY)
            .env("LOG_INGESTION_ADMIN_API_KEYS", ADMIN_KEY)
            // Slow "before" shapes must be measured, not cut off.
            .env("LOG_INGESTION_READ_STATEMENT_TIMEOUT", "120s")
            // The compression policy must not start compressing the data set mid-run.
            .env("LOG_INGESTION_POLICY_CHECK_INTERVAL", "30d"),
        |server, (name, value)| server.env(name, value),
    )
}

/// One query shape of the table: a label, the path, and how far back it looks
/// (`None`: no time bound, as the explorer's service list asks); `until_age`: how far
/// back it stops (`None`: at the anchor).
struct Shape {
    label: &'static str,
    path: &'static str,
    query: Pairs,
    since: Option<chrono::Duration>,
    until_age: Option<chrono::Duration>,
}

/// Ranges of two days, one in the last week (never compressed) and one 8-10 days back
/// (compressed with `BENCH_READ_COMPRESS=1` in TimescaleDB mode), for each shape in
/// [`RANGE_PAIR_SHAPES`]: the same question over uncompressed and compressed chunks.
const RANGE_PAIRS: [(&str, i64, i64); 2] = [("4d..2d ago", 4, 2), ("10d..8d ago", 10, 8)];
/// Query parameters, as pairs.
type Pairs = &'static [(&'static str, &'static str)];
const RANGE_PAIR_SHAPES: [(&str, &str, Pairs); 4] = [
    ("limit=100", "/api/v1/logs", &[("limit", "100")]),
    ("service=svc3", "/api/v1/logs", &[("service", "svc3")]),
    ("q=order 123", "/api/v1/logs", &[("q", "order 123")]),
    ("histogram", "/api/v1/logs/histogram", &[]),
];

fn shapes() -> Vec<Shape> {
    let hour = Some(chrono::Duration::hours(1));
    let day = Some(chrono::Duration::days(1));
    let week = Some(chrono::Duration::days(7));
    let month = Some(chrono::Duration::days(30));
    let logs = "/api/v1/logs";
    let histogram = "/api/v1/logs/histogram";
    let mut shapes = vec![
        Shape {
            label: "since=1h&limit=100",
            path: logs,
            query: &[("limit", "100")],
            since: hour,
            until_age: None,
        },
        Shape {
            label: "since=30d&limit=100",
            path: logs,
            query: &[("limit", "100")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "service=svc3&since=7d",
            path: logs,
            query: &[("service", "svc3")],
            since: week,
            until_age: None,
        },
        Shape {
            label: "service=svc3&since=30d",
            path: logs,
            query: &[("service", "svc3")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "min_level=error&since=30d",
            path: logs,
            query: &[("min_level", "error")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "level=warn&service=svc3&since=30d",
            path: logs,
            query: &[("level", "warn"), ("service", "svc3")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "q=order 123&since=1d",
            path: logs,
            query: &[("q", "order 123")],
            since: day,
            until_age: None,
        },
        Shape {
            label: "q=order 123&since=30d",
            path: logs,
            query: &[("q", "order 123")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "meta.user_id=42&since=30d",
            path: logs,
            query: &[("meta.user_id", "42")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "histogram?since=1h",
            path: histogram,
            query: &[],
            since: hour,
            until_age: None,
        },
        Shape {
            label: "histogram?since=30d",
            path: histogram,
            query: &[],
            since: month,
            until_age: None,
        },
        Shape {
            label: "histogram?service=svc3&since=30d",
            path: histogram,
            query: &[("service", "svc3")],
            since: month,
            until_age: None,
        },
        Shape {
            label: "/api/v1/services",
            path: "/api/v1/services",
            query: &[],
            since: None,
            until_age: None,
        },
    ];
    for (name, path, query) in RANGE_PAIR_SHAPES {
        for (range, from_days, to_days) in RANGE_PAIRS {
            shapes.push(Shape {
                label: Box::leak(format!("{name}, {range}").into_boxed_str()),
                path,
                query,
                since: Some(chrono::Duration::days(from_days)),
                until_age: Some(chrono::Duration::days(to_days)),
            });
        }
    }
    shapes
}

/// How long each timed call took.
async fn measure(
    client: &reqwest::Client,
    base_url: &str,
    shape: &Shape,
    anchor: DateTime<Utc>,
    calls: usize,
) -> Result<Latencies> {
    let mut query: Vec<(&str, String)> = shape
        .query
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    if let Some(since) = shape.since {
        // Absolute times: a reused data set answers the same question as a fresh one.
        let text = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        query.push(("since", text(anchor - since)));
        let until = match shape.until_age {
            Some(age) => anchor - age,
            None => anchor + chrono::Duration::minutes(1),
        };
        query.push(("until", text(until)));
    }
    let mut times = Latencies::new();
    // One warm-up call, untimed: the first plan and cold caches are not the shape's cost.
    for call in 0..=calls {
        let started = Instant::now();
        let response = client
            .get(format!("{base_url}{}", shape.path))
            .query(&query)
            .header("authorization", format!("Bearer {ADMIN_KEY}"))
            .timeout(CALL_TIMEOUT)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            return Err(BenchError::Setup(format!(
                "{}: answered {status}: {}",
                shape.label,
                String::from_utf8_lossy(&body[..body.len().min(500)])
            )));
        }
        if call > 0 {
            times.record(elapsed);
        }
    }
    Ok(times)
}

/// Milliseconds, `NaN` when nothing was measured.
fn millis(latency: Option<Duration>) -> f64 {
    latency.map_or(f64::NAN, |latency| latency.as_secs_f64() * 1_000.0)
}

/// Materializes the rollups' continuous aggregates (when this server has them) up to
/// their refresh policies' end offsets (a minute, an hour before now): the steady state of a server whose refresh policies have been running, where a
/// fresh `migrate` leaves them empty (real-time aggregation would count every row). One
/// pass (`buckets_per_batch` 0): TimescaleDB's default of 10 buckets per transaction
/// takes thousands of transactions over 30 days of minutes.
async fn materialize_rollups(db: &mut PgConnection) -> Result<()> {
    let started = Instant::now();
    for (view,) in sqlx::query_as::<_, (String,)>(
        "SELECT view_name::text FROM timescaledb_information.continuous_aggregates \
         WHERE hypertable_name = 'logs' OR view_name = 'logs_per_hour' ORDER BY view_name DESC",
    )
    .fetch_all(&mut *db)
    .await?
    {
        // TimescaleDB's scheduler may be running the new refresh policy right now: then
        // this refresh is refused, and tried again once that one has had time to end.
        let offset = if view == "logs_per_hour" {
            "1 hour"
        } else {
            "1 minute"
        };
        let deadline = Instant::now() + Duration::from_secs(1_800);
        loop {
            let refreshed = sqlx::query(&format!(
                "CALL refresh_continuous_aggregate('{view}', NULL, now() - interval '{offset}', \
                 options => '{{\"buckets_per_batch\": 0}}')"
            ))
            .execute(&mut *db)
            .await;
            match refreshed {
                Ok(_) => break,
                Err(e)
                    if e.to_string().contains("concurrent refresh")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    println!(
        "continuous aggregates refreshed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Compresses every uncompressed chunk of `logs` older than 7 days (what the compression
/// policy does), then `ANALYZE`s.
async fn compress_old_chunks(db: &mut PgConnection) -> Result<()> {
    let started = Instant::now();
    let compressed: Vec<(String,)> = sqlx::query_as(
        "SELECT compress_chunk(c, if_not_compressed => true)::text \
         FROM show_chunks('logs', older_than => interval '7 days') AS c",
    )
    .fetch_all(&mut *db)
    .await?;
    sqlx::query("ANALYZE logs").execute(&mut *db).await?;
    println!(
        "compressed {} chunks older than 7 days in {:.0} s",
        compressed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Table and index sizes of `logs` (in TimescaleDB mode over all its chunks) and of
/// every other table in the schema that is not the marker.
async fn print_sizes(db: &mut PgConnection, storage: &str) -> Result<()> {
    let mb = |bytes: i64| bytes as f64 / 1_048_576.0;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE tablename = 'logs' \
         AND schemaname = current_schema() ORDER BY indexname",
    )
    .fetch_all(&mut *db)
    .await?;
    if storage == "timescaledb" {
        let (table, index, toast, total): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(table_bytes, 0), COALESCE(index_bytes, 0), \
                    COALESCE(toast_bytes, 0), COALESCE(total_bytes, 0) \
             FROM hypertable_detailed_size('logs')",
        )
        .fetch_one(&mut *db)
        .await?;
        let (chunks, compressed): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE is_compressed) \
             FROM timescaledb_information.chunks WHERE hypertable_name = 'logs'",
        )
        .fetch_one(&mut *db)
        .await?;
        println!(
            "logs (hypertable, {chunks} chunks, {compressed} compressed): heap {:.1} MiB, \
             indexes {:.1} MiB, toast {:.1} MiB, total {:.1} MiB",
            mb(table),
            mb(index),
            mb(toast),
            mb(total)
        );
        for name in indexes {
            let size: i64 = sqlx::query_scalar("SELECT hypertable_index_size($1::regclass)")
                .bind(&name)
                .fetch_one(&mut *db)
                .await
                .unwrap_or(0);
            println!("  index {name}: {:.1} MiB", mb(size));
        }
        let aggregates: Vec<(String, i64)> = sqlx::query_as(
            "SELECT view_name::text, COALESCE(hypertable_size(format('%I.%I', \
               materialization_hypertable_schema, materialization_hypertable_name)::regclass), 0) \
             FROM timescaledb_information.continuous_aggregates ORDER BY 1",
        )
        .fetch_all(&mut *db)
        .await?;
        for (name, bytes) in aggregates {
            println!("continuous aggregate {name}: {:.1} MiB", mb(bytes));
        }
    } else {
        let (table, index): (i64, i64) =
            sqlx::query_as("SELECT pg_table_size('logs'), pg_indexes_size('logs')")
                .fetch_one(&mut *db)
                .await?;
        println!(
            "logs (plain): table {:.1} MiB, indexes {:.1} MiB",
            mb(table),
            mb(index)
        );
        for name in indexes {
            let size: i64 = sqlx::query_scalar("SELECT pg_relation_size($1::regclass)")
                .bind(&name)
                .fetch_one(&mut *db)
                .await?;
            println!("  index {name}: {:.1} MiB", mb(size));
        }
    }
    let others: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c \
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'm') \
           AND c.relname NOT IN ('logs', 'bench_read_marker', '_sqlx_migrations') \
         ORDER BY 1",
    )
    .fetch_all(&mut *db)
    .await?;
    for (name, bytes) in others {
        println!("table {name}: {:.1} MiB", mb(bytes));
    }
    Ok(())
}

async fn run(config: &BenchConfig) -> Result<()> {
    let admin_url = match &config.database_url {
        Some(url) => url.clone(),
        None => start_private_postgres().map_err(BenchError::Setup)?,
    };
    let name = config.database_name();
    let url = with_database(&admin_url, &name).map_err(BenchError::Setup)?;
    let reuse = if config.rebuild {
        None
    } else {
        reusable_anchor(&url, config).await
    };
    let anchor = match reuse {
        Some(anchor) => {
            println!(
                "reusing database {name} ({} rows, anchor {anchor})",
                config.rows
            );
            anchor
        }
        None => {
            println!(
                "building database {name}: {} rows in mode {}",
                config.rows, config.storage
            );
            build_data_set(&admin_url, &name, &url, config).await?
        }
    };
    let log_path =
        std::env::temp_dir().join(format!("read_load_server_{}.log", std::process::id()));
    // `migrate` again: a reused data set gets the migrations this binary brings.
    let server = server(config, &url, &log_path);
    server.migrate()?;
    let mut db = PgConnection::connect(&url).await?;
    if config.storage == "timescaledb" {
        materialize_rollups(&mut db).await?;
        if config.compress {
            print_sizes(&mut db, &config.storage).await?;
            compress_old_chunks(&mut db).await?;
        }
    }
    let mut server = server.serve(STARTUP_DEADLINE).await?;

    print_sizes(&mut db, &config.storage).await?;
    println!(
        "storage {}, {} rows over 30 days, {} timed calls per shape (after one warm-up), \
         sequential, one connection; load average {}",
        config.storage,
        config.rows,
        config.calls,
        proc_stats::load_average()
    );
    println!(
        "{:<38} {:>10} {:>10} {:>10}",
        "shape", "p50 ms", "p95 ms", "max ms"
    );
    let client = reqwest::Client::new();
    for shape in shapes() {
        let times = measure(&client, &server.address, &shape, anchor, config.calls).await?;
        println!(
            "{:<38} {:>10.1} {:>10.1} {:>10.1}",
            shape.label,
            millis(times.percentile(50.0)),
            millis(times.percentile(95.0)),
            millis(times.max())
        );
    }
    phases::rare_filters(&client, &server.address, ADMIN_KEY, anchor, config.calls).await?;
    if config.backfill > 0 {
        phases::backfill(
            &mut db,
            &client,
            &server.address,
            ADMIN_KEY,
            anchor,
            config.backfill,
        )
        .await?;
    }
    server.stop();
    db.close().await?;
    let _ = std::fs::remove_file(&log_path);
    if config.drop_at_end {
        let mut admin = PgConnection::connect(&admin_url).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
    } else {
        println!("kept database {name} for the next run (BENCH_READ_DROP=1 drops it)");
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not.
    let measuring = std::env::args().any(|arg| arg == "--bench");
    if !measuring {
        println!("read_load: smoke run (no --bench): the figures below are not a measurement");
    }
    let outcome = match BenchConfig::from_env(measuring) {
        Ok(config) => run(&config).await,
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        eprintln!("read_load: {e}");
        std::process::exit(1);
    }
}
