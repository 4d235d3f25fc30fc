//! Parse-don't-validate types: a value of these types can only exist valid, so nothing
//! downstream re-checks it. This module never performs I/O and never knows about HTTP.

mod entry_seed;
mod error_details;
mod log_entry;
mod metadata;
mod metadata_writer;
mod sensitive_key;
mod shape_error;
mod text;

pub use entry_seed::EntrySeed;
pub use error_details::{ErrorDetails, MAX_FRAMES};
pub use log_entry::LogEntry;
pub use metadata::{error_details_of, Metadata, FILTERED};
pub use metadata_writer::{KeyWritten, MetadataFragment, MetadataWriter, TooDeep};
pub use sensitive_key::is_sensitive_key;
pub use text::storable_text;
