//! LISTEN on a dedicated connection, forever, reconnecting with backoff. Notifications
//! are handed to a callback; a lost connection is reported so callers can fall back to
//! polling or stop trusting what they remembered (a notification sent while
//! disconnected is not replayed).

use crate::db::connect_direct_with_connection;
use futures_util::{stream, StreamExt};
use std::time::Duration;
use tokio_postgres::AsyncMessage;

statements! {
    pub(crate) const LISTEN_RUNS: Statement = concat!("LISTEN ", runs_channel!());
    pub(crate) const LISTEN_CANCEL: Statement = concat!("LISTEN ", cancel_channel!());
    pub(crate) const LISTEN_RUN_FINISHED: Statement = concat!("LISTEN ", run_finished_channel!());
    pub(crate) const LISTEN_RUN_LOGS: Statement = concat!("LISTEN ", run_logs_channel!());
    pub(crate) const LISTEN_USERS_CHANGED: Statement =
        concat!("LISTEN ", users_changed_channel!());
}

/// A channel jobcenter notifies (see the `*_CHANNEL` constants of the crate root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// [`crate::RUNS_CHANNEL`].
    Runs,
    /// [`crate::CANCEL_CHANNEL`].
    Cancel,
    /// [`crate::RUN_FINISHED_CHANNEL`].
    RunFinished,
    /// [`crate::RUN_LOGS_CHANNEL`].
    RunLogs,
    /// [`crate::USERS_CHANGED_CHANNEL`].
    UsersChanged,
}

impl Channel {
    fn listen_statement(self) -> &'static str {
        match self {
            Channel::Runs => LISTEN_RUNS,
            Channel::Cancel => LISTEN_CANCEL,
            Channel::RunFinished => LISTEN_RUN_FINISHED,
            Channel::RunLogs => LISTEN_RUN_LOGS,
            Channel::UsersChanged => LISTEN_USERS_CHANGED,
        }
    }
}

/// LISTEN to `channels` on `client`, the statements sent together (one round trip). The
/// connection must be polled meanwhile for this to complete.
pub async fn listen_to(
    client: &tokio_postgres::Client,
    channels: &[Channel],
) -> Result<(), crate::Error> {
    futures_util::future::try_join_all(
        channels
            .iter()
            .map(|channel| client.batch_execute(channel.listen_statement())),
    )
    .await?;
    Ok(())
}

/// What the callback is told.
pub enum Event<'a> {
    /// LISTEN is in effect (again): anything may have happened while it was not.
    Listening,
    Notification {
        channel: &'a str,
        payload: &'a str,
    },
    /// The connection is gone: notifications are missed until `Listening` again.
    Lost,
}

/// Listens to `channels` until the process ends.
pub async fn listen_forever(
    url: String,
    channels: &[Channel],
    mut on_event: impl FnMut(Event<'_>),
) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match listen_once(&url, channels, &mut on_event).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => tracing::warn!(error = %e, "notifications interrupted; reconnecting"),
        }
        on_event(Event::Lost);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(
    url: &str,
    channels: &[Channel],
    on_event: &mut impl FnMut(Event<'_>),
) -> Result<(), crate::Error> {
    let (client, mut connection) = connect_direct_with_connection(url).await?;
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let mut listen = Box::pin(listen_to(&client, channels));
    let mut listening = false;
    // The connection must be polled for LISTEN to complete: drive both together.
    loop {
        tokio::select! {
            result = &mut listen, if !listening => {
                result?;
                listening = true;
                on_event(Event::Listening);
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => on_event(Event::Notification {
                    channel: n.channel(),
                    payload: n.payload(),
                }),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
