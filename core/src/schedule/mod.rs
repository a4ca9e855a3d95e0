//! Schedule math: validating a job's `schedule` and computing its fire instants.
//!
//! A schedule is `{"kind":"manual"}` (never fires by itself),
//! `{"kind":"interval","every_seconds":N}` (`1 <= N <= 31_536_000`; the next fire is
//! always the previous one plus `N` seconds) or
//! `{"kind":"cron","expression":"...","timezone":"Europe/Berlin"}` (time zone defaults
//! to `"UTC"`, any IANA name is accepted).
//!
//! # Cron expressions
//! Classic 5-field cron (`minute hour day-of-month month day-of-week`), or 6 fields with
//! a leading `second` field. 5-field expressions fire at second 0. Each field is a
//! comma-separated list of `*`, `N`, `N-M`, each optionally followed by `/STEP`
//! (`N/STEP` means `N-max/STEP`). Months accept `jan`..`dec`, days of week `sun`..`sat`
//! (case-insensitive); days of week are numbered as in classic cron: `0` and `7` are
//! Sunday, `1` is Monday. `?` is accepted as `*` in the two day fields. When both
//! day-of-month and day-of-week are restricted (neither starts with `*` or `?`), a day
//! matches if *either* matches (Vixie cron); otherwise both must match. The macros users
//! paste from Kubernetes and Vixie cron stand for their five fields (`@yearly` and
//! `@annually` `0 0 1 1 *`, `@monthly` `0 0 1 * *`, `@weekly` `0 0 * * 0`, `@daily` and
//! `@midnight` `0 0 * * *`, `@hourly` `0 * * * *`); other macros (`@reboot`, `@every`),
//! Quartz extensions (`L`, `W`, `#`), croner's `+` day-of-week prefix and a year field are
//! refused, and so is an expression that can never fire (`0 0 30 2 *`).
//!
//! # Daylight saving time (product behaviour)
//! Cron expressions are evaluated on the local wall-clock time of the job's zone. A
//! matching wall-clock time fires at the first instant the zone's clock reaches it:
//! - a time that does not exist (skipped by a spring-forward gap) fires once, at the
//!   first valid instant after the gap (for a 02:30 Europe/Berlin job, 03:00 CEST on the
//!   day clocks go forward). Several matching times inside the same gap (`*/15` during a
//!   skipped hour) collapse into that single fire, also when the time the clock jumps to
//!   matches as well;
//! - a time that occurs twice (fall-back) fires once, at its first occurrence; the
//!   repeated stretch fires nothing;
//! - so a daily `30 2 * * *` job fires exactly once every local calendar day.
//!
//! These are the defaults. A cron schedule may choose otherwise per job:
//! - `"dst_gap": "skip"`: a matching time inside a gap does not fire at all (the time the
//!   clock jumps to still fires if it matches itself); `"next"` is the default above;
//! - `"dst_repeat": "twice"`: a matching time in a repeated stretch fires at both of its
//!   occurrences (so every instant whose wall-clock reading matches fires); `"once"` is
//!   the default above.
//!
//! [`CronSchedule::dst_shift`] tells which fire times DST moved (a gap's end standing in
//! for a time that did not exist) or added (the second occurrence of a repeated time).
//!
//! # Implementation: `croner` plus a thin layer
//! Parsing and matching are done by the [`croner`] crate (POSIX day-of-week numbering,
//! optional seconds, Vixie day-of-month/day-of-week OR rule, bit-set fields). The `cron`
//! crate is not used: its time-zone handling drops times in a gap, fires twice in a
//! repeat and can answer an instant *before* the one asked for inside a repeated hour; it
//! also numbers days of week Quartz-style (1 = Sunday, `0` refused), ANDs both day fields
//! and stops in 2100.
//!
//! croner's own time-zone search is not used either: for "interval" patterns (any `*`,
//! step or list in the time fields) it skips matches inside a gap and fires twice in a
//! repeated hour, unlike the product rule above. So croner only answers "next matching
//! *naive* local time after X", and this module adds:
//! - a lexical check of each field before croner sees it (croner would silently accept
//!   `L`/`W`/`#`/`+`, `@daily`, a year field, empty list items, `/5`, and month or weekday
//!   names in any field), and attribution of croner's errors to the field that caused them;
//! - names turned into numbers and `*` list items into `*/1` before croner sees them
//!   (croner replaces `SUN`/`-SUN` as text, so `sun-sun` would mean every day, and only
//!   takes `*` as a whole field);
//! - the choice of AND/OR for the day fields: croner only treats an exact `*` as
//!   unrestricted, Vixie cron any field starting with `*` or `?` (`*/2`);
//! - the "never fires" check (croner would search until its year limit);
//! - a 400-year shift of the search start (the Gregorian calendar repeats exactly every
//!   146 097 days), because croner refuses to search past the year 5000;
//! - the mapping of each matching local time to UTC with `chrono-tz` as described above.

