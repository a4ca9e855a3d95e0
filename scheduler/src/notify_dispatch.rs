//! Sending notifications from the `notification_deliveries` outbox, while leading.
//!
//! A claim is one committed statement that counts the attempt and leases the row for
//! the timeout plus a margin; the POST happens with no transaction open; then the
//! outcome is recorded: delivered (2xx), retried after an exponential backoff, or given
//! up after `JOBCENTER_NOTIFY_MAX_ATTEMPTS`. A crash between sending and recording
//! leaves the lease to expire and the same delivery (same id) is sent again: delivery
//! is at least once, and receivers dedupe on `X-Jobcenter-Delivery`.

use crate::notify_http::Client;
use crate::notify_message;
use jobcenter_core::config::NotifyConfig;
use jobcenter_sql::notification_deliveries::{self, Claimed};
use jobcenter_sql::Pool;
use std::time::Duration;
use tokio::task::JoinSet;

/// Deliveries in flight at once.
const CONCURRENCY: usize = 16;
/// How often the outbox is looked at.
const POLL: Duration = Duration::from_millis(200);
/// Lease beyond the request timeout before a claimed delivery may be sent again.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Sends due deliveries, a task of the term: aborted with its requests in flight when
/// the term ends (a delivery's lease then expires and the next leader sends it).
pub(crate) async fn run(pool: Pool, notify: NotifyConfig, public_url: String, allow_private: bool) {
    let client = Client::new(allow_private, notify.timeout);
    let lease = notify.timeout + LEASE_MARGIN;
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = CONCURRENCY - in_flight.len();
        if free > 0 {
            match claim(&pool, free, lease).await {
                Ok(claimed) => {
                    for delivery in claimed {
                        let job = deliver(
                            pool.clone(),
                            notify.clone(),
                            public_url.clone(),
                            client.clone(),
                            delivery,
                        );
                        in_flight.spawn(job);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming notifications failed; retrying"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn claim(pool: &Pool, free: usize, lease: Duration) -> Result<Vec<Claimed>, crate::Error> {
    let client = pool.get().await?;
    Ok(notification_deliveries::claim_due(&client, free as i64, lease).await?)
}

/// Sends one delivery and records what happened.
async fn deliver(
    pool: Pool,
    notify: NotifyConfig,
    public_url: String,
    client: Client,
    delivery: Claimed,
) {
    let body = notify_message::body(&delivery, &public_url);
    let headers = [
        ("x-jobcenter-delivery", delivery.id.to_string()),
        ("x-jobcenter-event", delivery.event.clone()),
        (
            "x-jobcenter-signature",
            notify_message::signature(&delivery.endpoint.secret, &body),
        ),
    ];
    let answer = client.post(&delivery.endpoint.url, &headers, body).await;
    if let Err(e) = record(&pool, &notify, &delivery, answer).await {
        // The lease expires and the delivery is sent again (same id).
        tracing::warn!(delivery = %delivery.id, error = %e, "cannot record a notification attempt");
    }
}

async fn record(
    pool: &Pool,
    notify: &NotifyConfig,
    delivery: &Claimed,
    answer: Result<u16, String>,
) -> Result<(), crate::Error> {
    let client = pool.get().await?;
    let (status, error) = match answer {
        Ok(status) if (200..300).contains(&status) => {
            notification_deliveries::record_delivered(&client, delivery.id, i32::from(status))
                .await?;
            tracing::info!(delivery = %delivery.id, run = %delivery.run_id, event = %delivery.event,
                attempt = delivery.attempt, "notification delivered");
            return Ok(());
        }
        Ok(status) => (Some(i32::from(status)), format!("answered {status}")),
        Err(e) => (None, e),
    };
    let retry_in = (delivery.attempt < notify.max_attempts).then(|| {
        jobcenter_core::retry::backoff(
            delivery.attempt,
            notify.backoff_base,
            notify.backoff_max,
            rand::random::<f64>(),
        )
    });
    notification_deliveries::record_failed(
        &client,
        delivery.id,
        delivery.attempt,
        status,
        &error,
        retry_in,
    )
    .await?;
    match retry_in {
        Some(wait) => tracing::info!(delivery = %delivery.id, attempt = delivery.attempt, %error,
            retry_in_ms = wait.as_millis() as u64, "notification attempt failed"),
        None => tracing::warn!(delivery = %delivery.id, attempt = delivery.attempt, %error,
            "notification given up"),
    }
    Ok(())
}
