//! The registry of every SQL statement of jobcenter, so that one test can prepare them
//! all against the migrated schema (`tests/e2e/statements.rs`): tokio-postgres does not
//! check SQL at compile time, and a column renamed by a migration must fail a test, not
//! a request.
//!
//! How a statement gets in, and why it cannot easily be forgotten:
//! - A module declares its statements in one `statements!` block, and only there. Each
//!   entry is a `const` and its registration at once: the block expands to the constants
//!   and to the module's `STATEMENTS`, the list of them all.
//! - Every module's `STATEMENTS` is listed in [`ALL`]. `STATEMENTS` is `pub(crate)`, so a
//!   module left out of [`ALL`] leaves it unused: a `dead_code` warning, an error under
//!   `make lint`. A module can have one block only (a second `STATEMENTS` does not compile).
//! - A test below reads the crate's sources and fails on SQL written where it is sent (a
//!   string literal handed to `prepare_cached`, `query`, `execute`, `batch_execute` …)
//!   or put together with `format!`.
//!
//! A statement is complete at compile time: a part that several statements share (a
//! column list, a channel name) is a macro that expands to a literal, joined with
//! `concat!`.

/// How a statement is sent, and so how the test checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One statement: the test prepares it.
    Statement,
    /// Several statements separated by `;`, sent with `batch_execute` (which cannot be
    /// prepared): the test runs it inside a transaction that it rolls back. Keep batches
    /// to settings and transaction control.
    Batch,
}

/// One registered statement.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its path, e.g. `jobcenter_sql::runs::claim::CLAIM`.
    pub name: &'static str,
    pub sql: &'static str,
    pub kind: Kind,
}

/// Declares a module's statements and registers them. Each entry reads
///
/// ```text
/// /// What it does; its parameters.
/// pub(crate) const NAME: Statement = "SELECT …";   // or `: Batch` (see `Kind`)
/// ```
///
/// and becomes `pub(crate) const NAME: &str = "SELECT …";` (any visibility), plus an
/// entry of the module's `STATEMENTS`, which [`ALL`] lists. The text may be a
/// `concat!` of literals and of macros that expand to literals.
macro_rules! statements {
    ($(
        $(#[$attr:meta])*
        $vis:vis const $name:ident : $kind:ident = $sql:expr;
    )*) => {
        $(
            $(#[$attr])*
            $vis const $name: &str = $sql;
        )*

        /// Every statement of this module, for [`crate::statements::ALL`].
        pub(crate) const STATEMENTS: &[$crate::statements::Entry] = &[$(
            $crate::statements::Entry {
                name: concat!(module_path!(), "::", stringify!($name)),
                sql: $name,
                kind: $crate::statements::Kind::$kind,
            },
        )*];
    };
}

/// Every module's statements. A module with a `statements!` block is listed here.
pub const ALL: &[&[Entry]] = &[
    crate::api_tokens::STATEMENTS,
    crate::artifacts::STATEMENTS,
    crate::audit::STATEMENTS,
    crate::db::STATEMENTS,
    crate::job_children::STATEMENTS,
    crate::job_state::STATEMENTS,
    crate::jobs::STATEMENTS,
    crate::leadership::STATEMENTS,
    crate::listen::STATEMENTS,
    crate::login_throttle::STATEMENTS,
    crate::notification_channels::STATEMENTS,
    crate::notification_deliveries::STATEMENTS,
    crate::project_secrets::STATEMENTS,
    crate::projects::STATEMENTS,
    crate::retention::STATEMENTS,
    crate::run_idempotency_keys::STATEMENTS,
    crate::run_logs::STATEMENTS,
    crate::run_outcomes::STATEMENTS,
    crate::runs::claim::STATEMENTS,
    crate::runs::finish::STATEMENTS,
    crate::runs::insert::STATEMENTS,
    crate::runs::query::STATEMENTS,
    crate::savepoint::STATEMENTS,
    crate::stats::STATEMENTS,
    crate::users::STATEMENTS,
    crate::webhooks::STATEMENTS,
    crate::workers::STATEMENTS,
];

/// Every registered statement.
pub fn all() -> impl Iterator<Item = &'static Entry> {
    ALL.iter().flat_map(|module| module.iter())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The client methods that take SQL text (or a statement prepared from it).
    const SENDERS: &[&str] = &[
        "prepare_cached(",
        "prepare(",
        "prepare_typed(",
        "query(",
        "query_one(",
        "query_opt(",
        "query_raw(",
        "query_typed(",
        "execute(",
        "execute_raw(",
        "batch_execute(",
        "simple_query(",
    ];

    fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // The unit tests come last in a file; they are not the crate's SQL.
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                let code: String = code.split_whitespace().collect();
                found.push((path.display().to_string(), code));
            }
        }
    }

    #[test]
    fn no_statement_is_written_where_it_is_sent_or_built_at_run_time() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 20, "read {} files", files.len());
        let mut found = Vec::new();
        for (path, code) in &files {
            for sender in SENDERS {
                for quote in ["\"", "&\"", "r\"", "r#\"", "&format!", "format!", "&sql"] {
                    if code.contains(&format!("{sender}{quote}")) {
                        found.push(format!("{path}: {sender}{quote}…"));
                    }
                }
            }
            if code.contains("format!(") {
                found.push(format!("{path}: format!"));
            }
        }
        assert!(
            found.is_empty(),
            "SQL outside a `statements!` block (declare it there): {found:#?}"
        );
    }

    #[test]
    fn names_are_unique_and_statements_complete() {
        let mut names = std::collections::HashSet::new();
        for entry in super::all() {
            assert!(names.insert(entry.name), "{} twice", entry.name);
            assert!(!entry.sql.trim().is_empty(), "{} is empty", entry.name);
            let placeholder = entry
                .sql
                .split('{')
                .skip(1)
                .any(|after| after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'));
            assert!(!placeholder, "{} holds a format placeholder", entry.name);
        }
    }
}
