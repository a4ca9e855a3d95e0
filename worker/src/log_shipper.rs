//! Ships a run's stdout and stderr to Postgres in batches while it runs, so its logs
//! are readable from any API node during the run, not only at the end.

use jobcenter_sql::run_logs::{self, Chunk};
use jobcenter_sql::Pool;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// A batch is written at the latest this long after its first line arrived.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Or as soon as it holds this many bytes.
const FLUSH_BYTES: usize = 256 * 1024;
/// Output is cut into chunks at newlines, or at this size without one.
const MAX_CHUNK_BYTES: usize = 16 * 1024;

pub struct Piece {
    pub stream: &'static str,
    pub data: String,
}

/// Starts the shipper task; it ends (after a last flush) when every sender is dropped.
/// `secrets` are replaced by `***` before anything is stored.
pub fn spawn(
    pool: Pool,
    run_id: Uuid,
    max_bytes: usize,
    secrets: Redactor,
) -> (mpsc::Sender<Piece>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(ship(pool, run_id, max_bytes, secrets, rx));
    (tx, task)
}

/// Replaces secret values in text a run produced. Values shorter than
/// [`Redactor::MIN_LEN`] are not redacted (they would garble ordinary output).
#[derive(Clone, Default)]
pub struct Redactor {
    values: std::sync::Arc<Vec<String>>,
}

impl Redactor {
    pub const MIN_LEN: usize = 4;

    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= Self::MIN_LEN)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        Redactor {
            values: std::sync::Arc::new(values),
        }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_string();
        for value in self.values.iter() {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), "***");
            }
        }
        text
    }
}

async fn ship(
    pool: Pool,
    run_id: Uuid,
    max_bytes: usize,
    secrets: Redactor,
    mut rx: mpsc::Receiver<Piece>,
) {
    let mut seq = 0i32;
    let mut shipped_bytes = 0usize;
    let mut truncated = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut batch_bytes = batch[0].data.len();
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch_bytes < FLUSH_BYTES {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(piece)) => {
                    batch_bytes += piece.data.len();
                    batch.push(piece);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut kept = Vec::with_capacity(batch.len());
        for mut piece in batch {
            piece.data = secrets.apply(&piece.data);
            if truncated {
                continue;
            }
            if shipped_bytes + piece.data.len() > max_bytes {
                truncated = true;
                kept.push(Piece {
                    stream: "system",
                    data: format!("[jobcenter: log truncated at {max_bytes} bytes]\n"),
                });
                continue;
            }
            shipped_bytes += piece.data.len();
            kept.push(piece);
        }
        if kept.is_empty() {
            continue;
        }
        write(&pool, run_id, seq, &kept).await;
        seq += kept.len() as i32;
    }
}

async fn write(pool: &Pool, run_id: Uuid, first_seq: i32, pieces: &[Piece]) {
    let chunks: Vec<Chunk<'_>> = pieces
        .iter()
        .map(|p| Chunk {
            stream: p.stream,
            data: &p.data,
        })
        .collect();
    for attempt in 1..=5u32 {
        let result = async {
            let client = pool.get().await?;
            run_logs::append(&client, run_id, first_seq, &chunks).await
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(%run_id, attempt, error = %e, "shipping logs failed");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
    tracing::error!(%run_id, lines = pieces.len(), "dropped log lines after 5 attempts");
}

/// Reads one output stream to its end, sending it in newline-aligned UTF-8 chunks.
pub async fn forward(
    mut reader: impl AsyncRead + Unpin,
    stream: &'static str,
    tx: mpsc::Sender<Piece>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(cut) = cut_point(&pending) {
            let rest = pending.split_off(cut);
            let data = String::from_utf8_lossy(&pending).into_owned();
            pending = rest;
            if tx.send(Piece { stream, data }).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let data = String::from_utf8_lossy(&pending).into_owned();
        let _ = tx.send(Piece { stream, data }).await;
    }
}

/// Where to cut `pending`: after its last newline, or at the chunk size limit on a UTF-8
/// character boundary; None to wait for more.
fn cut_point(pending: &[u8]) -> Option<usize> {
    if pending.len() >= MAX_CHUNK_BYTES {
        let window = &pending[..MAX_CHUNK_BYTES];
        if let Some(newline) = window.iter().rposition(|&b| b == b'\n') {
            return Some(newline + 1);
        }
        let mut cut = MAX_CHUNK_BYTES;
        while cut > MAX_CHUNK_BYTES - 4 && (pending[cut] & 0b1100_0000) == 0b1000_0000 {
            cut -= 1;
        }
        return Some(cut);
    }
    pending.iter().rposition(|&b| b == b'\n').map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_longest_first() {
        let redactor = Redactor::new([
            "hunter2-long".to_string(),
            "hunter2".to_string(),
            "ab".to_string(),
        ]);
        assert_eq!(
            redactor.apply("x hunter2-long y hunter2 ab"),
            "x *** y *** ab"
        );
    }

    #[test]
    fn cuts_after_the_last_newline_or_on_a_char_boundary() {
        assert_eq!(cut_point(b"partial"), None);
        assert_eq!(cut_point(b"a\nb\nc"), Some(4));
        let mut long = vec![b'x'; MAX_CHUNK_BYTES - 1];
        long.extend_from_slice("é".as_bytes()); // straddles the limit
        let cut = cut_point(&long).unwrap();
        assert!(std::str::from_utf8(&long[..cut]).is_ok());
        assert_eq!(cut, MAX_CHUNK_BYTES - 1);
    }
}
