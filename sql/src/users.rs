//! The `users` table: accounts that log in.

use crate::states::Role;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

/// Its `Debug` hides the password hash.
#[derive(Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    /// Access tokens of another generation are refused (a password change bumps it).
    pub session_generation: i32,
    /// The one session of an older generation still accepted: the one that changed the
    /// password (None after an admin's reset).
    pub kept_session: Option<Uuid>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &jobcenter_core::config::Secret::new(""))
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("session_generation", &self.session_generation)
            .field("kept_session", &self.kept_session)
            .finish()
    }
}

/// The columns of a [`User`], read by [`from_row`] by name.
macro_rules! columns {
    () => {
        "id, username, password_hash, role::text AS role, disabled, created_at,
         session_generation, kept_session"
    };
}

statements! {
    /// The user named `$1`.
    pub(crate) const BY_USERNAME: Statement =
        concat!("SELECT ", columns!(), " FROM users WHERE username = $1");
    /// User `$1`.
    pub(crate) const BY_ID: Statement = concat!("SELECT ", columns!(), " FROM users WHERE id = $1");
    /// Admin `$1` with password hash `$2`, if no user exists.
    pub(crate) const INSERT_BOOTSTRAP_ADMIN: Statement =
        "INSERT INTO users (username, password_hash, role)
             SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users)
             ON CONFLICT (username) DO NOTHING";
    /// A new user: name `$1`, password hash `$2`, role `$3`.
    pub(crate) const INSERT: Statement = concat!(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3::text::user_role)
         RETURNING ",
        columns!()
    );
    /// Users older than the cursor (`$1`, `$2`), newest first, at most `$3`.
    pub(crate) const LIST: Statement = concat!(
        "SELECT ",
        columns!(),
        " FROM users
         WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))
         ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    /// The active admins, locked.
    pub(crate) const LOCK_ACTIVE_ADMINS: Statement =
        "SELECT id FROM users WHERE role = 'admin' AND NOT disabled
             ORDER BY id LIMIT 10000 FOR UPDATE";
    /// User `$1` gets role `$2`, disabled flag `$3` and password hash `$4`, each when not
    /// null (a new hash ends every session).
    pub(crate) const UPDATE: Statement = concat!(
        "UPDATE users SET role = coalesce($2::text::user_role, role),
                disabled = coalesce($3, disabled),
                password_hash = coalesce($4, password_hash),
                session_generation = session_generation + CASE WHEN $4 IS NULL THEN 0 ELSE 1 END,
                kept_session = CASE WHEN $4 IS NULL THEN kept_session END
         WHERE id = $1 RETURNING ",
        columns!()
    );
    /// User `$1`'s password hash becomes `$3` if it is still `$2`; session `$4` is kept.
    pub(crate) const SET_PASSWORD: Statement =
        "UPDATE users SET password_hash = $3, session_generation = session_generation + 1,
                    kept_session = $4
             WHERE id = $1 AND password_hash = $2";
    /// How many projects user `$1` owns.
    pub(crate) const OWNED_PROJECT_COUNT: Statement =
        "SELECT count(*) FROM projects WHERE owner_id = $1";
    /// Deletes user `$1`.
    pub(crate) const DELETE: Statement = "DELETE FROM users WHERE id = $1";
}

fn from_row(row: &Row) -> Result<User, Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse(&role).ok_or(Error::Corrupt {
            column: "users.role",
            reason: role,
        })?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        session_generation: row.try_get("session_generation")?,
        kept_session: row.try_get("kept_session")?,
    })
}

pub async fn by_username(c: &impl GenericClient, username: &str) -> Result<Option<User>, Error> {
    let stmt = c.prepare_cached(BY_USERNAME).await?;
    c.query_opt(&stmt, &[&username])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

pub async fn by_id(c: &impl GenericClient, id: Uuid) -> Result<Option<User>, Error> {
    let stmt = c.prepare_cached(BY_ID).await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Creates the bootstrap admin when, and only when, no user exists at all. Safe when
/// several API nodes start at once: the first insert wins, the others change nothing.
pub async fn insert_bootstrap_admin(
    c: &impl GenericClient,
    username: &str,
    password_hash: &str,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(INSERT_BOOTSTRAP_ADMIN).await?;
    Ok(c.execute(&stmt, &[&username, &password_hash]).await? == 1)
}

/// Creates an account. A taken username is a unique violation (SQLSTATE 23505).
pub async fn insert(
    c: &impl GenericClient,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<User, Error> {
    let stmt = c.prepare_cached(INSERT).await?;
    from_row(
        &c.query_one(&stmt, &[&username, &password_hash, &role.as_str()])
            .await?,
    )
}

/// Accounts, newest first, strictly older than the `before` cursor.
pub async fn list(
    c: &impl GenericClient,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<User>, Error> {
    let stmt = c.prepare_cached(LIST).await?;
    let (at, id) = before.unzip();
    let rows = c.query(&stmt, &[&at, &id, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// Locks every active admin row for the transaction and returns their ids. Changes that
/// could remove the last active admin take this lock first, so two concurrent demotions
/// cannot each see the other as "still an admin".
pub async fn lock_active_admins(c: &impl GenericClient) -> Result<Vec<Uuid>, Error> {
    let stmt = c.prepare_cached(LOCK_ACTIVE_ADMINS).await?;
    Ok(c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Fields to change; `None` keeps the current value.
#[derive(Default)]
pub struct UserPatch<'a> {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<&'a str>,
}

pub async fn update(
    c: &impl GenericClient,
    id: Uuid,
    patch: &UserPatch<'_>,
) -> Result<Option<User>, Error> {
    let stmt = c.prepare_cached(UPDATE).await?;
    let role = patch.role.map(Role::as_str);
    c.query_opt(&stmt, &[&id, &role, &patch.disabled, &patch.password_hash])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// Changes a password only if the stored hash is still `expected_hash` (compare-and-set:
/// a concurrent change wins, and this one reports false). Ends the user's sessions (a
/// new generation) but `keep`, the session that made the change (None: all of them).
pub async fn set_password(
    c: &impl GenericClient,
    id: Uuid,
    expected_hash: &str,
    new_hash: &str,
    keep: Option<Uuid>,
) -> Result<bool, Error> {
    let stmt = c.prepare_cached(SET_PASSWORD).await?;
    Ok(c.execute(&stmt, &[&id, &expected_hash, &new_hash, &keep])
        .await?
        == 1)
}

/// Number of projects the user owns (a user who owns any cannot be deleted).
pub async fn owned_project_count(c: &impl GenericClient, id: Uuid) -> Result<i64, Error> {
    let stmt = c.prepare_cached(OWNED_PROJECT_COUNT).await?;
    Ok(c.query_one(&stmt, &[&id]).await?.get(0))
}

pub async fn delete(c: &impl GenericClient, id: Uuid) -> Result<bool, Error> {
    let stmt = c.prepare_cached(DELETE).await?;
    Ok(c.execute(&stmt, &[&id]).await? == 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_users_debug_hides_the_password_hash() {
        let user = super::User {
            id: uuid::Uuid::nil(),
            username: "ann".into(),
            password_hash: "$argon2id$v=19$s3cret".into(),
            role: super::Role::Admin,
            disabled: false,
            created_at: chrono::Utc::now(),
            session_generation: 0,
            kept_session: None,
        };
        let printed = format!("{user:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("[redacted]") && printed.contains("ann"),
            "{printed}"
        );
    }
}
