//! How a group commit's error occurrences reach the database: carried by the `COPY`'s
//! own text and appended by the statement trigger on `logs` in the `COPY`'s
//! transaction, instead of the row trigger counting each row; a `COPY` that fails
//! counts nothing.

use chrono::{TimeZone, Utc};
use log_ingestion_server::storage::error_fold;
use log_ingestion_server::storage::error_groups::{ErrorTally, Ids, OccurrenceDeltas};
use log_ingestion_test_support::{spawn_full_app, TestApp};

const COPY: &str = "COPY logs (timestamp, service, level, message, fingerprint) \
                    FROM STDIN (FORMAT text)";

/// The group's count once every delta is folded.
async fn folded_count(app: &TestApp, id: i64) -> i64 {
    error_fold::fold(&app.pool).await.unwrap();
    sqlx::query_scalar("SELECT count FROM error_groups WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Sends `rows` as one `COPY` `statement` on a connection of its own.
async fn copy(app: &TestApp, statement: &str, rows: &str) -> Result<u64, sqlx::Error> {
    let mut conn = app.pool.acquire().await.unwrap();
    let mut copy = conn.copy_in_raw(statement).await?;
    copy.send(rows.as_bytes()).await?;
    copy.finish().await
}

#[tokio::test]
async fn a_copy_carries_its_occurrences_and_its_rows_are_not_counted_again() {
    let app = spawn_full_app().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO error_groups (service, fingerprint, title, message_template, count) \
         VALUES ('billing', 'f1', 'E: boom', 'boom', 0) RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // The tally says 5 occurrences while the COPY stores 3 rows: a count of 5 shows the
    // carried deltas were appended and the row trigger skipped the rows (3: the
    // comment was ignored; 8: both counted).
    let mut tally = ErrorTally::default();
    let at = Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 5).unwrap();
    for _ in 0..5 {
        tally.add("billing", "f1", at, || {
            ("E: boom".into(), Some("E".into()), "boom".into())
        });
    }
    let ids = Ids::from([(("billing".to_owned(), "f1".to_owned()), id)]);
    let deltas = OccurrenceDeltas::of(&tally, &ids).unwrap();
    let row = "2026-12-07 10:00:05+00\tbilling\tERROR\tboom\tf1\n";
    let stored = copy(&app, &deltas.carried_by(COPY), &row.repeat(3))
        .await
        .unwrap();
    assert_eq!(stored, 3);
    assert_eq!(folded_count(&app, id).await, 5);

    // A COPY that fails (its last row has no valid timestamp) stores nothing and counts
    // nothing.
    let broken = format!("{row}not a time\tbilling\tERROR\tboom\tf1\n");
    assert!(copy(&app, &deltas.carried_by(COPY), &broken).await.is_err());
    assert_eq!(folded_count(&app, id).await, 5);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE fingerprint = 'f1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);

    // The same COPY without the comment is counted row by row, as any other writer's.
    copy(&app, COPY, &row.repeat(2)).await.unwrap();
    assert_eq!(folded_count(&app, id).await, 7);
    app.stop_and_drop_database().await;
}
