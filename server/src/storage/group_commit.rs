//! `GroupCommitter`: concurrent requests' entries written in one transaction. A writer
//! task (a few run, so one's commit overlaps another's COPY) takes every waiting
//! submission (capped by rows and bytes); a lone one lingers a few milliseconds for
//! company; the group is written by `group_write` (one autocommit `COPY`, or one
//! transaction when idempotency keys are to be settled or error occurrences counted).
//! Every submission of the group gets the same fate: all committed, or none (each then
//! answers 503). Each writer keeps its own connection from group to group
//! ([`WriterConnection`]): the pool's liveness round trip before every group was a
//! third of a group's round trips. It never acknowledges a submission before its rows
//! have committed, never writes a group twice unless the first attempt provably stored
//! nothing, and never decides a replay itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use super::copy_text::CopyRows;
use super::declared_keys::{is_declaration_change, DeclaredKeys, LiveDeclaredKeys};
use super::error_fold;
use super::group_write::{write_group, ErrorWriting, Part, WriteFailure};
use super::idempotency::IdempotencyClaim;
use super::write_health::WriteHealth;
use crate::config::GroupCommitSettings;
use crate::metrics::Metrics;

pub use super::group_write::CommitOutcome;

/// Submissions that may wait for the writer before `commit` itself waits.
const QUEUE_DEPTH: usize = 4_096;

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
    /// Starts `settings.writers` writer tasks (at least one), writing rows built for
    /// `declared` and recording each group's outcome in `health`; the handle returned
    /// ends once every writer has stopped.
    pub fn start(
        pool: PgPool,
        settings: GroupCommitSettings,
        metrics: Arc<Metrics>,
        declared: Arc<LiveDeclaredKeys>,
        health: Arc<WriteHealth>,
    ) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let receiver = Arc::new(Mutex::new(receiver));
        let errors = ErrorWriting::default();
        let folder = error_fold::spawn(pool.clone(), Arc::clone(&errors.committed));
        let writers: Vec<JoinHandle<()>> = (0..settings.writers.max(1))
            .map(|_| {
                tokio::spawn(run_writer(
                    Arc::clone(&receiver),
                    WriterConnection::new(pool.clone(), Arc::clone(&declared), errors.clone()),
                    settings,
                    Arc::clone(&metrics),
                    Arc::clone(&health),
                ))
            })
            .collect();
        // The folder lives as long as this task: it stops once every writer has, or when
        // this task is aborted (an application dropped without running). Deltas left
        // unfolded are folded by the next read or instance.
        let folder = AbortOnDrop(folder);
        let all_stopped = tokio::spawn(async move {
            for writer in writers {
                let _ = writer.await;
            }
            drop(folder);
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

/// A task aborted when this handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One writer: gathers a group while holding the queue, then writes it while the
/// other writers gather theirs, so one group's commit overlaps the next one's COPY.
async fn run_writer(
    receiver: Arc<Mutex<mpsc::Receiver<Submission>>>,
    mut connection: WriterConnection,
    settings: GroupCommitSettings,
    metrics: Arc<Metrics>,
    health: Arc<WriteHealth>,
) {
    // The group's COPY data, reused from group to group (one allocation per writer
    // instead of one per group), trimmed back after an unusually large group.
    let mut data = Vec::new();
    loop {
        let Some((group, rows)) = gather_group(&receiver, &settings).await else {
            break;
        };
        commit_group(&mut connection, group, rows, &mut data, &metrics, &health).await;
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
    connection: &mut WriterConnection,
    group: Vec<Submission>,
    rows: usize,
    data: &mut Vec<u8>,
    metrics: &Metrics,
    health: &WriteHealth,
) {
    let started = Instant::now();
    // Rows built for declared keys read before the last reload are built again for the
    // current ones.
    let declared = connection.declared.current();
    let mut group: Vec<Submission> = group
        .into_iter()
        .map(|mut submission| {
            if submission.rows.declared().keys() != declared.keys() {
                submission.rows = submission.rows.for_keys(Arc::clone(&declared));
            }
            submission
        })
        .collect();
    let mut written = connection.write(&group, data, &declared, metrics).await;
    if written.as_ref().is_err_and(is_declaration_change) {
        // Another instance's `migrate` declared a key (its check refused a row without
        // the column) or a column went: PostgreSQL stored nothing of the group. Read the
        // keys again and, when they differ from the ones the group was written for
        // (the periodic reload may have read them already), write it once more.
        match connection.declared.reload(&connection.pool).await {
            Ok(_) => {
                let current = connection.declared.current();
                if *current != *declared {
                    for submission in &mut group {
                        submission.rows = submission.rows.for_keys(Arc::clone(&current));
                    }
                    data.clear();
                    written = connection.write(&group, data, &current, metrics).await;
                }
            }
            Err(reload) => {
                tracing::warn!(error = %reload, "reading the declared metadata keys again failed");
            }
        }
    }
    match written {
        Ok(outcomes) => {
            health.record(Ok(()));
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
            health.record(Err(&error));
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

/// A writer's own connection, taken from the pool when it has none and then kept from
/// group to group, so a group costs no liveness round trip (the pool pings every
/// connection it hands out). A kept connection may have died since its last group
/// (PostgreSQL restarted, the backend was terminated, an idle timeout): when a group
/// fails at its first exchange on a kept connection, before PostgreSQL could have
/// stored anything, the group is written again once on a fresh connection from the
/// pool (which is checked as it is handed out), so a dead connection costs what the
/// ping cost, not a 503. After any failure the connection is closed, never reused: its
/// state is unknown. A connection idle for [`KEPT_MAX_IDLE`] or kept for
/// [`KEPT_MAX_AGE`] goes back to the pool before the next group: a flow a firewall or
/// NAT dropped silently during a quiet spell would not fail at once but hang the group
/// until TCP gave up, and the pool's own idle and lifetime limits only apply to
/// connections it holds.
struct WriterConnection {
    pool: PgPool,
    kept: Option<Kept>,
    /// The declared keys: whose `COPY` statement the rows fill.
    declared: Arc<LiveDeclaredKeys>,
    errors: ErrorWriting,
}

/// The writer's connection and when it was taken and last used.
struct Kept {
    connection: PoolConnection<Postgres>,
    taken: Instant,
    used: Instant,
}

/// Back to the pool (which checks it when it hands it out again) after this long
/// without a group: under load groups follow each other within milliseconds, which is
/// where the saved round trip matters.
const KEPT_MAX_IDLE: Duration = Duration::from_secs(10);
/// Back to the pool after this long even when busy: sqlx's default `max_lifetime`.
const KEPT_MAX_AGE: Duration = Duration::from_secs(30 * 60);

impl Kept {
    fn reusable(&self, now: Instant) -> bool {
        reusable(self.taken, self.used, now)
    }
}

/// Whether a connection taken at `taken` and last used at `used` may write a group at
/// `now` without going back to the pool first.
fn reusable(taken: Instant, used: Instant, now: Instant) -> bool {
    now.duration_since(used) < KEPT_MAX_IDLE && now.duration_since(taken) < KEPT_MAX_AGE
}

impl WriterConnection {
    fn new(pool: PgPool, declared: Arc<LiveDeclaredKeys>, errors: ErrorWriting) -> Self {
        WriterConnection {
            pool,
            kept: None,
            declared,
            errors,
        }
    }

    /// Writes `group` (see `group_write`) on the kept connection, or on a fresh one
    /// when the kept one turns out dead before anything was sent that could be stored.
    async fn write(
        &mut self,
        group: &[Submission],
        data: &mut Vec<u8>,
        declared: &DeclaredKeys,
        metrics: &Metrics,
    ) -> Result<Vec<CommitOutcome>, sqlx::Error> {
        if self
            .kept
            .as_ref()
            .is_some_and(|kept| !kept.reusable(Instant::now()))
        {
            self.kept = None;
        }
        let was_kept = self.kept.is_some();
        let failure = match self.write_once(group, data, declared).await {
            Ok(outcomes) => return Ok(outcomes),
            Err(failure) => failure,
        };
        if !(was_kept && failure.at_first_exchange) {
            return Err(failure.error);
        }
        metrics.writer_reconnected();
        tracing::info!(error = %failure.error, "a writer's kept connection failed before its group was sent; writing the group on a fresh connection");
        data.clear();
        self.write_once(group, data, declared)
            .await
            .map_err(|failure| failure.error)
    }

    async fn write_once(
        &mut self,
        group: &[Submission],
        data: &mut Vec<u8>,
        declared: &DeclaredKeys,
    ) -> Result<Vec<CommitOutcome>, WriteFailure> {
        let mut kept = match self.kept.take() {
            Some(kept) => kept,
            None => {
                let connection = self
                    .pool
                    .acquire()
                    .await
                    .map_err(WriteFailure::at_first_exchange)?;
                let now = Instant::now();
                Kept {
                    connection,
                    taken: now,
                    used: now,
                }
            }
        };
        let parts: Vec<Part<'_>> = group
            .iter()
            .map(|submission| Part {
                rows: &submission.rows,
                claim: submission.claim.as_ref(),
            })
            .collect();
        let written = write_group(
            &mut kept.connection,
            &parts,
            data,
            declared.copy_statement(),
            &self.errors,
        )
        .await;
        if written.is_ok() {
            kept.used = Instant::now();
            self.kept = Some(kept);
        } else {
            // Closed when dropped, not returned to the pool: after a failure its state
            // (a transaction, a COPY, a dead socket) is unknown.
            kept.connection.close_on_drop();
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_connection_goes_back_to_the_pool_after_a_quiet_spell_or_a_long_life() {
        let taken = Instant::now();
        let second = Duration::from_secs(1);
        assert!(reusable(taken, taken, taken + second));
        assert!(!reusable(taken, taken, taken + KEPT_MAX_IDLE));
        // Busy all along, but kept too long.
        let busy = taken + KEPT_MAX_AGE;
        assert!(!reusable(taken, busy - second, busy));
        assert!(reusable(taken, busy - 2 * second, busy - second));
    }
}
