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

    /// The length of the longest end of `text` that begins a secret (a proper prefix of
    /// one): what must wait for the next output before it can be judged.
    fn secret_prefix_at_end(&self, text: &str) -> usize {
        let mut longest = 0;
        for value in self.values.iter() {
            for k in (longest + 1..value.len()).rev() {
                if value.is_char_boundary(k) && text.ends_with(&value[..k]) {
                    longest = k;
                    break;
                }
            }
        }
        longest
    }
}

/// Redaction across a run's output as it comes, piece by piece: a secret split between
/// two pieces (output arrives in chunks, cut at newlines, so a multi-line secret always
/// is) is still found. The end of a stream's output that could begin a secret is held
/// back until the next piece of that stream shows whether it does, or the run ends.
#[derive(Default)]
pub struct StreamRedaction {
    secrets: Redactor,
    held: std::collections::HashMap<&'static str, String>,
}

impl StreamRedaction {
    pub fn new(secrets: Redactor) -> Self {
        StreamRedaction {
            secrets,
            held: Default::default(),
        }
    }

    /// What of `piece` (after what was held of its stream) can be shipped now, redacted.
    pub fn piece(&mut self, piece: Piece) -> Option<Piece> {
        let held = self.held.entry(piece.stream).or_default();
        held.push_str(&piece.data);
        let text = self.secrets.apply(held);
        let cut = text.len() - self.secrets.secret_prefix_at_end(&text);
        *held = text[cut..].to_string();
        let mut data = text;
        data.truncate(cut);
        (!data.is_empty()).then_some(Piece {
            stream: piece.stream,
            data,
        })
    }

    /// What is still held, at the end of the output (redacted already).
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut rest: Vec<Piece> = self
            .held
            .drain()
            .filter(|(_, data)| !data.is_empty())
            .map(|(stream, data)| Piece { stream, data })
            .collect();
        rest.sort_by_key(|p| p.stream);
        rest
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
    let mut redaction = StreamRedaction::new(secrets);
    let mut ended = false;
    while !ended {
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        match rx.recv().await {
            Some(first) => {
                batch_bytes = first.data.len();
                batch.push(first);
            }
            None => ended = true,
        }
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while !ended && batch_bytes < FLUSH_BYTES {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(piece)) => {
                    batch_bytes += piece.data.len();
                    batch.push(piece);
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut batch: Vec<Piece> = batch
            .into_iter()
            .filter_map(|piece| redaction.piece(piece))
            .collect();
        if ended {
            batch.extend(redaction.finish());
        }
        let mut kept = Vec::with_capacity(batch.len());
        for piece in batch {
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

    fn redact_pieces(secrets: &[&str], pieces: &[&str]) -> String {
        let mut redaction =
            StreamRedaction::new(Redactor::new(secrets.iter().map(|s| s.to_string())));
        let mut out = String::new();
        for data in pieces {
            let piece = Piece {
                stream: "stdout",
                data: data.to_string(),
            };
            if let Some(shipped) = redaction.piece(piece) {
                out.push_str(&shipped.data);
            }
        }
        for rest in redaction.finish() {
            out.push_str(&rest.data);
        }
        out
    }

    #[test]
    fn a_secret_split_over_two_chunks_is_redacted() {
        assert_eq!(
            redact_pieces(&["hunter2-long"], &["start hunt", "er2-long end\n"]),
            "start *** end\n"
        );
        // What only looked like the start of a secret is shipped in the end.
        assert_eq!(
            redact_pieces(&["hunter2-long"], &["tail hunt", "ing\n", "x hun"]),
            "tail hunting\nx hun"
        );
        // Ordinary lines are not held back.
        let mut redaction = StreamRedaction::new(Redactor::new(["hunter2".to_string()]));
        let shipped = redaction.piece(Piece {
            stream: "stdout",
            data: "line\n".into(),
        });
        assert_eq!(shipped.unwrap().data, "line\n");
    }

    #[test]
    fn a_multi_line_secret_cut_at_its_newlines_is_redacted() {
        let key = "-----BEGIN KEY-----\nAAAA\nBBBB\n-----END KEY-----";
        // Output is cut into chunks after newlines, so the key arrives in pieces.
        assert_eq!(
            redact_pieces(
                &[key],
                &[
                    "key: -----BEGIN KEY-----\n",
                    "AAAA\n",
                    "BBBB\n-----END KEY-----\n"
                ]
            ),
            "key: ***\n"
        );
        assert_eq!(redact_pieces(&[key], &[&format!("{key}\n")]), "***\n");
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
