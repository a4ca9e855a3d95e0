//! The OpenAPI document, generated from the handlers' annotations.

use crate::routes::{auth, health, jobs, logs, metrics, projects, runs, schedules};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "jobcenter", description = "A self-hosted function scheduler."),
    paths(
        auth::login, auth::me,
        projects::create_project, projects::list_projects, projects::get_project,
        projects::update_project, projects::delete_project,
        jobs::create_job, jobs::list_jobs, jobs::get_job, jobs::update_job,
        jobs::disable_job, jobs::enable_job, jobs::delete_job, jobs::restore_job,
        runs::trigger_run, runs::list_job_runs, runs::get_run, runs::list_runs, logs::get_run_logs,
        schedules::next_fires, schedules::preview_schedule,
        health::healthz, health::readyz, metrics::prometheus_metrics,
    ),
    modifiers(&SecuritySchemes),
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}
