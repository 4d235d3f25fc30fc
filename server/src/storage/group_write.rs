//! Writing one group of submissions on one connection (for `group_commit`, which
//! gathers the groups and keeps the connections): a group without idempotency keys is
//! one `COPY` in autocommit: a single statement is its own transaction (atomic,
//! committed before PostgreSQL answers it), so BEGIN and COMMIT would only add two
//! round trips and wake-ups per group; the plain-mode rollup triggers run inside that
//! statement's transaction. A group with error entries first makes sure their groups
//! exist (`error_groups`: known ones cost nothing, new ones are created in autocommit),
//! then its `COPY` carries their occurrences (one delta per group and minute,
//! `error_groups::OccurrenceDeltas`) in its own text, which a statement trigger on
//! `logs` appends before the first row, in the `COPY`'s transaction: still one
//! statement, so the rows and their occurrences are stored together or not at all. The
//! fold (`error_fold`), woken after the commit, adds them to the groups. A group with
//! keys settles them (`idempotency::decide`), writes the rows of the submissions that
//! are not replays with `COPY`, carrying their occurrences, and commits, all in one
//! transaction. It never acknowledges anything and never retries: it says whether a
//! failure came before anything could be stored.

use std::sync::Arc;

use sqlx::PgConnection;
use tokio::sync::Notify;

use super::copy_text::CopyRows;
use super::error_groups::{ErrorTally, GroupIds, Ids, OccurrenceDeltas};
use super::idempotency::{self, IdempotencyClaim, KeyDecision, StoredResponse};

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

/// One submission of a group: its rows and its idempotency claim, if any.
pub(super) struct Part<'a> {
    pub(super) rows: &'a CopyRows,
    pub(super) claim: Option<&'a IdempotencyClaim>,
}

/// What the writers share to record error occurrences: the groups known to exist, and
/// the fold task's wake-up, notified after a commit that stored error rows.
#[derive(Clone, Default)]
pub(super) struct ErrorWriting {
    pub(super) ids: Arc<GroupIds>,
    pub(super) committed: Arc<Notify>,
}

/// Why a group was not written, and whether PostgreSQL may have stored any of it.
pub(super) struct WriteFailure {
    pub(super) error: sqlx::Error,
    /// The failure came at the group's first exchange (the `COPY` or `BEGIN` was
    /// refused or never answered): nothing of the group can have been stored.
    pub(super) at_first_exchange: bool,
}

impl WriteFailure {
    pub(super) fn at_first_exchange(error: sqlx::Error) -> Self {
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

/// Writes one group on `conn` and returns each submission's outcome: in one autocommit
/// `COPY` when no submission carries an idempotency key, else in one transaction.
/// `data` is an empty buffer to build the `COPY` data in; `copy` the statement.
pub(super) async fn write_group(
    conn: &mut PgConnection,
    group: &[Part<'_>],
    data: &mut Vec<u8>,
    copy: &str,
    errors: &ErrorWriting,
) -> Result<Vec<CommitOutcome>, WriteFailure> {
    let mut tally = ErrorTally::default();
    for part in group {
        if !part.rows.errors().is_empty() {
            tally.merge(part.rows.errors());
        }
    }
    let ids = if tally.is_empty() {
        Ids::new()
    } else {
        // Before anything of the group is stored: a failure here stored no row.
        errors
            .ids
            .ensure(conn, &tally)
            .await
            .map_err(WriteFailure::at_first_exchange)?
    };
    let keyless = group.iter().all(|part| part.claim.is_none());
    let outcomes = if keyless {
        for part in group {
            data.extend_from_slice(part.rows.as_bytes());
        }
        // No BEGIN: the COPY commits on its own, with the occurrences it carries, before
        // `finish` returns, and a failed COPY leaves nothing behind.
        if !data.is_empty() {
            match OccurrenceDeltas::of(&tally, &ids) {
                Some(deltas) => copy_rows(conn, &deltas.carried_by(copy), data).await?,
                None => copy_rows(conn, copy, data).await?,
            }
        }
        vec![CommitOutcome::Committed; group.len()]
    } else {
        write_with_keys(conn, group, data, copy, &ids).await?
    };
    if !tally.is_empty() {
        errors.committed.notify_one();
    }
    Ok(outcomes)
}

/// Settles the group's idempotency keys and writes the rows of the submissions that
/// are not replays and their error occurrences (groups' ids in `ids`), in one
/// transaction.
async fn write_with_keys(
    conn: &mut PgConnection,
    group: &[Part<'_>],
    data: &mut Vec<u8>,
    copy: &str,
    ids: &Ids,
) -> Result<Vec<CommitOutcome>, WriteFailure> {
    let mut tx = sqlx::Connection::begin(conn)
        .await
        .map_err(WriteFailure::at_first_exchange)?;
    let claims: Vec<Option<&IdempotencyClaim>> = group.iter().map(|part| part.claim).collect();
    let outcomes: Vec<CommitOutcome> = idempotency::decide(&mut tx, &claims)
        .await
        .map_err(WriteFailure::later)?
        .into_iter()
        .map(CommitOutcome::from)
        .collect();
    // A replay stores no row, so its errors are not counted again.
    let mut stored = ErrorTally::default();
    for (part, outcome) in group.iter().zip(&outcomes) {
        if *outcome == CommitOutcome::Committed {
            data.extend_from_slice(part.rows.as_bytes());
            stored.merge(part.rows.errors());
        }
    }
    if !data.is_empty() {
        let carrying = OccurrenceDeltas::of(&stored, ids).map(|deltas| deltas.carried_by(copy));
        // Inside the transaction: a failure anywhere before COMMIT stores nothing, but
        // only the first exchange is retried, so it counts as a later failure here.
        copy_rows(&mut tx, carrying.as_deref().unwrap_or(copy), data)
            .await
            .map_err(|failure| WriteFailure::later(failure.error))?;
    }
    tx.commit().await.map_err(WriteFailure::later)?;
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
