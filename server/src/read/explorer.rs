//! The log explorer's pages: `/` (logs), `/errors` (error groups), `/alerts` (alert
//! rules, what fires, history, silences) and `/sign-in`, with their scripts (`common.js`,
//! shared by all, then each page's own; `saved.js` adds saved searches to `/`) and style
//! sheets, embedded in the binary at build time from `server/assets/explorer/`. Owns
//! serving those bytes with their content types and a Content-Security-Policy that
//! forbids loading anything from elsewhere, and putting the chrome every page shares
//! (`chrome.html`: the top bar and the key dialog) where a page says `<!--#chrome-->`,
//! once at start; it never reads files at run time and holds no secrets (a person signs in on `/sign-in`, or the page asks for the admin key and keeps
//! it in the browser session).

use axum::body::Bytes;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every path the explorer serves: (path, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../../assets/explorer/index.html")),
    (
        "/errors",
        HTML,
        include_str!("../../assets/explorer/errors.html"),
    ),
    (
        "/alerts",
        HTML,
        include_str!("../../assets/explorer/alerts.html"),
    ),
    (
        "/sign-in",
        HTML,
        include_str!("../../assets/explorer/sign-in.html"),
    ),
    (
        "/explorer/common.js",
        JS,
        include_str!("../../assets/explorer/common.js"),
    ),
    (
        "/explorer/app.js",
        JS,
        include_str!("../../assets/explorer/app.js"),
    ),
    (
        "/explorer/saved.js",
        JS,
        include_str!("../../assets/explorer/saved.js"),
    ),
    (
        "/explorer/errors.js",
        JS,
        include_str!("../../assets/explorer/errors.js"),
    ),
    (
        "/explorer/alerts.js",
        JS,
        include_str!("../../assets/explorer/alerts.js"),
    ),
    (
        "/explorer/sign-in.js",
        JS,
        include_str!("../../assets/explorer/sign-in.js"),
    ),
    (
        "/explorer/style.css",
        CSS,
        include_str!("../../assets/explorer/style.css"),
    ),
    (
        "/explorer/saved.css",
        CSS,
        include_str!("../../assets/explorer/saved.css"),
    ),
    (
        "/explorer/errors.css",
        CSS,
        include_str!("../../assets/explorer/errors.css"),
    ),
    (
        "/explorer/alerts.css",
        CSS,
        include_str!("../../assets/explorer/alerts.css"),
    ),
    (
        "/explorer/sign-in.css",
        CSS,
        include_str!("../../assets/explorer/sign-in.css"),
    ),
];

/// The top bar and the key dialog of every page that has them.
const CHROME: &str = include_str!("../../assets/explorer/chrome.html");
const CHROME_MARKER: &str = "  <!--#chrome-->\n";
/// A page's own top-bar controls: `  <!--#page-actions\n…  #-->\n`, put first in the bar.
const ACTIONS_OPEN: &str = "  <!--#page-actions\n";
const ACTIONS_CLOSE: &str = "  #-->\n";
const ACTIONS_SLOT: &str = "<!--#page-actions-->\n";

/// `page` with the shared chrome in place of its marker, its own top-bar controls in
/// the bar, and the link to `path` marked as the current page. A page without the
/// marker (sign-in) is served as it is.
fn compose(page: &str, path: &str) -> String {
    if !page.contains(CHROME_MARKER) {
        return page.to_owned();
    }
    let (page, actions) = match page.split_once(ACTIONS_OPEN) {
        Some((before, rest)) => match rest.split_once(ACTIONS_CLOSE) {
            Some((actions, after)) => (format!("{before}{after}"), actions),
            None => (page.to_owned(), ""),
        },
        None => (page.to_owned(), ""),
    };
    let link = format!("<a href=\"{path}\">");
    let current = format!("<a href=\"{path}\" aria-current=\"page\">");
    let chrome = CHROME
        .replacen(ACTIONS_SLOT, actions, 1)
        .replacen(&link, &current, 1);
    page.replacen(CHROME_MARKER, &chrome, 1)
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    ASSETS
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            let body = if content_type == HTML {
                Bytes::from(compose(body, path))
            } else {
                Bytes::from_static(body.as_bytes())
            };
            router.route(
                path,
                get(move || {
                    let body = body.clone();
                    async move { asset(content_type, body) }
                }),
            )
        })
}

fn asset(content_type: &'static str, body: Bytes) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn page(path: &str) -> String {
        ASSETS
            .iter()
            .find(|(at, _, _)| *at == path)
            .map(|(_, _, body)| compose(body, path))
            .unwrap()
    }

    /// The ids of the elements between `open` and `close` in `html`.
    fn ids_within(html: &str, open: &str, close: &str) -> Vec<String> {
        let start = html.find(open).unwrap();
        let end = start + html[start..].find(close).unwrap();
        html[start..end]
            .split(" id=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_page_with_a_top_bar_has_the_same_controls_and_key_dialog() {
        let pages = ["/", "/errors", "/alerts"];
        // The logs page adds its live tail to the top bar; everything else is shared.
        let live = ["live-toggle", "live-status"];
        let topbar = |path| -> Vec<String> {
            let mut ids = ids_within(&page(path), "<header class=\"topbar\">", "</header>");
            ids.retain(|id| !live.contains(&id.as_str()));
            ids
        };
        let dialog = |path| ids_within(&page(path), "<dialog id=\"key-dialog\">", "</dialog>");
        assert_eq!(topbar("/"), ["who", "sign-out", "forget-key"]);
        let logs = ids_within(&page("/"), "<header class=\"topbar\">", "</header>");
        assert_eq!(
            logs[..2],
            ["live-toggle", "live-status"],
            "the logs page's own controls first"
        );
        for path in pages {
            assert_eq!(topbar(path), topbar("/"), "{path}'s top bar");
            assert_eq!(dialog(path), dialog("/"), "{path}'s key dialog");
            for nav in pages {
                let link = format!("<a href=\"{nav}\"");
                assert!(page(path).contains(&link), "{path} links to {nav}");
            }
            let current = format!("<a href=\"{path}\" aria-current=\"page\">");
            assert!(page(path).contains(&current), "{path} marks itself current");
            assert_eq!(page(path).matches("aria-current").count(), 1, "{path}");
            assert!(!page(path).contains("<!--#"), "{path} keeps a marker");
        }
    }
}
