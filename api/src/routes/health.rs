//! Liveness and readiness.

use crate::state::AppState;
use actix_web::{get, web, HttpResponse};

/// Alive: the process answers.
#[utoipa::path(tag = "operations", responses((status = 200, description = "alive")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready: the database answers, every migration is applied, the artifact store answers.
#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready"))
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ready = match state.pool.get().await {
        Ok(client) => jobcenter_sql::migrations_applied(&client).await,
        Err(e) => Err(e.into()),
    };
    if let (Ok(true), Err(e)) = (&ready, state.store.check().await) {
        tracing::warn!(error = %e, "readiness: artifact store unavailable");
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("artifact store unavailable");
    }
    match ready {
        Ok(true) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Ok(false) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("migrations pending"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain")
                .body("database unavailable")
        }
    }
}
