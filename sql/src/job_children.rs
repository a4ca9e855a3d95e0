//! The `job_children` table: which jobs a job's outcome triggers.
//!
//! The graph of jobs and children stays acyclic: every change of a job's children takes
//! one transaction-scoped lock for the whole graph, then looks for a path back to the
//! job ([`find_cycle`]) before writing.

use crate::{Error, GenericClient};
use uuid::Uuid;

statements! {
    /// Serializes changes to the job graph until the transaction ends.
    pub(crate) const LOCK_GRAPH: Statement =
        "SELECT pg_advisory_xact_lock(hashtextextended('jobcenter job graph', 0))";
    /// The children of job `$1`, ordered.
    pub(crate) const LIST: Statement =
        "SELECT child_job_id, condition::text AS condition FROM job_children WHERE job_id = $1
         ORDER BY condition, child_job_id";
    /// Deletes the children of job `$1`.
    pub(crate) const DELETE: Statement = "DELETE FROM job_children WHERE job_id = $1";
    /// Gives job `$1` the children `$2` with conditions `$3`.
    pub(crate) const INSERT: Statement =
        "INSERT INTO job_children (job_id, child_job_id, condition)
         SELECT $1, child, condition::child_condition
         FROM unnest($2::uuid[], $3::text[]) AS t (child, condition)
         ON CONFLICT DO NOTHING";
    /// The edges reachable from jobs `$2`, leaving job `$1` (see [`find_cycle`]).
    pub(crate) const REACHABLE_EDGES: Statement = "WITH RECURSIVE reach (job_id) AS (
               SELECT unnest($2::uuid[])
               UNION
               SELECT e.child_job_id FROM reach r JOIN job_children e ON e.job_id = r.job_id
               WHERE r.job_id <> $1
             )
             SELECT e.job_id, e.child_job_id FROM job_children e
             WHERE e.job_id IN (SELECT job_id FROM reach) AND e.job_id <> $1";
    /// The live, enabled children that a run of job `$1` ending in state `$2` triggers.
    pub(crate) const TRIGGERED_BY: Statement = "SELECT DISTINCT j.id FROM job_children e
             JOIN jobs j ON j.id = e.child_job_id
             WHERE e.job_id = $1 AND j.deleted_at IS NULL AND j.enabled
               AND CASE e.condition
                     WHEN 'on_success' THEN $2 = 'succeeded'
                     WHEN 'on_failure' THEN $2 IN ('failed', 'timed_out')
                     ELSE $2 IN ('succeeded', 'failed', 'timed_out')
                   END";
}

/// When a child runs, relative to its parent run's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// The parent succeeded.
    OnSuccess,
    /// The parent failed or timed out.
    OnFailure,
    /// The parent ended by itself in any way (succeeded, failed, timed out); a
    /// cancelled or skipped run triggers no child.
    OnFinish,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::OnSuccess => "on_success",
            Condition::OnFailure => "on_failure",
            Condition::OnFinish => "on_finish",
        }
    }

    pub fn parse(text: &str) -> Option<Condition> {
        [
            Condition::OnSuccess,
            Condition::OnFailure,
            Condition::OnFinish,
        ]
        .into_iter()
        .find(|c| c.as_str() == text)
    }
}

/// One edge: `job_id` runs when a run of the parent ends as `condition` says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Child {
    pub job_id: Uuid,
    pub condition: Condition,
}

/// Serializes changes to the job graph until the transaction ends.
pub async fn lock_graph(c: &impl GenericClient) -> Result<(), Error> {
    let stmt = c.prepare_cached(LOCK_GRAPH).await?;
    c.execute(&stmt, &[]).await?;
    Ok(())
}

/// The children of `job_id`, ordered.
pub async fn list(c: &impl GenericClient, job_id: Uuid) -> Result<Vec<Child>, Error> {
    let stmt = c.prepare_cached(LIST).await?;
    c.query(&stmt, &[&job_id])
        .await?
        .iter()
        .map(|row| {
            let text: String = row.try_get("condition")?;
            Ok(Child {
                job_id: row.try_get("child_job_id")?,
                condition: Condition::parse(&text).ok_or(Error::Corrupt {
                    column: "job_children.condition",
                    reason: text,
                })?,
            })
        })
        .collect()
}

