//! The saved searches API behind the read API's admission: `POST` and `GET`
//! `/api/v1/saved-searches` (save; list one's own and the shared ones, newest first,
//! paged), `GET`, `PATCH` and `DELETE` `/api/v1/saved-searches/{id}`, and the stable
//! short link `GET /s/{short_id}`, a 303 to the explorer with the search. Owns the
//! bodies (bounded, refused with a 400 naming each problem before any work), the
//! check of a search by the filter parser of `/api/v1/logs` (so a saved search always
//! runs), and the JSON shapes. Runs on the writers' pool: the table is small, and an
//! answer shows what was just written.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Json, Router};
use chrono::Utc;
use log_ingestion_wire::ErrorBody;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

use super::store::{self, Changes, NewSearch, SavedSearch, StoreError, MAX_PER_OWNER};
use crate::auth::Actor;
use crate::ingest::client_text;
use crate::read::cursor::{cursor_param, next_page, Cursor, NOT_ISSUED};
use crate::read::error::ReadError;
use crate::read::filters::{check_shape, Params};
use crate::read::{self, params_from, AdminKeys, QueryPairs, ReadContext};

/// The table's own bounds (its CHECKs), answered with a 400 before it is reached.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
pub const MAX_SEARCH_CHARS: usize = 8_192;
/// The longest body the bounds above allow, with room for JSON escapes.
const MAX_BODY_BYTES: usize = 64 * 1024;
const DEFAULT_LIST: i64 = 50;
const MAX_LIST: i64 = 100;

/// What the saved searches handlers need.
#[derive(Clone)]
pub struct SavedSearchesContext {
    /// Searches are checked with the read side's parser (declared keys, nesting).
    read: ReadContext,
    writes: PgPool,
}

/// The saved searches routes, behind `admin_keys` like the read API.
pub fn router<S>(read: ReadContext, writes: PgPool, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let limits = read.query_limits();
    Router::new()
        .route("/api/v1/saved-searches", get(list).post(create))
        .route(
            "/api/v1/saved-searches/{id}",
            get(show).patch(change).delete(remove),
        )
        .route("/s/{short_id}", get(open))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            limits,
            read::bound_query_shape,
        ))
        .route_layer(middleware::from_fn_with_state(
            std::sync::Arc::new(admin_keys),
            read::auth::require_admin_key,
        ))
        .with_state(SavedSearchesContext { read, writes })
}

/// A refusal of the saved searches API.
#[derive(Debug)]
pub enum SavedSearchError {
    Read(ReadError),
    /// A body that does not make a saved search; one line per problem.
    InvalidBody(Vec<String>),
    NotFound,
    NotOwner,
    TooMany,
}

impl From<ReadError> for SavedSearchError {
    fn from(error: ReadError) -> Self {
        SavedSearchError::Read(error)
    }
}

impl From<sqlx::Error> for SavedSearchError {
    fn from(error: sqlx::Error) -> Self {
        SavedSearchError::Read(ReadError::from(error))
    }
}

impl From<StoreError> for SavedSearchError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => SavedSearchError::NotFound,
            StoreError::NotOwner => SavedSearchError::NotOwner,
            StoreError::TooMany => SavedSearchError::TooMany,
            StoreError::Database(error) => error.into(),
        }
    }
}

impl IntoResponse for SavedSearchError {
    fn into_response(self) -> Response {
        let (status, error, details) = match self {
            SavedSearchError::Read(error) => return error.into_response(),
            SavedSearchError::InvalidBody(problems) => (
                StatusCode::BAD_REQUEST,
                "Invalid request",
                Some(json!(client_text::capped_problems(problems))),
            ),
            SavedSearchError::NotFound => (StatusCode::NOT_FOUND, "Saved search not found", None),
            SavedSearchError::NotOwner => (
                StatusCode::FORBIDDEN,
                "Only its owner or an admin may change a saved search",
                None,
            ),
            SavedSearchError::TooMany => (
                StatusCode::CONFLICT,
                "Too many saved searches",
                Some(json!([format!(
                    "at most {MAX_PER_OWNER} saved searches per owner: delete one first"
                )])),
            ),
        };
        (
            status,
            Json(ErrorBody {
                error: error.to_owned(),
                details,
            }),
        )
            .into_response()
    }
}

