#[path = "../src/schedule.rs"]
#[allow(dead_code)]
mod new;
#[path = "/tmp/schedule_handwritten.rs"]
#[allow(dead_code)]
mod old;
use chrono::{DateTime, Utc};
fn main() {
    for (e, tz, t) in [
        ("0 0 29 2 */7", "UTC", "9999-01-01T00:00:00Z"),
        ("30 2 * * *", "UTC", "-0044-03-15T00:00:00Z"),
        ("0 0 ?,5 * 1", "UTC", "2030-01-01T00:00:00Z"),
        ("0 0 1 1 *", "Europe/Berlin", "4998-12-31T23:00:00Z"),
        ("0 0 1 1 *", "Europe/Berlin", "4999-12-31T23:00:00Z"),
    ] {
        let t: DateTime<Utc> = DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|_| "-0044-03-15T00:00:00Z".parse().unwrap());
        let o = old::CronSchedule::new(e, tz).unwrap().next_after(t);
        let n = new::CronSchedule::new(e, tz).unwrap().next_after(t);
        println!(
            "{e} {tz} after {t}: old {:?} new {:?}",
            o.map(|x| x.to_rfc3339()),
            n.map(|x| x.to_rfc3339())
        );
    }
}
