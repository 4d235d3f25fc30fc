//! One configured API key and the set of them: the secret stays inside, and only a
//! fingerprint (a SHA-256 prefix) leaves, to scope idempotency keys and metrics. It
//! never prints a key (its `Debug` shows the fingerprint).

use std::fmt;

use sha2::{Digest, Sha256};

/// One configured API key. Its text is private; only a fingerprint (a SHA-256 prefix)
/// may leave this type, to scope idempotency keys and metrics without exposing it.
#[derive(Clone)]
pub struct ApiKey {
    secret: String,
    fingerprint: String,
}

impl ApiKey {
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let digest = Sha256::digest(secret.as_bytes());
        let fingerprint = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        ApiKey {
            secret,
            fingerprint,
        }
    }

    /// The key's bytes, for the constant-time comparison in `auth` only.
    pub fn secret_bytes(&self) -> &[u8] {
        self.secret.as_bytes()
    }

    /// A stable, non-reversible identifier of the key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.fingerprint)
    }
}

/// Why a set of keys cannot be made: it would be empty.
#[derive(Debug, thiserror::Error)]
#[error("must name at least one API key")]
pub struct NoKeys;

/// The non-empty set of accepted API keys.
#[derive(Clone, Debug)]
pub struct ApiKeys(Vec<ApiKey>);

impl ApiKeys {
    pub fn new(keys: Vec<ApiKey>) -> Result<Self, NoKeys> {
        if keys.is_empty() {
            return Err(NoKeys);
        }
        Ok(ApiKeys(keys))
    }

    /// The empty set, which identifies nobody: what configuration holds while it is
    /// read with problems, never a set a server runs with.
    pub(crate) fn unusable() -> Self {
        ApiKeys(Vec::new())
    }

    pub fn iter(&self) -> impl Iterator<Item = &ApiKey> {
        self.0.iter()
    }
}
