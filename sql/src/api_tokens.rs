//! The `api_tokens` table: long-lived bearer tokens for CI and scripts, stored as a
//! SHA-256 of the token. A token authenticates only while it is neither revoked nor
//! expired and its user is enabled.

use crate::states::Role;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewApiToken<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    pub token_sha256: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The columns of an [`ApiToken`], read by [`from_row`] by name.
macro_rules! columns {
    () => {
        "id, user_id, name, created_at, last_used_at, expires_at, revoked_at"
    };
}

statements! {
    /// A new token: user `$1`, name `$2`, hash `$3`, expiry `$4`.
    pub(crate) const INSERT: Statement = concat!(
        "INSERT INTO api_tokens (user_id, name, token_sha256, expires_at)
         VALUES ($1, $2, $3, $4) RETURNING ",
        columns!()
    );
    /// User `$1`'s tokens older than the cursor (`$2`, `$3`), newest first, at most `$4`.
    pub(crate) const LIST_BY_USER: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM api_tokens
         WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"
    );
    /// Revokes live token `$1` of user `$2` (null: anyone's).
    pub(crate) const REVOKE: Statement = "UPDATE api_tokens SET revoked_at = now()
             WHERE id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2)";
    /// Revokes every live token of user `$1`.
    pub(crate) const REVOKE_ALL_OF_USER: Statement =
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL";
    /// The user, role and id of live token hash `$1` whose user is enabled; marks it used.
    pub(crate) const AUTHENTICATE: Statement = "WITH t AS (
               SELECT t.id, t.user_id, u.role::text AS role FROM api_tokens t
               JOIN users u ON u.id = t.user_id
               WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL
                 AND (t.expires_at IS NULL OR t.expires_at > now()) AND NOT u.disabled),
             touched AS (
               UPDATE api_tokens SET last_used_at = now() FROM t
               WHERE api_tokens.id = t.id
                 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))
             SELECT user_id, role, id FROM t";
}

fn from_row(row: &Row) -> Result<ApiToken, Error> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub async fn insert(c: &impl GenericClient, new: &NewApiToken<'_>) -> Result<ApiToken, Error> {
    let stmt = c.prepare_cached(INSERT).await?;
    let row = c
        .query_one(
            &stmt,
            &[&new.user_id, &new.name, &new.token_sha256, &new.expires_at],
        )
        .await?;
    from_row(&row)
}

/// A user's tokens (revoked ones included), newest first.
pub async fn list_by_user(
    c: &impl GenericClient,
    user_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ApiToken>, Error> {
    let stmt = c.prepare_cached(LIST_BY_USER).await?;
    let (at, id) = before.unzip();
    let rows = c.query(&stmt, &[&user_id, &at, &id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// Revokes a live token of `owner` (None: any user's). False: no such live token.
pub async fn revoke(c: &impl GenericClient, id: Uuid, owner: Option<Uuid>) -> Result<bool, Error> {
    let stmt = c.prepare_cached(REVOKE).await?;
    Ok(c.execute(&stmt, &[&id, &owner]).await? == 1)
}

/// Revokes every live token of a user (an admin's password reset); how many.
pub async fn revoke_all_of_user(c: &impl GenericClient, user_id: Uuid) -> Result<u64, Error> {
    let stmt = c.prepare_cached(REVOKE_ALL_OF_USER).await?;
    Ok(c.execute(&stmt, &[&user_id]).await?)
}

/// The enabled user a live token belongs to, and the token's id. Marks the token used
/// (at most once a minute, to keep authentication from writing on every request).
pub async fn authenticate(
    c: &impl GenericClient,
    token_sha256: &str,
) -> Result<Option<(Uuid, Role, Uuid)>, Error> {
    let stmt = c.prepare_cached(AUTHENTICATE).await?;
    let Some(row) = c.query_opt(&stmt, &[&token_sha256]).await? else {
        return Ok(None);
    };
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role).ok_or(Error::Corrupt {
        column: "users.role",
        reason: role,
    })?;
    Ok(Some((row.try_get("user_id")?, role, row.try_get("id")?)))
}
