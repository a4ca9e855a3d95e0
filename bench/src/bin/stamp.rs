//! The command the trigger→start benchmark runs: appends `<run id> <realtime ns>` to the
//! file named by its first argument, as the first thing it does. The driver compares that
//! instant with the one at which it sent the trigger (same machine, same clock).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos();
    let run_id = std::env::var("JOBCENTER_RUN_ID").unwrap_or_else(|_| "unknown".into());
    let path = std::env::args_os()
        .nth(1)
        .expect("usage: jobcenter-bench-stamp FILE");
    // One write of one short line with O_APPEND: lines of concurrent runs never interleave.
    let line = format!("{run_id} {now_ns}\n");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the stamp file opens");
    file.write_all(line.as_bytes())
        .expect("the stamp line is written");
}
