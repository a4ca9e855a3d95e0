//! Outgoing HTTP connections to places users name: the one path from a URL to a
//! connected HTTP/1.1 sender, shared by the worker's HTTP targets and the scheduler's
//! notifications. The URL's host is resolved, every address it resolves to is checked
//! against the SSRF rules ([`jobcenter_core::ssrf`]), and the checked address itself is
//! connected to, so no second resolution can lead elsewhere (DNS rebinding). TLS
//! verifies the URL's host against the Mozilla roots (webpki-roots), with ring.
//!
//! Architecture invariant: this crate knows connections, not requests. What is sent,
//! redirects and the reuse of connections are its callers' business.

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The sending half of an HTTP/1.1 connection.
pub type Sender = SendRequest<Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
}

/// Where a URL leads: http or https, a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host without the brackets of an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// The name TLS verifies; None for plain http.
    tls_name: Option<ServerName<'static>>,
}

impl Endpoint {
    /// The endpoint of an `http://` or `https://` URL (the scheme's port by default).
    pub fn of(url: &Uri) -> Result<Endpoint, Error> {
        let invalid = || Error::Url(url.to_string());
        let https = match url.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(invalid()),
        };
        let host = url
            .host()
            .ok_or_else(invalid)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls_name = match https {
            true => Some(ServerName::try_from(host.clone()).map_err(|_| invalid())?),
            false => None,
        };
        Ok(Endpoint {
            port: url.port_u16().unwrap_or(if https { 443 } else { 80 }),
            host,
            tls_name,
        })
    }

    pub fn https(&self) -> bool {
        self.tls_name.is_some()
    }
}

/// An address that passed the SSRF rules, with every other address of its name; only
/// [`Connector::vet`] makes one, so [`Connector::connect`] reaches nothing unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vetted(SocketAddr);

impl Vetted {
    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

/// What every outgoing connection of a process shares: the address policy and TLS.
#[derive(Clone)]
pub struct Connector {
    /// May private addresses be reached (`JOBCENTER_HTTP_ALLOW_PRIVATE`)?
    allow_private: bool,
    tls: Arc<rustls::ClientConfig>,
}

impl Connector {
    pub fn new(allow_private: bool) -> Connector {
        Connector {
            allow_private,
            tls: tls_config(),
        }
    }

    /// Resolves the endpoint's host and checks every address it resolves to (one
    /// refused address refuses the name); the first is the one to connect to.
    pub async fn vet(&self, endpoint: &Endpoint) -> Result<Vetted, Error> {
        let host = endpoint.host.as_str();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, endpoint.port))
            .await
            .map_err(|source| Error::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        for addr in &addrs {
            jobcenter_core::ssrf::check(addr.ip(), self.allow_private).map_err(Error::Refused)?;
        }
        addrs
            .first()
            .map(|a| Vetted(*a))
            .ok_or_else(|| Error::Resolve {
                host: host.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
            })
    }

    /// An HTTP/1.1 connection to `addr` (vetted for `endpoint`), over TLS for https,
    /// driven by its own task until the server closes it or the last sender is dropped.
    pub async fn connect(&self, endpoint: &Endpoint, addr: Vetted) -> Result<Sender, Error> {
        let tcp = TcpStream::connect(addr.0)
            .await
            .map_err(|source| Error::Connect {
                addr: addr.0,
                source,
            })?;
        match &endpoint.tls_name {
            Some(name) => {
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| Error::Tls {
                        host: endpoint.host.clone(),
                        source,
                    })?;
                handshake(tls).await
            }
            None => handshake(tcp).await,
        }
    }
}

async fn handshake<S>(io: S) -> Result<Sender, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
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
mod tests;
