//! The OpenAPI document, generated from the handlers' annotations.

use crate::routes::{
    artifacts, audit, auth, backfill, health, hooks, jobs, logs, metrics, notifications, projects,
    runs, schedules, secrets, tokens, users, webhooks, workers,
};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The one list of the API's operations. Actix serves exactly these ([`register`]) and
/// the OpenAPI document describes exactly these ([`ApiDoc`]), so the route table that
/// the 405 fallback and the authorization matrix read is the routes actix serves.
macro_rules! api_routes {
    ($($module:ident :: $handler:ident),* $(,)?) => {
        /// Registers every operation of the list with actix.
        pub fn register(cfg: &mut actix_web::web::ServiceConfig) {
            $(cfg.service($module::$handler);)*
        }

        #[derive(OpenApi)]
        #[openapi(
            info(title = "jobcenter", description = "A self-hosted function scheduler."),
            paths($($module::$handler),*),
            modifiers(&SecuritySchemes, &CommonResponses),
        )]
        pub struct ApiDoc;
    };
}

api_routes!(
    auth::login,
    auth::me,
    projects::create_project,
    projects::list_projects,
    projects::get_project,
    projects::update_project,
    projects::delete_project,
    jobs::create_job,
    jobs::list_jobs,
    jobs::get_job,
    jobs::update_job,
    jobs::disable_job,
    jobs::enable_job,
    jobs::delete_job,
    jobs::restore_job,
    runs::trigger_run,
    runs::list_job_runs,
    runs::get_run,
    runs::list_runs,
    logs::get_run_logs,
    schedules::next_fires,
    schedules::preview_schedule,
    backfill::backfill_job,
    artifacts::upload_artifact,
    artifacts::list_artifacts,
    artifacts::list_versions,
    artifacts::download_artifact,
    artifacts::delete_version,
    artifacts::delete_artifact,
    secrets::set_secret,
    secrets::list_secrets,
    secrets::delete_secret,
    health::healthz,
    health::readyz,
    metrics::prometheus_metrics,
    auth::change_password,
    users::list_users,
    users::create_user,
    users::get_user,
    users::update_user,
    users::delete_user,
    tokens::create_token,
    tokens::list_tokens,
    tokens::revoke_token,
    tokens::list_user_tokens,
    webhooks::create_webhook,
    webhooks::list_webhooks,
    webhooks::delete_webhook,
    hooks::receive,
    audit::list_audit,
    runs::cancel_run,
    runs::retry_run,
    workers::list_workers,
    workers::drain_worker,
    workers::resume_worker,
    notifications::create_project_notification,
    notifications::list_project_notifications,
    notifications::create_job_notification,
    notifications::list_job_notifications,
    notifications::delete_notification,
    notifications::list_deliveries,
);

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let schemes = [
            (
                "bearer",
                bearer("JWT", "An access token from POST /api/v1/auth/login."),
            ),
            (
                "api_token",
                bearer(
                    "jc_ API token",
                    "A long-lived API token from POST /api/v1/tokens.",
                ),
            ),
            (
                "github_signature",
                header(
                    "X-Hub-Signature-256",
                    "Webhook deliveries: sha256=<hex HMAC-SHA256 of the raw body, keyed by the webhook's secret>",
                ),
            ),
            (
                "gitlab_token",
                header("X-Gitlab-Token", "Webhook deliveries: the webhook's secret"),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
        // Wherever a login token is accepted, an API token is too.
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let Some(security) = operation.security.as_mut() else {
                    continue;
                };
                let takes_bearer = serde_json::to_value(&*security)
                    .is_ok_and(|v| v.to_string().contains("\"bearer\""));
                if takes_bearer {
                    security.push(SecurityRequirement::new("api_token", Vec::<String>::new()));
                }
            }
        }
    }
}

/// The operations of a path, of the methods the API uses.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .flatten()
}

fn bearer(format: &str, description: &str) -> SecurityScheme {
    SecurityScheme::Http(
        HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format(format)
            .description(Some(description))
            .build(),
    )
}

fn header(name: &str, description: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        name,
        description,
    )))
}

/// Responses every operation can give, documented once here rather than on each handler:
/// 400 (a malformed parameter or body), 401 (secured operations), 404 (a path with an
/// id), 503 (the database is unavailable; everything but `/healthz`).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for operation in operations_mut(item) {
                add_common_responses(path, operation);
            }
        }
    }
}

fn add_common_responses(path: &str, operation: &mut Operation) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_input = operation.request_body.is_some()
        || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut common = Vec::new();
    if has_input {
        common.push((
            "400",
            "Malformed or invalid request; `field` names the culprit",
        ));
    }
    if secured {
        common.push(("401", "Missing, invalid or expired credentials"));
    }
    if path.contains('{') {
        common.push(("404", "Not found, or not yours"));
    }
    if path != "/healthz" {
        common.push((
            "503",
            "The database is unavailable; retry after `Retry-After` seconds",
        ));
    }
    // OpenAPI requires a description on every response: default to the status's reason.
    for (status, response) in operation.responses.responses.iter_mut() {
        if let RefOr::T(response) = response {
            if response.description.is_empty() {
                response.description = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|code| actix_web::http::StatusCode::from_u16(code).ok())
                    .and_then(|code| code.canonical_reason())
                    .unwrap_or("Response")
                    .to_string();
            }
        }
    }
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem_response(description)));
    }
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// Every documented (method, path template) pair, e.g. ("GET", "/api/v1/runs/{id}").
pub fn route_table() -> Vec<(String, String)> {
    let doc = ApiDoc::openapi();
    let mut routes = Vec::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in methods {
            if operation.is_some() {
                routes.push((method.to_string(), path.clone()));
            }
        }
    }
    routes
}

/// The document as pretty JSON, exactly as committed in `openapi/openapi.json`.
pub fn openapi_json() -> &'static str {
    // Built once per process and shared by every server worker and route.
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        json.push('\n');
        json
    })
}
