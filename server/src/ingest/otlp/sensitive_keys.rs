//! Whether attribute keys name secrets (`domain::is_sensitive_key`), judged once per
//! request: a batch's records repeat the same attribute keys, so each key's answer is
//! remembered for the rest of the request. At most [`MAX_KEYS`] keys of at most
//! [`MAX_KEY_BYTES`] are remembered; any other key is judged each time, so a request
//! of many distinct keys costs a bounded search more per key. It never decides what is
//! sensitive.

use std::cell::RefCell;

use crate::domain::is_sensitive_key;

/// Keys remembered per request.
pub const MAX_KEYS: usize = 32;
/// The longest key remembered.
pub const MAX_KEY_BYTES: usize = 64;

/// The answers given so far in one request.
#[derive(Debug, Default)]
pub struct SensitiveKeys {
    known: RefCell<Vec<(Box<str>, bool)>>,
}

impl SensitiveKeys {
    /// `is_sensitive_key(key)`, remembered.
    pub fn is_sensitive(&self, key: &str) -> bool {
        if let Some((_, sensitive)) = self
            .known
            .borrow()
            .iter()
            .find(|(known, _)| **known == *key)
        {
            return *sensitive;
        }
        let sensitive = is_sensitive_key(key);
        let mut known = self.known.borrow_mut();
        if known.len() < MAX_KEYS && key.len() <= MAX_KEY_BYTES {
            known.push((key.into(), sensitive));
        }
        sensitive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_the_rules_asked_once_or_again_remembered_or_not() {
        let long = format!("{}password", "x_".repeat(MAX_KEY_BYTES));
        let mut keys: Vec<String> = ["password", "user_id", "api_key", "path", "Authorization"]
            .map(String::from)
            .to_vec();
        keys.extend((0..2 * MAX_KEYS).map(|index| format!("key_{index}")));
        keys.extend(["x_token".into(), "status".into(), long]);
        let memo = SensitiveKeys::default();
        for _ in 0..3 {
            for key in &keys {
                assert_eq!(memo.is_sensitive(key), is_sensitive_key(key), "{key}");
            }
        }
        assert_eq!(memo.known.borrow().len(), MAX_KEYS);
        assert!(memo.is_sensitive("x_token") && memo.is_sensitive("password"));
        assert!(!memo.is_sensitive("user_id"));
    }
}
