//! Idempotency records: the answer a request with an `Idempotency-Key` got and the
//! SHA-256 of its decoded body, stored in the same transaction as its rows and kept for
//! a day, scoped per API key. This module owns the records (their SQL) and the replay
//! rule, applied to a whole group at once by [`decide`]: a request is answered from a
//! record only when that record is committed (before its transaction, or by it) and
//! was made for the same body; a request whose key fails is never answered from
//! another failed request. It never writes log rows and never knows about HTTP.

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;

/// How long a key is remembered, as a PostgreSQL interval.
pub const TIME_TO_LIVE: &str = "1 day";

/// A request's claim on an idempotency key, with the answer to remember.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    /// The API key's fingerprint: the same idempotency key under two API keys is two keys.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the decoded request body, lowercase hex.
    pub request_sha256: String,
    pub response: StoredResponse,
}

/// A live record: the answer to replay and the digest of the request it answered
/// (`None` for records written before digests were stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub response: StoredResponse,
    pub request_sha256: Option<String>,
}

impl StoredRecord {
    /// Whether `claim` repeats the request this record answered. A record without a
    /// digest cannot tell, and is taken to match.
    pub fn matches(&self, claim: &IdempotencyClaim) -> bool {
        self.request_sha256
            .as_deref()
            .is_none_or(|digest| digest == claim.request_sha256)
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn request_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    // The digest's own `LowerHex`: two digits per byte, no separators.
    format!("{:x}", Sha256::digest(bytes))
}

/// An answer as it was sent: status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// What to do with one request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyDecision {
    /// The key is this request's now: write its rows; its record commits with them.
    Claimed,
    /// The key's committed record answered this very request: write nothing, answer
    /// with the stored response.
    Replay(StoredResponse),
    /// The key's committed record answered a request with another body: write
    /// nothing, refuse (422).
    Reused,
}

/// Decides, inside a group's transaction `conn`, what each submission of the group
/// gets: `claims` holds one element per submission (`None` for one without a key), and
/// so does the answer (`None`: no key, its rows are written). Every unused key is
/// claimed on the way.
pub async fn decide(
    conn: &mut PgConnection,
    claims: &[Option<&IdempotencyClaim>],
) -> Result<Vec<Option<KeyDecision>>, sqlx::Error> {
    let keyed: Vec<&IdempotencyClaim> = claims.iter().flatten().copied().collect();
    if keyed.is_empty() {
        return Ok(vec![None; claims.len()]);
    }
    // One decision per keyed claim, in order: hand them back to their submissions.
    let mut decisions = decide_keyed(conn, &keyed).await?.into_iter();
    Ok(claims
        .iter()
        .map(|claim| claim.and_then(|_| decisions.next()))
        .collect())
}

/// The rule for `claims` that all carry a key (keys may repeat). For each key the
/// record that will be committed is either the first claim of it here (when the key
/// was unused) or the live record already stored; every request is then judged against
/// that record alone: `Claimed` for the claim that wrote it, `Replay` for a request
/// with the same body, `Reused` otherwise. A request is thus never replayed from a
/// claim that was itself refused. Keys are locked in a fixed order, so two
/// transactions cannot deadlock on them.
async fn decide_keyed(
    conn: &mut PgConnection,
    claims: &[&IdempotencyClaim],
) -> Result<Vec<KeyDecision>, sqlx::Error> {
    // Per claim, the index of the first claim of its key: a position, not equality,
    // since two requests may carry identical claims and only the first is `Claimed`.
    let mut first_index: HashMap<(&str, &str), usize> = HashMap::new();
    let first_of: Vec<usize> = claims
        .iter()
        .enumerate()
        .map(|(index, claim)| {
            *first_index
                .entry((claim.scope.as_str(), claim.key.as_str()))
                .or_insert(index)
        })
        .collect();
    let mut unique: Vec<&IdempotencyClaim> = first_of
        .iter()
        .enumerate()
        .filter(|(index, first)| index == *first)
        .map(|(index, _)| claims[index])
        .collect();
    unique.sort_by(|a, b| (&a.scope, &a.key).cmp(&(&b.scope, &b.key)));
    let claimed = claim(conn, &unique).await?;
    let taken: Vec<&IdempotencyClaim> = unique
        .into_iter()
        .filter(|c| !claimed.contains(&(c.scope.clone(), c.key.clone())))
        .collect();
    let stored = if taken.is_empty() {
        HashMap::new()
    } else {
        find_live(conn, &taken).await?
    };
    claims
        .iter()
        .zip(first_of)
        .enumerate()
        .map(|(index, (claim, first))| {
            let id = (claim.scope.clone(), claim.key.clone());
            if claimed.contains(&id) {
                let first_claim = claims[first];
                return Ok(if first == index {
                    KeyDecision::Claimed
                } else if first_claim.request_sha256 == claim.request_sha256 {
                    KeyDecision::Replay(first_claim.response.clone())
                } else {
                    KeyDecision::Reused
                });
            }
            let record = stored.get(&id).ok_or_else(vanished)?;
            Ok(if record.matches(claim) {
                KeyDecision::Replay(record.response.clone())
            } else {
                KeyDecision::Reused
            })
        })
        .collect()
}

