//! The role each route needs, enforced in one place: every `/api/v1` route is found in
//! the server's source (each `.route("/api/v1/...", get(..).post(..))`), so a route
//! added later is checked without being listed here. A viewer may read every read route
//! and is refused every change; an editor may make every change but the users' and
//! the audit log's, which only admins may use.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;

use crate::people::{app, person, Person};
use log_ingestion_test_support::TestApp;

/// Routes anyone signed in may use whatever their role: their own session.
const OWN_SESSION: [&str; 2] = ["/api/v1/session", "/api/v1/sessions"];
const ADMIN_ONLY: [&str; 2] = ["/api/v1/users", "/api/v1/audit"];

/// `(method, path pattern)` of every `/api/v1` route registered in `dir`'s sources.
fn routes_in(dir: &Path, found: &mut BTreeSet<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            routes_in(&path, found);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let call = &rest[..closing_paren(rest)];
            let Some(literal) = call.trim_start().strip_prefix('"') else {
                continue;
            };
            let pattern = &literal[..literal.find('"').unwrap()];
            if !pattern.starts_with("/api/v1/") {
                continue;
            }
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = call.match_indices(&format!("{method}(")).any(|(index, _)| {
                    index == 0
                        || !call.as_bytes()[index - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[index - 1] != b'_'
                });
                if called {
                    found.insert((method.to_uppercase(), pattern.to_owned()));
                }
            }
        }
    }
}

/// The index of the `)` closing a call whose arguments `text` starts with.
fn closing_paren(text: &str) -> usize {
    let mut depth = 1;
    for (index, byte) in text.bytes().enumerate() {
        match byte {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return index;
                }
            }
            _ => {}
        }
    }
    text.len()
}

fn routes() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    routes_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

fn concrete(pattern: &str) -> String {
    pattern.replace("{id}", "999999").replace("{name}", "nope")
}

fn under(path: &str, prefixes: &[&str]) -> bool {
    prefixes
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

async fn status(app: &TestApp, person: &Person, method: &str, pattern: &str) -> u16 {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let builder = person.request(app, method.clone(), &concrete(pattern), true);
    let builder = if method == Method::GET {
        builder
    } else {
        builder.json(&serde_json::json!({}))
    };
    builder.send().await.unwrap().status().as_u16()
}

#[test]
fn the_route_scan_finds_every_kind_of_change() {
    let routes = routes();
    for expected in [
        ("POST", "/api/v1/errors/{id}/status"),
        ("POST", "/api/v1/errors/{id}/merge"),
        ("POST", "/api/v1/alerts/rules"),
        ("PUT", "/api/v1/alerts/rules/{id}"),
        ("DELETE", "/api/v1/alerts/rules/{id}"),
        ("PATCH", "/api/v1/alerts/channels/{name}"),
        ("POST", "/api/v1/alerts/silences"),
        ("DELETE", "/api/v1/alerts/silences/{id}"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/logs"),
    ] {
        assert!(
            routes.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not found among {routes:?}"
        );
    }
}

#[tokio::test]
async fn a_viewer_reads_but_changes_nothing_and_an_editor_changes_all_but_people() {
    let app = app().await;
    let viewer = person(&app, "viewer@example.com", "viewer").await;
    let editor = person(&app, "editor@example.com", "editor").await;
    let admin = person(&app, "admin@example.com", "admin").await;
    let mut problems = Vec::new();
    let mut changes = 0;
    for (method, pattern) in routes() {
        if OWN_SESSION.contains(&pattern.as_str()) {
            continue;
        }
        let admin_only = under(&pattern, &ADMIN_ONLY);
        let viewer_status = status(&app, &viewer, &method, &pattern).await;
        let editor_status = status(&app, &editor, &method, &pattern).await;
        let is_read = method == "GET";
        let viewer_allowed = is_read && !admin_only;
        let editor_allowed = !admin_only;
        if (viewer_status == 403) == viewer_allowed {
            problems.push(format!("viewer {method} {pattern}: {viewer_status}"));
        }
        if (editor_status == 403) == editor_allowed {
            problems.push(format!("editor {method} {pattern}: {editor_status}"));
        }
        if admin_only {
            let admin_status = status(&app, &admin, &method, &pattern).await;
            if admin_status == 403 {
                problems.push(format!("admin {method} {pattern}: {admin_status}"));
            }
        }
        changes += usize::from(!is_read);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(changes >= 15, "only {changes} changing routes were checked");
    app.stop_and_drop_database().await;
}

#[tokio::test]
async fn a_viewer_may_still_see_and_end_their_own_session() {
    let app = app().await;
    let viewer = person(&app, "viewer@example.com", "viewer").await;
    assert_eq!(status(&app, &viewer, "GET", "/api/v1/session").await, 200);
    assert_eq!(
        status(&app, &viewer, "DELETE", "/api/v1/sessions").await,
        200
    );
    app.stop_and_drop_database().await;
}
