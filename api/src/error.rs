//! The API's errors and their `application/problem+json` form (RFC 9457).
//!
//! Causes are logged once, here, at the boundary; SQL text and secrets never reach a
//! client: a 500 carries a generic detail.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, as a JSON path (`schedule.expression`), when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("malformed request body: {0}")]
    Malformed(String),
    #[error("authentication required: {0}")]
    Unauthorized(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// A value of a field the caller may not use (403, with the field named).
    #[error("{field}: {reason}")]
    ForbiddenValue { field: String, reason: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("artifact store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("too many failed attempts; retry in {0} s")]
    TooManyRequests(u64),
    #[error("database unavailable")]
    Unavailable(#[source] jobcenter_sql::Error),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn forbidden_value(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::ForbiddenValue {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl From<jobcenter_sql::Error> for ApiError {
    fn from(e: jobcenter_sql::Error) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable(e)
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<jobcenter_sql::PoolError> for ApiError {
    fn from(e: jobcenter_sql::PoolError) -> Self {
        ApiError::Unavailable(e.into())
    }
}

impl From<jobcenter_sql::DbError> for ApiError {
    fn from(e: jobcenter_sql::DbError) -> Self {
        jobcenter_sql::Error::from(e).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } | ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ForbiddenValue { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::StoreUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (detail, field) = match self {
            ApiError::Invalid { field, reason } | ApiError::ForbiddenValue { field, reason } => {
                (format!("{field}: {reason}"), Some(field.clone()))
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                (
                    "the database is unavailable; retry shortly".to_string(),
                    None,
                )
            }
            ApiError::StoreUnavailable(cause) => {
                tracing::warn!(error = %cause, "artifact store unavailable");
                (
                    "the artifact store is unavailable; retry shortly".to_string(),
                    None,
                )
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                (
                    "an internal error occurred; it has been logged".to_string(),
                    None,
                )
            }
            other => (other.to_string(), None),
        };
        let mut response = problem_response(status, detail, field);
        if let ApiError::TooManyRequests(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(*seconds));
        }
        response
    }
}

/// Builds a problem+json response; also used for errors raised outside handlers.
pub fn problem_response(status: StatusCode, detail: String, field: Option<String>) -> HttpResponse {
    let problem = Problem {
        kind: "about:blank".to_string(),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        field,
    };
    let mut response = HttpResponse::build(status);
    response.content_type("application/problem+json");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, "5"));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
    }
    response.json(problem)
}