/// Replaces the children of `job_id`. Call [`lock_graph`] and [`find_cycle`] first.
pub async fn replace(
    c: &impl GenericClient,
    job_id: Uuid,
    children: &[Child],
) -> Result<(), Error> {
    let delete = c.prepare_cached(DELETE).await?;
    c.execute(&delete, &[&job_id]).await?;
    let (ids, conditions): (Vec<Uuid>, Vec<&str>) = children
        .iter()
        .map(|child| (child.job_id, child.condition.as_str()))
        .unzip();
    let insert = c.prepare_cached(INSERT).await?;
    c.execute(&insert, &[&job_id, &ids, &conditions]).await?;
    Ok(())
}

/// A path `job_id → … → job_id` that giving `job_id` the children `children` would
/// close, through the edges of the other jobs (deleted ones included, so that restoring
/// one cannot close a cycle either). None: no cycle.
///
/// The database collects the edges reachable from `children` (a set, so diamonds do not
/// multiply); the shortest path back is then found by a breadth-first search here.
pub async fn find_cycle(
    c: &impl GenericClient,
    job_id: Uuid,
    children: &[Uuid],
) -> Result<Option<Vec<Uuid>>, Error> {
    let stmt = c.prepare_cached(REACHABLE_EDGES).await?;
    let edges: Vec<(Uuid, Uuid)> = c
        .query(&stmt, &[&job_id, &children])
        .await?
        .iter()
        .map(|row| Ok((row.try_get("job_id")?, row.try_get("child_job_id")?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    Ok(shortest_path_back(job_id, children, &edges))
}

/// Breadth-first from `children` along `edges` to `job_id`: `[job_id, child, …, job_id]`.
fn shortest_path_back(
    job_id: Uuid,
    children: &[Uuid],
    edges: &[(Uuid, Uuid)],
) -> Option<Vec<Uuid>> {
    use std::collections::{HashMap, VecDeque};
    let mut came_from: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    let mut queue = VecDeque::new();
    for &child in children {
        if came_from.insert(child, None).is_none() {
            queue.push_back(child);
        }
    }
    while let Some(at) = queue.pop_front() {
        if at == job_id {
            let mut path = vec![at];
            let mut step = came_from[&at];
            while let Some(previous) = step {
                path.push(previous);
                step = came_from[&previous];
            }
            path.push(job_id);
            path.reverse();
            return Some(path);
        }
        for &(_, next) in edges.iter().filter(|(from, _)| *from == at) {
            if let std::collections::hash_map::Entry::Vacant(slot) = came_from.entry(next) {
                slot.insert(Some(at));
                queue.push_back(next);
            }
        }
    }
    None
}

/// The live, enabled jobs that a run of `job_id` ending in `state` triggers, each once.
pub async fn triggered_by(
    c: &impl GenericClient,
    job_id: Uuid,
    state: crate::states::RunState,
) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(TRIGGERED_BY).await?;
    Ok(c.query(&stmt, &[&job_id, &state.as_str()])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::shortest_path_back;
    use uuid::Uuid;

    #[test]
    fn finds_the_shortest_path_back_and_none_without_one() {
        let [a, b, c, d] = [(); 4].map(|_| Uuid::new_v4());
        // a would get child b; from b, a is one step away (b → a) or three (b → c → d → a).
        let edges = [(b, c), (c, d), (d, a), (b, a)];
        assert_eq!(shortest_path_back(a, &[b], &edges), Some(vec![a, b, a]));
        assert_eq!(shortest_path_back(a, &[a], &[]), Some(vec![a, a]));
        assert_eq!(shortest_path_back(a, &[c], &edges), Some(vec![a, c, d, a]));
        assert_eq!(shortest_path_back(a, &[b], &[(b, c), (c, d)]), None);
    }
}
