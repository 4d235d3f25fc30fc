//! Text PostgreSQL can store. PostgreSQL `text` and `jsonb` cannot hold NUL; JSON
//! decoding already refuses lone surrogates (a clear 400 before we get here), so NUL
//! is the one character left to make storable. It also owns the rule that makes text
//! *plain*: a JSON string the decoder could borrow held no escape, and JSON text cannot
//! hold a raw control character, a raw quote or a backslash that is not an escape, so
//! such a string holds none of them (no NUL either): it is stored and copied as is,
//! with no scan. It never rejects anything.

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

/// Text of a JSON string field, made storable: `Cow::Borrowed` only when the decoder
/// borrowed it from the JSON text (it held no escape), and then it is plain and kept
/// without a scan; a decoded (`Owned`) string goes through [`storable_text`] and stays
/// owned. So the result is borrowed exactly when it is plain ([`is_plain`]).
pub fn storable_json_text(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(plain) => Cow::Borrowed(plain),
        Cow::Owned(decoded) => Cow::Owned(storable_text(Cow::Owned(decoded)).into_owned()),
    }
}

/// Text another protocol decoded (OTLP's protobuf strings), made storable by the same
/// rule: `Cow::Borrowed` exactly when it is plain (no control character, no quote, no
/// backslash: what a JSON string without escapes holds), found by one scan; else owned,
/// with NUL made storable.
pub fn decoded_text(text: Cow<'_, str>) -> Cow<'_, str> {
    let plain = !holds_special(text.as_bytes());
    match text {
        Cow::Borrowed(text) if plain => Cow::Borrowed(text),
        text => Cow::Owned(storable_text(text).into_owned()),
    }
}

/// Whether `bytes` hold a control character, a quote or a backslash: checked 16 bytes
/// at a time without an early exit inside a block, so the check is one vector
/// comparison per block.
fn holds_special(bytes: &[u8]) -> bool {
    let special = |byte: u8| byte < 0x20 || byte == b'"' || byte == b'\\';
    let (blocks, rest) = bytes.as_chunks::<16>();
    blocks.iter().any(|block| {
        block
            .iter()
            .fold(false, |found, &byte| found | special(byte))
    }) || rest.iter().any(|&byte| special(byte))
}

/// Whether `text`, as returned by [`storable_json_text`], is plain: no control
/// character, no quote, no backslash; it may be written into JSON or `COPY` text as is.
// The variant is the answer (a `&str` cannot tell), so it takes the `Cow` itself.
#[allow(clippy::ptr_arg)]
pub fn is_plain(text: &Cow<'_, str>) -> bool {
    matches!(text, Cow::Borrowed(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_text_is_borrowed_exactly_when_plain() {
        assert!(matches!(
            decoded_text("plain é \u{7f}".into()),
            Cow::Borrowed(_)
        ));
        for special in ["tab\t", "quote\"", "back\\slash", "nul\0", "bell\u{7}"] {
            let text = decoded_text(special.into());
            assert!(matches!(text, Cow::Owned(_)), "{special:?}");
            assert!(!text.contains('\0'));
        }
    }

    #[test]
    fn special_bytes_are_found_at_every_place_of_a_block_and_of_the_rest() {
        for length in [1, 15, 16, 17, 31, 32, 33, 100] {
            let plain = "a".repeat(length);
            assert!(!holds_special(plain.as_bytes()), "{length}");
            for at in 0..length {
                for special in [b'\0', b'\n', 0x1f, b'"', b'\\'] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = special;
                    assert!(holds_special(&bytes), "{length} {at} {special}");
                }
                // The bytes around the special ones (and any non-ASCII byte) are plain.
                for other in [b' ', b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = other;
                    assert!(!holds_special(&bytes), "{length} {at} {other}");
                }
            }
        }
        assert!(!holds_special(b""));
    }

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
