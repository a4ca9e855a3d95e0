//! What every handler shares: the database pool and the token keys.

use crate::auth::JwtKeys;
use crate::run_events::RunEvents;
use jobcenter_core::artifacts::ArtifactStore;
use jobcenter_core::config::LoginThrottle;
use jobcenter_core::metrics::Metrics;
use jobcenter_sql::Pool;
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    pub pool: Pool,
    pub jwt: JwtKeys,
    pub jwt_ttl: Duration,
    /// A valid argon2id hash of a random password, verified against when a login names an
    /// unknown user, so that a failed login takes the same time whether the user exists.
    pub dummy_password_hash: String,
    /// Run finished / new logs notifications, for waiting requests.
    pub events: RunEvents,
    /// Enabled users' roles, remembered for a few seconds (see `auth_cache`).
    pub auth_cache: Arc<crate::auth_cache::AuthCache>,
    pub metrics: Arc<Metrics>,
    pub store: Arc<ArtifactStore>,
    pub artifact_max_bytes: u64,
    /// Base URL clients reach the API at (webhook URLs are built from it).
    pub public_url: String,
    pub login: LoginThrottle,
    pub webhook_max_body_bytes: usize,
    /// A worker whose heartbeat is older than this is shown as not alive.
    pub worker_lease: Duration,
    /// When set, `/metrics` requires it as a bearer token.
    pub metrics_token: Option<jobcenter_core::config::Secret>,
}
