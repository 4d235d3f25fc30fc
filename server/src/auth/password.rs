//! Passwords: hashed with argon2id (the `argon2` crate's defaults, OWASP's minimum: 19 MiB,
//! two passes) into a PHC string, checked against one, and generated. Hashing runs on
//! [`MAX_CONCURRENT_HASHES`] threads of its own (so the 19 MiB each hash holds is reused
//! by the same few threads' allocators instead of piling up in every blocking thread's),
//! a request waits at most [`HASH_WAIT`] for one and is then turned away as busy, and
//! only passwords of at most [`MAX_PASSWORD_BYTES`] are hashed: a megabyte password or a
//! flood of sign-ins cannot buy unbounded CPU, memory or waiting. A check for an unknown
//! person hashes a dummy so that it takes about as long as a real one.

use std::sync::mpsc;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::Rng;
use tokio::sync::{oneshot, Semaphore};

/// Longer passwords are refused before any hashing (passphrases fit well under it).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// A new password's least length, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Hashes computed at once; each holds 19 MiB.
pub const MAX_CONCURRENT_HASHES: usize = 4;

/// The longest a request waits for a hashing thread before it is answered busy.
pub const HASH_WAIT: Duration = Duration::from_secs(2);

static HASHING: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONCURRENT_HASHES)));

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue; it never holds more than [`MAX_CONCURRENT_HASHES`] jobs
/// (a job is sent only with a permit of [`HASHING`]).
static HASHERS: LazyLock<Option<mpsc::SyncSender<Job>>> = LazyLock::new(|| {
    let (jobs, queue) = mpsc::sync_channel::<Job>(MAX_CONCURRENT_HASHES);
    let queue = Arc::new(Mutex::new(queue));
    for number in 0..MAX_CONCURRENT_HASHES {
        let queue = Arc::clone(&queue);
        let started = std::thread::Builder::new()
            .name(format!("password-hash-{number}"))
            .spawn(move || loop {
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        if let Err(error) = started {
            tracing::error!(%error, "a password-hashing thread could not start");
            return None;
        }
    }
    Some(jobs)
});

/// Runs `work` on a hashing thread once one is free (waiting at most [`HASH_WAIT`]).
async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let permit = tokio::time::timeout(HASH_WAIT, HASHING.clone().acquire_owned())
        .await
        .map_err(|_| PasswordError::Busy)?
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
    let (answer, answered) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _permit = permit;
        let _ = answer.send(work());
    });
    let jobs = HASHERS
        .as_ref()
        .ok_or_else(|| PasswordError::Hashing("no hashing thread".into()))?;
    jobs.send(job)
        .map_err(|_| PasswordError::Hashing("the hashing threads stopped".into()))?;
    answered
        .await
        .map_err(|_| PasswordError::Hashing("a hash was abandoned".into()))
}

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
    #[error("every password-hashing thread is busy; try again in a moment")]
    Busy,
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

thread_local! {
    /// This hashing thread's argon2 memory, kept between hashes: a hash allocates
    /// nothing, so the process holds at most one hash's memory per hashing thread
    /// (allocating 19 MiB per hash let the allocator keep each one).
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The most memory a stored hash may ask for (4× the default), so a stored hash with
/// absurd parameters cannot make a check allocate without bound.
const MAX_M_COST_KIB: u32 = 4 * Params::DEFAULT_M_COST;

/// `argon2` over this thread's kept memory: the raw hash of `password` with `salt`.
fn hash_raw(
    argon2: &Argon2<'_>,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), PasswordError> {
    let blocks = argon2.params().block_count();
    MEMORY.with_borrow_mut(|memory| {
        memory.resize(blocks, Block::default());
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
            .map_err(|error| PasswordError::Hashing(error.to_string()))
    })
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    let failed = |error: password_hash::Error| PasswordError::Hashing(error.to_string());
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(failed)?;
    let argon2 = Argon2::default();
    let mut out = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    hash_raw(&argon2, password, &salt_bytes, &mut out)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(failed)?),
    };
    Ok(phc.to_string())
}

fn verify_now(hash: &str, password: &str) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(hash).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(number) => Version::try_from(number).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).ok()?;
        if params.m_cost() > MAX_M_COST_KIB {
            return None;
        }
        let expected = parsed.hash?;
        let mut salt = [0_u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
        let argon2 = Argon2::new(algorithm, version, params);
        let mut out = vec![0_u8; expected.len()];
        hash_raw(&argon2, password, salt, &mut out).ok()?;
        // Output's equality is constant-time.
        Some(Output::new(&out).ok()? == expected)
    };
    check().unwrap_or(false)
}

/// The argon2id PHC string of a new `password` (checked with [`check_new`]).
pub async fn hash(password: String) -> Result<String, PasswordError> {
    check_new(&password)?;
    on_hashing_thread(move || hash_now(&password)).await?
}

/// Whether `password` matches `hash`; with no hash (an unknown person, or one who only
/// comes through the SSO proxy) a dummy is checked and the answer is false. `Busy` when
/// no hashing thread was free within [`HASH_WAIT`].
pub async fn verify(hash: Option<String>, password: String) -> Result<bool, PasswordError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(false);
    }
    on_hashing_thread(move || match hash {
        Some(hash) => verify_now(&hash, &password),
        None => {
            if let Some(dummy) = DUMMY_HASH.as_deref() {
                verify_now(dummy, &password);
            }
            false
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_made_by_the_crate_itself_verify_and_memory_is_kept_between_hashes() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert!(verify_now(&theirs, "correct horse battery"));
        assert!(!verify_now(&theirs, "correct horse batterz"));
        let ours = hash_now("correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        let kept = MEMORY.with_borrow(|memory| memory.as_ptr());
        assert!(verify_now(&ours, "correct horse battery"));
        assert_eq!(MEMORY.with_borrow(|memory| memory.as_ptr()), kept);
        let greedy = ours.replace("m=19456", &format!("m={}", MAX_M_COST_KIB + 1));
        assert!(!verify_now(&greedy, "correct horse battery"));
    }

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
