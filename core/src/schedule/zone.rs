//! A cron expression bound to its time zone: croner's matching *naive* local times
//! mapped to UTC instants by the DST rules of the module documentation, with `chrono-tz`.

use super::expression::{clip, parse_expression};
use super::{DstGap, DstRepeat, DstShift, InvalidSchedule};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};
use croner::Cron;

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
