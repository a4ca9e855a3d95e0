//! The API process's one LISTEN connection: run events (a run finished, new log lines)
//! for the requests waiting on them, and user changes for the auth cache.
//!
//! One connection, not one per consumer: PostgreSQL wakes every listening backend of the
//! database on each notification, whatever its channel, so each extra listener costs a
//! backend wake-up on every trigger and every claim (BENCHMARKS.md).

use crate::auth_cache::AuthCache;
use crate::run_events::RunEvents;
use jobcenter_sql::listen::{listen_forever, Channel};
use std::sync::Arc;

/// Starts the listener task; each event goes to both consumers, which pick their channels.
pub fn spawn(database_url: String, events: RunEvents, auth_cache: Arc<AuthCache>) {
    tokio::spawn(async move {
        listen_forever(
            database_url,
            &[
                Channel::RunFinished,
                Channel::RunLogs,
                Channel::UsersChanged,
            ],
            |event| {
                events.on_event(&event);
                auth_cache.on_event(&event);
            },
        )
        .await
    });
}