type Answer<T> = Result<T, SavedSearchError>;

/// A saved search as the API shows it to `actor`.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    search: SavedSearch,
    /// The stable short link.
    link: String,
    /// The explorer with this search.
    explorer: String,
    /// Whether the one asking may change or delete it.
    editable: bool,
}

fn shown(search: SavedSearch, actor: &Actor) -> Shown {
    Shown {
        link: format!("/s/{}", search.short_id),
        explorer: explorer_url(&search.search),
        editable: store::may_change(&search, actor),
        search,
    }
}

/// The explorer's page with `search` as its query string.
fn explorer_url(search: &str) -> String {
    if search.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{search}")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: String,
    search: String,
    #[serde(default)]
    shared: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    shared: Option<bool>,
}

/// The body as `T`, or a 400 saying why not.
fn body<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Answer<T> {
    serde_json::from_slice(bytes).map_err(|error| {
        SavedSearchError::InvalidBody(vec![format!(
            "the body must be JSON of the documented shape: {}",
            client_text::describe_json_error(&error)
        )])
    })
}

/// `name`, trimmed, if it is 1 to [`MAX_NAME_CHARS`] characters.
fn checked_name(name: &str, problems: &mut Vec<String>) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        problems.push(format!("name: from 1 to {MAX_NAME_CHARS} characters"));
    } else if name.contains('\0') {
        problems.push("name: must not contain NUL characters".to_owned());
    }
    name.to_owned()
}

fn checked_description(description: &str, problems: &mut Vec<String>) -> String {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        problems.push(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters"
        ));
    } else if description.contains('\0') {
        problems.push("description: must not contain NUL characters".to_owned());
    }
    description.to_owned()
}

/// `search` (a leading `?` dropped) if `/api/v1/logs` would run it: its filters and
/// time range only, each problem the parser finds prefixed `search: `. Relative times
/// (`since=1h`) stay as written, so the search moves with the clock.
fn checked_search(read: &ReadContext, search: &str, problems: &mut Vec<String>) -> String {
    let search = search.trim();
    let search = search.strip_prefix('?').unwrap_or(search);
    if search.chars().count() > MAX_SEARCH_CHARS {
        problems.push(format!("search: at most {MAX_SEARCH_CHARS} characters"));
        return String::new();
    }
    if search.contains('\0') {
        problems.push("search: must not contain NUL characters".to_owned());
        return String::new();
    }
    let pairs: Vec<(String, String)> = match serde_urlencoded::from_str(search) {
        Ok(pairs) => pairs,
        Err(error) => {
            problems.push(format!(
                "search: not a query string: {}",
                client_text::truncated(&error.to_string(), client_text::MAX_MESSAGE_BYTES)
            ));
            return String::new();
        }
    };
    let searched = check_shape(&pairs, &read.query_limits()).and_then(|()| {
        let mut params = Params::new(pairs);
        read.filter(&mut params, Utc::now());
        params.finish()
    });
    if let Err(found) = searched {
        problems.extend(
            found
                .into_iter()
                .map(|problem| format!("search: {problem}")),
        );
    }
    search.to_owned()
}

fn search_id(id: Result<Path<i64>, PathRejection>) -> Answer<i64> {
    id.map(|Path(id)| id)
        .map_err(|_| SavedSearchError::InvalidBody(vec!["id: must be a whole number".to_owned()]))
}

