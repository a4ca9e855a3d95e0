//! End-to-end tests: the real `jobcenter` processes against a real Postgres, driven
//! over HTTP as a user or a CI system would. Each test has its own database.

mod accounts;
mod artifacts;
mod authz_matrix;
mod bad_input;
mod binaries;
mod catch_up;
mod chaos;
mod execution;
mod faults;
mod group_commit;
mod harness;
mod hostile_bundles;
mod http_targets;
mod isolation;
mod job_lifecycle;
mod leader_hang;
mod leader_network;
mod leadership;
mod migrations;
mod notifications;
mod observe;
mod outage;
mod pipelines;
mod pooler;
mod private_postgres;
mod retention;
mod runs;
mod sandbox;
mod schedule_policies;
mod schedules;
mod sessions;
mod sync_invoke;
mod webhooks;
mod worker_groups;
mod workers;
