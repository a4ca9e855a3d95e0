//! Parsing: what is accepted, what is refused and why.

use super::*;

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
