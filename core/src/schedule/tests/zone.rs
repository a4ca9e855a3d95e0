//! Fire times: DST, long searches, agreement with the `cron` crate.

use super::*;

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
