//! An artifact upload's cost: the API's resident memory while 100 MiB stream through it
//! into the local artifact store (the default store), and the upload's rate against the
//! same bytes written and synced to a file on the same disk by the driver itself.

use super::{Ctx, Stack};
use crate::report::Row;
use crate::stats::{fmt_mib, hwm_kib, rss_kib, RssPeak};
use anyhow::Context;
use std::io::Write;
use std::time::Instant;

const CHUNK: usize = 256 * 1024;
const SIZE: usize = 100 << 20;

/// The upload's body: `SIZE` bytes in `CHUNK`s, made as they are sent, so that the
/// driver does not hold 100 MiB either.
fn body() -> reqwest::Body {
    let chunks = (0..SIZE / CHUNK).map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK]));
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let ceiling_s = write_and_sync(ctx)?;
    let stack = Stack::new(ctx, "bench_upload", &[]).await?;
    // A first small upload: the handler's one-time allocations are not the big one's.
    let (status, reply) = stack
        .api
        .put_artifact(&stack.project, "warmup", vec![0u8; 1 << 20].into())
        .await?;
    anyhow::ensure!(
        status == 201,
        "the warm-up upload answered {status}: {reply}"
    );
    let pid = stack.api_process.pid();
    // Resets the high-water mark to the present VmRSS, so that the upload's peak is exact.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let before = rss_kib(pid).context("the API runs")?;
    let hwm_before = hwm_kib(pid).context("the API runs")?;
    let sampler = RssPeak::start(vec![pid]);
    let started = Instant::now();
    let result = stack.api.put_artifact(&stack.project, "big", body()).await;
    let seconds = started.elapsed().as_secs_f64();
    let sampled = sampler.stop()[0];
    // The exact peak when the upload set a new high-water mark (always, once reset);
    // else the 50 ms samples'.
    let hwm_after = hwm_kib(pid).unwrap_or(0);
    let peak = if hwm_after > hwm_before {
        hwm_after
    } else {
        sampled
    };
    stack.finish(ctx).await?;
    let (status, reply) = result?;
    anyhow::ensure!(status == 201, "the upload answered {status}: {reply}");
    anyhow::ensure!(
        reply["size"].as_u64() == Some(SIZE as u64),
        "the upload stored {} bytes, not {SIZE}",
        reply["size"]
    );
    let mb = SIZE as f64 / 1e6;
    ctx.row(
        Row::new(
            "artifact upload: 100 MiB through the API into the local store",
            format!("{:.0} MB/s", mb / seconds),
        )
        .ceiling(
            format!(
                "the driver writing and syncing a file {:.0} MB/s",
                mb / ceiling_s
            ),
            mb / seconds,
            mb / ceiling_s,
        ),
    );
    ctx.row(Row::new(
        "memory: api growth during the 100 MiB upload (VmRSS)",
        format!(
            "+{} (before {}, peak {})",
            fmt_mib(peak.saturating_sub(before)),
            fmt_mib(before),
            fmt_mib(peak)
        ),
    ));
    Ok(())
}

/// Seconds to write `SIZE` bytes in `CHUNK`s to a file in the scratch directory and sync it.
fn write_and_sync(ctx: &Ctx) -> anyhow::Result<f64> {
    let path = ctx.setup.workdir.join("upload-ceiling");
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for i in 0..SIZE / CHUNK {
        file.write_all(&vec![(i % 251) as u8; CHUNK])?;
    }
    file.sync_all()?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(seconds)
}
