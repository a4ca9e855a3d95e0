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

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
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

/// A parsed cron expression bound to its time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expression: String,
    tz: Tz,
    /// Boxed: croner's `Cron` is ~300 bytes and `Schedule` is passed around by value.
    cron: Box<Cron>,
    gap: DstGap,
    repeat: DstRepeat,
}

/// Days in a 400-year Gregorian cycle: dates repeat with the same weekdays after it.
const CYCLE_DAYS: i64 = 146_097;
/// croner searches years 1 to 4999 only. Naive searches start in the 400 years from
/// this one (shifted by whole cycles); any satisfiable expression matches within one
/// cycle, so every search ends well inside croner's range.
const SEARCH_WINDOW_START: i32 = 2000;

impl CronSchedule {
    /// Parses `expression` (5 or 6 fields) for the IANA zone `timezone`.
    pub fn new(expression: &str, timezone: &str) -> Result<Self, InvalidSchedule> {
        let cron = parse_expression(expression).map_err(InvalidSchedule::expression)?;
        let tz: Tz = timezone.parse().map_err(|_| InvalidSchedule {
            field: "schedule.timezone",
            reason: format!("unknown time zone {:?}", clip(timezone)),
        })?;
        Ok(CronSchedule {
            expression: expression.to_owned(),
            tz,
            cron: Box::new(cron),
            gap: DstGap::default(),
            repeat: DstRepeat::default(),
        })
    }

