//! One notification POST (hyper 1, HTTP/1.1) over a connection from
//! [`jobcenter_net::Connector`]: the URL's addresses are checked against the SSRF rules
//! and the checked address is connected to; redirects are not followed; the whole
//! exchange is bounded by a timeout. Only the status is read.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use jobcenter_net::{Connector, Endpoint};
use std::time::Duration;

/// What every notification POST shares.
#[derive(Clone)]
pub struct Client {
    pub timeout: Duration,
    connector: Connector,
}

impl Client {
    pub fn new(allow_private: bool, timeout: Duration) -> Client {
        Client {
            timeout,
            connector: Connector::new(allow_private),
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
        let invalid = || format!("invalid URL {url:?}");
        let uri: Uri = url.parse().map_err(|_| invalid())?;
        let endpoint = Endpoint::of(&uri).map_err(|_| invalid())?;
        let addr = self
            .connector
            .vet(&endpoint)
            .await
            .map_err(|e| e.to_string())?;
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                HOST,
                uri.authority()
                    .map_or(endpoint.host.as_str(), |a| a.as_str()),
            )
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
        let mut sender = self
            .connector
            .connect(&endpoint, addr)
            .await
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP exchange failed: {e}"))?;
        Ok(response.status().as_u16())
    }
}
