//! The `login_throttle` table: failed logins per key (an account or a client address),
//! shared by every API node so that spreading attempts over nodes gains nothing.
//!
//! A key collects failures within a window; at `limit` failures it is locked until the
//! window's length has passed since the last failure. A success clears the account key.

use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};

statements! {
    /// The latest lock, if one holds now, of keys `$1`.
    pub(crate) const LOCKED_UNTIL: Statement = "SELECT max(locked_until) FROM login_throttle
             WHERE key = ANY($1) AND locked_until > now()";
    /// Counts a failure of key `$1` (limit `$2`, window `$3` seconds); its failures so far.
    pub(crate) const RECORD_ATTEMPT: Statement =
        "INSERT INTO login_throttle AS t (key, failures, window_start, locked_until)
             VALUES ($1, 1, now(), CASE WHEN $2 <= 1 THEN now() + make_interval(secs => $3) END)
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN t.window_start < now() - make_interval(secs => $3)
                               THEN 1 ELSE t.failures + 1 END,
               window_start = CASE WHEN t.window_start < now() - make_interval(secs => $3)
                                   THEN now() ELSE t.window_start END,
               locked_until = CASE
                 WHEN (CASE WHEN t.window_start < now() - make_interval(secs => $3)
                            THEN 1 ELSE t.failures + 1 END) >= $2
                 THEN now() + make_interval(secs => $3) ELSE t.locked_until END
             RETURNING failures";
    /// Takes back one failure of key `$1` (limit `$2`).
    pub(crate) const FORGIVE: Statement =
        "UPDATE login_throttle SET failures = greatest(failures - 1, 0),
                    locked_until = CASE WHEN failures - 1 < $2 THEN NULL ELSE locked_until END
             WHERE key = $1";
    /// Forgets key `$1`.
    pub(crate) const CLEAR: Statement = "DELETE FROM login_throttle WHERE key = $1";
    /// Deletes up to `$2` keys whose window (`$1` seconds) and lock are over.
    pub(crate) const PURGE_STALE: Statement = "DELETE FROM login_throttle WHERE key IN (
               SELECT key FROM login_throttle
               WHERE window_start < now() - make_interval(secs => $1)
                 AND (locked_until IS NULL OR locked_until < now())
               LIMIT $2)";
}

/// The latest instant until which any of `keys` is locked, if one is locked now.
pub async fn locked_until(
    c: &impl GenericClient,
    keys: &[&str],
) -> Result<Option<DateTime<Utc>>, Error> {
    let stmt = c.prepare_cached(LOCKED_UNTIL).await?;
    Ok(c.query_one(&stmt, &[&keys]).await?.get(0))
}

/// Counts an attempt as a failure *before* its password is checked (a failure older than
/// `window_seconds` starts a new window; reaching `limit` locks the key for
/// `window_seconds`), and answers the failures of the window so far, this one included: an attempt past the limit must not
/// be checked at all, so parallel guesses cannot all pass the check. A success takes its
/// count back ([`clear`] or [`forgive`]).
pub async fn record_attempt(
    c: &impl GenericClient,
    key: &str,
    limit: i32,
    window_seconds: f64,
) -> Result<i32, Error> {
    let stmt = c.prepare_cached(RECORD_ATTEMPT).await?;
    Ok(c.query_one(&stmt, &[&key, &limit, &window_seconds])
        .await?
        .get(0))
}

/// Takes back one attempt counted by [`record_attempt`] (it succeeded), lifting a lock
/// that count alone caused.
pub async fn forgive(c: &impl GenericClient, key: &str, limit: i32) -> Result<(), Error> {
    let stmt = c.prepare_cached(FORGIVE).await?;
    c.execute(&stmt, &[&key, &limit]).await?;
    Ok(())
}

pub async fn clear(c: &impl GenericClient, key: &str) -> Result<(), Error> {
    let stmt = c.prepare_cached(CLEAR).await?;
    c.execute(&stmt, &[&key]).await?;
    Ok(())
}

/// Deletes up to `limit` rows whose window and lock are both over: bounded housekeeping
/// done on the login path, so the table stays the size of the recent attackers.
pub async fn purge_stale(
    c: &impl GenericClient,
    window_seconds: f64,
    limit: i64,
) -> Result<u64, Error> {
    let stmt = c.prepare_cached(PURGE_STALE).await?;
    Ok(c.execute(&stmt, &[&window_seconds, &limit]).await?)
}
