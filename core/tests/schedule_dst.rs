//! Cron schedules across daylight-saving transitions, checked against a brute-force
//! oracle.
//!
//! The oracle knows nothing of `jobcenter_core::schedule` nor of `from_local_datetime`:
//! it only asks chrono-tz for UTC offsets (scanning them once to find each zone's
//! transitions), walks UTC minute by minute (second by second for a seconds field) and
//! applies the product rule literally: a fire happens at instant `t` when the zone's wall
//! clock at `t` reads higher than it ever read before, and some wall-clock reading
//! reached since the previous step (`t`'s own or one skipped by a gap) matches the
//! expression. So a skipped time fires at the first instant after the gap, several
//! skipped times fire once, and a repeated time fires only the first time.
//! Expressions are matched by hand-written predicates, not by parsing.
//!
//! The per-job DST choices change the rule literally too: `dst_gap: skip` ignores the
//! skipped readings (only `t`'s own reading can match); `dst_repeat: twice` fires at
//! every `t` whose reading matches, whether or not the clock showed it before (skipped
//! readings are then those between the previous step's reading and `t`'s).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use jobcenter_core::schedule::{DstGap, DstRepeat, Schedule, ScheduleSpec};
use std::collections::BTreeMap;

const DAY: i64 = 86_400;

