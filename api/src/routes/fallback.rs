//! What answers when no route matched: 405 with `Allow` for a known path with another
//! method, else 404. Both as problem+json.

use crate::error::problem_response;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use std::sync::OnceLock;

/// Path templates and their methods, from the OpenAPI document (the route table).
fn templates() -> &'static Vec<(Vec<String>, Vec<String>)> {
    static TEMPLATES: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut by_path: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        for (method, path) in crate::openapi::route_table() {
            let segments: Vec<String> = path.split('/').map(str::to_owned).collect();
            match by_path.iter_mut().find(|(s, _)| *s == segments) {
                Some((_, methods)) => methods.push(method),
                None => by_path.push((segments, vec![method])),
            }
        }
        by_path
    })
}

fn matches(template: &[String], path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    segments.len() == template.len()
        && template
            .iter()
            .zip(&segments)
            .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
}

pub async fn not_found_or_method_not_allowed(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    if let Some((_, methods)) = templates().iter().find(|(t, _)| matches(t, path)) {
        let mut response = problem_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed here; allowed: {}",
                req.method(),
                methods.join(", ")
            ),
            None,
        );
        if let Ok(allow) = header::HeaderValue::from_str(&methods.join(", ")) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }
    problem_response(StatusCode::NOT_FOUND, "no such route".into(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_match_their_templates() {
        let runs = templates()
            .iter()
            .find(|(t, _)| matches(t, "/api/v1/runs/0b6a2e9e-0000-4000-8000-000000000000"))
            .expect("the run path is in the route table");
        assert_eq!(runs.1, vec!["GET".to_string()]);
        assert!(templates().iter().any(|(t, _)| matches(t, "/healthz")));
        assert!(!templates()
            .iter()
            .any(|(t, _)| matches(t, "/api/v1/nothing")));
    }
}