    /// The same schedule with these DST choices.
    pub fn with_dst(mut self, gap: DstGap, repeat: DstRepeat) -> Self {
        self.gap = gap;
        self.repeat = repeat;
        self
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first fire instant strictly after `after`, following the DST rules of the
    /// module documentation and this schedule's DST choices.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = self.next_first_occurrence(after);
        if self.repeat == DstRepeat::Once {
            return first;
        }
        match (first, self.next_second_occurrence(after)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How DST moved or added `fire`, a fire time of this schedule: `Gap` when it is
    /// the end of a spring-forward gap that swallowed a matching time (which fired
    /// here), `Repeat` when it is the second occurrence of a repeated local time.
    pub fn dst_shift(&self, fire: DateTime<Utc>) -> Option<DstShift> {
        let reading = self.reading_at(fire)?;
        if let LocalResult::Ambiguous(a, b) = self.tz.from_local_datetime(&reading) {
            if fire == a.max(b).with_timezone(&Utc) {
                return Some(DstShift::Repeat);
            }
        }
        let just_before = self.reading_at(fire - Duration::seconds(1))?;
        let jumped = reading - just_before > Duration::seconds(1);
        if jumped && self.gap == DstGap::Next {
            let swallowed = self.next_local_match(just_before)?;
            if swallowed < reading {
                return Some(DstShift::Gap);
            }
        }
        None
    }

    /// The first instant after `after` at which the clock reaches a matching local time
    /// it never showed before (or the end of a gap that swallowed one, under `next`).
    fn next_first_occurrence(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // A local time `n` fires at e(n), the first instant the wall clock reads >= n.
        // e is non-decreasing in n, and every n <= the clock's reading at `after` has
        // e(n) <= after, so scan matching local times upwards from that reading.
        let mut cursor = self.reading_at(after)?;
        // Each round strictly raises `cursor`; more than two rounds only happen in
        // pathological zones. The bound just guarantees termination.
        for _ in 0..1_000 {
            let local = self.next_local_match(cursor)?;
            let fire = self.first_instant_reaching(local)?;
            if self.gap == DstGap::Skip && self.tz.from_local_datetime(&local).earliest().is_none()
            {
                // Skipped: go on from the first existing reading after the gap.
                let end = self.reading_at(fire)? - Duration::seconds(1);
                cursor = local.max(end);
                continue;
            }
            if fire > after {
                return Some(fire);
            }
            // `after` lies in the repeated stretch of a fall-back: the clock already
            // showed `local` (and more) before. Skip every time it has shown so far.
            cursor = local.max(self.highest_reading_between(fire, after));
        }
        None
    }

    /// Under `dst_repeat: twice`: the first second occurrence of a matching repeated
    /// local time after `after`. Only a local time whose first occurrence is at or before
    /// `after` can have its second one before the next first occurrence, so this looks
    /// only when the clock's reading at `after` lies in a repeated stretch.
    fn next_second_occurrence(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let reading = self.reading_at(after)?;
        let LocalResult::Ambiguous(a, b) = self.tz.from_local_datetime(&reading) else {
            return None;
        };
        let (early, late) = (a.min(b), a.max(b));
        let late_offset = late.offset().fix();
        let repeated = early.offset().fix().local_minus_utc() - late_offset.local_minus_utc();
        // The stretch ends before this reading; a match n repeats after `after` when
        // n - late_offset > after.
        let limit = reading.checked_add_signed(Duration::seconds(i64::from(repeated)))?;
        let mut cursor = after.naive_utc().checked_add_offset(late_offset)?;
        // Bounded by the matches inside one repeated stretch (3600 for a per-second cron).
        for _ in 0..200_000 {
            let n = self.next_local_match(cursor)?;
            if n >= limit {
                return None;
            }
            if let LocalResult::Ambiguous(x, y) = self.tz.from_local_datetime(&n) {
                let second = x.max(y).with_timezone(&Utc);
                if second > after {
                    return Some(second);
                }
            }
            cursor = n;
        }
        None
    }

    /// The zone's wall-clock reading at `t` (None past the range of `NaiveDateTime`).
    fn reading_at(&self, t: DateTime<Utc>) -> Option<NaiveDateTime> {
        let offset = self.tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        t.naive_utc().checked_add_offset(offset)
    }

    /// The first instant at which the zone's wall clock reads `local` or later.
    fn first_instant_reaching(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => match GapInfo::new(&local, &self.tz).and_then(|gap| gap.end) {
                Some(end) => Some(end.with_timezone(&Utc)),
                None => self.end_of_gap_by_search(local),
            },
        }
    }

    /// Fallback for `first_instant_reaching` in a gap chrono-tz cannot describe: the
    /// earliest existing local second after `local`, found by galloping then bisecting.
    fn end_of_gap_by_search(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        let earliest = |k: i64| -> Option<DateTime<Utc>> {
            let t = local.checked_add_signed(Duration::seconds(k))?;
            self.tz
                .from_local_datetime(&t)
                .earliest()
                .map(|t| t.with_timezone(&Utc))
        };
        let (mut missing, mut exists) = (0_i64, 1_i64);
        let mut found = loop {
            if let Some(t) = earliest(exists) {
                break t;
            }
            missing = exists;
            exists *= 2;
            if exists > 8 * 86_400 {
                return None;
            }
        };
        while exists - missing > 1 {
            let mid = missing + (exists - missing) / 2;
            match earliest(mid) {
                Some(t) => (exists, found) = (mid, t),
                None => missing = mid,
            }
        }
        Some(found)
    }

    /// The highest wall-clock reading shown at some instant of `[from, to]`, where the
    /// clock reads more at `from` than at `to` (a fall-back lies in between). Any
    /// reading actually shown at or before `to` is a safe answer; this finds the last
    /// second before the offset changes.
    fn highest_reading_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> NaiveDateTime {
        let offset = |t: i64| -> Option<i32> {
            let t = DateTime::from_timestamp(t, 0)?;
            Some(
                self.tz
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        };
        let reading = |t: i64| DateTime::from_timestamp(t, 0).and_then(|t| self.reading_at(t));
        let Some(fallback) = self.reading_at(from) else {
            return NaiveDateTime::MIN;
        };
        let (mut lo, mut hi) = (from.timestamp(), to.timestamp());
        let Some(before) = offset(lo) else {
            return fallback;
        };
        if offset(hi) == Some(before) {
            return reading(hi).map_or(fallback, |r| r.max(fallback));
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if offset(mid) == Some(before) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        reading(lo).map_or(fallback, |r| r.max(fallback))
    }
}

impl CronSchedule {
    /// The first matching local time strictly after `cursor` (whole seconds), by croner.
    fn next_local_match(&self, cursor: NaiveDateTime) -> Option<NaiveDateTime> {
        let cycles = i64::from((cursor.year() - SEARCH_WINDOW_START).div_euclid(400));
        let shift = Duration::try_days(cycles.checked_mul(CYCLE_DAYS)?)?;
        let shifted = cursor.checked_sub_signed(shift)?;
        let found = self.cron.find_next_occurrence(&shifted, false).ok()?;
        found.checked_add_signed(shift)
    }
}

/// A user-supplied string cut short enough to quote in an error.
fn clip(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut clipped: String = s.chars().take(MAX).collect();
        clipped.push('…');
        clipped
    }
}

struct FieldKind {
    name: &'static str,
    /// The values croner accepts, for error messages.
    allowed: &'static str,
    names: &'static [&'static str],
    /// The number of the first name.
    first_name_value: u32,
    /// Accepts `?` as a synonym of `*` (the two day fields).
    question_mark: bool,
}

const SECOND: FieldKind = FieldKind {
    name: "second",
    allowed: "0-59",
    names: &[],
    first_name_value: 0,
    question_mark: false,
};
const MINUTE: FieldKind = FieldKind {
    name: "minute",
    allowed: "0-59",
    names: &[],
    first_name_value: 0,
    question_mark: false,
};
const HOUR: FieldKind = FieldKind {
    name: "hour",
    allowed: "0-23",
    names: &[],
    first_name_value: 0,
    question_mark: false,
};
const DAY_OF_MONTH: FieldKind = FieldKind {
    name: "day-of-month",
    allowed: "1-31",
    names: &[],
    first_name_value: 0,
    question_mark: true,
};
const MONTH: FieldKind = FieldKind {
    name: "month",
    allowed: "1-12 or jan-dec",
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    first_name_value: 1,
    question_mark: false,
};
const DAY_OF_WEEK: FieldKind = FieldKind {
    name: "day-of-week",
    allowed: "0-7 or sun-sat, 0 and 7 are Sunday",
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    first_name_value: 0,
    question_mark: true,
};

/// The five fields a Vixie cron macro stands for (case-insensitive, as Vixie cron).
fn macro_fields(expression: &str) -> Option<&'static str> {
    Some(match expression.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => return None,
    })
}

