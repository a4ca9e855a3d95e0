//! HTTP targets: one request (hyper 1), redirects followed up to a bound, every hop's
//! addresses checked against the SSRF rules ([`jobcenter_core::ssrf`]) and connected to directly.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use jobcenter_core::target::HttpRequest;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// What the target answered (after redirects).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// At most the preview cap of the body's first bytes.
    pub body_start: Vec<u8>,
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("invalid URL {0:?}")]
    Url(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request: {0}")]
    Request(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
}

/// What every HTTP call of this worker shares.
#[derive(Clone)]
pub struct HttpOptions {
    /// May private addresses be reached (`JOBCENTER_HTTP_ALLOW_PRIVATE`)?
    pub allow_private: bool,
    /// How much of a response body is kept (the start of it).
    pub preview_bytes: usize,
    pub tls: Arc<rustls::ClientConfig>,
}

impl HttpOptions {
    pub fn new(allow_private: bool, preview_bytes: usize) -> Self {
        HttpOptions {
            allow_private,
            preview_bytes,
            tls: tls_config(),
        }
    }
}

/// Sends `request`, following redirects, and reads the start of the body.
pub async fn call(request: &HttpRequest, options: &HttpOptions) -> Result<Reply, CallError> {
    let mut method = Method::from_bytes(request.method.as_bytes())
        .map_err(|e| CallError::Request(e.to_string()))?;
    let mut body = request.body.clone().unwrap_or_default();
    let mut url: Uri = request
        .url
        .parse()
        .map_err(|_| CallError::Url(request.url.clone()))?;
    for _ in 0..=MAX_REDIRECTS {
        let response = send_once(&method, &url, &request.headers, &body, options).await?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match (status.is_redirection(), location) {
            (true, Some(location)) => {
                url = resolve_location(&url, &location)?;
                // As browsers do: 303 (and 301/302 after a POST) continue with a GET.
                let to_get = status == StatusCode::SEE_OTHER
                    || (matches!(status.as_u16(), 301 | 302) && method == Method::POST);
                if to_get && method != Method::HEAD {
                    method = Method::GET;
                    body.clear();
                }
            }
            _ => {
                let body_start = read_start(response, options.preview_bytes).await?;
                return Ok(Reply {
                    status: status.as_u16(),
                    body_start,
                    url: url.to_string(),
                });
            }
        }
    }
    Err(CallError::TooManyRedirects)
}

fn resolve_location(base: &Uri, location: &str) -> Result<Uri, CallError> {
    let invalid = || CallError::Url(location.to_string());
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().map_err(|_| invalid());
    }
    if !location.starts_with('/') {
        return Err(invalid());
    }
    let scheme = base.scheme_str().ok_or_else(invalid)?;
    let authority = base.authority().ok_or_else(invalid)?;
    format!("{scheme}://{authority}{location}")
        .parse()
        .map_err(|_| invalid())
}

async fn send_once(
    method: &Method,
    url: &Uri,
    headers: &std::collections::BTreeMap<String, String>,
    body: &str,
    options: &HttpOptions,
) -> Result<Response<hyper::body::Incoming>, CallError> {
    let https = match url.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(CallError::Url(url.to_string())),
    };
    let host = url
        .host()
        .ok_or_else(|| CallError::Url(url.to_string()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = vetted_address(&host, port, options.allow_private).await?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| CallError::Connect { addr, source })?;
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, url.authority().map_or(host.as_str(), |a| a.as_str()))
        .header(USER_AGENT, "jobcenter")
        .header(CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| CallError::Request(e.to_string()))?;
        let value = HeaderValue::from_str(value).map_err(|e| CallError::Request(e.to_string()))?;
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| CallError::Request(e.to_string()))?;
    if https {
        let server_name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| CallError::Url(url.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(options.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|source| CallError::Tls { host, source })?;
        exchange(tls, request).await
    } else {
        exchange(tcp, request).await
    }
}

/// Resolves `host` and checks every address; the first one is used.
async fn vetted_address(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<SocketAddr, CallError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| CallError::Resolve {
            host: host.to_string(),
            source,
        })?
        .collect();
    for addr in &addrs {
        jobcenter_core::ssrf::check(addr.ip(), allow_private).map_err(CallError::Refused)?;
    }
    addrs.first().copied().ok_or_else(|| CallError::Resolve {
        host: host.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })
}

async fn exchange<S>(
    io: S,
    request: Request<Full<Bytes>>,
) -> Result<Response<hyper::body::Incoming>, CallError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        // Ends when the response has been read or dropped.
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}

/// Reads at most `cap` bytes of the body, leaving the rest unread.
async fn read_start(
    response: Response<hyper::body::Incoming>,
    cap: usize,
) -> Result<Vec<u8>, CallError> {
    let mut body = response.into_body();
    let mut start = Vec::new();
    while start.len() < cap {
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    let room = cap - start.len();
                    start.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            None => break,
        }
    }
    Ok(start)
}

/// TLS with the Mozilla root certificates (webpki-roots), ring as the crypto provider.
fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_redirects_stay_on_the_same_origin() {
        let base: Uri = "http://example.com:8080/a/b?c".parse().unwrap();
        assert_eq!(
            resolve_location(&base, "/next").unwrap().to_string(),
            "http://example.com:8080/next"
        );
        assert_eq!(
            resolve_location(&base, "https://other.example/x")
                .unwrap()
                .to_string(),
            "https://other.example/x"
        );
        assert!(resolve_location(&base, "javascript:alert(1)").is_err());
    }
}
