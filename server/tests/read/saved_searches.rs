//! Saved searches against the real app and database: save, list, open, change and
//! delete with two admin keys (two owners), the short link reproducing the search, the
//! audit rows, the bounds, and who may see or change what (people, through the store).

use log_ingestion_server::auth::{Actor, ApiKey, Role};
use log_ingestion_server::saved_searches::store::{self, Changes, NewSearch, StoreError};
use log_ingestion_test_support::{spawn_app_with, TestApp};
use serde_json::{json, Value};

const ANN_KEY: &str = "saved-searches-admin-ann";
const BOB_KEY: &str = "saved-searches-admin-bob";

struct App {
    app: TestApp,
    /// Follows no redirect, so a test sees the short link's 303 itself.
    http: reqwest::Client,
}

async fn spawn() -> App {
    let app = spawn_app_with(|settings| {
        settings.admin_api_keys = vec![ApiKey::new(ANN_KEY), ApiKey::new(BOB_KEY)];
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    App { app, http }
}

fn owner_of(key: &str) -> String {
    format!("key:{}", ApiKey::new(key).fingerprint())
}

impl App {
    async fn send(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.app.url(path))
            .header("X-API-Key", key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, key: &str, path: &str) -> (u16, Value) {
        self.send(key, reqwest::Method::GET, path, None).await
    }

    async fn save(&self, key: &str, body: Value) -> (u16, Value) {
        self.send(
            key,
            reqwest::Method::POST,
            "/api/v1/saved-searches",
            Some(body),
        )
        .await
    }

    /// The `Location` of the short link `link` as `key` sees it (a 303), or its status.
    async fn follow(&self, key: &str, link: &str) -> Result<String, u16> {
        let response = self
            .http
            .get(self.app.url(link))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap();
        if response.status() != 303 {
            return Err(response.status().as_u16());
        }
        Ok(response.headers()["location"].to_str().unwrap().to_owned())
    }

    /// The messages `/api/v1/logs` answers for `query`, newest first.
    async fn messages(&self, query: &str) -> Vec<String> {
        let (status, page) = self.get(ANN_KEY, &format!("/api/v1/logs?{query}")).await;
        assert_eq!(status, 200, "{page}");
        page["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|log| log["message"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn audit(&self) -> Vec<(String, String, String)> {
        sqlx::query_as("SELECT actor, action, target FROM audit_log ORDER BY id")
            .fetch_all(&self.app.pool)
            .await
            .unwrap()
    }
}

/// Entries within the last hour (and one older): services api and worker.
async fn insert_recent(app: &App) {
    sqlx::query(
        "INSERT INTO logs (timestamp, service, level, message, metadata) VALUES \
         (now() - interval '50 minutes', 'api', 'ERROR', 'api failed early', '{\"user\": 7}'), \
         (now() - interval '20 minutes', 'api', 'INFO', 'api fine', '{\"user\": 7}'), \
         (now() - interval '10 minutes', 'api', 'ERROR', 'api failed late', '{\"user\": 8}'), \
         (now() - interval '5 minutes', 'worker', 'ERROR', 'worker failed', '{\"user\": 7}'), \
         (now() - interval '3 hours', 'api', 'ERROR', 'api failed long ago', '{\"user\": 7}')",
    )
    .execute(&app.app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_saved_search_is_made_opened_changed_and_deleted_and_each_change_is_audited() {
    let app = spawn().await;
    insert_recent(&app).await;
    let search = "since=1h&service=api&level=ERROR";

    let (status, saved) = app
        .save(
            ANN_KEY,
            json!({"name": " API errors ", "description": "the last hour", "search": format!("?{search}")}),
        )
        .await;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["name"], "API errors");
    assert_eq!(saved["search"], search, "relative times stay relative");
    assert_eq!(saved["shared"], false);
    assert_eq!(saved["owner"], owner_of(ANN_KEY));
    assert_eq!(saved["editable"], true);
    let id = saved["id"].as_i64().unwrap();
    let short = saved["short_id"].as_str().unwrap();
    assert_eq!(short.len(), 22);
    assert_eq!(saved["link"], format!("/s/{short}"));

    let (status, shown) = app
        .get(ANN_KEY, &format!("/api/v1/saved-searches/{id}"))
        .await;
    assert_eq!((status, &shown), (200, &saved));

    // The short link leads to the explorer with the search; run as is, it finds the
    // entries the search is about.
    let location = app.follow(ANN_KEY, &format!("/s/{short}")).await.unwrap();
    assert_eq!(location, format!("/?{search}"));
    let query = location.strip_prefix("/?").unwrap();
    assert_eq!(
        app.messages(query).await,
        ["api failed late", "api failed early"]
    );
    assert_eq!(
        app.follow(ANN_KEY, "/s/AAAAAAAAAAAAAAAAAAAAAA").await,
        Err(404)
    );
    assert_eq!(app.follow(ANN_KEY, "/s/not-a-short-id").await, Err(404));

    let (status, changed) = app
        .send(
            ANN_KEY,
            reqwest::Method::PATCH,
            &format!("/api/v1/saved-searches/{id}"),
            Some(json!({"name": "All errors", "search": "since=1h&level=ERROR", "shared": true})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["shared"], &changed["short_id"]),
        (&json!("All errors"), &json!(true), &saved["short_id"]),
        "the short link is stable across changes"
    );
    let location = app.follow(ANN_KEY, &format!("/s/{short}")).await.unwrap();
    assert_eq!(
        app.messages(location.strip_prefix("/?").unwrap()).await,
        ["worker failed", "api failed late", "api failed early"]
    );

    let (status, _) = app
        .send(
            ANN_KEY,
            reqwest::Method::DELETE,
            &format!("/api/v1/saved-searches/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .get(ANN_KEY, &format!("/api/v1/saved-searches/{id}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.follow(ANN_KEY, &format!("/s/{short}")).await, Err(404));

    let target = format!("saved_search:{id}");
    let ann = owner_of(ANN_KEY);
    assert_eq!(
        app.audit().await,
        [
            (ann.clone(), "saved_search.create".into(), target.clone()),
            (ann.clone(), "saved_search.update".into(), target.clone()),
            (ann, "saved_search.delete".into(), target),
        ]
    );
    let details: Value =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'saved_search.update'")
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    assert_eq!(details["shared"], json!({"from": false, "to": true}));
    assert_eq!(
        details["name"],
        json!({"from": "API errors", "to": "All errors"})
    );
}

#[tokio::test]
async fn lists_hold_ones_own_and_the_shared_searches_newest_first_in_pages() {
    let app = spawn().await;
    let mut made = Vec::new();
    for (key, name, shared) in [
        (ANN_KEY, "ann private", false),
        (ANN_KEY, "ann shared", true),
        (BOB_KEY, "bob private", false),
        (BOB_KEY, "bob shared", true),
    ] {
        let (status, saved) = app
            .save(
                key,
                json!({"name": name, "search": "since=15m", "shared": shared}),
            )
            .await;
        assert_eq!(status, 201, "{saved}");
        made.push(saved);
    }
    let names = |list: &Value| -> Vec<String> {
        list["saved_searches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, ann) = app.get(ANN_KEY, "/api/v1/saved-searches").await;
    assert_eq!(names(&ann), ["bob shared", "ann shared", "ann private"]);
    assert_eq!(ann["next_cursor"], Value::Null);
    let editable: Vec<&Value> = ann["saved_searches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["editable"])
        .collect();
    assert_eq!(editable, [&json!(true); 3], "admins may change any");
    let (_, bob) = app.get(BOB_KEY, "/api/v1/saved-searches").await;
    assert_eq!(names(&bob), ["bob shared", "bob private", "ann shared"]);

    let (_, first) = app.get(ANN_KEY, "/api/v1/saved-searches?limit=2").await;
    assert_eq!(names(&first), ["bob shared", "ann shared"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .get(
            ANN_KEY,
            &format!("/api/v1/saved-searches?limit=2&cursor={cursor}"),
        )
        .await;
    assert_eq!(names(&second), ["ann private"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // An admin may change another owner's search; the audit names who did.
    let bobs = made[3]["id"].as_i64().unwrap();
    let (status, _) = app
        .send(
            ANN_KEY,
            reqwest::Method::DELETE,
            &format!("/api/v1/saved-searches/{bobs}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let last = app.audit().await.pop().unwrap();
    assert_eq!(
        last,
        (
            owner_of(ANN_KEY),
            "saved_search.delete".to_owned(),
            format!("saved_search:{bobs}")
        )
    );

    for bad in ["limit=0", "limit=101", "cursor=zz", "owner=me"] {
        let (status, body) = app
            .get(ANN_KEY, &format!("/api/v1/saved-searches?{bad}"))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let anonymous = app
        .http
        .get(app.app.url("/api/v1/saved-searches"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn bad_searches_and_bodies_are_400s_naming_each_problem_and_owners_are_capped() {
    let app = spawn().await;
    let deep = format!("meta.{}=1", vec!["a"; 200].join("."));
    for (body, expected) in [
        (
            json!({"name": "x", "search": "since=1h&level=LOUD&limit=5&colour=red"}),
            vec![
                "search: level",
                "search: limit: unknown parameter",
                "search: colour: unknown parameter",
            ],
        ),
        (
            json!({"name": "x", "search": "since=yesterday"}),
            vec!["search: since"],
        ),
        (json!({"name": "x", "search": deep}), vec!["search: meta."]),
        (
            json!({"name": "x", "search": "q=".to_owned() + &"y".repeat(8_200)}),
            vec!["search: at most 8192 characters"],
        ),
        (
            json!({"name": "  ", "description": "d".repeat(2_001), "search": ""}),
            vec!["name: from 1 to 200", "description: at most 2000"],
        ),
        (
            json!({"name": "n".repeat(201), "search": ""}),
            vec!["name: from 1 to 200"],
        ),
        (json!({"name": "x"}), vec!["missing field `search`"]),
        (
            json!({"name": "x", "search": "", "owner": "me"}),
            vec!["unknown field `owner`"],
        ),
        (
            json!({"name": "x", "search": "", "shared": "yes"}),
            vec!["the body must be JSON"],
        ),
    ] {
        let (status, answer) = app.save(ANN_KEY, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let details = answer["details"].to_string();
        for part in expected {
            assert!(details.contains(part), "{part} in {details}");
        }
    }
    let (status, saved) = app.save(ANN_KEY, json!({"name": "x", "search": ""})).await;
    assert_eq!(
        status, 201,
        "an empty search is every entry of the default range"
    );
    assert_eq!(saved["link"].as_str().unwrap().len(), 3 + 22);
    let path = format!("/api/v1/saved-searches/{}", saved["id"]);
    for change in [json!({}), json!({"search": "trace_id=nothex"})] {
        let (status, answer) = app
            .send(ANN_KEY, reqwest::Method::PATCH, &path, Some(change.clone()))
            .await;
        assert_eq!(status, 400, "{change}: {answer}");
    }
    let (status, _) = app.get(ANN_KEY, "/api/v1/saved-searches/abc").await;
    assert_eq!(status, 400);
    let (status, _) = app.get(ANN_KEY, "/api/v1/saved-searches/999999").await;
    assert_eq!(status, 404);
    let too_big = app
        .http
        .post(app.app.url("/api/v1/saved-searches"))
        .header("X-API-Key", ANN_KEY)
        .header("Content-Type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);
    assert_eq!(app.audit().await.len(), 1, "refusals write nothing");

    // An owner keeps at most MAX_PER_OWNER, also when saving many at once; another
    // owner is not held back by them.
    sqlx::query(
        "INSERT INTO saved_searches (short_id, name, search, owner) \
         SELECT 'filler' || n, 'filler', '', $1 FROM generate_series(2, $2) AS n",
    )
    .bind(owner_of(ANN_KEY))
    .bind(store::MAX_PER_OWNER - 5)
    .execute(&app.app.pool)
    .await
    .unwrap();
    let racing =
        (0..10).map(|n| app.save(ANN_KEY, json!({"name": format!("race {n}"), "search": ""})));
    let mut statuses: Vec<u16> = futures::future::join_all(racing)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 201, 201, 201, 409, 409, 409, 409, 409]);
    let (status, answer) = app
        .save(ANN_KEY, json!({"name": "one more", "search": ""}))
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["details"].to_string().contains("at most 200"));
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM saved_searches WHERE owner = $1")
        .bind(owner_of(ANN_KEY))
        .fetch_one(&app.app.pool)
        .await
        .unwrap();
    assert_eq!(kept, store::MAX_PER_OWNER);
    let (status, _) = app
        .save(BOB_KEY, json!({"name": "bob's first", "search": ""}))
        .await;
    assert_eq!(status, 201);
}

fn person(id: i64, email: &str, role: Role) -> Actor {
    Actor::User {
        id,
        email: email.to_owned(),
        role,
    }
}

async fn add_user(app: &App, email: &str, role: Role) -> Actor {
    let id: i64 =
        sqlx::query_scalar("INSERT INTO users (email, role) VALUES ($1, $2) RETURNING id")
            .bind(email)
            .bind(role.as_str())
            .fetch_one(&app.app.pool)
            .await
            .unwrap();
    person(id, email, role)
}

#[tokio::test]
async fn a_private_search_is_invisible_to_another_person_and_a_shared_one_is_read_only() {
    let app = spawn().await;
    let pool = &app.app.pool;
    let ann = add_user(&app, "ann@example.com", Role::Editor).await;
    let bob = add_user(&app, "bob@example.com", Role::Editor).await;
    let admin = add_user(&app, "root@example.com", Role::Admin).await;
    let new = |name: &str, shared| NewSearch {
        name: name.to_owned(),
        description: String::new(),
        search: "since=1h".to_owned(),
        shared,
    };
    let private = store::create(pool, &ann, &new("mine", false))
        .await
        .unwrap();
    let shared = store::create(pool, &ann, &new("ours", true)).await.unwrap();
    let owner_user_id: Option<i64> =
        sqlx::query_scalar("SELECT owner_user_id FROM saved_searches WHERE id = $1")
            .bind(private.id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(owner_user_id, ann.user_id());

    let mut conn = pool.acquire().await.unwrap();
    assert!(matches!(
        store::find(&mut conn, &bob, private.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store::find_by_short_id(&mut conn, &bob, &private.short_id).await,
        Err(StoreError::NotFound)
    ));
    let rename = Changes {
        name: Some("taken".into()),
        ..Changes::default()
    };
    assert!(matches!(
        store::update(pool, &bob, private.id, &rename).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store::delete(pool, &bob, private.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store::find(&mut conn, &bob, shared.id).await.unwrap(),
        shared
    );
    assert!(matches!(
        store::update(pool, &bob, shared.id, &rename).await,
        Err(StoreError::NotOwner)
    ));
    assert!(matches!(
        store::delete(pool, &bob, shared.id).await,
        Err(StoreError::NotOwner)
    ));
    let listed: Vec<String> = store::list(&mut conn, &bob, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(listed, ["ours"]);

    let renamed = store::update(pool, &ann, private.id, &rename)
        .await
        .unwrap();
    assert_eq!(renamed.name, "taken");
    store::delete(pool, &admin, shared.id).await.unwrap();
    let audit: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT actor, user_id, action FROM audit_log ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        [
            (
                "user:ann@example.com".into(),
                ann.user_id(),
                "saved_search.create".into()
            ),
            (
                "user:ann@example.com".into(),
                ann.user_id(),
                "saved_search.create".into()
            ),
            (
                "user:ann@example.com".into(),
                ann.user_id(),
                "saved_search.update".into()
            ),
            (
                "user:root@example.com".into(),
                admin.user_id(),
                "saved_search.delete".into()
            ),
        ],
        "refused changes write nothing"
    );
}

#[tokio::test]
async fn a_person_removed_and_added_again_does_not_get_their_private_searches_back() {
    use log_ingestion_server::auth::users;
    let app = spawn().await;
    let pool = &app.app.pool;
    let ann = add_user(&app, "ann@example.com", Role::Editor).await;
    let admin = add_user(&app, "root@example.com", Role::Admin).await;
    let new = NewSearch {
        name: "mine".to_owned(),
        description: String::new(),
        search: "since=1h".to_owned(),
        shared: false,
    };
    let private = store::create(pool, &ann, &new).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    assert!(users::remove(&mut tx, ann.user_id().unwrap())
        .await
        .unwrap());
    let (back, was_removed_at) =
        users::add_or_restore(&mut tx, "ann@example.com", Role::Editor, "hash")
            .await
            .unwrap()
            .expect("a removed address can be added again");
    tx.commit().await.unwrap();
    assert!(was_removed_at.is_some());
    let again = person(back.id, "ann@example.com", Role::Editor);

    let mut conn = pool.acquire().await.unwrap();
    assert!(matches!(
        store::find(&mut conn, &again, private.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store::delete(pool, &again, private.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store::list(&mut conn, &again, None, 10)
        .await
        .unwrap()
        .is_empty());
    let kept = store::find(&mut conn, &admin, private.id).await.unwrap();
    assert_eq!(
        kept.owner, "user:ann@example.com",
        "the label stays, for admins"
    );
    // Her own new searches are hers.
    let fresh = store::create(pool, &again, &new).await.unwrap();
    let listed: Vec<i64> = store::list(&mut conn, &again, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [fresh.id]);
}
