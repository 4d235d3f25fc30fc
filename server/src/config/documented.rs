//! Every variable the server reads is documented once in docs/server.md's settings
//! table: the names are found in the source (each `"LOG_INGESTION_..."` literal outside
//! tests, and `DATABASE_URL`), the documented ones in the first cell of the table's rows,
//! where `` `A_B_C` / `_D` `` is shorthand for `A_B_C` and `A_B_D` (the suffix replaces as
//! many words of the name before it as it has).

use std::collections::BTreeMap;
use std::path::Path;

/// The variables the non-test source of `dir` names, with a file naming each.
fn read_by_source(dir: &Path, found: &mut BTreeMap<String, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the source directory")
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_by_source(&path, found);
            continue;
        }
        let is_test_file = path.file_name().is_some_and(|name| name == "tests.rs")
            || path.ends_with("config/documented.rs");
        if path.extension().is_none_or(|ext| ext != "rs") || is_test_file {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for piece in code.split('"').skip(1).step_by(2) {
            let is_name = piece.starts_with("LOG_INGESTION_") || piece == "DATABASE_URL";
            if is_name
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                found
                    .entry(piece.to_owned())
                    .or_insert_with(|| path.display().to_string());
            }
        }
    }
}

/// How many times each variable is named in the first cell of a settings table row.
fn documented(docs: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in docs.lines().filter(|line| line.starts_with("| `")) {
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        let mut previous: Option<String> = None;
        for token in first_cell.split('`').skip(1).step_by(2) {
            let token = token.split('=').next().unwrap_or_default();
            let name = match (token.strip_prefix('_'), &previous) {
                (Some(suffix), Some(before)) => {
                    let words: Vec<&str> = before.split('_').collect();
                    let kept = words.len().saturating_sub(suffix.split('_').count());
                    format!("{}_{suffix}", words[..kept].join("_"))
                }
                _ => token.to_owned(),
            };
            if name.starts_with("LOG_INGESTION_") || name == "DATABASE_URL" {
                *counts.entry(name.clone()).or_insert(0) += 1;
                previous = Some(name);
            }
        }
    }
    counts
}

#[test]
fn every_variable_the_server_reads_is_documented_once_in_docs_server_md() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut read = BTreeMap::new();
    read_by_source(&root.join("src"), &mut read);
    assert!(read.len() > 30, "too few variables found: {read:?}");
    let docs = std::fs::read_to_string(root.join("../docs/server.md")).expect("docs/server.md");
    let documented = documented(&docs);
    let problems: Vec<String> = read
        .iter()
        .filter_map(|(name, file)| match documented.get(name) {
            Some(1) => None,
            Some(n) => Some(format!("{name} ({file}) is documented {n} times")),
            None => Some(format!(
                "{name} ({file}) is not in docs/server.md's settings table"
            )),
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_shorthand_replaces_as_many_words_as_the_suffix_has() {
    let counts = documented(
        "| `LOG_INGESTION_GROUP_COMMIT_MAX_ROWS` / `_MAX_BYTES` | x |\n\
         | `RUST_LOG`, `LOG_INGESTION_LOG_FORMAT=json` | y |\n\
         | `LOG_INGESTION_HOST` / `_PORT` | z |",
    );
    let names: Vec<&str> = counts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "LOG_INGESTION_GROUP_COMMIT_MAX_BYTES",
            "LOG_INGESTION_GROUP_COMMIT_MAX_ROWS",
            "LOG_INGESTION_HOST",
            "LOG_INGESTION_LOG_FORMAT",
            "LOG_INGESTION_PORT",
        ]
    );
}
