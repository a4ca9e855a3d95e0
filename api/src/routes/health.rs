//! Liveness and readiness.

use crate::state::AppState;
use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// Longest wait for the artifact store to answer a readiness or metrics probe.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Alive: the process answers.
#[utoipa::path(tag = "operations", responses((status = 200, description = "alive")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// What `/readyz` found.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready` (the database or its migrations).
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `up`, `down` or `migrations_pending`.
    #[schema(example = "up")]
    pub database: &'static str,
    /// `up` or `down`. Reported only: an unreachable store fails artifact operations
    /// (503) and nothing else, so it does not make the API unready.
    #[schema(example = "up")]
    pub artifact_store: &'static str,
}

/// Ready: the database answers and every migration is applied (200, else 503). The
/// artifact store's reachability is reported in the body and as the metric
/// `jobcenter_artifact_store_up`, but does not decide readiness: without it only
/// artifact operations fail (503), everything else keeps working.
#[utoipa::path(
    tag = "operations",
    responses(
        (status = 200, body = Readiness, description = "ready"),
        (status = 503, body = Readiness, description = "not ready"),
    )
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (ready, store_up) = tokio::join!(
        async {
            match state.pool.get().await {
                Ok(client) => jobcenter_sql::migrations_applied(&client).await,
                Err(e) => Err(e.into()),
            }
        },
        probe_store(&state)
    );
    let database = match ready {
        Ok(true) => "up",
        Ok(false) => "migrations_pending",
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            "down"
        }
    };
    let body = Readiness {
        status: if database == "up" {
            "ready"
        } else {
            "not_ready"
        },
        database,
        artifact_store: if store_up { "up" } else { "down" },
    };
    if database == "up" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether the artifact store answers (within [`STORE_PROBE_TIMEOUT`]); records the
/// answer in the `jobcenter_artifact_store_up` gauge.
pub async fn probe_store(state: &AppState) -> bool {
    let up = match tokio::time::timeout(STORE_PROBE_TIMEOUT, state.store.check()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "artifact store unavailable");
            false
        }
        Err(_) => {
            tracing::warn!("artifact store did not answer in time");
            false
        }
    };
    state.metrics.artifact_store_up.set(i64::from(up));
    up
}
