//! When a job fires: its first fire time, and what the leader does with a due tick.
//!
//! A tick late by no more than the misfire threshold fires as scheduled, so a busy or
//! briefly failing-over leader loses nothing. Ticks missed by longer (no scheduler was
//! running) follow the job's [`CatchUp`] policy: `once` (default) fires one run, for
//! the latest missed instant; `each` fires every missed tick, at most a bound (the
//! latest ones); `skip` fires none. The schedule then continues after `now`'s tick.

use crate::schedule::Schedule;
use chrono::{DateTime, Duration, Utc};

/// Upper bound on ticks walked while collapsing a long outage (a per-second cron
/// missed for a day is 86,400 steps); past it the latest tick found is used.
const MAX_CATCH_UP_STEPS: usize = 1_000_000;

/// What the leader does with ticks missed by more than the misfire threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CatchUp {
    /// Fire once, for the latest missed tick.
    #[default]
    Once,
    /// Fire each missed tick, up to a bound (the latest ones).
    Each,
    /// Fire none of them.
    Skip,
}

impl CatchUp {
    pub const ALL: &'static [CatchUp] = &[CatchUp::Once, CatchUp::Each, CatchUp::Skip];

    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Once => "once",
            CatchUp::Each => "each",
            CatchUp::Skip => "skip",
        }
    }

    pub fn parse(text: &str) -> Option<CatchUp> {
        CatchUp::ALL.iter().copied().find(|c| c.as_str() == text)
    }
}

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
    /// The instants to queue a run for (`scheduled_for`), oldest first; empty when
    /// nothing fires (past the window, or missed ticks skipped).
    pub fires: Vec<DateTime<Utc>>,
    /// The job's next fire time after these; None: the schedule is over.
    pub next: Option<DateTime<Utc>>,
}

/// How late ticks are handled: the misfire threshold, the policy, and the bound on
/// runs one catch-up may queue under [`CatchUp::Each`].
#[derive(Debug, Clone, Copy)]
pub struct Lateness {
    pub misfire_threshold: Duration,
    pub catch_up: CatchUp,
    pub max_catch_up_ticks: usize,
}

pub fn plan_tick(
    schedule: &Schedule,
    window: Window,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
    lateness: Lateness,
) -> TickPlan {
    if now - due <= lateness.misfire_threshold {
        let fires: Vec<_> = window.cap(Some(due)).into_iter().collect();
        let next = fires
            .last()
            .and_then(|t| window.cap(schedule.next_after(*t)));
        return TickPlan { fires, next };
    }
    let latest = latest_tick_at_or_before(schedule, due, now);
    let fires = match lateness.catch_up {
        CatchUp::Once => vec![latest],
        CatchUp::Skip => Vec::new(),
        CatchUp::Each => missed_ticks(schedule, due, latest, lateness.max_catch_up_ticks),
    };
    let fires: Vec<_> = fires
        .into_iter()
        .filter_map(|t| window.cap(Some(t)))
        .collect();
    // The schedule goes on after the latest missed tick, whatever was fired; a window
    // that has ended stops it.
    let next = window
        .cap(Some(latest))
        .and_then(|t| window.cap(schedule.next_after(t)));
    TickPlan { fires, next }
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

/// The ticks from `due` to `latest` (both included), at most `max`: the latest ones.
fn missed_ticks(
    schedule: &Schedule,
    due: DateTime<Utc>,
    latest: DateTime<Utc>,
    max: usize,
) -> Vec<DateTime<Utc>> {
    let mut ticks = std::collections::VecDeque::with_capacity(max.min(1024));
    let mut tick = Some(due);
    for _ in 0..MAX_CATCH_UP_STEPS {
        match tick {
            Some(t) if t <= latest => {
                if ticks.len() == max {
                    ticks.pop_front();
                }
                if max > 0 {
                    ticks.push_back(t);
                }
                tick = schedule.next_after(t);
            }
            _ => break,
        }
    }
    ticks.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::ScheduleSpec;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every_minute() -> Schedule {
        ScheduleSpec::cron("* * * * *", "UTC").compile().unwrap()
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

    fn late(catch_up: CatchUp) -> Lateness {
        Lateness {
            misfire_threshold: Duration::seconds(60),
            catch_up,
            max_catch_up_ticks: 5,
        }
    }

    #[test]
    fn catch_up_policies_after_an_outage() {
        let due = at("2030-01-01T00:01:00Z");
        let now = at("2030-01-01T00:30:30Z");
        let next = Some(at("2030-01-01T00:31:00Z"));
        let once = plan_tick(
            &every_minute(),
            Window::default(),
            due,
            now,
            late(CatchUp::Once),
        );
        assert_eq!(once.fires, vec![at("2030-01-01T00:30:00Z")]);
        assert_eq!(once.next, next);
        let skip = plan_tick(
            &every_minute(),
            Window::default(),
            due,
            now,
            late(CatchUp::Skip),
        );
        assert!(skip.fires.is_empty());
        assert_eq!(skip.next, next);
        let each = plan_tick(
            &every_minute(),
            Window::default(),
            due,
            now,
            late(CatchUp::Each),
        );
        let expected: Vec<_> = (26..=30)
            .map(|m| at(&format!("2030-01-01T00:{m}:00Z")))
            .collect();
        assert_eq!(each.fires, expected, "the latest 5 missed ticks");
        assert_eq!(each.next, next);
        let short = plan_tick(
            &every_minute(),
            Window::default(),
            due,
            at("2030-01-01T00:03:30Z"),
            late(CatchUp::Each),
        );
        assert_eq!(short.fires.len(), 3, "{short:?}");
        for policy in CatchUp::ALL {
            assert_eq!(CatchUp::parse(policy.as_str()), Some(*policy));
        }
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
            late(CatchUp::Skip),
        );
        assert_eq!(plan.fires, vec![due]);
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
            late(CatchUp::Once),
        );
        assert_eq!(plan.fires, vec![at("2030-01-01T03:00:00Z")]);
        assert_eq!(plan.next, Some(at("2030-01-01T03:01:00Z")));
        let interval = Schedule::Interval {
            every: Duration::seconds(7),
        };
        let plan = plan_tick(&interval, Window::default(), due, now, late(CatchUp::Once));
        let fire = plan.fires[0];
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
        let plan = plan_tick(&every_minute(), window, due, due, late(CatchUp::Once));
        assert_eq!(
            plan,
            TickPlan {
                fires: vec![due],
                next: None
            }
        );
        let after = at("2030-01-01T00:02:00Z");
        let plan = plan_tick(&every_minute(), window, after, after, late(CatchUp::Once));
        assert_eq!(
            plan,
            TickPlan {
                fires: vec![],
                next: None
            }
        );
    }
}
