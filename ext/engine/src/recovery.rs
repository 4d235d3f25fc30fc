//! Recovery: delivers the spool files earlier processes left in `spool_dir`.
//!
//! Owns the task an engine with a spool starts on its own runtime: claim the files
//! (`spool::claim_all`), read each, send its batches with their original idempotency
//! keys (a batch the server already stored is answered from its record, not stored
//! again), and remove each file once every batch of it is answered. Files that cannot
//! be read are moved aside and counted (`spool_skipped`). It never runs on a caller's
//! thread, never raises or panics on a file's contents, and never removes a file whose
//! batches are not all answered: at shutdown what it still holds is handed back.

use std::sync::Arc;

use crate::delivery::{send_with_retries, EngineState, Retries};
use crate::reports::ErrorKind;
use crate::spool;
use crate::stats::Counters;

/// Claims and delivers the spool; returns when it is done or shutdown begins.
pub(crate) async fn recover(shared: Arc<EngineState>) {
    let Some(dir) = shared.config.spool_dir.clone() else {
        return;
    };
    let pid = std::process::id();
    let claimed = {
        let shared = Arc::clone(&shared);
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || spool::claim_all(&dir, pid, &shared.claims)).await
    };
    let claimed = match claimed {
        Ok(Ok(claimed)) => claimed,
        Ok(Err(error)) => {
            shared.report(
                ErrorKind::Internal,
                format!(
                    "could not read the spool directory {}: {error}",
                    dir.display()
                ),
                0,
            );
            return;
        }
        Err(_) => return,
    };
    let max_bytes = shared.config.max_spool_bytes;
    for claim in claimed {
        if shared.is_shutting_down() {
            return;
        }
        let path = claim.path.clone();
        let read = tokio::task::spawn_blocking(move || spool::read(&path, max_bytes)).await;
        let batches = match read {
            Ok(Ok(batches)) => batches,
            Ok(Err(unreadable)) => {
                Counters::add(&shared.counters.spool_skipped, 1);
                let aside = shared.claims.unreadable(&dir, &claim);
                let whereto = aside.map_or_else(
                    || "removed".to_owned(),
                    |aside| format!("moved to {}", aside.display()),
                );
                shared.report(
                    ErrorKind::Internal,
                    format!(
                        "spool file {} skipped ({unreadable}); {whereto}",
                        claim.ready.display()
                    ),
                    0,
                );
                continue;
            }
            Err(_) => return,
        };
        for batch in &batches {
            match send_with_retries(&shared, batch, Retries::ByPolicy).await {
                Ok(answer) => {
                    let accepted = shared.record_answer(batch, &answer);
                    Counters::add(&shared.counters.recovered, accepted);
                }
                // Refused while shutting down: the file stays whole for the next process.
                Err(failure) if failure.kind == ErrorKind::Shutdown => return,
                Err(failure) => shared.record_failure(batch.entries as u64, failure),
            }
        }
        shared.claims.delivered(&claim);
    }
}
