//! Request bodies are read as they arrive: the API decodes no `Content-Encoding` (actix-web
//! is built without its compression features). A body sent encoded is refused with 415,
//! not parsed as broken JSON or stored as an artifact's compressed bytes.

use crate::error::problem_response;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;

/// Middleware: 415 problem+json for a request with a `Content-Encoding` other than
/// `identity`; every other request goes on unchanged.
pub async fn refuse_encoded_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(encoding) = req.headers().get(header::CONTENT_ENCODING) {
        let identity = encoding
            .to_str()
            .is_ok_and(|e| e.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            let detail = format!(
                "request bodies are accepted unencoded only; this one is encoded as {}",
                String::from_utf8_lossy(encoding.as_bytes())
            );
            let problem = problem_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail,
                Some("Content-Encoding".to_string()),
            );
            return Ok(req.into_response(problem).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}
