//! The committed `openapi/openapi.json` is exactly what the code generates.
//! Regenerate it with `make openapi` after changing an endpoint.

#[test]
fn committed_openapi_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).expect("openapi/openapi.json exists");
    let generated = jobcenter_api::openapi::openapi_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `make openapi` and commit the result"
    );
}

#[test]
fn every_path_of_the_contract_is_documented() {
    let doc: serde_json::Value =
        serde_json::from_str(jobcenter_api::openapi::openapi_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/auth/me",
        "/api/v1/projects",
        "/api/v1/projects/{id}",
        "/api/v1/projects/{id}/jobs",
        "/api/v1/jobs/{id}",
        "/api/v1/jobs/{id}/disable",
        "/api/v1/jobs/{id}/enable",
        "/api/v1/jobs/{id}/restore",
        "/api/v1/jobs/{id}/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/logs",
        "/api/v1/auth/password",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/tokens",
        "/api/v1/tokens/{id}",
        "/api/v1/jobs/{id}/webhooks",
        "/api/v1/jobs/{id}/webhooks/{webhook_id}",
        "/hooks/{webhook_id}",
        "/api/v1/audit",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is missing from the OpenAPI document"
        );
    }
}
