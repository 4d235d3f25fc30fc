//! The `saved_searches` table and who may see or change a row of it. A search is seen
//! by its owner, by everyone when shared, and by admins; it is changed or deleted by
//! its owner or an admin. Lists show one's own searches and the shared ones, admins
//! included (another person's private searches are not theirs to browse). A person owns
//! a search by their user id (`owner_user_id`), an admin key by its label: removing a
//! person takes the id off their searches, so nobody who later comes with the same
//! address gets them; they stay, for admins. A row
//! someone may not see is [`StoreError::NotFound`], never a refusal that says it
//! exists. Every change writes its audit row in the change's transaction. Owns the SQL
//! and the per-owner cap; it checks no lengths or search text (the API does, before
//! this is reached) and knows nothing of HTTP.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::short_id;
use crate::auth::{audit, Actor, Role};
use crate::read::cursor::Cursor;

/// The most saved searches one owner may keep.
pub const MAX_PER_OWNER: i64 = 200;

/// One saved search, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SavedSearch {
    pub id: i64,
    pub short_id: String,
    pub name: String,
    pub description: String,
    /// The query string of `/api/v1/logs`' filters and time range, as given.
    pub search: String,
    /// Who made it: [`Actor::label`].
    pub owner: String,
    /// The person who owns it; `None` for an admin key's, or once its owner is removed.
    #[serde(skip)]
    pub owner_user_id: Option<i64>,
    pub shared: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a new saved search holds.
#[derive(Debug, Clone)]
pub struct NewSearch {
    pub name: String,
    pub description: String,
    pub search: String,
    pub shared: bool,
}

/// What a change replaces; `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub description: Option<String>,
    pub search: Option<String>,
    pub shared: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such search, or one the actor may not see.
    #[error("saved search not found")]
    NotFound,
    /// A search the actor sees but may not change (another person's shared one).
    #[error("only its owner or an admin may change a saved search")]
    NotOwner,
    /// The owner keeps [`MAX_PER_OWNER`] already.
    #[error("at most {MAX_PER_OWNER} saved searches per owner")]
    TooMany,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Whether `search` is `actor`'s own: a person's by their id, a key's by its label.
pub fn owns(search: &SavedSearch, actor: &Actor) -> bool {
    match actor.user_id() {
        Some(id) => search.owner_user_id == Some(id),
        None => search.owner_user_id.is_none() && search.owner == actor.label(),
    }
}

/// Whether `actor` may change or delete `search`.
pub fn may_change(search: &SavedSearch, actor: &Actor) -> bool {
    actor.role() >= Role::Admin || owns(search, actor)
}

/// Whether `actor` may open `search`.
pub fn may_see(search: &SavedSearch, actor: &Actor) -> bool {
    search.shared || may_change(search, actor)
}

const COLUMNS: &str = "id, short_id, name, description, search, owner, owner_user_id, shared, \
     created_at, updated_at";

/// [`owns`] in SQL: `$1` the person's id (or NULL), `$2` the actor's label.
const OWNED: &str =
    "(owner_user_id = $1 OR ($1::bigint IS NULL AND owner_user_id IS NULL AND owner = $2))";

/// Saves `new` as `actor`'s, unless they keep [`MAX_PER_OWNER`] already.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    new: &NewSearch,
) -> Result<SavedSearch, StoreError> {
    let owner = actor.label();
    let mut tx = pool.begin().await?;
    // One owner's saves queue here, so two at once cannot both pass the cap.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('saved_searches ' || $1, 0))")
        .bind(&owner)
        .execute(&mut *tx)
        .await?;
    let kept: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM saved_searches WHERE {OWNED}"
    ))
    .bind(actor.user_id())
    .bind(&owner)
    .fetch_one(&mut *tx)
    .await?;
    if kept >= MAX_PER_OWNER {
        return Err(StoreError::TooMany);
    }
    let saved: SavedSearch = sqlx::query_as(&format!(
        "INSERT INTO saved_searches (short_id, name, description, search, owner, owner_user_id, shared) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(short_id::generate())
    .bind(&new.name)
    .bind(&new.description)
    .bind(&new.search)
    .bind(&owner)
    .bind(actor.user_id())
    .bind(new.shared)
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        actor,
        "saved_search.create",
        &target(&saved),
        json!({"name": saved.name, "search": saved.search, "shared": saved.shared}),
    )
    .await?;
    tx.commit().await?;
    Ok(saved)
}

/// `actor`'s own searches and the shared ones, newest first: at most `limit`, older
/// than `after` when given.
pub async fn list(
    connection: &mut PgConnection,
    actor: &Actor,
    after: Option<Cursor>,
    limit: i64,
) -> Result<Vec<SavedSearch>, StoreError> {
    let (after_time, after_id) = after.map_or((None, None), |c| (Some(c.timestamp), Some(c.id)));
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_searches \
         WHERE ({OWNED} OR shared) \
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4)) \
         ORDER BY created_at DESC, id DESC LIMIT $5"
    ))
    .bind(actor.user_id())
    .bind(actor.label())
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    Ok(rows)
}

/// The search `id`, if `actor` may see it.
pub async fn find(
    connection: &mut PgConnection,
    actor: &Actor,
    id: i64,
) -> Result<SavedSearch, StoreError> {
    let found: Option<SavedSearch> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_searches WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(connection)
    .await?;
    visible(found, actor)
}