mod expression;
mod zone;

pub use zone::CronSchedule;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The longest interval accepted: one (non-leap) year.
pub const MAX_INTERVAL_SECONDS: u64 = 31_536_000;
/// The longest cron expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 256;
/// The `schedule` field of a job, as stored (jsonb) and as sent over the API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleSpec {
    Manual,
    Interval {
        every_seconds: u64,
    },
    Cron {
        expression: String,
        #[serde(default = "utc")]
        timezone: String,
        /// Absent when default, so stored schedules without DST choices are unchanged.
        #[serde(default, skip_serializing_if = "DstGap::is_default")]
        dst_gap: DstGap,
        #[serde(default, skip_serializing_if = "DstRepeat::is_default")]
        dst_repeat: DstRepeat,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

/// What a matching local time that does not exist (spring-forward gap) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DstGap {
    /// Fires at the first valid instant after the gap (several collapse into one).
    #[default]
    Next,
    /// Does not fire.
    Skip,
}

impl DstGap {
    fn is_default(&self) -> bool {
        *self == DstGap::default()
    }
}

/// What a matching local time that occurs twice (fall-back) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DstRepeat {
    /// Fires at its first occurrence only.
    #[default]
    Once,
    /// Fires at both occurrences.
    Twice,
}

impl DstRepeat {
    fn is_default(&self) -> bool {
        *self == DstRepeat::default()
    }
}

/// How DST changed a fire time (see [`CronSchedule::dst_shift`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DstShift {
    /// Stands in for a matching local time that did not exist: the first instant after
    /// a spring-forward gap (`dst_gap: next`).
    Gap,
    /// The second occurrence of a repeated local time (`dst_repeat: twice`).
    Repeat,
}

/// Why a schedule is invalid; `field` is the JSON path in the job body, e.g.
/// "schedule.expression", "schedule.timezone", "schedule.every_seconds".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSchedule {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidSchedule {
    fn expression(reason: impl Into<String>) -> Self {
        InvalidSchedule {
            field: "schedule.expression",
            reason: reason.into(),
        }
    }
}

/// A validated, ready-to-evaluate schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Manual,
    Interval { every: Duration },
    Cron(CronSchedule),
}

impl ScheduleSpec {
    /// Validates the spec and prepares it for evaluation.
    pub fn compile(&self) -> Result<Schedule, InvalidSchedule> {
        match self {
            ScheduleSpec::Manual => Ok(Schedule::Manual),
            ScheduleSpec::Interval { every_seconds } => {
                if (1..=MAX_INTERVAL_SECONDS).contains(every_seconds) {
                    Ok(Schedule::Interval {
                        every: Duration::seconds(*every_seconds as i64),
                    })
                } else {
                    Err(InvalidSchedule {
                        field: "schedule.every_seconds",
                        reason: format!(
                            "must be between 1 and {MAX_INTERVAL_SECONDS} (one year), got {every_seconds}"
                        ),
                    })
                }
            }
            ScheduleSpec::Cron {
                expression,
                timezone,
                dst_gap,
                dst_repeat,
            } => CronSchedule::new(expression, timezone)
                .map(|cron| Schedule::Cron(cron.with_dst(*dst_gap, *dst_repeat))),
        }
    }

    /// A cron spec with the default DST choices.
    pub fn cron(expression: impl Into<String>, timezone: impl Into<String>) -> ScheduleSpec {
        ScheduleSpec::Cron {
            expression: expression.into(),
            timezone: timezone.into(),
            dst_gap: DstGap::default(),
            dst_repeat: DstRepeat::default(),
        }
    }
}

impl Schedule {
    /// The first fire instant strictly after `after` (None for manual, or if none exists).
    /// Interval: after + every.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Manual => None,
            Schedule::Interval { every } => after.checked_add_signed(*every),
            Schedule::Cron(cron) => cron.next_after(after),
        }
    }

    /// How DST moved or added the fire time `fire` (None for other schedules).
    pub fn dst_shift(&self, fire: DateTime<Utc>) -> Option<DstShift> {
        match self {
            Schedule::Cron(cron) => cron.dst_shift(fire),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
