//! Database URLs made safe to log: the password masked. It never logs or keeps a URL.

/// Masks the password of a database URL (`postgres://user:***@host/db`) so that
/// `Debug` output of the settings is safe to log.
pub(super) fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}
