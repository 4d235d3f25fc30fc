//! Declared metadata keys (`LOG_INGESTION_DECLARED_KEYS`): the column the server
//! writes in its `COPY` holds what PostgreSQL's own reading of the stored metadata gives
//! (`declared_keys::indexed_text_sql`, which `migrate` fills stored rows with), for
//! every kind of value; a server that does not write a declared column yet never stores
//! rows the key's index cannot find; every instance follows what `migrate` declares;
//! declaring fills stored rows, undeclaring keeps the column.

use log_ingestion_server::auth::ApiKey;
use log_ingestion_server::storage::declared_keys::{self, Undeclared, MAX_INDEXED_BYTES};
use std::time::Duration;

use log_ingestion_test_support::{
    create_database, entry, json_with_status, spawn_app, spawn_app_on, spawn_app_with, wait_until,
    TestApp, ADMIN_KEY,
};
use serde_json::json;

/// Values of every kind for a declared key, as JSON text (numbers as clients spell
/// them: the server stores them as serde_json reads and writes them).
fn corpus() -> Vec<String> {
    let mut values: Vec<String> = [
        r#""""#,
        r#""a""#,
        r#""42""#,
        r#""ü ✓ 🎉""#,
        r#""1e16""#,
        r#"" 42""#,
        r#""tab\there \"quoted\" back\\slash \u0000 nul""#,
        "0",
        "-0",
        "42",
        "-42",
        "1e2",
        "1.5e1",
        "1.0",
        "-0.0",
        "1e16",
        "1e-7",
        "1e300",
        "-9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "true",
        "false",
        "null",
        "[]",
        r#"[1,"a",{"k":2}]"#,
        r#"{"k":{"k":1}}"#,
    ]
    .iter()
    .map(|value| value.to_string())
    .collect();
    for length in [
        MAX_INDEXED_BYTES - 1,
        MAX_INDEXED_BYTES,
        MAX_INDEXED_BYTES + 1,
        10_000,
    ] {
        values.push(format!("\"{}\"", "x".repeat(length)));
    }
    // A two-byte character across the byte limit.
    values.push(format!("\"{}é\"", "x".repeat(MAX_INDEXED_BYTES - 1)));
    // Text that does not compress, longer than a btree entry may be (~2.7 KB): an
    // index on the value itself would fail the whole group's COPY.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: String = (0..6_000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            char::from(b'a' + (state >> 59) as u8 % 26)
        })
        .collect();
    values.push(format!("\"{noise}\""));
    values
}

