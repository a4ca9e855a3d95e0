//! A run's logs: as plain text from a byte offset, or followed live as Server-Sent Events
//! from any API node until the run ends.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::db;
use crate::run_events::RunEvent;
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use futures_util::stream;
use jobcenter_sql::run_logs::{self, StoredChunk};
use jobcenter_sql::runs;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Chunks read per database round trip.
const CHUNKS_PER_READ: i64 = 500;
/// Chunks a plain read returns at most (each chunk ≤ 16 KiB).
const MAX_PLAIN_CHUNKS: i64 = 100_000;
/// A follower re-reads at least this often, notification or not.
const FOLLOW_POLL: Duration = Duration::from_secs(1);
/// Header of a plain read: the offset to resume from.
pub const NEXT_OFFSET_HEADER: &str = "X-Next-Offset";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Stream new output as `text/event-stream` until the run ends.
    #[serde(default)]
    pub follow: bool,
    /// Plain reads: skip this many bytes (resume from a previous `X-Next-Offset`).
    pub offset: Option<usize>,
}

/// One Server-Sent Event of a followed log: `log` (data: a chunk of output, id: its
/// sequence number) or `end` (data: the run's final state).
#[derive(Serialize, ToSchema)]
pub struct LogEvent {
    /// `log` or `end`.
    pub event: String,
    pub data: String,
    /// The chunk's sequence number (`log` events); send it back as `Last-Event-ID`.
    pub id: Option<String>,
}

/// The run's stdout and stderr as shipped so far, interleaved in arrival order.
/// `follow=true` streams Server-Sent Events: one `log` event per chunk (its `id` is the
/// chunk's sequence number; `Last-Event-ID` resumes after it), then an `end` event whose
/// data is the final state.
#[utoipa::path(
    tag = "runs", security(("bearer" = [])), params(("id" = Uuid, Path), LogsQuery),
    responses(
        (status = 200, description = "the logs: text/plain, or text/event-stream with follow=true",
         content((String = "text/plain"), (LogEvent = "text/event-stream")),
         headers(("X-Next-Offset" = u64, description = "offset to resume a plain read from"))),
    )
)]
#[get("/api/v1/runs/{id}/logs")]
pub async fn get_run_logs(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<LogsQuery>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let run_id = *id;
    let events = state.events.subscribe();
    let client = db(&state).await?;
    runs::get(&client, run_id, caller.owner_scope())
        .await?
        .ok_or(ApiError::NotFound("run"))?;
    if query.follow {
        drop(client);
        // The caller is authenticated again while the stream lasts: a revoked token or a
        // disabled or deleted user ends it.
        let token = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        let after_seq = request
            .headers()
            .get("Last-Event-ID")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(-1);
        return Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .streaming(follow(
                state.into_inner(),
                caller,
                token,
                run_id,
                after_seq,
                events,
            )));
    }
    let text = run_logs::read(&client, run_id, MAX_PLAIN_CHUNKS).await?;
    let offset = floor_char_boundary(&text, query.offset.unwrap_or(0));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((NEXT_OFFSET_HEADER, text.len().to_string()))
        .body(text[offset..].to_string()))
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

struct Follower {
    state: std::sync::Arc<AppState>,
    caller: Caller,
    token: String,
    authenticated_at: std::time::Instant,
    run_id: Uuid,
    after_seq: i32,
    events: broadcast::Receiver<RunEvent>,
    ended: bool,
}

