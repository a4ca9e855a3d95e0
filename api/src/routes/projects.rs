//! Projects: a developer's own namespace of jobs, config and artifacts, and the worker
//! groups an admin allows its jobs to use.

use crate::auth::Caller;
use crate::error::{ApiError, Problem};
use crate::extract::JsonBody;
use crate::models::{CreateProject, Page, PageQuery, ProjectResponse, UpdateProject};
use crate::routes::{audit, db, project_or_404};
use crate::state::AppState;
use actix_web::{delete, get, patch, post, web, HttpResponse};
use jobcenter_sql::projects::{self, NewProject, ProjectPatch};
use jobcenter_sql::states::Role;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

const MAX_CONFIG_ENTRIES: usize = 256;
/// Most worker groups allowed for one project.
const MAX_WORKER_GROUPS: usize = 64;

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err(ApiError::invalid(
            "name",
            "must be 1 to 128 characters, not blank",
        ));
    }
    Ok(())
}

fn config_value(config: &BTreeMap<String, String>) -> Result<Value, ApiError> {
    if config.len() > MAX_CONFIG_ENTRIES {
        return Err(ApiError::invalid(
            "config",
            format!("at most {MAX_CONFIG_ENTRIES} entries"),
        ));
    }
    jobcenter_core::target::validate_env(config)
        .map_err(|e| ApiError::invalid("config", e.reason))?;
    Ok(json!(config))
}

/// The groups an admin allows, checked and normalized: sorted, each once, without
/// `default` (always allowed). Anyone but an admin is refused (403).
fn worker_groups(
    caller: &Caller,
    groups: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(groups) = groups else {
        return Ok(None);
    };
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden_value(
            "worker_groups",
            "only admins allow worker groups for a project",
        ));
    }
    if groups.len() > MAX_WORKER_GROUPS {
        return Err(ApiError::invalid(
            "worker_groups",
            format!("at most {MAX_WORKER_GROUPS} groups"),
        ));
    }
    if let Some(bad) = groups
        .iter()
        .position(|g| !crate::job_fields::valid_group_name(g))
    {
        return Err(ApiError::invalid(
            format!("worker_groups[{bad}]"),
            "must be 1 to 64 of [A-Za-z0-9._-]",
        ));
    }
    let mut groups: Vec<String> = groups.into_iter().filter(|g| g != "default").collect();
    groups.sort();
    groups.dedup();
    Ok(Some(groups))
}

/// Refuses to take away a group that live jobs of the project still use (409): they
/// would keep routing runs to it. Runs in the transaction that changed the groups.
async fn check_groups_in_use(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<(), ApiError> {
    let in_use = projects::jobs_outside_groups(tx, id).await?;
    if in_use.is_empty() {
        return Ok(());
    }
    let uses: Vec<String> = in_use
        .iter()
        .map(|(group, jobs)| format!("`{group}` ({jobs} job(s))"))
        .collect();
    Err(ApiError::Conflict(format!(
        "worker_groups: live jobs of the project still use {}; move them to another group \
         or delete them first",
        uses.join(", ")
    )))
}

/// Only admins may choose or change an owner.
async fn check_owner_change(
    state: &AppState,
    caller: &Caller,
    owner_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let Some(owner_id) = owner_id else {
        return Ok(());
    };
    if caller.role != Role::Admin && owner_id != caller.user_id {
        return Err(ApiError::Forbidden("only admins set a project's owner"));
    }
    match jobcenter_sql::users::by_id(&db(state).await?, owner_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound("owner (owner_id)")),
    }
}

#[utoipa::path(
    tag = "projects", security(("bearer" = [])), request_body = CreateProject,
    responses(
        (status = 201, body = ProjectResponse),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "owner_id names no user"),
    )
)]
#[post("/api/v1/projects")]
pub async fn create_project(
    state: web::Data<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    validate_name(&body.name)?;
    let config = config_value(&body.config)?;
    check_owner_change(&state, &caller, body.owner_id).await?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let project = projects::insert(
        &tx,
        &NewProject {
            owner_id: body.owner_id.unwrap_or(caller.user_id),
            name: &body.name,
            description: &body.description,
            config: &config,
        },
    )
    .await?;
    let subject = format!("project:{}", project.id);
    audit(&tx, &caller, "project.create", &subject, &json!({})).await?;
    tx.commit().await?;
    Ok(HttpResponse::Created().json(ProjectResponse::from(project)))
}

#[utoipa::path(
    tag = "projects", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<ProjectResponse>))
)]
#[get("/api/v1/projects")]
pub async fn list_projects(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = query.parse()?;
    let rows = projects::list(
        &db(&state).await?,
        caller.owner_scope(),
        request.before,
        request.limit,
    )
    .await?;
    Ok(request.page(rows, |p| (p.created_at, p.id), ProjectResponse::from))
}

#[utoipa::path(
    tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = ProjectResponse))
)]
#[get("/api/v1/projects/{id}")]
pub async fn get_project(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let project = project_or_404(&db(&state).await?, &caller, *id).await?;
    Ok(HttpResponse::Ok().json(ProjectResponse::from(project)))
}

#[utoipa::path(
    tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UpdateProject,
    responses(
        (status = 200, body = ProjectResponse),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "owner_id or worker_groups set by a developer"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "worker_groups takes away a group that live jobs use"),
    )
)]
#[patch("/api/v1/projects/{id}")]
pub async fn update_project(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    JsonBody(body): JsonBody<UpdateProject>,
) -> Result<HttpResponse, ApiError> {
    if let Some(name) = &body.name {
        validate_name(name)?;
    }
    let config = body.config.as_ref().map(config_value).transpose()?;
    let groups = worker_groups(&caller, body.worker_groups)?;
    check_owner_change(&state, &caller, body.owner_id).await?;
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    let patch = ProjectPatch {
        name: body.name.as_deref(),
        description: body.description.as_deref(),
        config: config.as_ref(),
        owner_id: body.owner_id,
        worker_groups: groups.as_deref(),
    };
    let project = projects::update(&tx, *id, caller.owner_scope(), &patch)
        .await?
        .ok_or(ApiError::NotFound("project"))?;
    if groups.is_some() {
        check_groups_in_use(&tx, project.id).await?;
    }
    let subject = format!("project:{}", project.id);
    let mut detail = json!({});
    if let Some(owner_id) = body.owner_id {
        detail["owner_id"] = json!(owner_id);
    }
    if let Some(groups) = &groups {
        detail["worker_groups"] = json!(groups);
    }
    audit(&tx, &caller, "project.update", &subject, &detail).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(ProjectResponse::from(project)))
}

/// Deletes an empty project; one that still has jobs or artifacts (even deleted ones,
/// which are kept for restore and history) answers 409.
#[utoipa::path(
    tag = "projects", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 204),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/api/v1/projects/{id}")]
pub async fn delete_project(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut client = db(&state).await?;
    let tx = client.transaction().await?;
    project_or_404(&tx, &caller, *id).await?;
    let dependents = projects::dependents(&tx, *id).await?;
    if dependents > 0 {
        return Err(ApiError::Conflict(format!(
            "the project still has {dependents} job(s) or artifact version(s), deleted ones included"
        )));
    }
    projects::delete(&tx, *id, caller.owner_scope()).await?;
    audit(
        &tx,
        &caller,
        "project.delete",
        &format!("project:{id}"),
        &json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}
