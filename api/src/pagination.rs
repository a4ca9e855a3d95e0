//! Cursor pagination shared by every collection: newest first, keyed on
//! `(created instant, id)` so that pages are stable under concurrent inserts.

use crate::error::ApiError;
use crate::models::{Page, PageQuery};
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A validated page request: `before` is the key of the last item already seen.
pub struct PageRequest {
    pub limit: i64,
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be in 1..={MAX_LIMIT}"),
            ));
        }
        let before = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok(PageRequest { limit, before })
    }
}

fn decode_cursor(cursor: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid = || ApiError::invalid("cursor", "is not a cursor this API returned");
    let (micros, id) = cursor.split_once('_').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| invalid())?))
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id)
}

impl PageRequest {
    /// Answers 200 with a page of rows fetched with `limit`, each converted for the wire;
    /// a full page gets a `next` cursor, the `key` (the list's order) of its last row.
    pub fn page<R, T: ToSchema + Serialize>(
        &self,
        rows: Vec<R>,
        key: impl Fn(&R) -> (DateTime<Utc>, Uuid),
        convert: impl Fn(R) -> T,
    ) -> HttpResponse {
        let next = if rows.len() as i64 == self.limit {
            rows.last().map(|row| {
                let (at, id) = key(row);
                encode_cursor(at, id)
            })
        } else {
            None
        };
        HttpResponse::Ok().json(Page {
            items: rows.into_iter().map(convert).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).unwrap(), (at, id));
        assert!(decode_cursor("garbage").is_err());
        let query = PageQuery {
            limit: Some(0),
            cursor: None,
        };
        assert!(query.parse().is_err());
    }
}
