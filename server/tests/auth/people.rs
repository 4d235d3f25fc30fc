//! What the auth tests share: an app with the admin key, people added through the
//! users API, and a signed-in person's requests (the session cookie and CSRF token
//! carried by hand, as a browser would).

use log_ingestion_test_support::{spawn_full_app, TestApp, ADMIN_KEY};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{json, Value};

pub const PASSWORD: &str = "a long enough password";

/// The app of [`spawn_full_app`] (admin key [`ADMIN_KEY`]).
pub async fn app() -> TestApp {
    spawn_full_app().await
}

/// Adds `email` with `role` and [`PASSWORD`] through the users API.
pub async fn add_user(app: &TestApp, email: &str, role: &str) -> Value {
    let response = app
        .client
        .post(app.url("/api/v1/users"))
        .header("X-API-Key", ADMIN_KEY)
        .json(&json!({"email": email, "role": role, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    response.json().await.unwrap()
}

/// `POST /api/v1/session` with `email` and `password`.
pub async fn try_sign_in(app: &TestApp, email: &str, password: &str) -> Response {
    app.client
        .post(app.url("/api/v1/session"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// A signed-in person: the cookie's `name=value` and the CSRF token.
#[derive(Clone, Debug)]
pub struct Person {
    pub cookie: String,
    pub csrf: String,
}

impl Person {
    /// `method path` with the cookie and (`with_csrf`) the CSRF token.
    pub fn request(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        with_csrf: bool,
    ) -> RequestBuilder {
        let builder = app
            .client
            .request(method, app.url(path))
            .header("Cookie", &self.cookie);
        if with_csrf {
            builder.header("X-CSRF-Token", &self.csrf)
        } else {
            builder
        }
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> Response {
        self.request(app, Method::GET, path, false)
            .send()
            .await
            .unwrap()
    }
}

/// The session cookie a sign-in answer sets, as `name=value`.
pub fn session_cookie(response: &Response) -> String {
    let set = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("log_ingestion_session="))
        .expect("the session's Set-Cookie header");
    set.split(';').next().unwrap().to_owned()
}

/// Signs `email` in with [`PASSWORD`]; panics unless it works.
pub async fn sign_in(app: &TestApp, email: &str) -> Person {
    let response = try_sign_in(app, email, PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    let body: Value = response.json().await.unwrap();
    Person {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

/// Adds a person with `role` and signs them in.
pub async fn person(app: &TestApp, email: &str, role: &str) -> Person {
    add_user(app, email, role).await;
    sign_in(app, email).await
}
