//! LISTEN for new runs of this worker's group, so a triggered run starts within
//! milliseconds, and for cancel requests, so a cancelled run is killed at once. The
//! claim loop also polls and the heartbeat also sees cancel flags, so a lost connection
//! only costs latency. A run claimable only from a later instant (a schedule tick fired
//! ahead, a jittered tick) is announced as `group@unix_ms`: the worker wakes at that
//! instant rather than at once.

use crate::control::{Registry, Stop};
use jobcenter_sql::listen::{self, Channel, Event};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use uuid::Uuid;

/// Keeps a LISTEN connection up forever ([`listen::listen_forever`]), waking `notify` on
/// each run queued for `group` and stopping held runs that are cancelled.
pub async fn listen_forever(url: String, group: String, notify: Arc<Notify>, registry: Registry) {
    let channels = [Channel::Runs, Channel::Cancel];
    listen::listen_forever(url, &channels, |event| match event {
        // Runs queued before LISTEN took effect are found by this claim.
        Event::Listening => notify.notify_one(),
        Event::Notification { channel, payload } if channel == jobcenter_sql::CANCEL_CHANNEL => {
            if let Ok(run_id) = payload.parse::<Uuid>() {
                registry.stop(run_id, Stop::Cancel);
            }
        }
        Event::Notification { payload, .. } => match wake_for(payload, &group) {
            Wake::Now => notify.notify_one(),
            Wake::At(at) => wake_at(&notify, at),
            Wake::NotOurs => {}
        },
        // The claim loop polls until LISTEN is back.
        Event::Lost => {}
    })
    .await
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
