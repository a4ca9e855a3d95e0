//! Backfill: the ticks a job's schedule would have fired in a past range `[from, to)`.
//!
//! Cron ticks are the schedule's own instants (with its DST choices). Interval ticks
//! have no fixed phase of their own (it starts when the job is saved or enabled), so
//! they are counted from an anchor the caller picks: the job's next fire time, so that
//! backfilled ticks line up with the ones the scheduler fires. Ticks outside the job's
//! window (`starts_at`, `ends_at`) are not ticks: the scheduler would not fire them.

use crate::firing::Window;
use crate::schedule::Schedule;
use chrono::{DateTime, Duration, Utc};

/// The default bound on ticks one backfill may create.
pub const MAX_BACKFILL_TICKS: usize = 1000;

/// Why a range cannot be backfilled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillError {
    /// A manual schedule has no ticks.
    Manual,
    /// More than `max` ticks lie in the range.
    TooMany { max: usize },
}

/// The ticks in `[from, to)` inside `window`, oldest first, at most `max`.
pub fn ticks(
    schedule: &Schedule,
    window: Window,
    anchor: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: usize,
) -> Result<Vec<DateTime<Utc>>, BackfillError> {
    let from = window.starts_at.map_or(from, |start| start.max(from));
    let inside = |t: DateTime<Utc>| t < to && window.ends_at.is_none_or(|end| t <= end);
    let mut next = match schedule {
        Schedule::Manual => return Err(BackfillError::Manual),
        Schedule::Interval { every } => first_interval_tick(anchor, *every, from),
        Schedule::Cron(_) => schedule.next_after(from - Duration::microseconds(1)),
    };
    let mut out = Vec::new();
    while let Some(t) = next.filter(|t| inside(*t)) {
        if out.len() == max {
            return Err(BackfillError::TooMany { max });
        }
        out.push(t);
        next = schedule.next_after(t);
    }
    Ok(out)
}

/// The first instant `anchor + k * every` (k any integer) at or after `from`.
fn first_interval_tick(
    anchor: DateTime<Utc>,
    every: Duration,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let every_ms = every.num_milliseconds().max(1);
    let behind = (anchor - from).num_milliseconds();
    let periods = behind.div_euclid(every_ms);
    anchor.checked_sub_signed(Duration::milliseconds(periods.checked_mul(every_ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{DstGap, DstRepeat, ScheduleSpec};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hourly() -> Schedule {
        ScheduleSpec::cron("0 * * * *", "UTC").compile().unwrap()
    }

    #[test]
    fn a_day_of_an_hourly_cron_is_24_ticks() {
        let day = ticks(
            &hourly(),
            Window::default(),
            at("2030-01-01T00:00:00Z"),
            at("2024-05-01T00:00:00Z"),
            at("2024-05-02T00:00:00Z"),
            MAX_BACKFILL_TICKS,
        )
        .unwrap();
        assert_eq!(day.len(), 24);
        assert_eq!(day[0], at("2024-05-01T00:00:00Z"));
        assert_eq!(day[23], at("2024-05-01T23:00:00Z"));
    }

    #[test]
    fn bounds_window_and_manual() {
        let (from, to) = (at("2024-05-01T00:00:00Z"), at("2024-05-02T00:00:00Z"));
        assert_eq!(
            ticks(&hourly(), Window::default(), to, from, to, 23),
            Err(BackfillError::TooMany { max: 23 })
        );
        assert_eq!(
            ticks(&hourly(), Window::default(), to, from, to, 24).map(|t| t.len()),
            Ok(24)
        );
        let window = Window {
            starts_at: Some(at("2024-05-01T05:30:00Z")),
            ends_at: Some(at("2024-05-01T10:00:00Z")),
        };
        let inside = ticks(&hourly(), window, to, from, to, 1000).unwrap();
        assert_eq!(inside.first(), Some(&at("2024-05-01T06:00:00Z")));
        assert_eq!(inside.last(), Some(&at("2024-05-01T10:00:00Z")));
        assert_eq!(
            ticks(&Schedule::Manual, Window::default(), to, from, to, 10),
            Err(BackfillError::Manual)
        );
    }

    #[test]
    fn interval_ticks_line_up_with_the_anchor() {
        let every = Schedule::Interval {
            every: Duration::seconds(90),
        };
        let anchor = at("2024-05-01T12:00:30Z");
        let got = ticks(
            &every,
            Window::default(),
            anchor,
            at("2024-05-01T11:55:00Z"),
            at("2024-05-01T12:00:00Z"),
            10,
        )
        .unwrap();
        let expected: Vec<_> = ["11:56:00", "11:57:30", "11:59:00"]
            .iter()
            .map(|t| at(&format!("2024-05-01T{t}Z")))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn dst_choices_apply() {
        let skip = ScheduleSpec::Cron {
            expression: "30 2 * * *".into(),
            timezone: "Europe/Berlin".into(),
            dst_gap: DstGap::Skip,
            dst_repeat: DstRepeat::Once,
        }
        .compile()
        .unwrap();
        let (from, to) = (at("2021-03-27T00:00:00Z"), at("2021-03-30T00:00:00Z"));
        assert_eq!(
            ticks(&skip, Window::default(), to, from, to, 10).unwrap(),
            [at("2021-03-27T01:30:00Z"), at("2021-03-29T00:30:00Z")]
        );
    }
}
