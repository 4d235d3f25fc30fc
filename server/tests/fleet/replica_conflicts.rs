//! A read the replica cancels for a conflict with recovery ("canceling statement due to
//! conflict with recovery") answers 503 with `Retry-After`: the same query may well
//! succeed when retried, so it is neither a 500 nor the client's fault.
//!
//! The conflict is made for real, without timing: in an open transaction the primary
//! takes an exclusive lock on a relation a read of `logs` locks after `logs` itself (a
//! chunk of the hypertable, or in plain PostgreSQL an index the planner opens, by
//! reindexing it), so the replica's recovery holds that lock; a read arrives and waits
//! for it while holding `logs`; the primary then locks `logs` and commits. Replaying that
//! lock needs the read's lock: with `max_standby_streaming_delay = 0` the replica cancels
//! the read at once with SQLSTATE 40001 ("User was holding a relation lock for too
//! long") and counts it in `pg_stat_database_conflicts.confl_lock`. (With the default
//! delay the read's own deadlock check, a second later, would end it first with a plain
//! "deadlock detected", 40P01, which is mapped the same way but is not this test.)

use std::time::Duration;

use log_ingestion_test_support::wait_until;
use sqlx::PgPool;

use log_ingestion_test_support::fleet::{Fleet, ADMIN_KEY};

/// Queries the replica cancelled because they held a lock recovery needed.
async fn lock_conflicts(replica: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT confl_lock FROM pg_stat_database_conflicts WHERE datname = current_database()",
    )
    .fetch_one(replica)
    .await
    .unwrap()
}

/// Whether recovery holds (`granted`) or a reader waits for (`!granted`) a lock on
/// `relation` on the replica.
async fn lock_on(replica: &PgPool, relation: &str, granted: bool) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks \
         WHERE relation = to_regclass($1) AND granted = $2)",
    )
    .bind(relation)
    .bind(granted)
    .fetch_one(replica)
    .await
    .unwrap()
}

/// A relation a read of `logs` locks after `logs` itself, and the statement that takes
/// an exclusive lock on it alone: the newest chunk of the hypertable (a row at now makes
/// one the read's first window includes), or an index of the plain table (the planner
/// opens every index; `REINDEX` locks only the index exclusively).
async fn locked_after_logs(primary: &PgPool) -> (String, String) {
    let hypertable: bool =
        sqlx::query_scalar("SELECT to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL")
            .fetch_one(primary)
            .await
            .unwrap();
    if hypertable {
        sqlx::query(
            "INSERT INTO logs (timestamp, service, level, message) \
             VALUES (now(), 'conflict', 'INFO', 'a chunk to lock')",
        )
        .execute(primary)
        .await
        .unwrap();
        let chunk: String = sqlx::query_scalar(
            "SELECT c::text FROM show_chunks('logs') AS c ORDER BY 1 DESC LIMIT 1",
        )
        .fetch_one(primary)
        .await
        .unwrap();
        let lock = format!("LOCK TABLE {chunk} IN ACCESS EXCLUSIVE MODE");
        (chunk, lock)
    } else {
        let index: String = sqlx::query_scalar(
            "SELECT indexrelid::regclass::text FROM pg_index \
             WHERE indrelid = 'logs'::regclass ORDER BY 1 LIMIT 1",
        )
        .fetch_one(primary)
        .await
        .unwrap();
        let reindex = format!("REINDEX INDEX {index}");
        (index, reindex)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_the_replica_cancels_for_recovery_answers_503_with_retry_after() {
    let fleet = Fleet::start("replica-conflicts", &["replica-conflicts"], &[]);
    let primary = fleet.primary().await;
    let replica = fleet.replica().await;
    sqlx::query("ALTER SYSTEM SET max_standby_streaming_delay = 0")
        .execute(&replica)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&replica)
        .await
        .unwrap();
    let reloaded = wait_until(Duration::from_secs(30), || async {
        let delay: String = sqlx::query_scalar("SHOW max_standby_streaming_delay")
            .fetch_one(&replica)
            .await
            .unwrap();
        delay == "0"
    })
    .await;
    assert!(reloaded, "the replica kept its max_standby_streaming_delay");
    let (relation, exclusive) = locked_after_logs(&primary).await;
    eprintln!("replica conflict: {exclusive}");
    let before = lock_conflicts(&replica).await;

    let mut holder = primary.begin().await.unwrap();
    sqlx::query(&exclusive).execute(&mut *holder).await.unwrap();
    let replayed = wait_until(Duration::from_secs(30), || {
        lock_on(&replica, &relation, true)
    })
    .await;
    assert!(
        replayed,
        "the replica never replayed the lock on {relation}"
    );

    let http = reqwest::Client::new();
    let read = tokio::spawn(
        http.get(format!("{}/api/v1/logs?limit=1", fleet.instance_url(1)))
            .header("X-API-Key", ADMIN_KEY)
            .send(),
    );
    let waiting = wait_until(Duration::from_secs(30), || {
        lock_on(&replica, &relation, false)
    })
    .await;
    assert!(
        waiting,
        "the read never waited for {relation} on the replica"
    );
    sqlx::query("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.commit().await.unwrap();

    let response = read.await.unwrap().unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "Storage unavailable", "{body}");
    // Statistics reach the view once the cancelled backend reports them (within a second
    // or so of going idle).
    let counted = wait_until(Duration::from_secs(30), || async {
        lock_conflicts(&replica).await > before
    })
    .await;
    assert!(counted, "the replica counted no recovery conflict");
}