/// The search with the short id `short`, if `actor` may see it.
pub async fn find_by_short_id(
    connection: &mut PgConnection,
    actor: &Actor,
    short: &str,
) -> Result<SavedSearch, StoreError> {
    if !short_id::is_well_formed(short) {
        return Err(StoreError::NotFound);
    }
    let found: Option<SavedSearch> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_searches WHERE short_id = $1"
    ))
    .bind(short)
    .fetch_optional(connection)
    .await?;
    visible(found, actor)
}

/// Applies `changes` to the search `id`, if `actor` may change it.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    id: i64,
    changes: &Changes,
) -> Result<SavedSearch, StoreError> {
    let mut tx = pool.begin().await?;
    let before = changeable(&mut tx, actor, id).await?;
    let after: SavedSearch = sqlx::query_as(&format!(
        "UPDATE saved_searches SET name = coalesce($2, name), \
                description = coalesce($3, description), search = coalesce($4, search), \
                shared = coalesce($5, shared), updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&changes.name)
    .bind(&changes.description)
    .bind(&changes.search)
    .bind(changes.shared)
    .fetch_one(&mut *tx)
    .await?;
    let mut details = serde_json::Map::new();
    if before.name != after.name {
        details.insert(
            "name".into(),
            json!({"from": before.name, "to": after.name}),
        );
    }
    if before.description != after.description {
        details.insert("description".into(), json!({"changed": true}));
    }
    if before.search != after.search {
        details.insert(
            "search".into(),
            json!({"from": before.search, "to": after.search}),
        );
    }
    if before.shared != after.shared {
        details.insert(
            "shared".into(),
            json!({"from": before.shared, "to": after.shared}),
        );
    }
    audit::record(
        &mut tx,
        actor,
        "saved_search.update",
        &target(&after),
        details.into(),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes the search `id`, if `actor` may change it.
pub async fn delete(pool: &PgPool, actor: &Actor, id: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let gone = changeable(&mut tx, actor, id).await?;
    sqlx::query("DELETE FROM saved_searches WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        actor,
        "saved_search.delete",
        &target(&gone),
        json!({"name": gone.name, "owner": gone.owner, "search": gone.search}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The search `id`, locked for the rest of `tx`, if `actor` may change it.
async fn changeable(
    tx: &mut Transaction<'_, Postgres>,
    actor: &Actor,
    id: i64,
) -> Result<SavedSearch, StoreError> {
    let found: Option<SavedSearch> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM saved_searches WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let search = visible(found, actor)?;
    if may_change(&search, actor) {
        Ok(search)
    } else {
        Err(StoreError::NotOwner)
    }
}

fn visible(found: Option<SavedSearch>, actor: &Actor) -> Result<SavedSearch, StoreError> {
    found
        .filter(|search| may_see(search, actor))
        .ok_or(StoreError::NotFound)
}

/// How the audit log names a search.
fn target(search: &SavedSearch) -> String {
    format!("saved_search:{}", search.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(owner: &str, owner_user_id: Option<i64>, shared: bool) -> SavedSearch {
        SavedSearch {
            id: 1,
            short_id: short_id::generate(),
            name: "n".into(),
            description: String::new(),
            search: "since=1h".into(),
            owner: owner.into(),
            owner_user_id,
            shared,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn user(id: i64, email: &str, role: Role) -> Actor {
        Actor::User {
            id,
            email: email.into(),
            role,
        }
    }

    #[test]
    fn private_searches_are_their_owners_and_admins_only() {
        let ann = user(1, "ann@example.com", Role::Editor);
        let bob = user(2, "bob@example.com", Role::Editor);
        let admin = user(3, "root@example.com", Role::Admin);
        let key = Actor::AdminKey {
            fingerprint: "abcd".into(),
        };
        let private = search("user:ann@example.com", Some(1), false);
        assert!(may_see(&private, &ann) && may_change(&private, &ann));
        assert!(!may_see(&private, &bob) && !may_change(&private, &bob));
        assert!(may_see(&private, &admin) && may_change(&private, &admin));
        assert!(may_see(&private, &key) && may_change(&private, &key));

        let shared = search("user:ann@example.com", Some(1), true);
        assert!(may_see(&shared, &bob), "shared with the team");
        assert!(!may_change(&shared, &bob), "but not theirs to change");
        let viewer = user(4, "vic@example.com", Role::Viewer);
        assert!(may_see(&shared, &viewer) && !may_see(&private, &viewer));
    }

    #[test]
    fn a_person_owns_by_id_and_a_key_by_its_label() {
        let ann = user(1, "ann@example.com", Role::Editor);
        let someone_else_as_ann = user(9, "ann@example.com", Role::Editor);
        let orphaned = search("user:ann@example.com", None, false);
        assert!(owns(&search("user:ann@example.com", Some(1), false), &ann));
        assert!(!owns(
            &search("user:ann@example.com", Some(1), false),
            &someone_else_as_ann
        ));
        assert!(
            !owns(&orphaned, &ann),
            "a removed owner's search is nobody's"
        );
        assert!(!may_see(&orphaned, &ann));
        let key = Actor::AdminKey {
            fingerprint: "abcd".into(),
        };
        assert!(owns(&search(&key.label(), None, false), &key));
        assert!(!owns(&search("key:other", None, false), &key));
    }
}
