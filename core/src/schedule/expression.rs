//! Cron expressions checked field by field, rewritten for croner and parsed by it (see
//! the module documentation for what croner would otherwise accept or misread).

use super::MAX_EXPRESSION_LEN;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A user-supplied string cut short enough to quote in an error.
pub(super) fn clip(s: &str) -> String {
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

pub(super) fn parse_expression(expression: &str) -> Result<Cron, String> {
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
