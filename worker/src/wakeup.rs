//! LISTEN for new runs of this worker's group, so a triggered run starts within
//! milliseconds. The claim loop also polls, so a lost connection only costs latency.

use futures_util::{stream, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

/// Keeps a LISTEN connection up forever, waking `notify` on each run queued for `group`.
pub async fn listen_forever(url: String, group: String, notify: Arc<Notify>) {
    loop {
        if let Err(e) = listen_once(&url, &group, &notify).await {
            tracing::warn!(error = %e, "run notifications interrupted; polling until reconnected");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(url: &str, group: &str, notify: &Notify) -> Result<(), jobcenter_sql::Error> {
    let (client, mut connection) = jobcenter_sql::db::connect_direct_with_connection(url).await?;
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let listen_sql = format!("LISTEN {}", jobcenter_sql::RUNS_CHANNEL);
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
                Some(Ok(AsyncMessage::Notification(n))) if n.payload() == group => notify.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
