//! The one table `make bench` prints: each figure, its ceiling measured in the same run,
//! the ratio, and the target with met / not met.

use std::fmt::Write;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// No target for this figure, or nothing to compare.
    None,
}

impl Verdict {
    pub fn from(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::NotMet
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT MET",
            Verdict::None => "",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub ceiling: String,
    pub ratio: String,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    pub fn new(figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            figure: figure.into(),
            value: value.into(),
            ceiling: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: Verdict::None,
        }
    }

    /// The ceiling and the ratio value / ceiling (both in the same unit).
    pub fn ceiling(mut self, label: impl Into<String>, value: f64, ceiling: f64) -> Row {
        self.ceiling = label.into();
        if ceiling > 0.0 {
            self.ratio = format!("{:.0}%", 100.0 * value / ceiling);
        }
        self
    }

    pub fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.verdict = Verdict::from(met);
        self
    }

    /// A target that this run could not judge (figure missing).
    pub fn target_unjudged(mut self, target: impl Into<String>) -> Row {
        self.target = target.into();
        self
    }
}

/// The table as Markdown (readable in a terminal, pasteable into BENCHMARKS.md).
pub fn render(rows: &[Row]) -> String {
    let header = [
        "figure",
        "value",
        "ceiling (same run)",
        "ratio",
        "target",
        "met",
    ];
    let cells: Vec<[&str; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.as_str(),
                r.value.as_str(),
                r.ceiling.as_str(),
                r.ratio.as_str(),
                r.target.as_str(),
                r.verdict.as_str(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str; 6]| {
        out.push('|');
        for (cell, w) in row.iter().zip(widths) {
            let pad = w - cell.chars().count();
            let _ = write!(out, " {cell}{} |", " ".repeat(pad));
        }
        out.push('\n');
    };
    line(&mut out, &header);
    out.push('|');
    for w in widths {
        let _ = write!(out, "{}|", "-".repeat(w + 2));
    }
    out.push('\n');
    for row in &cells {
        line(&mut out, row);
    }
    out
}
