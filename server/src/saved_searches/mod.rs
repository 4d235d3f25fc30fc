//! Saved searches: a name, a description and an explorer search (the filters and time
//! range of `/api/v1/logs`, relative or absolute), owned by the one who saved it and
//! shared with the team or private, each with a stable short link. `store` owns the
//! table and who may see or change a row, `api` the HTTP surface, `short_id` the
//! links' random ids.

pub mod api;
pub mod short_id;
pub mod store;

pub use api::router;
