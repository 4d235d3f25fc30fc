//! Errors as groups: the fingerprint rule that keys every error entry at ingest
//! (`fingerprint`, with `frames` and `template`), and the API that lists and shows
//! the groups (`api`) and changes them (`change_api`, `changes`; `api_error` is what
//! both share). The groups themselves are created at ingest by `storage::error_groups`
//! and counted in the same statement as the entries. This wing never writes entries.

pub mod api;
mod api_error;
mod change_api;
pub mod changes;
pub mod fingerprint;
pub mod frames;
pub mod groups;
pub mod template;
