//! Saving a job's children: each must be a live job the caller may see (else 404, as
//! for any job they may not see), and together they must not close a cycle (else 400
//! naming it). Runs inside the caller's transaction, under the job-graph lock.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::models::ChildBody;
use jobcenter_sql::job_children::{self, Child};
use jobcenter_sql::jobs::{self, Including};
use jobcenter_sql::GenericClient;
use uuid::Uuid;

/// More children than this on one job is refused.
pub const MAX_CHILDREN: usize = 32;

/// Replaces the children of `job_id` with `children`, checked.
pub async fn save(
    c: &impl GenericClient,
    caller: &Caller,
    job_id: Uuid,
    children: Vec<ChildBody>,
) -> Result<(), ApiError> {
    if children.len() > MAX_CHILDREN {
        return Err(ApiError::invalid(
            "children",
            format!("at most {MAX_CHILDREN} children"),
        ));
    }
    let children: Vec<Child> = children.into_iter().map(Into::into).collect();
    for child in &children {
        jobs::get(c, child.job_id, caller.owner_scope(), Including::Live)
            .await?
            .ok_or(ApiError::NotFound("child job"))?;
    }
    job_children::lock_graph(c).await?;
    let ids: Vec<Uuid> = children.iter().map(|child| child.job_id).collect();
    if let Some(cycle) = job_children::find_cycle(c, job_id, &ids).await? {
        return Err(ApiError::invalid(
            "children",
            format!(
                "would close a cycle: {}",
                describe(c, caller, &cycle).await?
            ),
        ));
    }
    job_children::replace(c, job_id, &children).await?;
    Ok(())
}

/// `"build" → "test" → "build"`: names of the jobs the caller may see, ids of the others.
async fn describe(
    c: &impl GenericClient,
    caller: &Caller,
    path: &[Uuid],
) -> Result<String, ApiError> {
    let mut names = Vec::with_capacity(path.len());
    for id in path {
        let job = jobs::get(c, *id, caller.owner_scope(), Including::Deleted).await?;
        names.push(match job {
            Some(job) => format!("{:?}", job.fields.name),
            None => id.to_string(),
        });
    }
    Ok(names.join(" → "))
}
