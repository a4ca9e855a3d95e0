//! Run events (finished, new logs) from any node, fanned out to the requests waiting on
//! them (synchronous invoke, live logs), as heard by the API's one LISTEN connection
//! (`listener`); waiters never hold a pooled connection while they wait, and re-check the
//! database on a timer too, so a missed notification only costs latency.

use jobcenter_sql::listen::Event;
use jobcenter_sql::{RUN_FINISHED_CHANNEL, RUN_LOGS_CHANNEL};
use tokio::sync::broadcast;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEvent {
    Finished(Uuid),
    Logs(Uuid),
    /// The listener (re)connected: waiters should re-read the database.
    Resync,
}

#[derive(Clone)]
pub struct RunEvents {
    sender: broadcast::Sender<RunEvent>,
}

impl RunEvents {
    pub fn new() -> RunEvents {
        let (sender, _) = broadcast::channel(4096);
        RunEvents { sender }
    }

    /// Hands a listener event to the waiters (see `listener`).
    pub fn on_event(&self, event: &Event<'_>) {
        let event = match *event {
            Event::Listening => Some(RunEvent::Resync),
            // Waiters re-check on their timer; `Listening` follows a reconnect.
            Event::Lost => None,
            Event::Notification { channel, payload } => {
                Uuid::parse_str(payload).ok().and_then(|id| match channel {
                    RUN_FINISHED_CHANNEL => Some(RunEvent::Finished(id)),
                    RUN_LOGS_CHANNEL => Some(RunEvent::Logs(id)),
                    _ => None,
                })
            }
        };
        if let Some(event) = event {
            // No receiver is not an error: nobody is waiting right now.
            let _ = self.sender.send(event);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.sender.subscribe()
    }
}
