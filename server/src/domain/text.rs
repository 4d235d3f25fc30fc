//! Text PostgreSQL can store. PostgreSQL `text` and `jsonb` cannot hold NUL; JSON
//! decoding already refuses lone surrogates (a clear 400 before we get here), so NUL
//! is the one character left to make storable. It never rejects anything.

use std::borrow::Cow;

/// The replacement for characters PostgreSQL cannot store.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Returns `text` with every NUL replaced by U+FFFD; allocation-free (still borrowed
/// when it was) when none is present.
pub fn storable_text(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', REPLACEMENT.encode_utf8(&mut [0; 4])))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_becomes_the_replacement_character() {
        assert_eq!(
            storable_text("a\0b".into()),
            format!("a{REPLACEMENT}b").as_str()
        );
        assert!(matches!(
            storable_text("plain".into()),
            Cow::Borrowed("plain")
        ));
    }
}
