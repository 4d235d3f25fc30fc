//! Passwords: hashed with argon2id (the `argon2` crate's defaults, OWASP's minimum: 19 MiB,
//! two passes) into a PHC string, checked against one, and generated. Hashing runs on the
//! blocking pool, at most [`MAX_CONCURRENT_HASHES`] at a time, and only on passwords of
//! at most [`MAX_PASSWORD_BYTES`]: a megabyte password or a flood of sign-ins cannot
//! buy unbounded CPU or memory. A check for an unknown person hashes a dummy so that
//! it takes about as long as a real one.

use std::sync::{Arc, LazyLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;
use tokio::sync::Semaphore;

/// Longer passwords are refused before any hashing (passphrases fit well under it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// A new password's least length, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Hashes computed at once; each holds 19 MiB.
pub const MAX_CONCURRENT_HASHES: usize = 4;

static HASHING: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)));

/// A hash of a fixed password, checked in place of an unknown person's.
static DUMMY_HASH: LazyLock<Option<String>> =
    LazyLock::new(|| hash_now("not anyone's password, only spends the time").ok());

/// Why a password cannot be hashed or set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must be at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    #[error("the password cannot be hashed: {0}")]
    Hashing(String),
}

/// Whether `password` may be set as a new password.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    Ok(())
}

/// 20 random characters from an alphabet without look-alikes (~114 bits).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hashing(error.to_string()))
}

fn verify_now(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// The argon2id PHC string of a new `password` (checked with [`check_new`]).
pub async fn hash(password: String) -> Result<String, PasswordError> {
    check_new(&password)?;
    let _permit = HASHING
        .clone()
        .acquire_owned()
        .await
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|error| PasswordError::Hashing(error.to_string()))?
}

/// Whether `password` matches `hash`; with no hash (an unknown person, or one who only
/// comes through the SSO proxy) a dummy is checked and the answer is false.
pub async fn verify(hash: Option<String>, password: String) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(_permit) = HASHING.clone().acquire_owned().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_now(&hash, &password),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref() {
                verify_now(dummy, &password);
            }
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_now("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_now(&hash, "correct horse battery"));
        assert!(!verify_now(&hash, "correct horse batterY"));
        assert!(!verify_now("not a hash", "correct horse battery"));
    }

    #[test]
    fn new_passwords_are_bounded() {
        assert!(matches!(check_new("short"), Err(PasswordError::TooShort)));
        assert!(matches!(
            check_new(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        ));
        assert!(check_new(&generate()).is_ok());
    }
}