fn parse_expression(expression: &str) -> Result<Cron, String> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "expression is too long ({} bytes, at most {MAX_EXPRESSION_LEN})",
            expression.len()
        ));
    }
    let expression = macro_fields(expression.trim()).unwrap_or(expression);
    let parts: Vec<&str> = expression.split_whitespace().collect();
    let (second, rest) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        _ if expression.trim_start().starts_with('@') => {
            return Err(format!(
                "the macro {:?} is not supported (only @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly); use 5 fields (minute hour day-of-month month day-of-week) or 6 (with a leading second)",
                clip(expression.trim())
            ))
        }
        n => {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second minute hour day-of-month month day-of-week), found {n}"
            ))
        }
    };
    let fields = [
        (second, &SECOND),
        (rest[0], &MINUTE),
        (rest[1], &HOUR),
        (rest[2], &DAY_OF_MONTH),
        (rest[3], &MONTH),
        (rest[4], &DAY_OF_WEEK),
    ];
    for (text, kind) in fields {
        check_tokens(text, kind)?;
    }
    let (dom, dow) = (rest[2], rest[4]);
    let either_day = restricted(dom) && restricted(dow);
    // Always six fields; `dom_and_dow` makes croner AND the day fields (it ORs them
    // unless one is exactly `*`); `sloppy_ranges` accepts `N/STEP`.
    let parser = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .dom_and_dow(!either_day)
        .sloppy_ranges(true)
        .build();
    let texts = fields.map(|(text, kind)| for_croner(text, kind));
    let cron = parser.parse(&texts.join(" ")).map_err(|whole| {
        // Find the field croner objects to by parsing it alone.
        for (i, (text, kind)) in fields.into_iter().enumerate() {
            let mut probe = ["0", "*", "*", "*", "*", "*"].map(String::from);
            probe[i] = for_croner(text, kind);
            if let Err(e) = parser.parse(&probe.join(" ")) {
                return format!(
                    "{} field {:?}: {} (allowed: {})",
                    kind.name,
                    clip(text),
                    croner_reason(&e),
                    kind.allowed
                );
            }
        }
        croner_reason(&whole)
    })?;
    if !either_day && !some_date_can_match(&cron) {
        return Err(format!(
            "never fires: no month in {month:?} has a day {dom:?}",
            month = clip(rest[3]),
            dom = clip(dom)
        ));
    }
    Ok(cron)
}

/// croner's message, as a lower-case phrase without the variant prefix.
fn croner_reason(e: &CronError) -> String {
    let text = match e {
        CronError::ComponentError(m)
        | CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "invalid".to_owned(),
    }
}

/// Refuses what croner would accept but we do not: anything but numbers, `*`, `?` (day
/// fields) and this field's names between the `,`, `-` and `/` separators (so no `L`,
/// `W`, `#`, `+`, names of another field), and empty list items or values (croner skips
/// `1,,2` and reads `/5` as `*/5`).
fn check_tokens(text: &str, kind: &FieldKind) -> Result<(), String> {
    let err = |what: String| format!("{} field {:?}: {what}", kind.name, clip(text));
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err("empty list item".into()));
        }
        for token in item.split(['-', '/']) {
            let ok = token == "*"
                || (kind.question_mark && token == "?")
                || (!token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()))
                || kind
                    .names
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(token));
            if ok {
                continue;
            }
            return Err(err(match (token.is_empty(), kind.names.is_empty()) {
                (true, _) => "missing value".to_owned(),
                (false, true) => format!("{:?} is not a number", clip(token)),
                (false, false) => format!(
                    "{:?} is not a number or a name ({})",
                    clip(token),
                    kind.names.join(", ")
                ),
            }));
        }
    }
    Ok(())
}

/// The field as handed to croner, meaning the same as `field` does here (its tokens
/// already checked): names become numbers (croner replaces `SUN` and `-SUN` anywhere, so
/// `sun-sun` would mean every day), and `*` inside a list (`*,5`, valid in Vixie cron;
/// croner only accepts `*` as a whole field) becomes `*/1`.
fn for_croner(field: &str, kind: &FieldKind) -> String {
    let items: Vec<&str> = field.split(',').collect();
    let mut out = String::with_capacity(field.len() + 4);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if items.len() > 1 && (*item == "*" || *item == "?") {
            out.push_str("*/1");
            continue;
        }
        for piece in item.split_inclusive(['-', '/']) {
            let token = piece.trim_end_matches(['-', '/']);
            match kind
                .names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(token))
            {
                Some(n) => {
                    out.push_str(&(n as u32 + kind.first_name_value).to_string());
                    out.push_str(&piece[token.len()..]);
                }
                None => out.push_str(piece),
            }
        }
    }
    out
}

/// A day field counts as restricted unless it starts with `*` or `?` (as in Vixie cron).
fn restricted(field: &str) -> bool {
    !(field.starts_with('*') || field.starts_with('?'))
}

