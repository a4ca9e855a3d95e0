// Scratch benchmark (to be deleted): next_after speed, hand-written vs croner-based.
#[path = "../src/schedule.rs"]
#[allow(dead_code)]
mod new;
#[path = "/tmp/schedule_handwritten.rs"]
#[allow(dead_code)]
mod old;
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};

fn run(f: &dyn Fn(DateTime<Utc>) -> Option<DateTime<Utc>>, n: u32) -> (Duration, Duration) {
    let start_t: DateTime<Utc> = "2020-01-01T00:00:00Z".parse().unwrap();
    let mut t = start_t;
    let st = Instant::now();
    for _ in 0..n {
        t = f(t).unwrap();
    }
    let chained = st.elapsed() / n;
    let st = Instant::now();
    let mut acc = 0i64;
    for i in 0..n {
        let a = start_t + chrono::Duration::seconds(i as i64 * 7919 + 17);
        acc ^= f(a).unwrap().timestamp();
    }
    std::hint::black_box(acc);
    (chained, st.elapsed() / n)
}
fn main() {
    let scale: u32 = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    for round in 0..3 {
        for (expr, tz, n) in [
            ("*/15 * * * *", "Europe/Berlin", 200_000 / scale),
            ("0 0 29 2 *", "Europe/Berlin", 2_000 / scale),
            ("0 0 29 2 *", "UTC", 2_000 / scale),
        ] {
            let o = old::CronSchedule::new(expr, tz).unwrap();
            let nw = new::CronSchedule::new(expr, tz).unwrap();
            let (oc, op) = run(&|t| o.next_after(t), n);
            let (nc, np) = run(&|t| nw.next_after(t), n);
            println!("round {round} {expr:>13} {tz:>14}: hand-written chained {oc:>9.2?} probes {op:>9.2?} | croner chained {nc:>9.2?} probes {np:>9.2?}");
        }
    }
    // compile cost
    let st = Instant::now();
    for _ in 0..2000 {
        std::hint::black_box(
            old::CronSchedule::new("*/15 9-17 * * mon-fri", "Europe/Berlin").unwrap(),
        );
    }
    let oc = st.elapsed() / 2000;
    let st = Instant::now();
    for _ in 0..2000 {
        std::hint::black_box(
            new::CronSchedule::new("*/15 9-17 * * mon-fri", "Europe/Berlin").unwrap(),
        );
    }
    let nc = st.elapsed() / 2000;
    println!("compile: hand-written {oc:?}, croner {nc:?}");
}
