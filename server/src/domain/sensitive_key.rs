//! Which metadata keys name a secret, so their values are stored as `[FILTERED]`: one
//! rule (a key's words against sensitive words, the whole key against sensitive
//! compounds), with a quick necessary check in front that lets most keys through
//! without splitting them into words. It never sees a value.

/// Words that mark a value as sensitive when they are one whole word of the key.
/// A key is split into words at anything but letters and digits, at camelCase humps
/// and between letters and digits (`userPassword`, `ACCESS_TOKEN`, `password2`), so
/// `tokens_used`, `class_name` or `is_snapshot` are ordinary keys.
const SENSITIVE_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "credential",
    "credentials",
    "cvv",
    "ssn",
    "cookie",
];

/// Compounds that mark a value as sensitive when the key, lowercased with everything
/// but letters and digits removed, equals or ends with one (`api_key`, `X-API-Key`,
/// `creditCardNumber`, `myapikey`).
const SENSITIVE_COMPOUNDS: &[&str] = &[
    "apikey",
    "xapikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "creditcard",
    "cardnumber",
    "socialsecurity",
    "socialsecuritynumber",
    "sessionid",
    "accesstoken",
    "authtoken",
    "refreshtoken",
    "clientsecret",
];

/// Whether a metadata key names a secret: one of its words is a sensitive word, or
/// the whole key, lowercased with everything but letters and digits removed, ends
/// with a sensitive compound. Case never matters.
pub fn is_sensitive_key(key: &str) -> bool {
    if !may_be_sensitive(key) {
        return false;
    }
    let mut normalized = String::with_capacity(key.len());
    let mut sensitive_word = false;
    split_words(key, &mut normalized, |word| {
        sensitive_word |= SENSITIVE_WORDS.contains(&word);
    });
    sensitive_word
        || SENSITIVE_COMPOUNDS
            .iter()
            .any(|compound| normalized.ends_with(compound))
}

/// Keys up to this long are checked by [`may_be_sensitive`] without allocating.
const MAX_QUICK_KEY_BYTES: usize = 64;

/// Fragments of which every sensitive word holds one (`password`, `passwd` and
/// `passphrase` hold `pass`; `authorization` `auth`; `credential(s)` `cred`), as
/// does every compound ending in `token` or `secret`.
const SENSITIVE_FRAGMENTS: &[&[u8]] = &[
    b"pass", b"pwd", b"secret", b"token", b"auth", b"cred", b"cvv", b"ssn", b"cookie",
];

/// Whether a byte is the first of a [`SENSITIVE_FRAGMENTS`] entry.
const FRAGMENT_STARTS: [bool; 256] = {
    let mut starts = [false; 256];
    let mut i = 0;
    while i < SENSITIVE_FRAGMENTS.len() {
        starts[SENSITIVE_FRAGMENTS[i][0] as usize] = true;
        i += 1;
    }
    starts
};

/// Endings of which every other sensitive compound ends with one.
const SENSITIVE_ENDINGS: &[&[u8]] = &[b"key", b"card", b"number", b"security", b"sessionid"];

/// A quick necessary condition of the rule: a short ASCII key's letters and digits,
/// lowercased, hold a [`SENSITIVE_FRAGMENTS`] entry or end with a
/// [`SENSITIVE_ENDINGS`] one. Most keys (`request_id`, `user_id`, `path`) fail it in
/// one pass without allocating, and never reach the word splitting (~35 ns a key);
/// tests check every sensitive word and compound passes it.
fn may_be_sensitive(key: &str) -> bool {
    let bytes = key.as_bytes();
    // Lowercasing a character outside ASCII can give ASCII letters (the Kelvin sign
    // gives `k`): such keys, and long ones, go to the rule itself.
    if bytes.len() > MAX_QUICK_KEY_BYTES || !bytes.is_ascii() {
        return true;
    }
    let mut normalized = [0u8; MAX_QUICK_KEY_BYTES];
    let mut len = 0;
    for &c in bytes {
        if c.is_ascii_alphanumeric() {
            normalized[len] = c.to_ascii_lowercase();
            len += 1;
        }
    }
    let normalized = &normalized[..len];
    (0..len).any(|start| {
        let rest = &normalized[start..];
        // Only a fragment's first letter can start one: most places are passed over
        // with one table look-up.
        FRAGMENT_STARTS[usize::from(rest[0])]
            && SENSITIVE_FRAGMENTS
                .iter()
                .any(|fragment| rest.starts_with(fragment))
    }) || SENSITIVE_ENDINGS
        .iter()
        .any(|ending| normalized.ends_with(ending))
}

