//! LISTEN for new runs of this worker's group, so a triggered run starts within
//! milliseconds, and for cancel requests, so a cancelled run is killed at once. The
//! claim loop also polls and the heartbeat also sees cancel flags, so a lost connection
//! only costs latency. A run claimable only from a later instant (a schedule tick fired
//! ahead, a jittered tick) is announced as `group@unix_ms`: the worker wakes at that
//! instant rather than at once.

use crate::control::{Registry, Stop};
use futures_util::{stream, StreamExt};
use jobcenter_sql::listen::Channel;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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
    notify: &Arc<Notify>,
    registry: &Registry,
) -> Result<(), jobcenter_sql::Error> {
    let (client, mut connection) = jobcenter_sql::db::connect_direct_with_connection(url).await?;
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let mut listen = Box::pin(jobcenter_sql::listen::listen_to(
        &client,
        &[Channel::Runs, Channel::Cancel],
    ));
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
                    } else {
                        match wake_for(n.payload(), group) {
                            Wake::Now => notify.notify_one(),
                            Wake::At(at) => wake_at(notify, at),
                            Wake::NotOurs => {}
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}

/// What a notification on the runs channel asks of a worker of `group`.
#[derive(Debug, PartialEq)]
enum Wake {
    Now,
    At(SystemTime),
    NotOurs,
}

fn wake_for(payload: &str, group: &str) -> Wake {
    let (named, at) = match payload.split_once('@') {
        Some((named, ms)) => (named, ms.parse::<u64>().ok()),
        None => (payload, None),
    };
    match at {
        _ if named != group => Wake::NotOurs,
        Some(ms) => Wake::At(UNIX_EPOCH + Duration::from_millis(ms)),
        None => Wake::Now,
    }
}

/// Farthest ahead a wake-up is kept as a timer; later ones are left to the poll.
const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

/// Wakes the claim loop at `at` (at once if that has passed).
fn wake_at(notify: &Arc<Notify>, at: SystemTime) {
    match at.duration_since(SystemTime::now()) {
        Err(_) => notify.notify_one(),
        Ok(wait) if wait <= MAX_TIMER => {
            let notify = notify.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                notify.notify_one();
            });
        }
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_payload_wakes_its_group_now() {
        assert_eq!(wake_for("default", "default"), Wake::Now);
        assert_eq!(wake_for("other", "default"), Wake::NotOurs);
    }

    #[test]
    fn a_dated_payload_wakes_its_group_at_the_instant() {
        assert_eq!(
            wake_for("gpu@1700000000123", "gpu"),
            Wake::At(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(wake_for("gpu@1700000000123", "default"), Wake::NotOurs);
        // A malformed instant still wakes the group, at once.
        assert_eq!(wake_for("gpu@soon", "gpu"), Wake::Now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_wakes_the_claim_loop_at_the_instant_not_before() {
        let notify = Arc::new(Notify::new());
        wake_at(&notify, SystemTime::now() + Duration::from_secs(5));
        let early = tokio::time::timeout(Duration::from_secs(4), notify.notified()).await;
        assert!(early.is_err(), "woken before the instant");
        let on_time = tokio::time::timeout(Duration::from_secs(2), notify.notified()).await;
        assert!(on_time.is_ok(), "not woken at the instant");
        // An instant already past wakes at once.
        wake_at(&notify, SystemTime::now() - Duration::from_secs(1));
        let past = tokio::time::timeout(Duration::from_millis(1), notify.notified()).await;
        assert!(past.is_ok());
    }
}