async fn create(
    State(context): State<SavedSearchesContext>,
    actor: Actor,
    bytes: Bytes,
) -> Answer<(StatusCode, Json<Shown>)> {
    let CreateBody {
        name,
        description,
        search,
        shared,
    } = body(&bytes)?;
    let mut problems = Vec::new();
    let new = NewSearch {
        name: checked_name(&name, &mut problems),
        description: checked_description(&description, &mut problems),
        search: checked_search(&context.read, &search, &mut problems),
        shared,
    };
    if !problems.is_empty() {
        return Err(SavedSearchError::InvalidBody(problems));
    }
    let saved = store::create(&context.writes, &actor, &new).await?;
    Ok((StatusCode::CREATED, Json(shown(saved, &actor))))
}

#[derive(Serialize)]
struct Listed {
    saved_searches: Vec<Shown>,
    next_cursor: Option<String>,
}

async fn list(
    State(context): State<SavedSearchesContext>,
    actor: Actor,
    query: QueryPairs,
) -> Answer<Json<Listed>> {
    let mut params = params_from(query)?;
    let limit = params.number("limit", 1, MAX_LIST).unwrap_or(DEFAULT_LIST);
    let after = cursor_param(&mut params, Cursor::decode, NOT_ISSUED);
    params.finish().map_err(ReadError::InvalidQuery)?;
    let mut connection = context.writes.acquire().await?;
    let mut found = store::list(&mut connection, &actor, after, limit + 1).await?;
    drop(connection);
    let next_cursor = next_page(&mut found, limit, |last| {
        Cursor {
            timestamp: last.created_at,
            id: last.id,
        }
        .encode()
    });
    Ok(Json(Listed {
        saved_searches: found
            .into_iter()
            .map(|search| shown(search, &actor))
            .collect(),
        next_cursor,
    }))
}

async fn show(
    State(context): State<SavedSearchesContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<Json<Shown>> {
    let id = search_id(id)?;
    let mut connection = context.writes.acquire().await?;
    let found = store::find(&mut connection, &actor, id).await?;
    Ok(Json(shown(found, &actor)))
}

async fn change(
    State(context): State<SavedSearchesContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
    bytes: Bytes,
) -> Answer<Json<Shown>> {
    let id = search_id(id)?;
    let ChangeBody {
        name,
        description,
        search,
        shared,
    } = body(&bytes)?;
    let mut problems = Vec::new();
    if name.is_none() && description.is_none() && search.is_none() && shared.is_none() {
        problems.push("give at least one of name, description, search, shared".to_owned());
    }
    let changes = Changes {
        name: name.map(|name| checked_name(&name, &mut problems)),
        description: description.map(|text| checked_description(&text, &mut problems)),
        search: search.map(|text| checked_search(&context.read, &text, &mut problems)),
        shared,
    };
    if !problems.is_empty() {
        return Err(SavedSearchError::InvalidBody(problems));
    }
    let changed = store::update(&context.writes, &actor, id, &changes).await?;
    Ok(Json(shown(changed, &actor)))
}

async fn remove(
    State(context): State<SavedSearchesContext>,
    actor: Actor,
    id: Result<Path<i64>, PathRejection>,
) -> Answer<StatusCode> {
    let id = search_id(id)?;
    store::delete(&context.writes, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The short link: 303 to the explorer with the search (never cached: who may open
/// it depends on who asks).
async fn open(
    State(context): State<SavedSearchesContext>,
    actor: Actor,
    Path(short): Path<String>,
) -> Answer<Response> {
    let mut connection = context.writes.acquire().await?;
    let found = store::find_by_short_id(&mut connection, &actor, &short).await?;
    drop(connection);
    let location = HeaderValue::from_str(&explorer_url(&found.search))
        .map_err(|_| SavedSearchError::NotFound)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_descriptions_are_bounded() {
        let mut problems = Vec::new();
        assert_eq!(checked_name("  errors  ", &mut problems), "errors");
        assert!(problems.is_empty());
        checked_name("   ", &mut problems);
        checked_name(&"n".repeat(MAX_NAME_CHARS + 1), &mut problems);
        checked_description(&"d".repeat(MAX_DESCRIPTION_CHARS + 1), &mut problems);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(explorer_url(""), "/");
        assert_eq!(explorer_url("since=1h"), "/?since=1h");
    }
}
