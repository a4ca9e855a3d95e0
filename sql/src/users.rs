//! The `users` table: accounts that log in.

use crate::states::Role;
use crate::{Error, GenericClient};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, username, password_hash, role::text, disabled, created_at";

fn from_row(row: &Row) -> Result<User, Error> {
    let role: String = row.get(3);
    Ok(User {
        id: row.get(0),
        username: row.get(1),
        password_hash: row.get(2),
        role: Role::parse(&role).ok_or(Error::Corrupt {
            column: "users.role",
            reason: role,
        })?,
        disabled: row.get(4),
        created_at: row.get(5),
    })
}

pub async fn by_username(c: &impl GenericClient, username: &str) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
    let stmt = c.prepare_cached(&sql).await?;
    c.query_opt(&stmt, &[&username])
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

pub async fn by_id(c: &impl GenericClient, id: Uuid) -> Result<Option<User>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let stmt = c.prepare_cached(&sql).await?;
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
    let stmt = c
        .prepare_cached(
            "INSERT INTO users (username, password_hash, role)
             SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users)
             ON CONFLICT (username) DO NOTHING",
        )
        .await?;
    Ok(c.execute(&stmt, &[&username, &password_hash]).await? == 1)
}