fn follow(
    state: std::sync::Arc<AppState>,
    caller: Caller,
    token: String,
    run_id: Uuid,
    after_seq: i32,
    events: broadcast::Receiver<RunEvent>,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> {
    let follower = Follower {
        state,
        caller,
        token,
        authenticated_at: std::time::Instant::now(),
        run_id,
        after_seq,
        events,
        ended: false,
    };
    stream::try_unfold(follower, |mut f| async move {
        if f.ended {
            return Ok(None);
        }
        loop {
            if !f.still_allowed().await? {
                return Ok(None);
            }
            let chunks = f.read_more().await?;
            if !chunks.is_empty() {
                f.after_seq = chunks.last().map_or(f.after_seq, |c| c.seq);
                return Ok(Some((Bytes::from(encode_log_events(&chunks)), f)));
            }
            // Nothing new: has the run ended? (Its last logs are written before its end.)
            let run = runs::get(&db(&f.state).await?, f.run_id, f.caller.owner_scope())
                .await
                .map_err(ApiError::from)?;
            match run {
                Some(run) if !run.state.is_final() => f.wait_for_news().await,
                Some(run) => {
                    if !f.read_more().await?.is_empty() {
                        continue;
                    }
                    f.ended = true;
                    let end = format!("event: end\ndata: {}\n\n", run.state);
                    return Ok(Some((Bytes::from(end), f)));
                }
                None => return Ok(None),
            }
        }
    })
}

impl Follower {
    /// Whether the caller's token still authenticates (checked at most every
    /// [`FOLLOW_POLL`]); the caller's role is refreshed with it.
    async fn still_allowed(&mut self) -> Result<bool, ApiError> {
        if self.authenticated_at.elapsed() < FOLLOW_POLL {
            return Ok(true);
        }
        match crate::auth::authenticate(&self.state, &self.token).await {
            Ok(caller) if caller.user_id == self.caller.user_id => {
                self.caller = caller;
                self.authenticated_at = std::time::Instant::now();
                Ok(true)
            }
            Ok(_) | Err(ApiError::Unauthorized(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn read_more(&self) -> Result<Vec<StoredChunk>, ApiError> {
        let client = db(&self.state).await?;
        Ok(run_logs::read_after(&client, self.run_id, self.after_seq, CHUNKS_PER_READ).await?)
    }

    /// Until a notification about this run, a resync, or the poll interval.
    async fn wait_for_news(&mut self) {
        let run_id = self.run_id;
        let _ = tokio::time::timeout(FOLLOW_POLL, async {
            loop {
                match self.events.recv().await {
                    Ok(RunEvent::Logs(id) | RunEvent::Finished(id)) if id == run_id => return,
                    Ok(RunEvent::Resync) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}

/// One SSE `log` event per chunk; each line of the chunk is a `data:` line, so the client
/// gets the chunk back with its lines joined with `\n`. A line ends at `\n`, `\r\n` or a
/// lone `\r`, as SSE's own lines do: no output can end a `data:` line early and forge an
/// `event:`, `id:` or the end of an event (a lone `\r` reaches the client as `\n`).
fn encode_log_events(chunks: &[StoredChunk]) -> String {
    let mut out = String::new();
    for chunk in chunks {
        out.push_str(&format!("event: log\nid: {}\n", chunk.seq));
        for line in chunk.data.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            for part in line.split('\r') {
                out.push_str("data: ");
                out.push_str(part);
                out.push('\n');
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_encoding_round_trips_lines() {
        let chunk = StoredChunk {
            seq: 7,
            stream: "stdout".into(),
            data: "one\ntwo\n".into(),
        };
        assert_eq!(
            encode_log_events(&[chunk]),
            "event: log\nid: 7\ndata: one\ndata: two\ndata: \n\n"
        );
    }

    #[test]
    fn output_cannot_end_a_data_line_or_forge_an_event() {
        let chunk = StoredChunk {
            seq: 3,
            stream: "stdout".into(),
            data: "x\revent: end\rid: 99\rdata: forged\r\rA\r\nevent: end\r\n\r\n".into(),
        };
        let encoded = encode_log_events(&[chunk]);
        // Every line of the event, by SSE's own line breaks, is ours or a data line.
        let lines: Vec<&str> = encoded.split(['\r', '\n']).collect();
        assert_eq!(&lines[..2], ["event: log", "id: 3"], "{encoded:?}");
        for line in &lines[2..lines.len() - 2] {
            assert!(line.starts_with("data: "), "{line:?} in {encoded:?}");
        }
        assert_eq!(&lines[lines.len() - 2..], ["", ""], "{encoded:?}");
    }

    #[test]
    fn offsets_land_on_char_boundaries() {
        assert_eq!(floor_char_boundary("héllo", 2), 1);
        assert_eq!(floor_char_boundary("abc", 99), 3);
    }
}
