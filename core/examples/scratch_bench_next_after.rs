// Scratch benchmark (to be deleted): next_after speed.
use chrono::{DateTime, Utc};
use jobcenter_core::schedule::ScheduleSpec;
use std::time::Instant;

fn bench(expr: &str, tz: &str, n: u32) {
    let s = ScheduleSpec::Cron {
        expression: expr.into(),
        timezone: tz.into(),
    }
    .compile()
    .unwrap();
    let start_t: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().unwrap();
    // chained
    let mut t = start_t;
    let st = Instant::now();
    for _ in 0..n {
        t = s.next_after(t).unwrap();
    }
    let chained = st.elapsed() / n;
    // from arbitrary instants (not on a fire)
    let st = Instant::now();
    let mut acc = 0i64;
    for i in 0..n {
        let a = start_t + chrono::Duration::seconds(i as i64 * 7919 + 17);
        acc ^= s.next_after(a).unwrap().timestamp();
    }
    let probes = st.elapsed() / n;
    println!(
        "{expr:>16} {tz:>14}: chained {chained:?}/call (ended {t}), probes {probes:?}/call ({acc})"
    );
}
fn main() {
    for _ in 0..2 {
        bench("*/15 * * * *", "Europe/Berlin", 200_000);
        bench("0 0 29 2 *", "Europe/Berlin", 1_000);
        bench("0 0 29 2 *", "UTC", 1_000);
    }
}
