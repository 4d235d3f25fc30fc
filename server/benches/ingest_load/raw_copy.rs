//! The floor the HTTP phases are compared with: the same rows as one raw text `COPY`
//! into the same table, with the declared keys' columns as the server writes them.

use std::time::Instant;

use log_ingestion_server::config::comma_list;
use log_ingestion_server::config::EntryLimits;
use log_ingestion_server::domain::LogEntry;
use log_ingestion_server::errors::fingerprint::fingerprint;
use log_ingestion_server::storage::copy_field;
use log_ingestion_server::storage::declared_keys::DeclaredKeys;
use log_ingestion_server::storage::trace_fields;
use log_ingestion_test_support::Latencies;
use log_ingestion_wire::WireEntry;
use sqlx::PgConnection;

use crate::report::{CpuSnapshot, PhaseReport};
use crate::{BenchError, Result};

/// The metadata keys the server declares (`LOG_INGESTION_DECLARED_KEYS` or its older name, which
/// the server inherits from this process): the raw COPY writes their columns too, as
/// the server does (the table's checks refuse rows without them).
pub(crate) fn declared_keys() -> DeclaredKeys {
    let list = std::env::var("LOG_INGESTION_DECLARED_KEYS")
        .or_else(|_| std::env::var("LOG_INGESTION_INDEXED_METADATA_KEYS"))
        .unwrap_or_default();
    let keys: Vec<String> = comma_list(&list).map(str::to_owned).collect();
    DeclaredKeys::new(&keys)
}

/// The same rows as PostgreSQL's text COPY format, in 1 MiB chunks, with the fields of
/// `declared`'s columns.
pub(crate) fn copy_text(entries: &[WireEntry], declared: &DeclaredKeys) -> Result<Vec<Vec<u8>>> {
    pub(crate) const CHUNK: usize = 1 << 20;
    let mut chunks = Vec::new();
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    let now = chrono::Utc::now();
    for entry in entries {
        let metadata = match &entry.metadata {
            Some(m) => serde_json::to_string(m)?,
            None => "{}".to_owned(),
        };
        for (i, field) in [
            entry.timestamp.as_str(),
            entry.service.as_str(),
            entry.level.as_str(),
            entry.message.as_str(),
            metadata.as_str(),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                buf.push(b'\t');
            }
            copy_field::push_field(&mut buf, field);
        }
        // The error fingerprint the server writes with the row (the same rule).
        buf.push(b'\t');
        let parsed = LogEntry::parse(entry.clone(), &EntryLimits::default(), now)
            .map_err(|problems| BenchError::Setup(format!("entry: {}", problems.join("; "))))?;
        match fingerprint(&parsed) {
            Some(error) => copy_field::push_field(&mut buf, &error.fingerprint),
            None => buf.extend_from_slice(b"\\N"),
        }
        trace_fields::push_fields(&mut buf, Some(&metadata));
        declared.push_fields(&mut buf, Some(&metadata));
        buf.push(b'\n');
        if buf.len() >= CHUNK {
            chunks.push(std::mem::replace(
                &mut buf,
                Vec::with_capacity(CHUNK + 4096),
            ));
        }
    }
    if !buf.is_empty() {
        chunks.push(buf);
    }
    Ok(chunks)
}

pub(crate) async fn raw_copy(
    db: &mut PgConnection,
    entries: &[WireEntry],
    database: &str,
) -> Result<PhaseReport> {
    let declared = declared_keys();
    let chunks = copy_text(entries, &declared)?;
    truncate_logs(db).await?;
    let cpu_before = CpuSnapshot::take(None, database);
    let started = Instant::now();
    let mut copy = db.copy_in_raw(declared.copy_statement()).await?;
    for chunk in chunks {
        copy.send(chunk).await?;
    }
    let rows = copy.finish().await?;
    let elapsed = started.elapsed();
    Ok(PhaseReport {
        label: "raw COPY".into(),
        entries: rows,
        requests: 1,
        elapsed,
        latencies: Latencies::new(),
        peak_rss_kib: None,
        cpu: CpuSnapshot::take(None, database).since(cpu_before),
    })
}

pub(crate) async fn truncate_logs(db: &mut PgConnection) -> Result<()> {
    sqlx::query("TRUNCATE logs").execute(&mut *db).await?;
    sqlx::query("CHECKPOINT").execute(&mut *db).await?;
    Ok(())
}

pub(crate) async fn count_logs(db: &mut PgConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM logs")
        .fetch_one(db)
        .await?)
}
