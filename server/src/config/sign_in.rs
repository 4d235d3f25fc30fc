//! The sign-in settings: how long a session lasts (idle and absolute), when its cookie
//! is `Secure`, how fast one address may try passwords, and the SSO proxy (which header
//! names the person, from which addresses it is believed, and the role of a person it
//! brings for the first time). It never reads a variable but through `environment`.

use std::net::IpAddr;
use std::time::Duration;

use super::environment::{comma_list, Environment, Setting};
use crate::auth::Role;

/// A network in CIDR notation (`10.0.0.0/8`, `::1/128`); a bare address is one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().ok().filter(|bits| *bits <= max)?,
            None => max,
        };
        Some(Cidr {
            network: address,
            prefix,
        })
    }

    /// Whether `address` lies in this network (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

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
        let mut proxies = Vec::new();
        if let Some(list) = env.text("LOG_INGESTION_TRUSTED_PROXIES") {
            for item in comma_list(&list) {
                match Cidr::parse(item) {
                    Some(cidr) => proxies.push(cidr),
                    None => env.problem(
                        "LOG_INGESTION_TRUSTED_PROXIES",
                        format_args!(
                            "must be addresses or CIDR networks (got {})",
                            crate::ingest::client_text::quoted(item)
                        ),
                    ),
                }
            }
        }
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

    #[test]
    fn networks_contain_their_addresses_only() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host = Cidr::parse("::1").unwrap();
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("example.com").is_none());
    }

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
