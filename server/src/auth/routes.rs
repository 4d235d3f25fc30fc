//! The people routes: the session API (signing in is the one route open to everyone),
//! the users API and the audit log, the last two behind the admitting middleware, which
//! lets admins only through (`admission::needed_role`).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch};
use axum::{middleware, Router};

use super::admission::SignIn;
use super::{audit_api, session_api, users_api};
use crate::read::auth::require_admin_key;
use crate::read::AdminKeys;

pub fn router<S>(sign_in: Arc<SignIn>, admin_keys: AdminKeys) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let open = Router::new().route("/api/v1/session", axum::routing::post(session_api::sign_in));
    let admitted = Router::new()
        .route(
            "/api/v1/session",
            get(session_api::show).delete(session_api::sign_out),
        )
        .route("/api/v1/sessions", delete(session_api::sign_out_everywhere))
        .route("/api/v1/users", get(users_api::list).post(users_api::add))
        .route(
            "/api/v1/users/{id}",
            patch(users_api::change).delete(users_api::remove),
        )
        .route("/api/v1/audit", get(audit_api::list))
        .layer(DefaultBodyLimit::max(users_api::MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(
            Arc::new(admin_keys),
            require_admin_key,
        ));
    open.merge(admitted).with_state(sign_in)
}
