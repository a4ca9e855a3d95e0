//! LISTEN for new runs of this worker's group, so a triggered run starts within
//! milliseconds, and for cancel requests, so a cancelled run is killed at once. The
//! claim loop also polls and the heartbeat also sees cancel flags, so a lost connection
//! only costs latency.

use crate::control::{Registry, Stop};
use futures_util::{stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

/// Keeps a LISTEN connection up forever, waking `notify` on each run queued for `group`
/// and stopping held runs that are cancelled.
pub async fn listen_forever(url: String, group: String, notify: Arc<Notify>, registry: Registry) {
    let mut delay = Duration::from_millis(250);
    loop {
        match listen_once(&url, &group, &notify, &registry).await {
            Ok(()) => delay = Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %e, "run notifications interrupted; polling until reconnected");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        tokio::time::sleep(delay).await;
    }
}

async fn listen_once(
    url: &str,
    group: &str,
    notify: &Notify,
    registry: &Registry,
) -> Result<(), jobcenter_sql::Error> {
    let (client, mut connection) = jobcenter_sql::db::connect_direct_with_connection(url).await?;
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen_sql = format!(
        "LISTEN {}; LISTEN {}",
        jobcenter_sql::RUNS_CHANNEL,
        jobcenter_sql::CANCEL_CHANNEL
    );
    let mut listen = Box::pin(client.batch_execute(&listen_sql));
    let mut listening = false;
    // The connection must be polled for LISTEN to complete: drive both together.
    loop {
        tokio::select! {
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                // Runs queued before LISTEN took effect are found by this claim.
                notify.notify_one();
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if n.channel() == jobcenter_sql::CANCEL_CHANNEL {
                        if let Ok(run_id) = n.payload().parse::<Uuid>() {
                            registry.stop(run_id, Stop::Cancel);
                        }
                    } else if n.payload() == group {
                        notify.notify_one();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
