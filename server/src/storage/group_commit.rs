//! `GroupCommitter`: concurrent requests' entries written in one transaction. A writer
//! task (a few run, so one's commit overlaps another's COPY) takes every waiting
//! submission (capped by rows and bytes); a lone one lingers a few milliseconds for
//! company. A group without idempotency keys is one `COPY` in autocommit: a single
//! statement is its own transaction (atomic, committed before PostgreSQL answers it),
//! so BEGIN and COMMIT would only add two round trips and wake-ups per group; the
//! plain-mode rollup triggers run inside that statement's transaction. A group with
//! keys settles them (`idempotency::decide`), writes the rows of the submissions that
//! are not replays with `COPY`, and commits, all in one transaction. A group with error
//! entries appends its occurrences per group and minute (`error_groups`: an insert, no
//! lock shared with other writers) in the transaction of its rows: `BEGIN` and that
//! insert in one round trip, the `COPY`, `COMMIT`; new groups are created before it, in
//! autocommit. The fold (`error_fold`), woken after such a commit, adds them to the
//! groups.
//! Every submission of the group gets the same fate: all committed, or none (each then
//! answers 503). Each writer keeps its own connection from group to group
//! ([`WriterConnection`]): the pool's liveness round trip before every group was a
//! third of a group's round trips. It never acknowledges a submission before its rows
//! have committed, never writes a group twice unless the first attempt provably stored
//! nothing, and never decides a replay itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinHandle;

