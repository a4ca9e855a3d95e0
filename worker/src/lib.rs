//! The worker: decides *how*. Claims queued runs of its group up to its capacity,
//! executes them, ships their logs while they run and records their outcome.
//!
//! Architecture invariant: no transaction is open while a run executes; a run's row is
//! only changed by a compare-and-set that the holding worker alone can win.

mod claim_loop;
mod command;
mod execute;
mod heartbeat;
mod log_shipper;
mod wakeup;

use jobcenter_core::config::Config;
use jobcenter_sql::Pool;
use std::path::PathBuf;
use std::time::Duration;
use uuid::Uuid;

pub use claim_loop::run;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] jobcenter_sql::Error),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<jobcenter_sql::PoolError> for Error {
    fn from(e: jobcenter_sql::PoolError) -> Self {
        Error::Db(e.into())
    }
}

impl From<jobcenter_sql::DbError> for Error {
    fn from(e: jobcenter_sql::DbError) -> Self {
        Error::Db(e.into())
    }
}

/// What every run executed by this worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub id: Uuid,
    pub pool: Pool,
    pub group: String,
    pub capacity: usize,
    pub workdir: PathBuf,
    pub limits: Limits,
}

/// Caps on what a run can hand back.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub result_bytes: usize,
    pub state_bytes: usize,
    pub log_bytes: usize,
    /// Grace between SIGTERM and SIGKILL when a run is timed out.
    pub kill_grace: Duration,
}

impl WorkerContext {
    pub fn new(config: &Config, pool: Pool) -> Self {
        WorkerContext {
            id: Uuid::new_v4(),
            pool,
            group: config.worker_group.clone(),
            capacity: config.worker_capacity,
            workdir: config.worker_workdir.clone(),
            limits: Limits {
                result_bytes: config.result_max_bytes,
                state_bytes: config.state_max_bytes,
                log_bytes: config.log_max_bytes,
                kill_grace: Duration::from_secs(5),
            },
        }
    }
}
