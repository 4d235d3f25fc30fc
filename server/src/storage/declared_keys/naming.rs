//! The declared-key rule (which keys can be declared) and the names a key gives its
//! column, check and index.

/// At most this many declared keys: each one costs every insert that carries it.
pub const MAX_KEYS: usize = 16;
/// Index names are `logs_meta_KEY`, and PostgreSQL identifiers hold 63 bytes.
const MAX_KEY_BYTES: usize = 53;
pub(super) const INDEX_PREFIX: &str = "logs_meta_";

/// Why `key` cannot be declared, if it cannot: a key is written into DDL and into the
/// read side's SQL as a literal, so only letters, digits and `_` are accepted.
pub fn key_problem(key: &str) -> Option<String> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (!valid).then(|| {
        format!(
            "{}: a metadata key to index is 1 to {MAX_KEY_BYTES} letters, digits or _",
            crate::ingest::client_text::truncated(
                key,
                crate::ingest::client_text::MAX_QUOTED_CHARS
            )
        )
    })
}

/// The column holding `key`'s indexed text (`key` already checked by [`key_problem`]),
/// quoted: keys keep their case.
pub fn column(key: &str) -> String {
    format!("\"meta_{key}\"")
}

pub(super) fn index_name(key: &str) -> String {
    format!("{INDEX_PREFIX}{key}")
}

pub(super) fn check_name(key: &str) -> String {
    format!("meta_{key}_set")
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_can_be_declared() {
        assert_eq!(key_problem("user_id"), None);
        assert_eq!(key_problem("RequestId2"), None);
        for bad in ["", "a'b", "a b", "a.b", "ü", &"k".repeat(54)] {
            assert!(key_problem(bad).is_some(), "{bad:?}");
        }
        assert!(key_problem(&"'".repeat(10_000)).unwrap().len() < 200);
    }
}
