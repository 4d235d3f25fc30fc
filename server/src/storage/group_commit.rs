//! `GroupCommitter`: concurrent requests' entries written in one transaction. A writer
//! task (a few run, so one's commit overlaps another's COPY) takes every waiting
//! submission (capped by rows and bytes); a lone one lingers a few milliseconds for
//! company. A group without idempotency keys is one `COPY` in autocommit: a single
//! statement is its own transaction (atomic, committed before PostgreSQL answers it),
//! so BEGIN and COMMIT would only add two round trips and wake-ups per group; the
//! plain-mode rollup triggers run inside that statement's transaction. A group with
//! keys settles them (`idempotency::decide`), writes the rows of the submissions that
//! are not replays with `COPY`, and commits, all in one transaction.
//! Every submission of the group gets the same fate: all committed, or none (each then
//! answers 503). It never acknowledges a submission before its rows have committed,
//! and never decides a replay itself.

use std::sync::Arc;
use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use super::copy_text::{CopyRows, COPY_LOGS};
use super::idempotency::{self, IdempotencyClaim, KeyDecision, StoredResponse};
use crate::config::GroupCommitSettings;
use crate::metrics::Metrics;

/// Submissions that may wait for the writer before `commit` itself waits.
const QUEUE_DEPTH: usize = 4_096;

/// What happened to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The entries are committed.
    Committed,
    /// The idempotency key was already used: nothing was written, answer with this.
    Replayed(StoredResponse),
    /// The idempotency key was already used for a request with a different body:
    /// nothing was written and nothing is replayed.
    KeyReused,
}

impl From<Option<KeyDecision>> for CommitOutcome {
    /// A submission's outcome from its idempotency decision (`None`: it had no key).
    fn from(decision: Option<KeyDecision>) -> Self {
        match decision {
            None | Some(KeyDecision::Claimed) => CommitOutcome::Committed,
            Some(KeyDecision::Replay(response)) => CommitOutcome::Replayed(response),
            Some(KeyDecision::Reused) => CommitOutcome::KeyReused,
        }
    }
}

/// Why a submission was not committed. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("the group's transaction failed: {0}")]
    Storage(String),
    #[error("the group committer has stopped")]
    Stopped,
}

struct Submission {
    rows: CopyRows,
    claim: Option<IdempotencyClaim>,
    reply: oneshot::Sender<Result<CommitOutcome, CommitError>>,
}

/// The handle requests use to commit entries. Cloning is cheap; the writer stops when
/// every handle is dropped, after writing what was already submitted.
#[derive(Clone, Debug)]
pub struct GroupCommitter {
    sender: mpsc::Sender<Submission>,
}

impl GroupCommitter {
    /// Starts `settings.writers` writer tasks (at least one); the handle returned ends
    /// once every writer has stopped.
    pub fn start(
        pool: PgPool,
        settings: GroupCommitSettings,
        metrics: Arc<Metrics>,
    ) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        let writers: Vec<JoinHandle<()>> = (0..settings.writers.max(1))
            .map(|_| {
                tokio::spawn(run_writer(
                    Arc::clone(&receiver),
                    pool.clone(),
                    settings,
                    Arc::clone(&metrics),
                ))
            })
            .collect();
        let all_stopped = tokio::spawn(async move {
            for writer in writers {
                let _ = writer.await;
            }
        });
        (GroupCommitter { sender }, all_stopped)
    }

    /// Commits `rows` (and `claim`, if any) in the next group; resolves once the
    /// group's transaction has committed or failed.
    pub async fn commit(
        &self,
        rows: CopyRows,
        claim: Option<IdempotencyClaim>,
    ) -> Result<CommitOutcome, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Submission { rows, claim, reply })
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }
}

/// One writer: gathers a group while holding the queue, then writes it while the
/// other writers gather theirs, so one group's commit overlaps the next one's COPY.
async fn run_writer(
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    pool: PgPool,
    settings: GroupCommitSettings,
    metrics: Arc<Metrics>,
) {
    // The group's COPY data, reused from group to group (one allocation per writer
    // instead of one per group), trimmed back after an unusually large group.
    let mut data = Vec::new();
    loop {
        let Some((group, rows)) = gather_group(&receiver, &settings).await else {
            break;
        };
        commit_group(&pool, group, rows, &mut data, &metrics).await;
        data.clear();
        data.shrink_to(settings.max_bytes);
    }
    tracing::debug!("group committer writer stopped: every handle is gone");
}

