//! The REST API: actix-web routes, authentication, errors and the OpenAPI document.
//!
//! Architecture invariant: this is the only crate that knows HTTP and the JSON shapes of
//! the public contract. It never talks to the scheduler or workers, only to Postgres.

pub mod auth;
pub mod auth_cache;
mod children;
mod content_encoding;
pub mod error;
pub mod extract;
mod job_fields;
mod listener;
pub mod models;
pub mod openapi;
mod pagination;
pub mod routes;
mod run_events;
pub mod state;
mod tagged_union;
mod trigger;

use actix_web::{web, App, HttpServer};
use error::problem_response;
use futures_util::future::BoxFuture;
use jobcenter_core::config::Config;
use jobcenter_core::metrics::Metrics;
use jobcenter_sql::Pool;
use state::AppState;
use std::net::TcpListener;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("artifact store (JOBCENTER_ARTIFACTS): {0}")]
    Store(String),
    #[error("bootstrap admin: {0}")]
    Bootstrap(String),
    #[error("{0}")]
    Server(#[from] std::io::Error),
}

/// Creates the bootstrap admin if no user exists yet.
async fn bootstrap_admin(config: &Config, pool: &Pool) -> Result<(), StartError> {
    let Some(admin) = &config.bootstrap_admin else {
        return Ok(());
    };
    let hash = auth::hash_password(admin.password.expose())
        .map_err(|e| StartError::Bootstrap(e.to_string()))?;
    let client = pool
        .get()
        .await
        .map_err(|e| StartError::Bootstrap(e.to_string()))?;
    let created = jobcenter_sql::users::insert_bootstrap_admin(&client, &admin.username, &hash)
        .await
        .map_err(|e| StartError::Bootstrap(e.to_string()))?;
    if created {
        tracing::info!(username = %admin.username, "created the bootstrap admin");
    }
    Ok(())
}

fn jwt_secret(config: &Config) -> Vec<u8> {
    match &config.jwt_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "JOBCENTER_JWT_SECRET is not set: using a random secret; tokens end with this \
                 process and are not accepted by other API nodes"
            );
            use rand::RngCore;
            let mut secret = vec![0u8; 64];
            rand::thread_rng().fill_bytes(&mut secret);
            secret
        }
    }
}

/// Serves only `GET /metrics` (this process's metrics) on `addr`: for a `worker` or
/// `scheduler` running on its own. Prints `jobcenter metrics listening on http://ADDR`.
/// Boxed, as [`serve`] is.
/// With `token` set, a scrape must bring it as a bearer token (401 otherwise).
pub fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    token: Option<jobcenter_core::config::Secret>,
) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(serve_metrics_until_stopped(addr, metrics, token))
}