/// Whether some month of the month field has a day of the day-of-month field (when the
/// day-of-week field is a wildcard or ANDed, it can always be satisfied by some year of
/// the 400-year cycle).
fn some_date_can_match(cron: &Cron) -> bool {
    const LONGEST: [u16; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days = cron.pattern.days.values();
    cron.pattern
        .months
        .values()
        .iter()
        .any(|&m| days.iter().any(|&d| d <= LONGEST[usize::from(m)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

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

    #[test]
    fn expression_errors_name_the_field_and_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "expected 5 fields"),
            ("* * * *", "found 4"),
            ("* * * * * * *", "found 7"),
            ("@reboot", "the macro \"@reboot\" is not supported"),
            (
                "60 * * * *",
                "minute field \"60\": number out of bounds (allowed: 0-59)",
            ),
            (
                "* 24 * * *",
                "hour field \"24\": number out of bounds (allowed: 0-23)",
            ),
            (
                "* * 0 * *",
                "day-of-month field \"0\": number out of bounds (allowed: 1-31)",
            ),
            (
                "* * * 13 *",
                "month field \"13\": number out of bounds (allowed: 1-12",
            ),
            (
                "* * * * 8",
                "day-of-week field \"8\": number out of bounds (allowed: 0-7",
            ),
            (
                "61 * * * * *",
                "second field \"61\": number out of bounds (allowed: 0-59)",
            ),
            ("*/0 * * * *", "minute field \"*/0\": step cannot be zero"),
            ("1/x * * * *", "minute field \"1/x\": \"x\" is not a number"),
            ("5-1 * * * *", "minute field \"5-1\": range out of bounds"),
            ("1,,2 * * * *", "empty list item"),
            ("-5 * * * *", "missing value"),
            ("a * * * *", "minute field \"a\": \"a\" is not a number"),
            (
                "* * * * funday",
                "\"funday\" is not a number or a name (sun, mon",
            ),
            (
                "* * * smarch *",
                "\"smarch\" is not a number or a name (jan, feb",
            ),
            ("* * ? * L", "\"L\" is not a number or a name"),
            ("* * 15W * *", "\"15W\" is not a number"),
            ("* ? * * *", "hour field \"?\""),
            ("+5 * * * *", "\"+5\" is not a number"),
            (
                "99999999999 * * * *",
                "minute field \"99999999999\": invalid number (allowed: 0-59)",
            ),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6,9,11 *", "never fires"),
        ];
        for (expression, reason) in cases {
            let err = cron_err(expression);
            assert_eq!(err.field, "schedule.expression", "{expression:?}");
            assert!(
                err.reason.contains(reason),
                "{expression:?}: {:?} does not contain {reason:?}",
                err.reason
            );
        }
        let long = "1,".repeat(200) + "1 * * * *";
        assert!(cron_err(&long).reason.contains("too long"));
        // Satisfiable through the day of week (OR) or a leap year: accepted.
        cron("0 0 30 2 1", "UTC");
        cron("0 0 29 2 *", "UTC");
    }

    /// croner accepts these; the product refuses them, with a one-line reason.
    #[test]
    fn croner_extensions_and_misplaced_names_are_refused() {
        let cases: &[(&str, &str)] = &[
            (
                "* * * * +5",
                "day-of-week field \"+5\": \"+5\" is not a number",
            ),
            ("0 0 1 * 1#2", "\"1#2\" is not a number or a name"),
            ("0 0 * * 5L", "\"5L\" is not a number or a name"),
            (
                "0 0 L * *",
                "day-of-month field \"L\": \"L\" is not a number",
            ),
            ("0 0 LW * *", "\"LW\" is not a number"),
            ("0 0 0 * * * 2030", "found 7"),
            ("@every 5m", "the macro \"@every 5m\" is not supported"),
            (
                "jan * * * *",
                "minute field \"jan\": \"jan\" is not a number",
            ),
            (
                "* * * * jan",
                "day-of-week field \"jan\": \"jan\" is not a number",
            ),
            (
                "* * * sun *",
                "month field \"sun\": \"sun\" is not a number",
            ),
            ("/5 * * * *", "minute field \"/5\": missing value"),
            ("5, * * * *", "empty list item"),
            (
                "1-2-3 * * * *",
                "minute field \"1-2-3\": invalid range syntax",
            ),
            (
                "0 0 * * sat-fri",
                "day-of-week field \"sat-fri\": range out of bounds",
            ),
        ];
        for (expression, reason) in cases {
            let err = cron_err(expression);
            assert_eq!(err.field, "schedule.expression", "{expression:?}");
            assert!(!err.reason.contains('\n'), "{:?}", err.reason);
            assert!(
                err.reason.contains(reason),
                "{expression:?}: {:?} does not contain {reason:?}",
                err.reason
            );
        }
    }

    #[test]
    fn star_list_items_and_ranges_ending_on_sunday() {
        // `*` inside a list (croner only takes it as a whole field); a day field starting
        // with `?` is unrestricted, so `?,5` is ANDed with Mondays.
        assert_eq!(
            fires(&cron("*,5 0 1 1 *", "UTC"), "2030-01-01T00:00:30Z", 2),
            ["2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z"]
        );
        assert_eq!(
            fires(&cron("0 0 ?,5 * 1", "UTC"), "2030-01-01T00:00:00Z", 2),
            ["2030-01-07T00:00:00Z", "2030-01-14T00:00:00Z"]
        );
        // Names are numbers here, not croner's text replacement (which reads `sun-sun` as
        // `0-7`, every day): `sun` is 0, so `sun-sun` is Sundays and `fri-sun` is
        // backwards; `fri-7` reaches Sunday. 2030-01-04 is a Friday.
        assert_eq!(
            fires(&cron("0 0 * * sun-SUN", "UTC"), "2030-01-01T00:00:00Z", 2),
            ["2030-01-06T00:00:00Z", "2030-01-13T00:00:00Z"]
        );
        assert!(cron_err("0 0 * * fri-sun")
            .reason
            .contains("range out of bounds"));
        assert_eq!(
            fires(&cron("0 0 * * fri-7", "UTC"), "2030-01-01T00:00:00Z", 4),
            [
                "2030-01-04T00:00:00Z",
                "2030-01-05T00:00:00Z",
                "2030-01-06T00:00:00Z",
                "2030-01-11T00:00:00Z"
            ]
        );
    }

    /// croner stops searching at the year 5000; the 400-year shift hides that.
    #[test]
    fn fires_far_beyond_crons_year_limit() {
        let s = cron("0 0 1 1 *", "Europe/Berlin");
        assert_eq!(
            fires(&s, "4998-12-31T23:00:00Z", 2),
            ["4999-12-31T23:00:00Z", "5000-12-31T23:00:00Z"]
        );
        assert_eq!(
            fires(&cron("0 0 29 2 */7", "UTC"), "9999-01-01T00:00:00Z", 1),
            ["+10004-02-29T00:00:00Z"]
        );
        let ides = Utc.with_ymd_and_hms(-44, 3, 15, 0, 0, 0).unwrap();
        assert_eq!(
            cron("30 2 * * *", "UTC").next_after(ides),
            Some(ides + Duration::minutes(150))
        );
    }

    /// `cargo test --release -p jobcenter-core -- --ignored --nocapture next_after_speed`
    #[test]
    #[ignore]
    fn next_after_speed() {
        for (expression, zone, n) in [
            ("*/15 * * * *", "Europe/Berlin", 200_000),
            ("0 0 29 2 *", "Europe/Berlin", 1_000),
            ("0 0 29 2 *", "UTC", 1_000),
        ] {
            let s = cron(expression, zone);
            let mut t = at("2020-01-01T00:00:00Z");
            let start = std::time::Instant::now();
            for _ in 0..n {
                t = s.next_after(t).unwrap();
            }
            println!(
                "{expression:>14} {zone:>14}: {:?} per next_after (chained, ended {t})",
                start.elapsed() / n
            );
        }
    }

    #[test]
    fn timezone_errors() {
        for (tz, reason) in [
            ("Mars/Base", r#"unknown time zone "Mars/Base""#),
            ("", r#"unknown time zone """#),
            ("europe/berlin", r#"unknown time zone "europe/berlin""#),
        ] {
            let err = ScheduleSpec::cron("* * * * *", tz).compile().unwrap_err();
            assert_eq!(err.field, "schedule.timezone");
            assert_eq!(err.reason, reason);
        }
        let err = CronSchedule::new("* * * * *", &"x".repeat(1000)).unwrap_err();
        assert!(err.reason.len() < 100, "{}", err.reason);
        for tz in [
            "UTC",
            "Etc/UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
        ] {
            assert_eq!(cron("* * * * *", tz), cron("* * * * *", tz));
        }
    }

    #[test]
    fn field_syntax() {
        let utc = |e: &str, after: &str, n: usize| fires(&cron(e, "UTC"), after, n);
        // 2030-01-01 is a Tuesday.
        assert_eq!(
            utc("0 9 * * 1-5", "2030-01-03T12:00:00Z", 3),
            [
                "2030-01-04T09:00:00Z",
                "2030-01-07T09:00:00Z",
                "2030-01-08T09:00:00Z"
            ]
        );
        assert_eq!(
            utc("0 9 * * mon-FRI", "2030-01-03T12:00:00Z", 3),
            utc("0 9 * * 1-5", "2030-01-03T12:00:00Z", 3)
        );
        // 0 and 7 are both Sunday.
        assert_eq!(
            utc("0 0 * * 0", "2030-01-01T00:00:00Z", 1),
            ["2030-01-06T00:00:00Z"]
        );
        assert_eq!(
            utc("0 0 * * 7", "2030-01-01T00:00:00Z", 1),
            ["2030-01-06T00:00:00Z"]
        );
        assert_eq!(
            utc("0 0 * * 5-7", "2030-01-01T00:00:00Z", 3),
            [
                "2030-01-04T00:00:00Z",
                "2030-01-05T00:00:00Z",
                "2030-01-06T00:00:00Z"
            ]
        );
        // Both day fields restricted: either matches (the 13th, or any Friday).
        assert_eq!(
            utc("0 0 13 * 5", "2030-01-01T00:00:00Z", 3),
            [
                "2030-01-04T00:00:00Z",
                "2030-01-11T00:00:00Z",
                "2030-01-13T00:00:00Z"
            ]
        );
        // A `*`-led day field means AND: the 13th on a Sunday or Friday (`*/5` = 0,5).
        assert_eq!(
            utc("0 0 13 * */5", "2030-01-01T00:00:00Z", 3),
            [
                "2030-01-13T00:00:00Z",
                "2030-09-13T00:00:00Z",
                "2030-10-13T00:00:00Z"
            ]
        );
        assert_eq!(
            utc("0 0 13 * */1", "2030-01-01T00:00:00Z", 2),
            ["2030-01-13T00:00:00Z", "2030-02-13T00:00:00Z"]
        );
        assert_eq!(
            utc("0 0 13 * 5", "2030-01-01T00:00:00Z", 1),
            ["2030-01-04T00:00:00Z"]
        );
        assert_eq!(
            utc("0 0 ? * 5", "2030-01-01T00:00:00Z", 1),
            ["2030-01-04T00:00:00Z"]
        );
        // Steps, lists, N/STEP, names, seconds.
        assert_eq!(
            utc("5/20 1,3 * * *", "2030-01-01T00:00:00Z", 6),
            [
                "2030-01-01T01:05:00Z",
                "2030-01-01T01:25:00Z",
                "2030-01-01T01:45:00Z",
                "2030-01-01T03:05:00Z",
                "2030-01-01T03:25:00Z",
                "2030-01-01T03:45:00Z"
            ]
        );
        assert_eq!(
            utc("*/20 * * * * *", "2030-01-01T00:00:05Z", 3),
            [
                "2030-01-01T00:00:20Z",
                "2030-01-01T00:00:40Z",
                "2030-01-01T00:01:00Z"
            ]
        );
        assert_eq!(
            utc("0 0 1 jan,Jul *", "2030-03-01T00:00:00Z", 2),
            ["2030-07-01T00:00:00Z", "2031-01-01T00:00:00Z"]
        );
        assert_eq!(
            utc("  0\t12  *  *  * ", "2030-03-01T00:00:00Z", 1),
            ["2030-03-01T12:00:00Z"]
        );
        // Leap days: 2100 is not a leap year.
        assert_eq!(
            utc("0 0 29 2 *", "2089-01-01T00:00:00Z", 4),
            [
                "2092-02-29T00:00:00Z",
                "2096-02-29T00:00:00Z",
                "2104-02-29T00:00:00Z",
                "2108-02-29T00:00:00Z"
            ]
        );
        // Feb 29 ANDed with a `*`-led day of week: rare, still found (Sundays: 2060, 2088).
        assert_eq!(
            utc("0 0 29 2 */1", "2030-01-01T00:00:00Z", 1),
            ["2032-02-29T00:00:00Z"]
        );
        assert_eq!(
            utc("0 0 29 2 */7", "2033-01-01T00:00:00Z", 2),
            ["2060-02-29T00:00:00Z", "2088-02-29T00:00:00Z"]
        );
    }

    #[test]
    fn strictly_after_and_sub_second_instants() {
        let s = cron("*/15 * * * *", "UTC");
        let t = at("2030-01-01T00:15:00Z");
        assert_eq!(s.next_after(t), Some(at("2030-01-01T00:30:00Z")));
        assert_eq!(s.next_after(t - Duration::microseconds(1)), Some(t));
        assert_eq!(
            s.next_after(t + Duration::milliseconds(999)),
            Some(at("2030-01-01T00:30:00Z"))
        );
    }

    #[test]
    fn dst_examples() {
        let berlin = cron("30 2 * * *", "Europe/Berlin");
        // Spring forward 2021-03-28 02:00 CET -> 03:00 CEST: 02:30 fires at 03:00 CEST.
        assert_eq!(
            fires(&berlin, "2021-03-26T12:00:00Z", 3),
            [
                "2021-03-27T01:30:00Z",
                "2021-03-28T01:00:00Z",
                "2021-03-29T00:30:00Z"
            ]
        );
        // Fall back 2021-10-31 03:00 CEST -> 02:00 CET: 02:30 fires once, in CEST.
        assert_eq!(
            fires(&berlin, "2021-10-29T12:00:00Z", 3),
            [
                "2021-10-30T00:30:00Z",
                "2021-10-31T00:30:00Z",
                "2021-11-01T01:30:00Z"
            ]
        );
        // The whole skipped hour collapses into one fire at 03:00 CEST, which matches too.
        let quarter = cron("*/15 * * * *", "Europe/Berlin");
        assert_eq!(
            fires(&quarter, "2021-03-28T00:40:00Z", 3),
            [
                "2021-03-28T00:45:00Z",
                "2021-03-28T01:00:00Z",
                "2021-03-28T01:15:00Z"
            ]
        );
        // The repeated hour fires nothing the second time...
        assert_eq!(
            fires(&quarter, "2021-10-31T00:40:00Z", 3),
            [
                "2021-10-31T00:45:00Z",
                "2021-10-31T02:00:00Z",
                "2021-10-31T02:15:00Z"
            ]
        );
        // ...also when asked from inside it (02:10 CET, second occurrence).
        assert_eq!(
            fires(&quarter, "2021-10-31T01:10:00Z", 1),
            ["2021-10-31T02:00:00Z"]
        );
        let ny = cron("30 2 * * *", "America/New_York");
        assert_eq!(
            fires(&ny, "2021-03-13T12:00:00Z", 2),
            ["2021-03-14T07:00:00Z", "2021-03-15T06:30:00Z"]
        );
        // Lord Howe goes from +10:30 to +11 at 02:00: the gap is 02:00-02:30.
        let lord_howe = cron("0 2 * * *", "Australia/Lord_Howe");
        assert_eq!(
            fires(&lord_howe, "2021-10-02T00:00:00Z", 2),
            ["2021-10-02T15:30:00Z", "2021-10-03T15:00:00Z"]
        );
        let lord_howe = cron("15,30 2 * * *", "Australia/Lord_Howe");
        assert_eq!(
            fires(&lord_howe, "2021-10-02T00:00:00Z", 3),
            [
                "2021-10-02T15:30:00Z",
                "2021-10-03T15:15:00Z",
                "2021-10-03T15:30:00Z"
            ]
        );
        // Santiago springs forward at midnight: 00:00 fires at 01:00 -03.
        let santiago = cron("0 0 * * *", "America/Santiago");
        assert_eq!(
            fires(&santiago, "2021-09-04T12:00:00Z", 2),
            ["2021-09-05T04:00:00Z", "2021-09-06T03:00:00Z"]
        );
    }

    fn cron_with(expression: &str, timezone: &str, gap: DstGap, repeat: DstRepeat) -> Schedule {
        ScheduleSpec::Cron {
            expression: expression.into(),
            timezone: timezone.into(),
            dst_gap: gap,
            dst_repeat: repeat,
        }
        .compile()
        .unwrap()
    }

    fn shifts(schedule: &Schedule, after: &str, n: usize) -> Vec<Option<DstShift>> {
        fires(schedule, after, n)
            .iter()
            .map(|t| schedule.dst_shift(at(t)))
            .collect()
    }

    #[test]
    fn dst_choices_and_marks() {
        use DstShift::{Gap, Repeat};
        let skip = cron_with("30 2 * * *", "Europe/Berlin", DstGap::Skip, DstRepeat::Once);
        // 2021-03-28 has no 02:30: nothing that day.
        assert_eq!(
            fires(&skip, "2021-03-26T12:00:00Z", 2),
            ["2021-03-27T01:30:00Z", "2021-03-29T00:30:00Z"]
        );
        let next = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            shifts(&next, "2021-03-26T12:00:00Z", 3),
            [None, Some(Gap), None]
        );
        assert_eq!(shifts(&skip, "2021-03-26T12:00:00Z", 2), [None, None]);
        // Twice: 02:30 CEST and 02:30 CET on 2021-10-31; the second one is marked.
        let twice = cron_with(
            "30 2 * * *",
            "Europe/Berlin",
            DstGap::Next,
            DstRepeat::Twice,
        );
        assert_eq!(
            fires(&twice, "2021-10-29T12:00:00Z", 4),
            [
                "2021-10-30T00:30:00Z",
                "2021-10-31T00:30:00Z",
                "2021-10-31T01:30:00Z",
                "2021-11-01T01:30:00Z"
            ]
        );
        assert_eq!(
            shifts(&twice, "2021-10-29T12:00:00Z", 4),
            [None, None, Some(Repeat), None]
        );
        // Quarter hours, twice: the repeated hour's eight fires interleave in time order,
        // also when asked from inside either occurrence.
        let quarter = cron_with(
            "*/15 * * * *",
            "Europe/Berlin",
            DstGap::Next,
            DstRepeat::Twice,
        );
        let expected: Vec<String> = (0..10)
            .map(|i| {
                (at("2021-10-31T00:00:00Z") + Duration::minutes(15 * i))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .collect();
        assert_eq!(fires(&quarter, "2021-10-30T23:50:00Z", 10), expected);
        assert_eq!(
            fires(&quarter, "2021-10-31T00:40:00Z", 2),
            ["2021-10-31T00:45:00Z", "2021-10-31T01:00:00Z"]
        );
        assert_eq!(
            fires(&quarter, "2021-10-31T01:10:00Z", 1),
            ["2021-10-31T01:15:00Z"]
        );
        assert_eq!(
            shifts(&quarter, "2021-10-31T00:40:00Z", 2),
            [None, Some(Repeat)]
        );
        // Skip a gap with quarter hours: 03:00 CEST still fires (it exists), unmarked.
        let quarter_skip = cron_with(
            "*/15 * * * *",
            "Europe/Berlin",
            DstGap::Skip,
            DstRepeat::Once,
        );
        assert_eq!(
            fires(&quarter_skip, "2021-03-28T00:40:00Z", 2),
            ["2021-03-28T00:45:00Z", "2021-03-28T01:00:00Z"]
        );
        assert_eq!(
            shifts(&quarter_skip, "2021-03-28T00:40:00Z", 2),
            [None, None]
        );
        // Default: 03:00 CEST stands in for 02:00-02:45 and is marked.
        assert_eq!(
            shifts(
                &cron("*/15 * * * *", "Europe/Berlin"),
                "2021-03-28T00:40:00Z",
                2
            ),
            [None, Some(Gap)]
        );
        // A per-second cron skips a whole gap hour without giving up.
        let every_second = cron_with(
            "* * 2 * * *",
            "Europe/Berlin",
            DstGap::Skip,
            DstRepeat::Once,
        );
        assert_eq!(
            fires(&every_second, "2021-03-28T00:59:59Z", 1),
            ["2021-03-29T00:00:00Z"]
        );
        // JSON: the defaults are not written, so stored schedules are unchanged.
        let spec: ScheduleSpec = serde_json::from_str(
            r#"{"kind":"cron","expression":"0 2 * * *","dst_gap":"skip","dst_repeat":"twice"}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"kind":"cron","expression":"0 2 * * *","timezone":"UTC","dst_gap":"skip","dst_repeat":"twice"}"#
        );
        for bad in [
            r#"{"kind":"cron","expression":"0 2 * * *","dst_gap":"later"}"#,
            r#"{"kind":"cron","expression":"0 2 * * *","dst_repeat":2}"#,
        ] {
            assert!(serde_json::from_str::<ScheduleSpec>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yearly_expressions_answer_fast() {
        let s = cron("0 0 29 2 *", "Europe/Berlin");
        let start = std::time::Instant::now();
        let mut t = at("2020-03-01T00:00:00Z");
        for _ in 0..200 {
            t = s.next_after(t).unwrap();
            let local = t.with_timezone(&chrono_tz::Europe::Berlin);
            assert_eq!((local.month(), local.day(), local.hour()), (2, 29, 0));
        }
        assert!(t.year() > 2800);
        // Minute-walking would need ~2 M steps per call; this is a generous bound.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    /// Differential check of the naive-time matcher against the `cron` crate on UTC
    /// (where its time-zone handling is irrelevant) for expressions whose meaning is the
    /// same in both (no day-of-week numbers, at most one restricted day field).
    #[test]
    fn naive_matching_agrees_with_the_cron_crate() {
        use std::str::FromStr;
        for expression in [
            "*/7 3-5,20 * * *",
            "0 0 1 */2 *",
            "15 10 31 * *",
            "0 12 * * mon-fri",
            "0 12 * * sat,sun",
            "1-59/13 */5 1,15 jan-jun ?",
            "*/20 * 2 * * *",
            "5-50/15 59 23 31 12 *",
            "0 0 29 2 *",
        ] {
            let ours = cron(expression, "UTC");
            let six = if expression.split_whitespace().count() == 5 {
                format!("0 {expression}")
            } else {
                expression.to_owned()
            };
            let theirs = cron::Schedule::from_str(&six).unwrap();
            let mut t = at("2023-12-30T00:00:00Z");
            for (i, expected) in theirs.after(&t).take(300).enumerate() {
                let got = ours.next_after(t);
                assert_eq!(got, Some(expected), "{expression:?} fire #{i}");
                t = expected;
            }
        }
    }

    /// Never panics, whatever the input.
    #[test]
    fn fuzz_parser_and_evaluation() {
        const ALPHABET: &[&str] = &[
            "*",
            "?",
            "/",
            "-",
            ",",
            " ",
            "\t",
            "0",
            "1",
            "2",
            "5",
            "7",
            "9",
            "12",
            "23",
            "24",
            "29",
            "31",
            "59",
            "60",
            "99999999999999999999",
            "L",
            "W",
            "#",
            "@",
            "jan",
            "SUN",
            "fri",
            "x",
            "é",
            "٣",
            "\u{0}",
            "\u{2003}",
            "--",
            "//",
            "+",
            ".",
            "*/0",
            "0-",
        ];
        let instants = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            at("2021-03-28T00:59:59.999Z"),
            at("2021-10-31T01:10:00Z"),
            at("1900-01-01T00:00:00Z"),
        ];
        let zones = [
            "UTC",
            "Europe/Berlin",
            "Australia/Lord_Howe",
            "Pacific/Apia",
            "America/Santiago",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut valid = 0;
        for i in 0..20_000 {
            let tokens = 1 + next(14);
            let expression: String = (0..tokens)
                .map(|_| ALPHABET[next(ALPHABET.len())])
                .collect();
            // Half the time, build something field-shaped from plausible items.
            let expression = if i % 2 == 0 {
                expression
            } else {
                const NUMBERS: &[&str] = &[
                    "1", "2", "3", "5", "6", "0", "7", "12", "23", "29", "30", "31", "59",
                ];
                let parts: Vec<String> = (0..5 + next(2))
                    .map(|_| {
                        let items: Vec<String> = (0..1 + next(3))
                            .map(|_| {
                                // Mostly small numbers, valid in every field.
                                let pool = if next(3) == 0 { NUMBERS.len() } else { 5 };
                                let n = NUMBERS[next(pool)];
                                let m = NUMBERS[next(NUMBERS.len())];
                                match next(16) {
                                    0 | 1 => "*".to_owned(),
                                    2 => format!("*/{m}"),
                                    3 => format!("{n}-{m}"),
                                    4 => format!("{n}/{m}"),
                                    5 => ALPHABET[next(ALPHABET.len())].to_owned(),
                                    6..=8 => "*".to_owned(),
                                    _ => n.to_owned(),
                                }
                            })
                            .collect();
                        items.join(",")
                    })
                    .collect();
                parts.join(" ")
            };
            let zone = zones[next(zones.len())];
            let timezone = if next(10) == 0 {
                expression.clone()
            } else {
                zone.to_owned()
            };
            let dst_gap = [DstGap::Next, DstGap::Skip][next(2)];
            let dst_repeat = [DstRepeat::Once, DstRepeat::Twice][next(2)];
            if let Ok(s) = (ScheduleSpec::Cron {
                expression,
                timezone,
                dst_gap,
                dst_repeat,
            })
            .compile()
            {
                valid += 1;
                for t in instants {
                    if let Some(next) = s.next_after(t) {
                        assert!(next > t);
                    }
                }
            }
        }
        assert!(
            valid > 1_000,
            "fuzzer produced only {valid} valid expressions"
        );
        for spec in [
            ScheduleSpec::Interval { every_seconds: 1 },
            ScheduleSpec::cron("* * * * * *", "Pacific/Kiritimati"),
            ScheduleSpec::cron("59 59 23 31 12 *", "Etc/GMT-14"),
            ScheduleSpec::cron("0 0 1 1 *", "Etc/GMT+12"),
        ] {
            let s = spec.compile().unwrap();
            for t in instants {
                let _ = s.next_after(t);
            }
        }
    }

    /// The macros fire exactly as the fields they stand for.
    #[test]
    fn vixie_and_kubernetes_macros_stand_for_their_fields() {
        for (alias, fields) in [
            ("@yearly", "0 0 1 1 *"),
            ("@annually", "0 0 1 1 *"),
            ("@monthly", "0 0 1 * *"),
            ("@weekly", "0 0 * * 0"),
            ("@daily", "0 0 * * *"),
            ("@midnight", "0 0 * * *"),
            ("@HOURLY", "0 * * * *"),
        ] {
            let by_alias = ScheduleSpec::cron(alias, "Europe/Berlin")
                .compile()
                .unwrap();
            let by_fields = ScheduleSpec::cron(fields, "Europe/Berlin")
                .compile()
                .unwrap();
            let from: DateTime<Utc> = "2026-03-01T12:34:56Z".parse().unwrap();
            let mut a = from;
            let mut b = from;
            for _ in 0..5 {
                a = by_alias.next_after(a).unwrap();
                b = by_fields.next_after(b).unwrap();
                assert_eq!(a, b, "{alias}");
            }
        }
    }
}
