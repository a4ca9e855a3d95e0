//! The command the trigger→start benchmark runs: writes the realtime clock in ns to its
//! run's result file (`$JOBCENTER_RESULT_FILE`), as the first thing it does. The worker
//! stores the result with the run's outcome, with the sandbox on or off (a file outside
//! the run's directory is out of a sandboxed run's reach). The driver compares that
//! instant with the one at which it sent the trigger (same machine, same clock).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_nanos();
    let path = std::env::var_os("JOBCENTER_RESULT_FILE").expect("run by a jobcenter worker");
    std::fs::write(path, now_ns.to_string()).expect("the result file is written");
}
