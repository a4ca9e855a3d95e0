use super::*;
use chrono::{Datelike, TimeZone, Timelike};

mod expression;
mod zone;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn cron(expression: &str, timezone: &str) -> Schedule {
    ScheduleSpec::cron(expression, timezone)
        .compile()
        .unwrap_or_else(|e| panic!("{expression:?}: {e}"))
}

fn cron_err(expression: &str) -> InvalidSchedule {
    ScheduleSpec::cron(expression, "UTC")
        .compile()
        .expect_err(expression)
}

fn fires(schedule: &Schedule, after: &str, n: usize) -> Vec<String> {
    let mut t = at(after);
    let mut out = Vec::new();
    for _ in 0..n {
        match schedule.next_after(t) {
            Some(next) => {
                assert!(next > t);
                out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                t = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn spec_json_round_trips() {
    let cases = [
        (r#"{"kind":"manual"}"#, ScheduleSpec::Manual),
        (
            r#"{"kind":"interval","every_seconds":60}"#,
            ScheduleSpec::Interval { every_seconds: 60 },
        ),
        (
            r#"{"kind":"cron","expression":"*/5 * * * *","timezone":"Europe/Berlin"}"#,
            ScheduleSpec::cron("*/5 * * * *", "Europe/Berlin"),
        ),
    ];
    for (json, spec) in cases {
        assert_eq!(serde_json::from_str::<ScheduleSpec>(json).unwrap(), spec);
        assert_eq!(serde_json::to_string(&spec).unwrap(), json);
    }
    let defaulted: ScheduleSpec =
        serde_json::from_str(r#"{"kind":"cron","expression":"* * * * *"}"#).unwrap();
    assert_eq!(defaulted, ScheduleSpec::cron("* * * * *", "UTC"));
    for bad in [
        r#"{"kind":"interval","every_seconds":60,"extra":1}"#,
        r#"{"kind":"hourly"}"#,
        r#"{"kind":"interval","every_seconds":-1}"#,
        r#"{"expression":"* * * * *"}"#,
    ] {
        assert!(serde_json::from_str::<ScheduleSpec>(bad).is_err(), "{bad}");
    }
}

#[test]
fn interval_bounds_and_math() {
    for bad in [0, MAX_INTERVAL_SECONDS + 1, u64::MAX] {
        let err = ScheduleSpec::Interval { every_seconds: bad }
            .compile()
            .unwrap_err();
        assert_eq!(err.field, "schedule.every_seconds");
        assert!(
            err.reason.contains("between 1 and 31536000"),
            "{}",
            err.reason
        );
        assert!(err.to_string().starts_with("schedule.every_seconds: "));
    }
    for good in [1, 60, MAX_INTERVAL_SECONDS] {
        let s = ScheduleSpec::Interval {
            every_seconds: good,
        }
        .compile()
        .unwrap();
        assert_eq!(
            s,
            Schedule::Interval {
                every: Duration::seconds(good as i64)
            }
        );
        let t = at("2030-03-31T01:59:59.250Z");
        assert_eq!(s.next_after(t), Some(t + Duration::seconds(good as i64)));
    }
    let s = ScheduleSpec::Interval { every_seconds: 90 }
        .compile()
        .unwrap();
    assert_eq!(
        fires(&s, "2030-01-01T00:00:00Z", 3),
        [
            "2030-01-01T00:01:30Z",
            "2030-01-01T00:03:00Z",
            "2030-01-01T00:04:30Z"
        ]
    );
    assert_eq!(s.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(Schedule::Manual.next_after(Utc::now()), None);
}
