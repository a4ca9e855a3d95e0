//! The spawn ceiling: how many times per second this machine can start `/bin/true` and
//! wait for it, from `--threads` threads (default: one per core) for `--seconds`.
//! Prints one JSON line: `{"threads":2,"seconds":3.0,"spawns":9600,"per_second":3200.0}`.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut seconds = 3.0_f64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_default();
        match arg.as_str() {
            "--threads" => threads = value.parse().expect("--threads N"),
            "--seconds" => seconds = value.parse().expect("--seconds S"),
            _ => panic!("usage: spawn-ceiling [--threads N] [--seconds S]"),
        }
    }
    let spawns = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while Instant::now() < deadline {
                    let status = Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .expect("/bin/true starts");
                    assert!(status.success(), "/bin/true failed");
                    spawns.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let spawns = spawns.into_inner();
    println!(
        "{{\"threads\":{threads},\"seconds\":{elapsed:.3},\"spawns\":{spawns},\"per_second\":{:.1}}}",
        spawns as f64 / elapsed
    );
}