/// The next group, or `None` once every handle is gone and the queue is empty.
async fn gather_group(
    receiver: &Mutex<mpsc::Receiver<Submission>>,
    settings: &GroupCommitSettings,
) -> Option<(Vec<Submission>, usize)> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut rows = first.rows.len();
    let mut bytes = first.rows.as_bytes().len();
    let mut group = vec![first];
    // Take everything already waiting. Under load that is the whole group: the
    // previous commit was the linger. Only a lone submission waits for company.
    while rows < settings.max_rows && bytes < settings.max_bytes {
        match receiver.try_recv() {
            Ok(next) => {
                rows += next.rows.len();
                bytes += next.rows.as_bytes().len();
                group.push(next);
            }
            Err(_) => break,
        }
    }
    let lone = group.len() == 1 && !settings.linger.is_zero();
    let deadline = tokio::time::Instant::now() + settings.linger;
    while lone && rows < settings.max_rows && bytes < settings.max_bytes {
        match tokio::time::timeout_at(deadline, receiver.recv()).await {
            Ok(Some(next)) => {
                rows += next.rows.len();
                bytes += next.rows.as_bytes().len();
                group.push(next);
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some((group, rows))
}

async fn commit_group(
    pool: &PgPool,
    group: Vec<Submission>,
    rows: usize,
    data: &mut Vec<u8>,
    metrics: &Metrics,
) {
    let started = Instant::now();
    match write_group(pool, &group, data).await {
        Ok(outcomes) => {
            // Only rows written count: a replayed submission wrote none.
            let written = group
                .iter()
                .zip(&outcomes)
                .filter(|(_, outcome)| **outcome == CommitOutcome::Committed)
                .map(|(submission, _)| submission.rows.len())
                .sum();
            metrics.group_committed(written, started.elapsed());
            for (submission, outcome) in group.into_iter().zip(outcomes) {
                // A requester that went away cannot be told; its rows are committed.
                let _ = submission.reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            metrics.database_error();
            tracing::warn!(%error, requests = group.len(), rows, "group commit failed; every request of the group gets 503");
            let message = error.to_string();
            for submission in group {
                let _ = submission
                    .reply
                    .send(Err(CommitError::Storage(message.clone())));
            }
        }
    }
}

/// Writes one group and returns each submission's outcome: in one autocommit `COPY`
/// when no submission carries an idempotency key, else in one transaction. `data` is an
/// empty buffer to build the `COPY` data in.
async fn write_group(
    pool: &PgPool,
    group: &[Submission],
    data: &mut Vec<u8>,
) -> Result<Vec<CommitOutcome>, sqlx::Error> {
    if group.iter().all(|submission| submission.claim.is_none()) {
        for submission in group {
            data.extend_from_slice(submission.rows.as_bytes());
        }
        if !data.is_empty() {
            // No BEGIN: the COPY commits on its own before `finish` returns, and a
            // failed COPY leaves nothing behind.
            let mut conn = pool.acquire().await?;
            copy_rows(&mut conn, data).await?;
        }
        return Ok(vec![CommitOutcome::Committed; group.len()]);
    }
    let mut tx = pool.begin().await?;
    let claims: Vec<Option<&IdempotencyClaim>> = group
        .iter()
        .map(|submission| submission.claim.as_ref())
        .collect();
    let outcomes: Vec<CommitOutcome> = idempotency::decide(&mut tx, &claims)
        .await?
        .into_iter()
        .map(CommitOutcome::from)
        .collect();
    for (submission, outcome) in group.iter().zip(&outcomes) {
        if *outcome == CommitOutcome::Committed {
            data.extend_from_slice(submission.rows.as_bytes());
        }
    }
    if !data.is_empty() {
        copy_rows(&mut tx, data).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Sends `data` (rows in `COPY` text format) as one `COPY` on `conn`; returns once
/// PostgreSQL has answered the statement (and, outside a transaction, committed it).
async fn copy_rows(conn: &mut PgConnection, data: &[u8]) -> Result<(), sqlx::Error> {
    let mut copy = conn.copy_in_raw(COPY_LOGS).await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}
