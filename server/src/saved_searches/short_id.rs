//! The short ids of saved searches' stable links (`/s/<short_id>`): 128 random bits
//! from the operating system's generator, written in unpadded URL-safe base64 (22
//! characters), so a link can be neither guessed nor enumerated. Owns making one and
//! telling a well-formed one from anything else (which is answered 404 unread).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Random bytes in a short id.
const BYTES: usize = 16;
/// Characters of a short id: `BYTES` in unpadded base64.
pub const LENGTH: usize = 22;

/// A new short id.
pub fn generate() -> String {
    let bytes: [u8; BYTES] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` could be a short id this server made.
pub fn is_well_formed(text: &str) -> bool {
    text.len() == LENGTH
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_url_safe_distinct_and_recognised() {
        let ids: std::collections::HashSet<String> = (0..1_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 1_000);
        for id in &ids {
            assert!(is_well_formed(id), "{id}");
            assert_eq!(id, &urlencode_safe(id));
        }
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed("aaaaaaaaaaaaaaaaaaaaa/"));
        assert!(!is_well_formed("aaaaaaaaaaaaaaaaaaaaaaa"));
    }

    /// `text` with every character outside the URL-safe set percent-encoded.
    fn urlencode_safe(text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.~".contains(c) {
                    c.to_string()
                } else {
                    format!("%{:02X}", c as u32)
                }
            })
            .collect()
    }
}
