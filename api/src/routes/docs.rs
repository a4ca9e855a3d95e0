//! Swagger UI at `/docs/`: the files of utoipa-swagger-ui's vendored bundle, its page
//! pointed at `/openapi.json`.
//!
//! Served by this small handler rather than the crate's actix integration, which depends
//! on actix-web with its default features (compression of responses and decompression of
//! request bodies with zstd, brotli and gzip, cookies, HTTP/2) that the API does not use: about 80 of the 1,230 compile seconds of a
//! cold release build (`cargo build --release --timings`).

use actix_web::{http::header, web, HttpResponse};
use std::sync::{Arc, LazyLock};
use utoipa_swagger_ui::Config;

/// One configuration for every server worker: the page reads the document from
/// `/openapi.json`.
static CONFIG: LazyLock<Arc<Config<'static>>> =
    LazyLock::new(|| Arc::new(Config::from("/openapi.json")));

/// `GET /docs`: the page lives at `/docs/`, where its relative asset paths resolve.
pub async fn page() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// `GET /docs/{file}`: a file of the bundle (the page itself for an empty path), 404 for
/// a name the bundle does not have.
pub async fn file(path: web::Path<String>) -> HttpResponse {
    match utoipa_swagger_ui::serve(&path, CONFIG.clone()) {
        Ok(Some(file)) => {
            let mut response = HttpResponse::Ok();
            if file.gzpipped {
                response.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            response
                .content_type(file.content_type)
                .body(file.bytes.into_owned())
        }
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}
