//! Errors as groups: the fingerprint rule that keys every error entry at ingest
//! (`fingerprint`, with `frames` and `template`), and the API that lists, shows and
//! changes the groups (`api`). The groups themselves are written at ingest by
//! `storage::error_groups`, in the same transaction as the entries. This wing never
//! writes entries.

pub mod api;
mod api_error;
mod change_api;
pub mod changes;
pub mod fingerprint;
pub mod frames;
pub mod groups;
pub mod template;