fn ts(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn instant(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

/// A zone's UTC offsets over the test range, as found by scanning chrono-tz.
struct Zone {
    tz: Tz,
    initial_offset: i64,
    /// (first instant of the new offset, new offset), in order.
    transitions: Vec<(i64, i64)>,
}

fn offset_at(tz: Tz, t: i64) -> i64 {
    tz.offset_from_utc_datetime(&instant(t).naive_utc())
        .fix()
        .local_minus_utc() as i64
}

impl Zone {
    /// Scans hour by hour (real transitions are months apart) and bisects each change
    /// down to the second.
    fn scan(name: &str, from: i64, to: i64) -> Zone {
        let tz: Tz = name.parse().unwrap();
        let initial_offset = offset_at(tz, from);
        let mut transitions = Vec::new();
        let (mut t, mut current) = (from, initial_offset);
        while t < to {
            let next = t + 3600;
            let offset = offset_at(tz, next);
            if offset != current {
                let (mut lo, mut hi) = (t, next);
                while hi - lo > 1 {
                    let mid = (lo + hi) / 2;
                    if offset_at(tz, mid) == current {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                assert_eq!(
                    offset_at(tz, hi),
                    offset,
                    "{name}: two changes within an hour"
                );
                transitions.push((hi, offset));
                current = offset;
            }
            t = next;
        }
        Zone {
            tz,
            initial_offset,
            transitions,
        }
    }

    fn offset(&self, t: i64) -> i64 {
        match self.transitions.partition_point(|&(at, _)| at <= t) {
            0 => self.initial_offset,
            i => self.transitions[i - 1].1,
        }
    }

    fn describe(&self, t: i64) -> String {
        format!(
            "{} ({})",
            instant(t).format("%Y-%m-%dT%H:%M:%SZ"),
            instant(t)
                .with_timezone(&self.tz)
                .format("%Y-%m-%d %H:%M:%S %Z, %a")
        )
    }
}

/// Wall-clock fields of a local reading (seconds since 1970-01-01T00:00 local).
#[derive(Clone, Copy)]
struct Wall {
    hour: i64,
    minute: i64,
    second: i64,
    /// 0 = Sunday.
    weekday: i64,
}

fn wall(reading: i64) -> Wall {
    let of_day = reading.rem_euclid(DAY);
    Wall {
        hour: of_day / 3600,
        minute: of_day / 60 % 60,
        second: of_day % 60,
        // 1970-01-01 was a Thursday.
        weekday: (reading.div_euclid(DAY) + 4).rem_euclid(7),
    }
}

struct Case {
    expression: &'static str,
    matches: fn(Wall) -> bool,
}

const DAILY_0230: Case = Case {
    expression: "30 2 * * *",
    matches: |w| w.hour == 2 && w.minute == 30 && w.second == 0,
};
const DAILY_0200: Case = Case {
    expression: "0 2 * * *",
    matches: |w| w.hour == 2 && w.minute == 0 && w.second == 0,
};
const SUNDAY_0145: Case = Case {
    expression: "45 1 * * 0",
    matches: |w| w.weekday == 0 && w.hour == 1 && w.minute == 45 && w.second == 0,
};
const EVEN_HOURS: Case = Case {
    expression: "0 */2 * * *",
    matches: |w| w.hour % 2 == 0 && w.minute == 0 && w.second == 0,
};
const QUARTERS: Case = Case {
    expression: "*/15 * * * *",
    matches: |w| w.minute % 15 == 0 && w.second == 0,
};
const EARLY_QUARTERS: Case = Case {
    expression: "*/15 0-3 * * *",
    matches: |w| w.hour <= 3 && w.minute % 15 == 0 && w.second == 0,
};
const TWENTY_SECONDS_AT_2: Case = Case {
    expression: "*/20 * 2 * * *",
    matches: |w| w.hour == 2 && w.second % 20 == 0,
};
const TWENTY_SECONDS_AT_1: Case = Case {
    expression: "10/20 * 1 * * *",
    matches: |w| w.hour == 1 && w.second % 20 == 10,
};

/// A job's DST choices.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Policy {
    gap: DstGap,
    repeat: DstRepeat,
}

const DEFAULT_POLICY: Policy = Policy {
    gap: DstGap::Next,
    repeat: DstRepeat::Once,
};

/// The choices other than the default.
const OTHER_POLICIES: [Policy; 3] = [
    Policy {
        gap: DstGap::Skip,
        repeat: DstRepeat::Once,
    },
    Policy {
        gap: DstGap::Next,
        repeat: DstRepeat::Twice,
    },
    Policy {
        gap: DstGap::Skip,
        repeat: DstRepeat::Twice,
    },
];

fn compile(zone: &str, case: &Case) -> Schedule {
    compile_with(zone, case, DEFAULT_POLICY)
}

fn compile_with(zone: &str, case: &Case, policy: Policy) -> Schedule {
    ScheduleSpec::Cron {
        expression: case.expression.into(),
        timezone: zone.into(),
        dst_gap: policy.gap,
        dst_repeat: policy.repeat,
    }
    .compile()
    .unwrap()
}

/// The oracle: every fire of each case in `(from, to]`, walking UTC in `step` seconds
/// (60, or 1 for the seconds field; transitions are whole minutes in these zones).
fn oracle(
    zone: &Zone,
    cases: &[&Case],
    from: i64,
    to: i64,
    step: i64,
    policy: Policy,
) -> Vec<Vec<i64>> {
    assert_eq!(from % step, 0);
    let mut previous = from + zone.offset(from);
    // The highest reading the clock showed at the sampled instants up to `from`.
    let mut highest = from + zone.offset(from);
    for &(at, _) in &zone.transitions {
        if at > from - 3 * DAY && at <= from {
            highest = highest.max(at - step + zone.offset(at - step));
        }
    }
    let mut fires = vec![Vec::new(); cases.len()];
    let mut next_transition = zone.transitions.partition_point(|&(at, _)| at <= from);
    let mut offset = zone.offset(from);
    let mut t = from + step;
    while t <= to {
        while next_transition < zone.transitions.len() && zone.transitions[next_transition].0 <= t {
            offset = zone.transitions[next_transition].1;
            next_transition += 1;
        }
        let reading = t + offset;
        // The readings that count at `t`: skipped ones (unless the gap policy is skip)
        // and `reading` itself; under `once`, only readings never shown before.
        let lowest = match policy.repeat {
            DstRepeat::Once if reading <= highest => None,
            DstRepeat::Once => Some(highest + step),
            DstRepeat::Twice => Some((previous + step).min(reading)),
        };
        let lowest = match policy.gap {
            DstGap::Next => lowest,
            DstGap::Skip => lowest.map(|_| reading),
        };
        if let Some(lowest) = lowest {
            for (case, fires) in cases.iter().zip(&mut fires) {
                let mut n = lowest;
                while n <= reading {
                    if (case.matches)(wall(n)) {
                        fires.push(t);
                        break;
                    }
                    n += step;
                }
            }
        }
        highest = highest.max(reading);
        previous = reading;
        t += step;
    }
    fires
}

/// The implementation's fires in `(from, to]`, chaining `next_after`.
fn chain(schedule: &Schedule, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    let mut t = instant(from);
    while let Some(next) = schedule.next_after(t) {
        assert!(next > t, "next_after({t}) = {next} is not later");
        if next.timestamp() > to {
            break;
        }
        assert_eq!(next.timestamp_subsec_nanos(), 0);
        out.push(next.timestamp());
        t = next;
    }
    out
}

fn assert_same(zone: &Zone, case: &Case, what: &str, expected: &[i64], got: &[i64]) {
    if expected == got {
        return;
    }
    let i = expected
        .iter()
        .zip(got)
        .position(|(e, g)| e != g)
        .unwrap_or(expected.len().min(got.len()));
    let show = |v: &[i64]| {
        v.iter()
            .skip(i.saturating_sub(2))
            .take(5)
            .map(|&t| zone.describe(t))
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    panic!(
        "{} `{}` ({what}): first difference at fire #{i} (oracle {} fires, next_after {})\n  oracle:\n    {}\n  next_after:\n    {}",
        zone.tz.name(),
        case.expression,
        expected.len(),
        got.len(),
        show(expected),
        show(got)
    );
}

/// Compares the chain of fires, and `next_after` from arbitrary instants (including
/// ones inside repeated hours, with sub-second parts) against the oracle.
fn check(zone: &Zone, cases: &[&Case], from: i64, to: i64, step: i64, probe_every: i64) {
    check_with(zone, cases, from, to, step, probe_every, DEFAULT_POLICY);
}

fn check_with(
    zone: &Zone,
    cases: &[&Case],
    from: i64,
    to: i64,
    step: i64,
    probe_every: i64,
    policy: Policy,
) {
    let expected = oracle(zone, cases, from, to, step, policy);
    for (case, expected) in cases.iter().zip(&expected) {
        let schedule = compile_with(zone.tz.name(), case, policy);
        let got = chain(&schedule, from, to);
        assert_same(zone, case, &format!("chain, {policy:?}"), expected, &got);
        let mut probe = from + 17;
        while probe < to {
            let at = instant(probe) + Duration::milliseconds(250);
            let want = expected
                .get(expected.partition_point(|&f| f <= probe))
                .copied();
            let got = schedule.next_after(at).map(|t| t.timestamp());
            if let Some(want) = want {
                if got != Some(want) {
                    panic!(
                        "{} `{}` {policy:?}: next_after({}) = {:?}, oracle says {}",
                        zone.tz.name(),
                        case.expression,
                        zone.describe(probe),
                        got.map(|t| zone.describe(t)),
                        zone.describe(want)
                    );
                }
            }
            probe += probe_every;
        }
    }
}

/// The test range: fires from 2020 through 2035, with a margin for every zone's offset.
fn range() -> (i64, i64) {
    (ts("2019-12-30T00:00:00Z"), ts("2036-01-02T00:00:00Z"))
}

/// ±2 days around every transition, plus two plain windows (all a zone without DST has).
fn windows(zone: &Zone) -> Vec<(i64, i64)> {
    let mut windows: Vec<(i64, i64)> = zone
        .transitions
        .iter()
        .map(|&(at, _)| {
            let start = (at - 2 * DAY).div_euclid(60) * 60;
            (start, start + 4 * DAY)
        })
        .collect();
    windows.push((ts("2024-06-14T00:00:00Z"), ts("2024-06-18T00:00:00Z")));
    windows.push((ts("2031-12-30T00:00:00Z"), ts("2032-01-03T00:00:00Z")));
    windows
}

/// Fires grouped by local calendar day; every day of 2020-2035 must appear `per_day` times.
fn assert_once_per_local_day(
    zone: &Zone,
    case: &Case,
    fires: &[i64],
    day_filter: fn(NaiveDate) -> bool,
) {
    let mut per_day: BTreeMap<NaiveDate, Vec<i64>> = BTreeMap::new();
    for &f in fires {
        per_day
            .entry(instant(f).with_timezone(&zone.tz).date_naive())
            .or_default()
            .push(f);
    }
    let mut day = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let mut days = 0;
    while day.year() <= 2035 {
        if day_filter(day) {
            let fired = per_day.get(&day).map_or(&[][..], |v| &v[..]);
            assert!(
                fired.len() == 1,
                "{} `{}` fired {} times on local day {day}: {:?}",
                zone.tz.name(),
                case.expression,
                fired.len(),
                fired.iter().map(|&t| zone.describe(t)).collect::<Vec<_>>()
            );
            days += 1;
        } else {
            assert!(
                !per_day.contains_key(&day),
                "{} `{}` fired on {day}",
                zone.tz.name(),
                case.expression
            );
        }
        day = day.succ_opt().unwrap();
    }
    assert!(days > 800);
}

fn full_range(name: &str) {
    let (from, to) = range();
    let zone = Zone::scan(name, from, to);
    let cases = [&DAILY_0230, &DAILY_0200, &SUNDAY_0145, &EVEN_HOURS];
    check(&zone, &cases, from, to, 60, 7 * 3600 + 13 * 60);
    // Whole-range oracle agreement is established; now the product promise, directly.
    for case in [&DAILY_0230, &DAILY_0200] {
        let fires = chain(&compile(name, case), from, to);
        assert_once_per_local_day(&zone, case, &fires, |_| true);
        for &f in &fires {
            // At 02:xx, or at the end of a gap that swallowed it.
            let local = instant(f).with_timezone(&zone.tz);
            let gap = zone.transitions.iter().any(|&(at, _)| at == f);
            assert!(
                local.hour() == 2 || gap,
                "{} `{}`: {}",
                name,
                case.expression,
                zone.describe(f)
            );
        }
    }
    let sundays = chain(&compile(name, &SUNDAY_0145), from, to);
    assert_once_per_local_day(&zone, &SUNDAY_0145, &sundays, |d| {
        d.weekday() == chrono::Weekday::Sun
    });
}

fn around_transitions_minutes(name: &str) {
    let (from, to) = range();
    let zone = Zone::scan(name, from, to);
    for (start, end) in windows(&zone) {
        check(
            &zone,
            &[&QUARTERS, &EARLY_QUARTERS, &EVEN_HOURS, &DAILY_0230],
            start,
            end,
            60,
            7 * 60 + 13,
        );
    }
}

fn around_transitions_seconds(name: &str) {
    let (from, to) = range();
    let zone = Zone::scan(name, from, to);
    for (start, end) in windows(&zone) {
        check(
            &zone,
            &[&TWENTY_SECONDS_AT_2, &TWENTY_SECONDS_AT_1],
            start,
            end,
            1,
            307,
        );
    }
}

/// The non-default DST choices around every transition, minute and second fields.
fn around_transitions_policies(name: &str) {
    let (from, to) = range();
    let zone = Zone::scan(name, from, to);
    for policy in OTHER_POLICIES {
        for (start, end) in windows(&zone) {
            check_with(
                &zone,
                &[&QUARTERS, &EARLY_QUARTERS, &EVEN_HOURS, &DAILY_0230],
                start,
                end,
                60,
                7 * 60 + 13,
                policy,
            );
            check_with(
                &zone,
                &[&TWENTY_SECONDS_AT_2, &TWENTY_SECONDS_AT_1],
                start,
                end,
                1,
                307,
                policy,
            );
        }
    }
}

/// The product promise of each choice for a daily 02:30 job over 2020-2035: on the day
/// clocks go forward over 02:30 it fires once (`next`) or not at all (`skip`); on the
/// day 02:30 repeats it fires once (`once`) or twice (`twice`); once on every other day.
fn daily_policies(name: &str) {
    let (from, to) = range();
    let zone = Zone::scan(name, from, to);
    for policy in OTHER_POLICIES {
        let fires = chain(&compile_with(name, &DAILY_0230, policy), from, to);
        let mut per_day: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for &f in &fires {
            *per_day
                .entry(instant(f).with_timezone(&zone.tz).date_naive())
                .or_default() += 1;
        }
        let mut day = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let (mut skipped, mut doubled) = (0, 0);
        while day.year() <= 2035 {
            let local = day.and_hms_opt(2, 30, 0).unwrap();
            let expected = match zone.tz.from_local_datetime(&local) {
                chrono::LocalResult::None if policy.gap == DstGap::Skip => 0,
                chrono::LocalResult::Ambiguous(..) if policy.repeat == DstRepeat::Twice => 2,
                _ => 1,
            };
            skipped += usize::from(expected == 0);
            doubled += usize::from(expected == 2);
            assert_eq!(
                per_day.get(&day).copied().unwrap_or(0),
                expected,
                "{name} {policy:?} on {day}"
            );
            day = day.succ_opt().unwrap();
        }
        if name == "Europe/Berlin" {
            // 02:30 falls in the gap and in the repeated hour once a year each.
            let skip = policy.gap == DstGap::Skip;
            let twice = policy.repeat == DstRepeat::Twice;
            assert_eq!(
                (skipped, doubled),
                (16 * usize::from(skip), 16 * usize::from(twice))
            );
        }
    }
}

macro_rules! zone_tests {
    ($module:ident, $zone:literal, $transitions:expr) => {
        mod $module {
            #[test]
            fn transitions_found() {
                let (from, to) = super::range();
                let zone = super::Zone::scan($zone, from, to);
                let expected: std::ops::RangeInclusive<usize> = $transitions;
                assert!(
                    expected.contains(&zone.transitions.len()),
                    "{} transitions",
                    zone.transitions.len()
                );
            }
            #[test]
            fn full_range_2020_2035() {
                super::full_range($zone);
            }
            #[test]
            fn around_transitions_minute_fields() {
                super::around_transitions_minutes($zone);
            }
            #[test]
            fn around_transitions_seconds_field() {
                super::around_transitions_seconds($zone);
            }
            #[test]
            fn around_transitions_dst_choices() {
                super::around_transitions_policies($zone);
            }
            #[test]
            fn daily_dst_choices_2020_2035() {
                super::daily_policies($zone);
            }
        }
    };
}

zone_tests!(europe_berlin, "Europe/Berlin", 32..=32);
zone_tests!(america_new_york, "America/New_York", 32..=32);
zone_tests!(australia_lord_howe, "Australia/Lord_Howe", 32..=32);
zone_tests!(australia_sydney, "Australia/Sydney", 32..=32);
zone_tests!(america_santiago, "America/Santiago", 30..=34);
zone_tests!(asia_tokyo, "Asia/Tokyo", 0..=0);

#[test]
fn lord_howe_shifts_by_thirty_minutes() {
    let (from, to) = range();
    let zone = Zone::scan("Australia/Lord_Howe", from, to);
    let mut previous = zone.initial_offset;
    for &(_, offset) in &zone.transitions {
        assert_eq!((offset - previous).abs(), 1800);
        previous = offset;
    }
}

#[test]
fn yearly_expression_is_fast() {
    let schedule = ScheduleSpec::cron("0 0 29 2 *", "America/New_York")
        .compile()
        .unwrap();
    let start = std::time::Instant::now();
    let mut t = instant(ts("2020-03-01T00:00:00Z"));
    for _ in 0..1_000 {
        t = schedule.next_after(t).unwrap();
    }
    let per_call = start.elapsed() / 1_000;
    assert!(t.year() > 5_000);
    assert!(
        per_call < std::time::Duration::from_millis(1),
        "{per_call:?} per call"
    );
}
