//! The trusted SSO proxy (oauth2-proxy and the like): which address a request came
//! from, whether that is one of `LOG_INGESTION_TRUSTED_PROXIES`, and only then what its
//! `LOG_INGESTION_TRUSTED_PROXY_AUTH_HEADER` (the person's e-mail), `X-Forwarded-For`
//! (the client's address, for sign-in throttling) and `X-Forwarded-Proto` (HTTPS, for
//! the cookie's `Secure`) say. From anyone else those headers are ignored.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::config::{SignInSettings, TrustedProxySettings};

/// The connection's peer address, put on every request by the connection loop.
pub fn peer(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

pub fn is_trusted(settings: &TrustedProxySettings, peer: Option<IpAddr>) -> bool {
    peer.is_some_and(|peer| settings.proxies.iter().any(|net| net.contains(peer)))
}

/// The e-mail address a trusted proxy vouches for, as sent (not yet checked); `None`
/// without the header, or from an untrusted peer.
pub fn vouched_email<'a>(
    settings: &TrustedProxySettings,
    peer: Option<IpAddr>,
    headers: &'a HeaderMap,
) -> Option<&'a [u8]> {
    let name = settings.auth_header.as_ref()?;
    let value = headers.get(name)?.as_bytes();
    (!value.is_empty() && is_trusted(settings, peer)).then_some(value)
}

/// The client's address: the peer's, or from a trusted proxy the last address of
/// `X-Forwarded-For` (the one that proxy added).
pub fn client_address(
    settings: &TrustedProxySettings,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    if !is_trusted(settings, peer) {
        return peer;
    }
    headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .or(peer)
}

/// Whether the session cookie gets `Secure`: always when configured, else when a
/// trusted proxy says the request came over HTTPS.
pub fn over_tls(settings: &SignInSettings, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
    settings.cookie_secure
        || (is_trusted(&settings.proxy, peer)
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;
    use crate::config::Cidr;
    use axum::http::{HeaderName, HeaderValue};

    fn settings() -> TrustedProxySettings {
        TrustedProxySettings {
            auth_header: Some(HeaderName::from_static("x-forwarded-email")),
            proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            default_role: Role::Viewer,
        }
    }

    #[test]
    fn the_header_counts_from_a_trusted_peer_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-email",
            HeaderValue::from_static("ann@example.com"),
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.2.3.4, 5.6.7.8"),
        );
        let trusted = Some([10, 1, 2, 3].into());
        let stranger = Some([192, 168, 1, 1].into());
        assert!(vouched_email(&settings(), trusted, &headers).is_some());
        assert!(vouched_email(&settings(), stranger, &headers).is_none());
        assert_eq!(
            client_address(&settings(), trusted, &headers),
            Some([5, 6, 7, 8].into())
        );
        assert_eq!(client_address(&settings(), stranger, &headers), stranger);
    }

    #[test]
    fn the_cookie_is_secure_when_a_trusted_proxy_says_https_or_when_configured() {
        let mut sign_in = SignInSettings {
            proxy: settings(),
            ..SignInSettings::default()
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_tls(&sign_in, Some([10, 0, 0, 1].into()), &headers));
        assert!(!over_tls(&sign_in, Some([192, 168, 0, 1].into()), &headers));
        assert!(!over_tls(
            &sign_in,
            Some([10, 0, 0, 1].into()),
            &HeaderMap::new()
        ));
        sign_in.cookie_secure = true;
        assert!(over_tls(&sign_in, None, &HeaderMap::new()));
    }
}
