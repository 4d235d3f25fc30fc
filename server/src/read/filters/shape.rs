//! The guard on `meta.*` nesting: path segments plus the JSON nesting of the value,
//! measured on the raw text before anything is parsed or built.

/// Nesting no filter may exceed whatever the configuration says: the JSON decoder's own
/// limit, so no stored metadata is deeper. It keeps every value built here shallow
/// enough to drop, compare and serialize without exhausting a stack.
pub(super) const MAX_NESTING: usize = 128;

/// The configured bounds on a query's user-controlled nesting.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// `meta.*` path segments plus the nesting of a JSON value: the metadata depth
    /// cap of the ingest side (`LOG_INGESTION_MAX_METADATA_DEPTH`), since nothing
    /// deeper can be stored.
    pub max_metadata_depth: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_metadata_depth: crate::config::EntryLimits::default().max_metadata_depth,
        }
    }
}

/// Checks the shape of every `meta.*` pair against `limits` before anything is built
/// from them: the read API's guard runs it on the raw query string. Linear in the
/// query's length; refusals quote keys in part only.
pub fn check_shape(pairs: &[(String, String)], limits: &QueryLimits) -> Result<(), Vec<String>> {
    let max = limits.max_metadata_depth.min(MAX_NESTING);
    let problems: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            let path = key.strip_prefix("meta.")?;
            metadata_nesting_problem(path, value, max)
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The problem with `meta.PATH=VALUE` nested deeper than `max` (path segments plus
/// the JSON nesting of the value), if it is.
pub(super) fn metadata_nesting_problem(path: &str, value: &str, max: usize) -> Option<String> {
    let depth = path.bytes().filter(|b| *b == b'.').count() + 1 + json_nesting(value);
    (depth > max).then(|| {
        format!(
            "meta.{}: nested {depth} levels deep (path and value), at most {max} allowed",
            crate::ingest::client_text::truncated(
                path,
                crate::ingest::client_text::MAX_QUOTED_CHARS
            )
        )
    })
}

/// How deeply `text`'s brackets nest, strings skipped: the nesting JSON text would
/// have, found in one pass without parsing (and without recursion).
fn json_nesting(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_paths_and_values_are_held_to_the_depth_cap_before_parsing() {
        let limits = QueryLimits {
            max_metadata_depth: 3,
        };
        let pair = |key: &str, value: &str| vec![(key.to_owned(), value.to_owned())];
        assert!(check_shape(&pair("meta.a.b.c", "1"), &limits).is_ok());
        assert!(check_shape(&pair("meta.a.b", "{\"c\":1}"), &limits).is_ok());
        assert!(check_shape(&pair("meta.a", "\"[[[[\""), &limits).is_ok());
        let deep_path = format!("meta.{}", vec!["a"; 30_000].join("."));
        let problems = check_shape(&pair(&deep_path, "1"), &limits).unwrap_err();
        assert!(problems[0].contains("nested 30000 levels"), "{problems:?}");
        assert!(problems[0].len() < 200, "{problems:?}");
        assert!(check_shape(&pair("meta.a.b", "[[1]]"), &limits).is_err());
    }
}
