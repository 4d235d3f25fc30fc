//! The sign-in settings: how long a session lasts (idle and absolute), when its cookie
//! is `Secure`, how fast one address may try passwords, and the SSO proxy (which header
//! names the person, from which addresses it is believed, and the role of a person it
//! brings for the first time). It never reads a variable but through `environment`.

use std::time::Duration;

use super::environment::{Environment, Setting};
use super::networks::{self, Cidr};
use crate::auth::Role;

/// The SSO proxy: the header it sets to the signed-in person's e-mail, the addresses
/// it connects from, and the role of a person it brings for the first time.
#[derive(Clone, Debug)]
pub struct TrustedProxySettings {
    pub auth_header: Option<axum::http::HeaderName>,
    pub proxies: Vec<Cidr>,
    pub default_role: Role,
}

/// Sessions, cookies, sign-in throttling and the SSO proxy.
#[derive(Clone, Debug)]
pub struct SignInSettings {
    /// A session unused this long ends (`LOG_INGESTION_SESSION_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in however used (`LOG_INGESTION_SESSION_MAX_AGE`).
    pub max_age: Duration,
    /// `LOG_INGESTION_SESSION_COOKIE_SECURE=on`: always `Secure`; off: `Secure` only
    /// when a trusted proxy says the request came over HTTPS.
    pub cookie_secure: bool,
    /// Sign-in attempts one address may make per minute (`LOG_INGESTION_SIGN_IN_ATTEMPTS_PER_MINUTE`).
    pub attempts_per_minute: u32,
    pub proxy: TrustedProxySettings,
}

impl Default for SignInSettings {
    fn default() -> Self {
        SignInSettings {
            idle_timeout: Duration::from_secs(12 * 3600),
            max_age: Duration::from_secs(7 * 24 * 3600),
            cookie_secure: false,
            attempts_per_minute: 30,
            proxy: TrustedProxySettings {
                auth_header: None,
                proxies: Vec::new(),
                default_role: Role::Viewer,
            },
        }
    }
}

impl Setting for Role {
    const EXPECTED: &'static str = "viewer, editor or admin";
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl SignInSettings {
    pub(super) fn read(env: &mut Environment<'_>) -> Self {
        let default = Self::default();
        let minute = Duration::from_secs(60);
        let auth_header = env
            .text("LOG_INGESTION_TRUSTED_PROXY_AUTH_HEADER")
            .and_then(
                |name| match axum::http::HeaderName::try_from(name.as_str()) {
                    Ok(header) => Some(header),
                    Err(_) => {
                        env.problem(
                            "LOG_INGESTION_TRUSTED_PROXY_AUTH_HEADER",
                            "must be an HTTP header name",
                        );
                        None
                    }
                },
            );
        let proxies = networks::read(env, "LOG_INGESTION_TRUSTED_PROXIES").unwrap_or_default();
        if auth_header.is_some() && proxies.is_empty() {
            env.problem(
                "LOG_INGESTION_TRUSTED_PROXY_AUTH_HEADER",
                "needs LOG_INGESTION_TRUSTED_PROXIES (the proxy's addresses)",
            );
        }
        SignInSettings {
            idle_timeout: env.at_least(
                "LOG_INGESTION_SESSION_IDLE_TIMEOUT",
                default.idle_timeout,
                minute,
            ),
            max_age: env.at_least("LOG_INGESTION_SESSION_MAX_AGE", default.max_age, minute),
            cookie_secure: env.get("LOG_INGESTION_SESSION_COOKIE_SECURE", default.cookie_secure),
            attempts_per_minute: env.at_least(
                "LOG_INGESTION_SIGN_IN_ATTEMPTS_PER_MINUTE",
                default.attempts_per_minute,
                1,
            ),
            proxy: TrustedProxySettings {
                auth_header,
                proxies,
                default_role: env.get(
                    "LOG_INGESTION_TRUSTED_PROXY_DEFAULT_ROLE",
                    default.proxy.default_role,
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<SignInSettings, Vec<String>> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let mut env = Environment::new(&lookup);
        let settings = SignInSettings::read(&mut env);
        env.finish(settings).map_err(|error| error.problems)
    }

    #[test]
    fn the_proxy_header_needs_the_proxies_and_every_bad_value_is_named() {
        let settings = read(&[
            (
                "LOG_INGESTION_TRUSTED_PROXY_AUTH_HEADER",
                "X-Forwarded-Email",
            ),
            ("LOG_INGESTION_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("LOG_INGESTION_TRUSTED_PROXY_DEFAULT_ROLE", "editor"),
        ])
        .unwrap();
        assert_eq!(settings.proxy.proxies.len(), 2);
        assert_eq!(settings.proxy.default_role, Role::Editor);
        let problems = read(&[(
            "LOG_INGESTION_TRUSTED_PROXY_AUTH_HEADER",
            "X-Forwarded-Email",
        )])
        .unwrap_err();
        assert!(
            problems[0].contains("needs LOG_INGESTION_TRUSTED_PROXIES"),
            "{problems:?}"
        );
        let problems = read(&[
            ("LOG_INGESTION_TRUSTED_PROXIES", "10.0.0.0/8,not-a-net"),
            ("LOG_INGESTION_TRUSTED_PROXY_DEFAULT_ROLE", "root"),
            ("LOG_INGESTION_SESSION_IDLE_TIMEOUT", "1s"),
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
