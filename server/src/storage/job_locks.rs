//! The advisory-lock class of policy-job runs (the job id is the object): with several
//! instances of the server on one database, one of them runs a given job at a time, and
//! the server's own rollup refresh never runs beside a refresh policy's run. Taken by
//! `policy_jobs` and `rollup_refresh`.

pub(super) const RUN_LOCK_CLASS: i32 = 0x4c49_504a; // "LIPJ"