fn vanished() -> sqlx::Error {
    sqlx::Error::Protocol("an idempotency key was taken but its record vanished".to_owned())
}

/// The unexpired records among `claims`, keyed by (scope, key).
async fn find_live(
    conn: &mut PgConnection,
    claims: &[&IdempotencyClaim],
) -> Result<HashMap<(String, String), StoredRecord>, sqlx::Error> {
    let scopes: Vec<&str> = claims.iter().map(|c| c.scope.as_str()).collect();
    let keys: Vec<&str> = claims.iter().map(|c| c.key.as_str()).collect();
    let rows: Vec<(String, String, i16, String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT i.scope, i.key, i.status, i.response, i.request_sha256 \
         FROM idempotency_keys i \
         JOIN UNNEST($1::text[], $2::text[]) AS u(scope, key) \
           ON i.scope = u.scope AND i.key = u.key \
         WHERE i.created_at > now() - interval '{TIME_TO_LIVE}'"
    ))
    .bind(&scopes)
    .bind(&keys)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(scope, key, status, body, request_sha256)| {
            let status = u16::try_from(status).unwrap_or(200);
            let response = StoredResponse { status, body };
            (
                (scope, key),
                StoredRecord {
                    response,
                    request_sha256,
                },
            )
        })
        .collect())
}

/// Claims keys: records each claim whose key is unused (or whose record expired) and
/// returns the claimed (scope, key) pairs. A key held by another transaction makes this
/// wait for it, so two concurrent requests can never both claim one key. `claims` must
/// not repeat a key.
async fn claim(
    conn: &mut PgConnection,
    claims: &[&IdempotencyClaim],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    if claims.is_empty() {
        return Ok(HashSet::new());
    }
    let scopes: Vec<&str> = claims.iter().map(|c| c.scope.as_str()).collect();
    let keys: Vec<&str> = claims.iter().map(|c| c.key.as_str()).collect();
    let statuses: Vec<i16> = claims
        .iter()
        .map(|c| i16::try_from(c.response.status).unwrap_or(200))
        .collect();
    let bodies: Vec<&str> = claims.iter().map(|c| c.response.body.as_str()).collect();
    let digests: Vec<&str> = claims.iter().map(|c| c.request_sha256.as_str()).collect();
    let claimed: Vec<(String, String)> = sqlx::query_as(&format!(
        "INSERT INTO idempotency_keys (scope, key, status, response, request_sha256) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int2[], $4::text[], $5::text[]) \
         ON CONFLICT (scope, key) DO UPDATE \
           SET status = EXCLUDED.status, response = EXCLUDED.response, \
               request_sha256 = EXCLUDED.request_sha256, created_at = now() \
           WHERE idempotency_keys.created_at <= now() - interval '{TIME_TO_LIVE}' \
         RETURNING scope, key"
    ))
    .bind(&scopes)
    .bind(&keys)
    .bind(&statuses)
    .bind(&bodies)
    .bind(&digests)
    .fetch_all(conn)
    .await?;
    Ok(claimed.into_iter().collect())
}

/// Deletes expired records; returns how many.
pub async fn delete_expired(pool: &sqlx::PgPool) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(&format!(
        "DELETE FROM idempotency_keys WHERE created_at <= now() - interval '{TIME_TO_LIVE}'"
    ))
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_lowercase_hex_sha256() {
        // FIPS 180-2 test vectors.
        assert_eq!(
            request_digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            request_digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
