//! When a job fires: its first fire time, and what the leader does with a due tick.
//!
//! Catch-up policy (as Quartz's misfire threshold): a tick late by no more than the
//! misfire threshold fires as scheduled, so a busy or briefly failing-over leader loses
//! nothing. Ticks missed by longer (no scheduler was running) collapse into one fire,
//! for the latest missed instant, and the schedule continues from there.

use crate::schedule::Schedule;
use chrono::{DateTime, Duration, Utc};

/// Upper bound on ticks walked while collapsing a long outage (a per-second cron
/// missed for a day is 86,400 steps); past it the latest tick found is used.
const MAX_CATCH_UP_STEPS: usize = 1_000_000;

/// The window a job may fire in (`starts_at`, `ends_at`, both inclusive).
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

impl Window {
    fn cap(&self, tick: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        tick.filter(|t| self.ends_at.is_none_or(|end| *t <= end))
    }
}

/// The first instant a job (newly saved, enabled or restored at `now`) fires, if any.
/// Interval schedules fire first one period after `now`, or at `starts_at` if later.
pub fn first_fire(
    schedule: &Schedule,
    window: Window,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let tick = match (schedule, window.starts_at) {
        (Schedule::Manual, _) => None,
        (Schedule::Interval { .. }, Some(start)) if start > now => Some(start),
        (_, Some(start)) if start > now => schedule.next_after(start - Duration::microseconds(1)),
        _ => schedule.next_after(now),
    };
    window.cap(tick)
}

/// The next `count` fire instants of a schedule from `now`, inside its window.
pub fn upcoming(
    schedule: &Schedule,
    window: Window,
    now: DateTime<Utc>,
    count: usize,
) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::with_capacity(count);
    let mut next = first_fire(schedule, window, now);
    while let Some(tick) = next {
        if fires.len() == count {
            break;
        }
        fires.push(tick);
        next = window.cap(schedule.next_after(tick));
    }
    fires
}

/// What the leader does with a job whose tick `due` has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickPlan {
    /// The instant to queue a run for (`scheduled_for`); None: past the window, nothing fires.
    pub fire: Option<DateTime<Utc>>,
    /// The job's next fire time after this one; None: the schedule is over.
    pub next: Option<DateTime<Utc>>,
}

pub fn plan_tick(
    schedule: &Schedule,
    window: Window,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    misfire_threshold: Duration,
) -> TickPlan {
    let fire = if now - due > misfire_threshold {
        latest_tick_at_or_before(schedule, due, now)
    } else {
        due
    };
    let fire = window.cap(Some(fire));
    let next = fire.and_then(|t| window.cap(schedule.next_after(t)));
    TickPlan { fire, next }
}

fn latest_tick_at_or_before(
    schedule: &Schedule,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    if let Schedule::Interval { every } = schedule {
        let periods = (now - due).num_milliseconds() / every.num_milliseconds().max(1);
        return due + *every * periods as i32;
    }
    let mut latest = due;
    for _ in 0..MAX_CATCH_UP_STEPS {
        match schedule.next_after(latest) {
            Some(t) if t <= now => latest = t,
            _ => break,
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleSpec;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_minute() -> Schedule {
        ScheduleSpec::Cron {
            expression: "* * * * *".into(),
            timezone: "UTC".into(),
        }
        .compile()
        .unwrap()
    }

    #[test]
    fn manual_never_fires() {
        assert_eq!(
            first_fire(&Schedule::Manual, Window::default(), Utc::now()),
            None
        );
    }

    #[test]
    fn first_fire_respects_the_window() {
        let now = at("2030-01-01T00:00:30Z");
        assert_eq!(
            first_fire(&every_minute(), Window::default(), now),
            Some(at("2030-01-01T00:01:00Z"))
        );
        let starts = Window {
            starts_at: Some(at("2030-01-01T00:05:00Z")),
            ends_at: None,
        };
        assert_eq!(
            first_fire(&every_minute(), starts, now),
            Some(at("2030-01-01T00:05:00Z"))
        );
        let ended = Window {
            starts_at: None,
            ends_at: Some(at("2030-01-01T00:00:00Z")),
        };
        assert_eq!(first_fire(&every_minute(), ended, now), None);
        let interval = Schedule::Interval {
            every: Duration::seconds(10),
        };
        assert_eq!(
            first_fire(&interval, Window::default(), now),
            Some(at("2030-01-01T00:00:40Z"))
        );
    }

    #[test]
    fn upcoming_lists_fires_within_the_window() {
        let now = at("2030-01-01T00:00:30Z");
        let window = Window {
            starts_at: None,
            ends_at: Some(at("2030-01-01T00:03:00Z")),
        };
        let fires = upcoming(&every_minute(), window, now, 10);
        let expected: Vec<_> = ["00:01:00", "00:02:00", "00:03:00"]
            .iter()
            .map(|t| at(&format!("2030-01-01T{t}Z")))
            .collect();
        assert_eq!(fires, expected);
        assert_eq!(
            upcoming(&every_minute(), Window::default(), now, 2).len(),
            2
        );
        assert!(upcoming(&Schedule::Manual, Window::default(), now, 5).is_empty());
    }

    #[test]
    fn slightly_late_ticks_fire_as_scheduled() {
        let due = at("2030-01-01T00:01:00Z");
        let plan = plan_tick(
            &every_minute(),
            Window::default(),
            due,
            at("2030-01-01T00:01:05Z"),
            Duration::seconds(60),
        );
        assert_eq!(plan.fire, Some(due));
        assert_eq!(plan.next, Some(at("2030-01-01T00:02:00Z")));
    }

    #[test]
    fn long_outages_collapse_into_one_fire() {
        let due = at("2030-01-01T00:01:00Z");
        let now = at("2030-01-01T03:00:30Z");
        let plan = plan_tick(
            &every_minute(),
            Window::default(),
            due,
            now,
            Duration::seconds(60),
        );
        assert_eq!(plan.fire, Some(at("2030-01-01T03:00:00Z")));
        assert_eq!(plan.next, Some(at("2030-01-01T03:01:00Z")));
        let interval = Schedule::Interval {
            every: Duration::seconds(7),
        };
        let plan = plan_tick(
            &interval,
            Window::default(),
            due,
            now,
            Duration::seconds(60),
        );
        let fire = plan.fire.unwrap();
        assert!(fire <= now && now - fire < Duration::seconds(7), "{fire}");
        assert_eq!((fire - due).num_seconds() % 7, 0);
    }

    #[test]
    fn nothing_fires_after_ends_at() {
        let window = Window {
            starts_at: None,
            ends_at: Some(at("2030-01-01T00:01:00Z")),
        };
        let due = at("2030-01-01T00:01:00Z");
        let plan = plan_tick(&every_minute(), window, due, due, Duration::seconds(60));
        assert_eq!(
            plan,
            TickPlan {
                fire: Some(due),
                next: None
            }
        );
        let late = at("2030-01-01T00:02:00Z");
        let plan = plan_tick(&every_minute(), window, late, late, Duration::seconds(60));
        assert_eq!(
            plan,
            TickPlan {
                fire: None,
                next: None
            }
        );
    }
}