/// Appends `key`'s words to `normalized`, lowercased and run together, and calls `word`
/// with each word as it ends. Words split at anything but letters and digits, at a
/// lowercase-to-uppercase hump (`apiKey`), at the end of an acronym (`APIKey`) and
/// between letters and digits (`password2`).
fn split_words(key: &str, normalized: &mut String, mut word: impl FnMut(&str)) {
    let mut word_start = 0;
    let mut end_word = |normalized: &String, word_start: &mut usize| {
        if normalized.len() > *word_start {
            word(&normalized[*word_start..]);
            *word_start = normalized.len();
        }
    };
    let mut chars = key.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        if !c.is_alphanumeric() {
            end_word(normalized, &mut word_start);
            previous = Some(c);
            continue;
        }
        if let Some(previous) = previous {
            let next = chars.peek().copied();
            let hump = previous.is_lowercase() && c.is_uppercase();
            let acronym_end =
                previous.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase);
            let digit_edge =
                previous.is_alphanumeric() && (previous.is_numeric() != c.is_numeric());
            if hump || acronym_end || digit_edge {
                end_word(normalized, &mut word_start);
            }
        }
        normalized.extend(c.to_lowercase());
        previous = Some(c);
    }
    end_word(normalized, &mut word_start);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_words(key: &str) -> Vec<String> {
        let mut words = Vec::new();
        split_words(key, &mut String::new(), |word| words.push(word.to_owned()));
        words
    }

    #[test]
    fn keys_split_into_words_at_separators_humps_acronyms_and_digits() {
        assert_eq!(key_words("X-API-Key"), ["x", "api", "key"]);
        assert_eq!(key_words("creditCardNumber"), ["credit", "card", "number"]);
        assert_eq!(key_words("APIKey"), ["api", "key"]);
        assert_eq!(key_words("password2"), ["password", "2"]);
        assert_eq!(key_words("__a__"), ["a"]);
    }

    #[test]
    fn sensitive_keys_in_any_spelling_are_sensitive() {
        for key in [
            "api_key",
            "apiKey",
            "APIKey",
            "X-API-Key",
            "x_api_key",
            "credit_card",
            "creditCardNumber",
            "card_number",
            "user_password",
            "Password",
            "PASSWORD",
            "Authorization",
            "session_id",
            "sessionId",
            "ACCESS_TOKEN",
            "refreshToken",
            "client_secret",
            "ssn",
            "cvv",
            "Set-Cookie",
            "passwd",
            "private_key",
            "aws_secret_access_key",
            "social_security_number",
        ] {
            assert!(is_sensitive_key(key), "{key} should be sensitive");
        }
    }

    #[test]
    fn ordinary_keys_containing_sensitive_fragments_are_kept() {
        // `passport_country` is kept on purpose: `passport` is not `password`.
        for key in [
            "class_name",
            "business_name",
            "is_snapshot",
            "tokens_used",
            "passport_country",
            "tokenizer",
            "secretary",
            "key",
            "session",
            "card_type",
            "api_version",
        ] {
            assert!(!is_sensitive_key(key), "{key} should be kept");
        }
    }

    #[test]
    fn every_sensitive_word_and_compound_passes_the_quick_check() {
        for word in SENSITIVE_WORDS.iter().chain(SENSITIVE_COMPOUNDS) {
            assert!(may_be_sensitive(word), "{word}");
            assert!(is_sensitive_key(word), "{word}");
        }
        for key in ["request_id", "user_id", "path", "status", "duration_ms"] {
            assert!(!may_be_sensitive(key), "{key}");
        }
    }

    #[test]
    fn keys_outside_ascii_are_split_by_the_same_rule() {
        assert_eq!(key_words("ÜberPassword"), ["über", "password"]);
        // The Kelvin sign lowercases to `k`: the quick check leaves it to the rule.
        assert!(is_sensitive_key("api\u{212A}ey"));
        assert!(is_sensitive_key("Benutzer-Passwort_password"));
        assert!(!is_sensitive_key("größe"));
    }

    proptest::proptest! {
        #[test]
        fn the_quick_check_never_lets_a_sensitive_key_pass(
            key in "[a-zA-Z0-9_ .-]{0,70}|(api|API|Key|key|_|secret|Token|TOKEN|SSN|PWD|Id|ID|session|2|x|-|card|Number|my|My|pass|Pass|word|wd|phrase|auth|Auth|orization|cred|ential|s|cookie|Cookie|cvv|social|Security|access|refresh|client|private|credit){0,8}",
        ) {
            let mut normalized = String::new();
            let mut sensitive_word = false;
            split_words(&key, &mut normalized, |word| sensitive_word |= SENSITIVE_WORDS.contains(&word));
            let by_rule = sensitive_word || SENSITIVE_COMPOUNDS.iter().any(|c| normalized.ends_with(c));
            proptest::prop_assert_eq!(is_sensitive_key(&key), by_rule, "{}", key);
        }
    }
}