use super::copy_text::CopyRows;
use super::declared_keys::{is_declaration_change, DeclaredKeys, LiveDeclaredKeys};
use super::error_fold;
use super::error_groups::{self, ErrorTally, GroupIds};
use super::idempotency::{self, IdempotencyClaim, KeyDecision, StoredResponse};
use super::write_health::WriteHealth;
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
        // keys again and, when they changed, write the group once more built for them.
        match connection.declared.reload(&connection.pool).await {
            Ok(true) => {
                let declared = connection.declared.current();
                for submission in &mut group {
                    submission.rows = submission.rows.for_keys(Arc::clone(&declared));
                }
                data.clear();
                written = connection.write(&group, data, &declared, metrics).await;
            }
            Ok(false) => {}
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

/// What the writers share to record error occurrences: the groups' ids, and the fold
/// task's wake-up, notified after a commit that appended deltas.
#[derive(Clone, Default)]
struct ErrorWriting {
    ids: Arc<GroupIds>,
    committed: Arc<Notify>,
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

/// Why a group was not written, and whether PostgreSQL may have stored any of it.
struct WriteFailure {
    error: sqlx::Error,
    /// The failure came at the group's first exchange (the `COPY` or `BEGIN` was
    /// refused or never answered): nothing of the group can have been stored.
    at_first_exchange: bool,
}

impl WriteFailure {
    fn at_first_exchange(error: sqlx::Error) -> Self {
        WriteFailure {
            error,
            at_first_exchange: true,
        }
    }

    fn later(error: sqlx::Error) -> Self {
        WriteFailure {
            error,
            at_first_exchange: false,
        }
    }
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

    /// Writes `group` (see [`write_group`]) on the kept connection, or on a fresh one
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
        let written = write_group(
            &mut kept.connection,
            group,
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

/// Writes one group on `conn` and returns each submission's outcome: in one autocommit
/// `COPY` when no submission carries an idempotency key or error entries, else in one
/// transaction.
/// `data` is an empty buffer to build the `COPY` data in; `copy` the statement.
async fn write_group(
    conn: &mut PgConnection,
    group: &[Submission],
    data: &mut Vec<u8>,
    copy: &str,
    errors: &ErrorWriting,
) -> Result<Vec<CommitOutcome>, WriteFailure> {
    let mut tally = ErrorTally::default();
    for submission in group {
        tally.merge(submission.rows.errors());
    }
    let keyless = group.iter().all(|submission| submission.claim.is_none());
    if tally.is_empty() && keyless {
        for submission in group {
            data.extend_from_slice(submission.rows.as_bytes());
        }
        if !data.is_empty() {
            // No BEGIN: the COPY commits on its own before `finish` returns, and a
            // failed COPY leaves nothing behind.
            copy_rows(conn, copy, data).await?;
        }
        return Ok(vec![CommitOutcome::Committed; group.len()]);
    }
    // The groups' ids (new groups created) before anything of the group is stored.
    let deltas = if tally.is_empty() {
        Vec::new()
    } else {
        errors
            .ids
            .deltas(conn, &tally)
            .await
            .map_err(WriteFailure::at_first_exchange)?
    };
    if keyless {
        for submission in group {
            data.extend_from_slice(submission.rows.as_bytes());
        }
        // BEGIN and the deltas in one round trip; a failure before COMMIT stores nothing
        // (the connection is closed after it, which ends the transaction).
        // Without arguments: the simple protocol, which runs both statements.
        let begin = error_groups::begin_with_deltas(&deltas);
        sqlx::Executor::execute(&mut *conn, begin.as_str())
            .await
            .map_err(WriteFailure::at_first_exchange)?;
        copy_rows(conn, copy, data)
            .await
            .map_err(|failure| WriteFailure::later(failure.error))?;
        sqlx::Executor::execute(&mut *conn, "COMMIT")
            .await
            .map_err(WriteFailure::later)?;
        errors.committed.notify_one();
        return Ok(vec![CommitOutcome::Committed; group.len()]);
    }
    let mut tx = sqlx::Connection::begin(conn)
        .await
        .map_err(WriteFailure::at_first_exchange)?;
    let claims: Vec<Option<&IdempotencyClaim>> = group
        .iter()
        .map(|submission| submission.claim.as_ref())
        .collect();
    let outcomes: Vec<CommitOutcome> = idempotency::decide(&mut tx, &claims)
        .await
        .map_err(WriteFailure::later)?
        .into_iter()
        .map(CommitOutcome::from)
        .collect();
    let mut stored = ErrorTally::default();
    for (submission, outcome) in group.iter().zip(&outcomes) {
        if *outcome == CommitOutcome::Committed {
            data.extend_from_slice(submission.rows.as_bytes());
            stored.merge(submission.rows.errors());
        }
    }
    if !data.is_empty() {
        // Inside the transaction: a failure anywhere before COMMIT stores nothing, but
        // only the first exchange is retried, so it counts as a later failure here.
        copy_rows(&mut tx, copy, data)
            .await
            .map_err(|failure| WriteFailure::later(failure.error))?;
    }
    // Only the occurrences of submissions that are not replays (their ids are known
    // from above, unless the cache started over in between).
    let stored = if stored == tally {
        deltas
    } else if stored.is_empty() {
        Vec::new()
    } else {
        errors
            .ids
            .deltas(&mut tx, &stored)
            .await
            .map_err(WriteFailure::later)?
    };
    if !stored.is_empty() {
        error_groups::insert_deltas(&mut tx, &stored)
            .await
            .map_err(WriteFailure::later)?;
    }
    tx.commit().await.map_err(WriteFailure::later)?;
    if !stored.is_empty() {
        errors.committed.notify_one();
    }
    Ok(outcomes)
}

/// Sends `data` (rows in `COPY` text format) as one `COPY` `statement` on `conn`; returns once
/// PostgreSQL has answered the statement (and, outside a transaction, committed it).
/// Only a failure to start the `COPY` is at the first exchange: once rows are sent
/// and `finish` has begun, PostgreSQL may have committed them.
async fn copy_rows(
    conn: &mut PgConnection,
    statement: &str,
    data: &[u8],
) -> Result<(), WriteFailure> {
    let mut copy = conn
        .copy_in_raw(statement)
        .await
        .map_err(WriteFailure::at_first_exchange)?;
    copy.send(data).await.map_err(WriteFailure::later)?;
    copy.finish().await.map_err(WriteFailure::later)?;
    Ok(())
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
