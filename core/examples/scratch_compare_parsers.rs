// Scratch (to be deleted): compare acceptance of the hand-written and croner-based parsers.
#[path = "../src/schedule.rs"]
#[allow(dead_code)]
mod new;
#[path = "/tmp/schedule_handwritten.rs"]
#[allow(dead_code)]
mod old;
use chrono::{DateTime, Utc};

fn main() {
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
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let zones = [
        "UTC",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "America/Santiago",
    ];
    let (mut both, mut only_old, mut only_new) = (0, 0, 0);
    let mut shown = 0;
    let instants: Vec<DateTime<Utc>> = [
        "1900-01-01T00:00:00Z",
        "2021-03-28T01:00:00Z",
        "2021-10-31T00:59:59Z",
        "2021-10-31T01:30:00Z",
        "2024-02-28T23:59:59Z",
        "2099-12-31T23:00:00Z",
        "4999-12-31T23:59:59Z",
        "2021-03-28T00:59:59.999Z",
        "2021-10-31T01:10:00Z",
        "2030-01-01T00:00:00Z",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let mut differ = 0;
    for i in 0..20_000 {
        let tokens = 1 + next(14);
        let expression: String = (0..tokens)
            .map(|_| ALPHABET[next(ALPHABET.len())])
            .collect();
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
        let o = old::CronSchedule::new(&expression, &timezone);
        let n = new::CronSchedule::new(&expression, &timezone);
        match (&o, &n) {
            (Ok(o), Ok(n)) => {
                both += 1;
                for &t in &instants {
                    if o.next_after(t) != n.next_after(t) {
                        differ += 1;
                        if differ < 10 {
                            println!(
                                "DIFF {expression:?} {timezone} at {t}: old {:?} new {:?}",
                                o.next_after(t),
                                n.next_after(t)
                            );
                        }
                    }
                }
            }
            (Ok(_), Err(e)) => {
                only_old += 1;
                if shown < 40 {
                    shown += 1;
                    println!("only old accepts {expression:?}: new says {}", e.reason);
                }
            }
            (Err(e), Ok(_)) => {
                only_new += 1;
                println!("only NEW accepts {expression:?}: old says {}", e.reason);
            }
            _ => {}
        }
    }
    println!(
        "both {both}, only old {only_old}, only new {only_new}, differing next_after {differ}"
    );
    second_main();
}

#[allow(dead_code)]
pub fn second_main() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let specials = [
        "*/65535",
        "5/99999",
        "0-7/7",
        "sun-sat",
        "fri-sun",
        "mon-SUN",
        "7-7",
        "sun,7",
        "?/2",
        "1-5/0",
        "*/1",
        "?",
        "7",
        "0",
        "5-7",
        "*/7",
        "sat-sun",
        "jan-dec/2",
        "FEB",
        "nov-dec",
        "1-31/10",
        "31",
        "30/2",
        "0/1",
        "59/1",
        "23/5",
        "*/60",
        "*/100",
        "1-1",
        "007",
        "00",
    ];
    // (min,max) for sec, min, hour, dom, month, dow
    let ranges = [(0u32, 59u32), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    let zones = [
        "UTC",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "America/Santiago",
        "America/New_York",
        "Pacific/Apia",
    ];
    let (mut valid, mut disagree_accept, mut differ) = (0, 0, 0);
    for _ in 0..30_000 {
        let six = next(2) == 0;
        let mut fields = Vec::new();
        for (k, &(lo, hi)) in ranges.iter().enumerate() {
            if k == 0 && !six {
                continue;
            }
            let items: Vec<String> = (0..1 + next(2))
                .map(|_| {
                    let a = lo + next((hi - lo + 1) as usize) as u32;
                    let b = lo + next((hi - lo + 1) as usize) as u32;
                    let (a, b) = (a.min(b), a.max(b));
                    match next(10) {
                        0 => "*".into(),
                        1 => format!("*/{}", 1 + next(30)),
                        2 => format!("{a}-{b}"),
                        3 => format!("{a}-{b}/{}", 1 + next(10)),
                        4 => format!("{a}/{}", 1 + next(10)),
                        5 => specials[next(specials.len())].into(),
                        6 if k >= 3 => "?".into(),
                        _ => a.to_string(),
                    }
                })
                .collect();
            fields.push(items.join(","));
        }
        let expression = fields.join(" ");
        let tz = zones[next(zones.len())];
        let o = old::CronSchedule::new(&expression, tz);
        let n = new::CronSchedule::new(&expression, tz);
        match (&o, &n) {
            (Ok(o), Ok(n)) => {
                valid += 1;
                let mut t: DateTime<Utc> = "2021-01-01T00:00:00Z".parse().unwrap();
                t += chrono::Duration::seconds(next(400 * 86400 * 30) as i64);
                for _ in 0..20 {
                    let (a, b) = (o.next_after(t), n.next_after(t));
                    if a != b {
                        differ += 1;
                        if differ < 10 {
                            println!("DIFF {expression:?} {tz} after {t}: old {a:?} new {b:?}");
                        }
                        break;
                    }
                    match a {
                        Some(x) => t = x,
                        None => break,
                    }
                }
            }
            (Ok(_), Err(e)) => {
                disagree_accept += 1;
                if disagree_accept < 25 {
                    println!("only old accepts {expression:?}: {}", e.reason);
                }
            }
            (Err(e), Ok(_)) => {
                disagree_accept += 1;
                if disagree_accept < 25 {
                    println!("only new accepts {expression:?}: old says {}", e.reason);
                }
            }
            _ => {}
        }
    }
    println!("second: valid {valid}, acceptance disagreements {disagree_accept}, next_after differences {differ}");
}
