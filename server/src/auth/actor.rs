//! Who is acting: a person signed in (or come through the SSO proxy) with a role, or a
//! script holding an admin API key (always `admin`). Every read and change route finds
//! the [`Actor`] in the request's extensions, put there by the middleware that admitted
//! the request; changes are refused below the role they need and audited under
//! [`Actor::label`].

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// What a person may do. Ordered: each role may do everything the one before may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads logs, errors, alerts and saved searches.
    Viewer,
    /// Also changes error statuses, alert rules and channels, and saved searches.
    Editor,
    /// Also manages users and reads the audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of `viewer`, `editor`, `admin`.
#[derive(Debug, thiserror::Error)]
#[error("role must be viewer, editor or admin")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            _ => Err(UnknownRole),
        }
    }
}

/// The one acting on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person: the `users` row.
    User { id: i64, email: String, role: Role },
    /// A script with an admin API key, known by the key's fingerprint.
    AdminKey { fingerprint: String },
}

impl Actor {
    pub fn role(&self) -> Role {
        match self {
            Actor::User { role, .. } => *role,
            Actor::AdminKey { .. } => Role::Admin,
        }
    }

    /// The person's `users.id`, if a person.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::AdminKey { .. } => None,
        }
    }

    /// How the audit log and owners name this actor: `user:<email>` or `key:<fingerprint>`.
    pub fn label(&self) -> String {
        match self {
            Actor::User { email, .. } => format!("user:{email}"),
            Actor::AdminKey { fingerprint } => format!("key:{fingerprint}"),
        }
    }

    /// `Ok` when this actor's role is at least `needed`, else 403.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role() >= needed {
            Ok(())
        } else {
            Err(ApiError::Forbidden { needed })
        }
    }
}

/// Handlers take `actor: Actor`; a route without the admitting middleware answers 401.
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(ApiError::MissingApiKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parsed() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        for role in [Role::Viewer, Role::Editor, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn a_viewer_may_not_edit_and_a_key_is_admin() {
        let viewer = Actor::User {
            id: 1,
            email: "ann@example.com".into(),
            role: Role::Viewer,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert!(viewer.require(Role::Editor).is_err());
        assert_eq!(viewer.label(), "user:ann@example.com");
        let key = Actor::AdminKey {
            fingerprint: "abcd".into(),
        };
        assert!(key.require(Role::Admin).is_ok());
        assert_eq!(key.label(), "key:abcd");
    }
}
