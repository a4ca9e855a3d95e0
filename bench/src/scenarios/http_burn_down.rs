//! HTTP-target burn-down: N queued runs of a job whose target is a GET to a local HTTP
//! server (hyper, in the bench process, answering `200 ok`), one worker process allowed
//! to call private addresses. Runs finished per second; the server counts the requests
//! it answered, so a run that never called it cannot pass for one that did.

use super::burn_down::burn_down;
use super::{Ctx, Stack};
use crate::report::Row;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub async fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (url, answered) = serve_ok().await?;
    let mut stack = Stack::new(ctx, "bench_http_burndown", &[]).await?;
    stack.env.push(("JOBCENTER_HTTP_ALLOW_PRIVATE", "true"));
    let job = stack
        .api
        .create_http_job(&stack.project, "get-ok", &url)
        .await?;
    let runs = ctx.sizes.burn_down_runs;
    let result = burn_down(ctx, &mut stack, &job, runs, ctx.sizes.burn_down_cap).await?;
    stack.finish(ctx).await?;

    let answered = answered.load(Ordering::SeqCst);
    let value = result.describe(&format!(", {answered} requests answered"));
    ctx.row(
        Row::new(
            format!("burn-down: {runs} queued HTTP-target runs (GET, local server), one worker"),
            value,
        )
        .target("≥ 2,000/s", result.per_s >= 2000.0),
    );
    if result.failed > 0 || (answered as i64) < result.finished {
        ctx.note(format!(
            "HTTP burn-down: {} runs did not succeed, {answered} requests answered for {} succeeded runs",
            result.failed, result.finished
        ));
    }
    Ok(())
}

/// A local HTTP/1.1 server answering every request `200 ok`; its URL and the count of
/// requests answered.
async fn serve_ok() -> anyhow::Result<(String, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/ok", listener.local_addr()?);
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((url, answered))
}