async fn serve_metrics_until_stopped(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    token: Option<jobcenter_core::config::Secret>,
) -> Result<(), StartError> {
    let listener = TcpListener::bind(addr).map_err(|source| StartError::Listen { addr, source })?;
    let bound = listener.local_addr()?;
    let server = HttpServer::new(move || {
        let metrics = metrics.clone();
        let token = token.clone();
        App::new().route(
            "/metrics",
            web::get().to(move |request: actix_web::HttpRequest| {
                let metrics = metrics.clone();
                let allowed = routes::metrics::token_allows(token.as_ref(), &request);
                async move {
                    if !allowed {
                        return actix_web::HttpResponse::Unauthorized().finish();
                    }
                    actix_web::HttpResponse::Ok()
                        .content_type("text/plain; version=0.0.4")
                        .body(metrics.render())
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)?
    .run();
    println!("jobcenter metrics listening on http://{bound}");
    server.await?;
    Ok(())
}

/// Serves the API until the process is stopped. Prints the bound address on stdout
/// (`jobcenter api listening on http://ADDR`) so that port 0 can be used.
///
/// Boxed, so that its state machine is compiled in this crate. An `async fn` is compiled
/// where it is awaited: the `jobcenter` binary would compile the API, scheduler and
/// worker again, alone, after every other crate, at the end of every release build.
pub fn serve(
    config: &Config,
    pool: Pool,
    metrics: Arc<Metrics>,
) -> BoxFuture<'_, Result<(), StartError>> {
    Box::pin(serve_until_stopped(config, pool, metrics))
}

async fn serve_until_stopped(
    config: &Config,
    pool: Pool,
    metrics: Arc<Metrics>,
) -> Result<(), StartError> {
    bootstrap_admin(config, &pool).await?;
    let events = run_events::RunEvents::new();
    let auth_cache = Arc::new(auth_cache::AuthCache::default());
    listener::spawn(
        config.database_url.expose().to_string(),
        events.clone(),
        auth_cache.clone(),
    );
    let state = web::Data::new(AppState {
        pool,
        jwt: auth::JwtKeys::new(
            &jwt_secret(config),
            config
                .jwt_previous_secret
                .as_ref()
                .map(|s| s.expose().as_bytes()),
        ),
        jwt_ttl: config.jwt_ttl,
        dummy_password_hash: auth::hash_password(&uuid::Uuid::new_v4().to_string())
            .map_err(|e| StartError::Bootstrap(e.to_string()))?,
        events,
        auth_cache,
        metrics,
        store: Arc::new(
            jobcenter_core::artifacts::ArtifactStore::open(&config.artifacts, &config.s3)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?,
        ),
        artifact_max_bytes: config.artifact_max_bytes,
        public_url: config.public_url.clone(),
        metrics_token: config.metrics_token.clone(),
        login: config.login.clone(),
        webhook_max_body_bytes: config.webhook_max_body_bytes,
        worker_lease: config.lease,
    });
    let listener = TcpListener::bind(config.listen).map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(extract::MAX_JSON_BODY_BYTES))
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                let detail = err.to_string();
                actix_web::error::InternalError::from_response(
                    err,
                    problem_response(
                        actix_web::http::StatusCode::BAD_REQUEST,
                        detail,
                        Some("query".into()),
                    ),
                )
                .into()
            }))
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                let detail = err.to_string();
                actix_web::error::InternalError::from_response(
                    err,
                    problem_response(actix_web::http::StatusCode::NOT_FOUND, detail, None),
                )
                .into()
            }))
            .wrap(actix_web::middleware::from_fn(
                content_encoding::refuse_encoded_bodies,
            ))
            .wrap(actix_web::middleware::from_fn(request_span))
            .configure(openapi::register)
            .route(
                "/openapi.json",
                web::get().to(|| async {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body(openapi::openapi_json())
                }),
            )
            // The page reads the document from /openapi.json: one copy per process,
            // not one per server worker (megabytes of the idle API each).
            .service(
                web::resource("/docs")
                    .guard(actix_web::guard::Get())
                    .to(routes::docs::page),
            )
            .service(
                web::resource("/docs/{file:.*}")
                    .guard(actix_web::guard::Get())
                    .to(routes::docs::file),
            )
            .default_service(web::to(routes::fallback::not_found_or_method_not_allowed))
    })
    .disable_signals()
    .listen(listener)?
    .run();
    println!("jobcenter api listening on http://{addr}");
    tracing::info!(%addr, "api listening");
    server.await?;
    Ok(())
}

/// A root span per request (method, path, status) and its duration in the metrics,
/// labelled by route pattern so that ids do not explode the label set.
async fn request_span(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        path = %req.path(),
        status = tracing::field::Empty
    );
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let started = std::time::Instant::now();
    let response = next.call(req).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    span.record("status", status);
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        metrics
            .http_requests
            .with_label_values(&[
                response.request().method().as_str(),
                &route,
                &status.to_string(),
            ])
            .observe(started.elapsed().as_secs_f64());
    }
    tracing::debug!(parent: &span, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    Ok(response)
}
