//! The one place a validated entry becomes a storage row. [`Rows`] writes each entry as
//! its `COPY` row, for the metadata keys the database declared when the request
//! arrived, while the entry's text is still borrowed from the body. Handlers only push
//! entries: they never see the row format or the declared keys, and nothing here
//! decides what is valid (an entry arrives as a `domain::LogEntry`).

use std::sync::Arc;

use crate::domain::LogEntry;
use crate::state::AppState;
use crate::storage::copy_text::CopyRows;
use crate::storage::declared_keys::DeclaredKeys;

/// The shape of a request's rows: a field per metadata key declared when the request
/// arrived. Taken before the body is read, so the rows match what the group committer
/// is told they carry.
pub(super) struct RowShape(Arc<DeclaredKeys>);

impl RowShape {
    /// The shape rows have now.
    pub(super) fn current(state: &AppState) -> Self {
        RowShape(state.declared.current())
    }

    /// Empty rows of this shape, with room for about `body_bytes` (a request's rows
    /// are about its body's size).
    pub(super) fn rows_for(self, body_bytes: usize) -> Rows {
        Rows(CopyRows::with_capacity(body_bytes, self.0))
    }
}

/// A request's rows, in the order its valid entries were pushed.
pub(super) struct Rows(CopyRows);

impl Rows {
    /// Writes `entry` as the next row.
    pub(super) fn push(&mut self, entry: &LogEntry<'_>) {
        self.0.push(entry);
    }

    /// Forgets every row pushed so far.
    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    /// How many rows.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rows for the group committer.
    pub(super) fn into_copy_rows(self) -> CopyRows {
        self.0
    }
}
