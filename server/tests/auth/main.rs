//! People against a real server and database, one test binary: signing in and out,
//! sessions, CSRF and throttling (`sign_in`), the role each route needs (`roles`), the
//! SSO proxy (`proxy`), removing people (`removal`), the audit log (`audit`) and what
//! sign-in logs (`trail`). Run one part with a filter:
//! `cargo test -p log_ingestion_server --test auth roles::`.

mod audit;
mod last_admin;
mod people;
mod proxy;
mod removal;
mod roles;
mod sign_in;
mod trail;
