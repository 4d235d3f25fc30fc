//! What both benchmark programs (`ingest_load`, `read_load`) need to stand up their
//! PostgreSQL and read the server's log: the workspace root, the private cluster of
//! `bin/postgres-dev`, a database URL pointed at another database, and a log's tail.
//! Errors are plain text; each program wraps them in its own error type.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root (the server crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Starts (or finds running) the private cluster of `bin/postgres-dev`; its URL.
pub fn start_private_postgres() -> Result<String, String> {
    let script = workspace_root().join("bin/postgres-dev");
    let output = Command::new(&script)
        .arg("start")
        .output()
        .map_err(|error| format!("running {}: {error}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} start failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("DATABASE_URL=").map(str::to_owned))
        .ok_or_else(|| "bin/postgres-dev start printed no DATABASE_URL".to_owned())
}

/// The same server and credentials, another database: replaces the URL's path.
pub fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| format!("DATABASE_URL is not a URL: {url}"))?;
    let path_start = base[authority_start..]
        .find('/')
        .map(|i| authority_start + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// The last 30 lines of a log file (empty when it cannot be read).
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
