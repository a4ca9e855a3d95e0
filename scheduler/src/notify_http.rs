//! One notification POST (hyper 1, HTTP/1.1, rustls with the Mozilla roots): the URL's
//! addresses are checked against the SSRF rules ([`jobcenter_core::ssrf`]) and the
//! checked address is connected to; redirects are not followed; the whole exchange
//! is bounded by a timeout. Only the status is read.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// What every notification POST shares.
#[derive(Clone)]
pub struct Client {
    pub allow_private: bool,
    pub timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn new(allow_private: bool, timeout: Duration) -> Client {
        Client {
            allow_private,
            timeout,
            tls: tls_config(),
        }
    }

    /// POSTs `body` with `headers`; Ok(status) for any HTTP answer, Err(why) otherwise.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String> {
        match tokio::time::timeout(self.timeout, self.post_unbounded(url, headers, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} s", self.timeout.as_secs())),
        }
    }

    async fn post_unbounded(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let uri: Uri = url.parse().map_err(|_| format!("invalid URL {url:?}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("invalid URL {url:?}")),
        };
        let host = uri
            .host()
            .ok_or_else(|| format!("invalid URL {url:?}"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = vetted_address(&host, port, self.allow_private).await?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(HOST, uri.authority().map_or(host.as_str(), |a| a.as_str()))
            .header(USER_AGENT, "jobcenter")
            .header(CONTENT_TYPE, "application/json")
            .header(CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
            builder = builder.header(HeaderName::from_static(name), value);
        }
        let request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        if https {
            let server_name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| format!("invalid URL {url:?}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("TLS with {host} failed: {e}"))?;
            exchange(tls, request).await
        } else {
            exchange(tcp, request).await
        }
    }
}

/// Resolves `host` and checks every address; the first one is used.
async fn vetted_address(host: &str, port: u16, allow_private: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    for addr in &addrs {
        jobcenter_core::ssrf::check(addr.ip(), allow_private)
            .map_err(|e| format!("refused: {e}"))?;
    }
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("cannot resolve {host}: no address"))
}

async fn exchange<S>(io: S, request: Request<Full<Bytes>>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP exchange failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP exchange failed: {e}"))?;
    Ok(response.status().as_u16())
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
