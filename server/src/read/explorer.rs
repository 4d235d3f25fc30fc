//! The log explorer's pages: `/` (logs), `/errors` (error groups), `/alerts` (alert
//! rules, what fires, history, silences) and `/sign-in`, with their scripts (`common.js`,
//! shared by all, then each page's own; `saved.js` adds saved searches to `/`) and style
//! sheets, embedded in the binary at build time from `server/assets/explorer/`. Owns
//! serving those bytes with their content types and a Content-Security-Policy that
//! forbids loading anything from elsewhere; it never reads files at run time and holds no
//! secrets (a person signs in on `/sign-in`, or the page asks for the admin key and keeps
//! it in the browser session).

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../../assets/explorer/index.html");
const COMMON_JS: &str = include_str!("../../assets/explorer/common.js");
const APP_JS: &str = include_str!("../../assets/explorer/app.js");
const STYLE_CSS: &str = include_str!("../../assets/explorer/style.css");
const SAVED_JS: &str = include_str!("../../assets/explorer/saved.js");
const SAVED_CSS: &str = include_str!("../../assets/explorer/saved.css");
const ERRORS_HTML: &str = include_str!("../../assets/explorer/errors.html");
const ERRORS_JS: &str = include_str!("../../assets/explorer/errors.js");
const ERRORS_CSS: &str = include_str!("../../assets/explorer/errors.css");
const ALERTS_HTML: &str = include_str!("../../assets/explorer/alerts.html");
const ALERTS_JS: &str = include_str!("../../assets/explorer/alerts.js");
const ALERTS_CSS: &str = include_str!("../../assets/explorer/alerts.css");
const SIGN_IN_HTML: &str = include_str!("../../assets/explorer/sign-in.html");
const SIGN_IN_JS: &str = include_str!("../../assets/explorer/sign-in.js");
const SIGN_IN_CSS: &str = include_str!("../../assets/explorer/sign-in.css");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/explorer/common.js",
            get(|| async { asset("text/javascript; charset=utf-8", COMMON_JS) }),
        )
        .route(
            "/explorer/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/explorer/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/explorer/saved.js",
            get(|| async { asset("text/javascript; charset=utf-8", SAVED_JS) }),
        )
        .route(
            "/explorer/saved.css",
            get(|| async { asset("text/css; charset=utf-8", SAVED_CSS) }),
        )
        .route(
            "/errors",
            get(|| async { asset("text/html; charset=utf-8", ERRORS_HTML) }),
        )
        .route(
            "/explorer/errors.js",
            get(|| async { asset("text/javascript; charset=utf-8", ERRORS_JS) }),
        )
        .route(
            "/explorer/errors.css",
            get(|| async { asset("text/css; charset=utf-8", ERRORS_CSS) }),
        )
        .route(
            "/alerts",
            get(|| async { asset("text/html; charset=utf-8", ALERTS_HTML) }),
        )
        .route(
            "/explorer/alerts.js",
            get(|| async { asset("text/javascript; charset=utf-8", ALERTS_JS) }),
        )
        .route(
            "/explorer/alerts.css",
            get(|| async { asset("text/css; charset=utf-8", ALERTS_CSS) }),
        )
        .route(
            "/sign-in",
            get(|| async { asset("text/html; charset=utf-8", SIGN_IN_HTML) }),
        )
        .route(
            "/explorer/sign-in.js",
            get(|| async { asset("text/javascript; charset=utf-8", SIGN_IN_JS) }),
        )
        .route(
            "/explorer/sign-in.css",
            get(|| async { asset("text/css; charset=utf-8", SIGN_IN_CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 4] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    (headers, body).into_response()
}
