//! The read side against a real database, one test binary: the read API (`api`), its
//! query plans (`explain`, `explain_scale`), the rollups (`rollups`), newest-first
//! windows (`windows`), late rows the rollups do not count yet (`late_rows`), the live
//! tail (`tail`), exports (`export`), field values (`fields`), saved searches
//! (`saved_searches`), and reads of what the ingest side stored (`with_ingest`). Run one
//! part with a filter: `cargo test -p log_ingestion_server --test read explain::`.

mod api;
mod explain;
mod explain_scale;
mod export;
mod fields;
mod late_rows;
mod rollups;
mod saved_searches;
mod tail;
mod windows;
mod with_ingest;