/// NDJSON lines, one entry per value of `k` (message `v<index>`), plus one entry
/// without `k`, one with `k` twice (jsonb keeps the last) and one without metadata.
fn corpus_body() -> String {
    let now = chrono::Utc::now().to_rfc3339();
    let line = |message: &str, metadata: &str| {
        format!(
            r#"{{"timestamp":"{now}","service":"svc","level":"INFO","message":"{message}"{metadata}}}"#
        )
    };
    let mut lines: Vec<String> = corpus()
        .iter()
        .enumerate()
        .map(|(index, value)| {
            line(
                &format!("v{index}"),
                &format!(r#","metadata":{{"other":1,"k":{value},"z":[]}}"#),
            )
        })
        .collect();
    lines.push(line("absent", r#","metadata":{"kk":1}"#));
    lines.push(line("twice", r#","metadata":{"k":"first","k":7}"#));
    lines.push(line("none", ""));
    lines.join("\n")
}

/// Rows whose `meta_k` differs from PostgreSQL's reading of their stored metadata, and
/// how many rows have it set.
async fn column_disagreements(app: &TestApp) -> (Vec<String>, i64) {
    let wrong: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT message || ': ' || coalesce(meta_k, 'NULL') || ' vs ' || coalesce({}, 'NULL') \
         FROM logs WHERE meta_k IS DISTINCT FROM {}",
        declared_keys::indexed_text_sql("k"),
        declared_keys::indexed_text_sql("k")
    ))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let set: i64 = sqlx::query_scalar("SELECT count(*) FROM logs WHERE meta_k IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    (wrong, set)
}

async fn post_corpus(app: &TestApp) {
    let response = app
        .post_body("/api/v1/logs/batch", "application/x-ndjson", corpus_body())
        .await;
    let body = json_with_status(response, 200).await;
    assert_eq!(body["rejected"], 0, "{body}");
}

#[tokio::test]
async fn the_server_writes_each_declared_column_as_postgresql_reads_the_stored_value() {
    let app = spawn_app_with(|settings| {
        settings.database.declared_keys = vec!["k".into(), "password".into()];
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
    })
    .await;
    post_corpus(&app).await;
    let (wrong, set) = column_disagreements(&app).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Every entry with the key, the repeated one included; not the two without it.
    assert_eq!(set, corpus().len() as i64 + 1);
    let twice: String = sqlx::query_scalar("SELECT meta_k FROM logs WHERE message = 'twice'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(twice, "7");

    // A declared sensitive key holds what is stored: the filtered value.
    let mut secret = entry("secret");
    secret["metadata"] = json!({"password": "hunter2"});
    assert_eq!(app.post_single(secret).await.status(), 201);
    let stored: String =
        sqlx::query_scalar(r#"SELECT "meta_password" FROM logs WHERE message = 'secret'"#)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, "[FILTERED]");

    // The read side finds values through the column, and values without an indexed
    // text (a long string, a fraction) by containment alone. A value is tried as JSON
    // and as text: a row either one contains is found, also when their indexed texts
    // differ (`1e16` the number and the string).
    let long = format!("\"{}\"", "x".repeat(MAX_INDEXED_BYTES + 1));
    for (value, expected) in [
        ("42", &["v2", "v9"][..]),
        (" 42", &["v5", "v9"][..]),
        ("\"42\"", &["v2"][..]),
        ("1e16", &["v15", "v4"][..]),
        ("true", &["v21"][..]),
        (long.as_str(), &["v29"][..]),
        ("1.0", &["v13"][..]),
    ] {
        let query: Vec<(&str, &str)> = vec![("meta.k", value), ("since", "1h")];
        let messages = app.admin().messages(&query).await;
        assert_eq!(messages, expected, "meta.k={value:.40}");
    }
}

#[tokio::test]
async fn a_write_racing_a_declaration_is_stored_with_the_column_not_refused() {
    let (database, url) = create_database().await;
    // Never refreshed on its own during the test: only the check can tell it.
    let running = spawn_app_on(database.clone(), url.clone(), |settings| {
        settings.database.schema_refresh_interval = Duration::from_secs(3_600);
    })
    .await;
    // Another instance's `migrate` declares `k` while this one runs.
    declared_keys::apply_metadata_keys(&running.pool, &["k".to_owned()], Undeclared::Drop)
        .await
        .unwrap();
    let mut with_key = entry("with k");
    with_key["metadata"] = json!({"k": "v"});
    // Its rows lack the column: the check refuses them (nothing stored), it reads the
    // keys again and writes the group once more, with the column.
    assert_eq!(running.post_single(with_key).await.status(), 201);
    assert_eq!(running.post_single(entry("without k")).await.status(), 201);

    // An instance started without the key in its settings writes what the database
    // declares, and does not undeclare it (only the `migrate` command does).
    let mut other = entry("from an instance without the setting");
    other["metadata"] = json!({"k": 7});
    let fewer = spawn_app_on(database, url, |_| {}).await;
    assert_eq!(declared_objects(&fewer).await, (true, 1, 1));
    assert_eq!(fewer.post_single(other).await.status(), 201);
    let columns: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT message, meta_k FROM logs ORDER BY message")
            .fetch_all(&fewer.pool)
            .await
            .unwrap();
    assert_eq!(
        columns,
        [
            (
                "from an instance without the setting".to_owned(),
                Some("7".to_owned())
            ),
            ("with k".to_owned(), Some("v".to_owned())),
            ("without k".to_owned(), None),
        ]
    );
}

/// The messages `app`'s query API answers for `meta.KEY=VALUE` over the last hour.
async fn found(app: &TestApp, key: &str, value: &str) -> Vec<String> {
    let query = [(format!("meta.{key}"), value), ("since".to_owned(), "1h")];
    app.admin().messages(&query).await
}

/// Two instances on one database: A started while `k` was declared, `migrate`
/// undeclares it, B (started after) writes rows whose `meta_k` is empty: A's reads stop
/// using the column and find them. Then `migrate` declares `j`: B, which has not read
/// the keys since, fills `j`'s column at once (its first group is refused by the
/// check, not its request), and A finds the row.
#[tokio::test]
async fn every_instance_follows_the_keys_migrate_declares_and_undeclares() {
    let (database, url) = create_database().await;
    let refresh = |settings: &mut log_ingestion_server::config::Settings| {
        settings.admin_api_keys = vec![ApiKey::new(ADMIN_KEY)];
        settings.database.schema_refresh_interval = Duration::from_millis(200);
    };
    let a = spawn_app_on(database.clone(), url.clone(), |settings| {
        settings.database.declared_keys = vec!["k".into()];
        refresh(settings);
    })
    .await;
    assert_eq!(declared_objects(&a).await, (true, 1, 1));
    // `migrate` without the key.
    declared_keys::apply_metadata_keys(&a.pool, &[], Undeclared::Drop)
        .await
        .unwrap();
    let b = spawn_app_on(database, url, |settings| {
        settings.database.declared_keys = vec!["k".into()]; // a stale setting
        refresh(settings);
    })
    .await;
    let mut from_b = entry("from b");
    from_b["metadata"] = json!({"k": "X"});
    assert_eq!(b.post_single(from_b).await.status(), 201);
    let empty: Option<String> =
        sqlx::query_scalar("SELECT meta_k FROM logs WHERE message = 'from b'")
            .fetch_one(&b.pool)
            .await
            .unwrap();
    assert_eq!(
        empty, None,
        "B filled a column the database no longer declares"
    );
    let seen = wait_until(Duration::from_secs(20), || async {
        found(&a, "k", "X").await == ["from b"]
    })
    .await;
    assert!(
        seen,
        "A never found B's row: {:?}",
        found(&a, "k", "X").await
    );

    // `migrate` declares `j`.
    declared_keys::apply_metadata_keys(&a.pool, &["j".to_owned()], Undeclared::Drop)
        .await
        .unwrap();
    let mut declared_since = entry("j from b");
    declared_since["metadata"] = json!({"j": "Y"});
    assert_eq!(b.post_single(declared_since).await.status(), 201);
    let filled: Option<String> =
        sqlx::query_scalar("SELECT meta_j FROM logs WHERE message = 'j from b'")
            .fetch_one(&b.pool)
            .await
            .unwrap();
    assert_eq!(filled.as_deref(), Some("Y"));
    let seen = wait_until(Duration::from_secs(20), || async {
        found(&a, "j", "Y").await == ["j from b"]
    })
    .await;
    assert!(
        seen,
        "A never found B's row: {:?}",
        found(&a, "j", "Y").await
    );
}

async fn declared_objects(app: &TestApp) -> (bool, i64, i64) {
    let column: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'logs'::regclass \
         AND attname = 'meta_k' AND NOT attisdropped)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let checks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'logs'::regclass AND conname = 'meta_k_set'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'logs' AND indexname = 'logs_meta_k'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (column, checks, indexes)
}

#[tokio::test]
async fn declaring_fills_stored_rows_and_undeclaring_keeps_the_column() {
    let (database, url) = create_database().await;
    let mut app = spawn_app_on(database.clone(), url.clone(), |_| {}).await;
    post_corpus(&app).await;
    let keys = vec!["k".to_owned()];
    declared_keys::apply_metadata_keys(&app.pool, &keys, Undeclared::Drop)
        .await
        .unwrap();
    assert_eq!(declared_objects(&app).await, (true, 1, 1));
    let (wrong, set) = column_disagreements(&app).await;
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(set, corpus().len() as i64 + 1);

    // Undeclared: the check and the index go, the column stays.
    declared_keys::apply_metadata_keys(&app.pool, &[], Undeclared::Drop)
        .await
        .unwrap();
    assert_eq!(declared_objects(&app).await, (true, 0, 0));
    app.stop().await;
    // A server without the declaration leaves it empty for new rows...
    let mut undeclared = spawn_app_on(database.clone(), url.clone(), |_| {}).await;
    let mut later = entry("later");
    later["metadata"] = json!({"k": 5});
    assert_eq!(undeclared.post_single(later).await.status(), 201);
    let empty: Option<String> =
        sqlx::query_scalar("SELECT meta_k FROM logs WHERE message = 'later'")
            .fetch_one(&undeclared.pool)
            .await
            .unwrap();
    assert_eq!(empty, None);
    undeclared.stop().await;
    // ...which declaring again (`migrate`) fills.
    declared_keys::apply_metadata_keys(&undeclared.pool, &keys, Undeclared::Drop)
        .await
        .unwrap();
    let again = spawn_app_on(database, url, |_| {}).await;
    assert_eq!(declared_objects(&again).await, (true, 1, 1));
    let filled: Option<String> =
        sqlx::query_scalar("SELECT meta_k FROM logs WHERE message = 'later'")
            .fetch_one(&again.pool)
            .await
            .unwrap();
    assert_eq!(filled.as_deref(), Some("5"));
    assert!(column_disagreements(&again).await.0.is_empty());
}

#[tokio::test]
async fn an_expression_index_of_an_earlier_version_is_replaced_by_the_column_index() {
    let app = spawn_app().await;
    sqlx::query(
        "CREATE INDEX logs_meta_k ON logs ((metadata->>'k'), timestamp DESC) \
         WHERE (metadata->>'k') IS NOT NULL",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    declared_keys::apply_metadata_keys(&app.pool, &["k".to_owned()], Undeclared::Drop)
        .await
        .unwrap();
    let definition: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'logs' AND indexname = 'logs_meta_k'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(
        definition.contains("(meta_k, \"timestamp\" DESC)"),
        "{definition}"
    );
}
