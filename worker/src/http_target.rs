//! HTTP targets: one request (hyper 1), redirects followed up to a bound, every hop's
//! addresses checked against the SSRF rules and connected to directly
//! ([`jobcenter_net::Connector`]).
//!
//! Connections are kept alive for the next call to the same place ([`IdleConnections`]):
//! a call resolves and vets its address as always, and takes an idle connection only if
//! it leads to that very address (so the SSRF rules hold for reused connections too).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode, Uri};
use jobcenter_core::target::HttpRequest;
use jobcenter_net::{Connector, Endpoint, Sender, Vetted};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// The URL, its addresses, the connection or the exchange.
    #[error(transparent)]
    Net(#[from] jobcenter_net::Error),
    #[error("invalid request: {0}")]
    Request(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("refused to follow a redirect from https to http ({0})")]
    Downgrade(String),
}

impl From<hyper::Error> for CallError {
    fn from(e: hyper::Error) -> Self {
        CallError::Net(e.into())
    }
}

fn invalid_url(url: impl ToString) -> CallError {
    CallError::Net(jobcenter_net::Error::Url(url.to_string()))
}

/// What every HTTP call of this worker shares.
#[derive(Clone)]
pub struct HttpOptions {
    /// How much of a response body is kept (the start of it).
    pub preview_bytes: usize,
    /// The address rules (`JOBCENTER_HTTP_ALLOW_PRIVATE`) and TLS.
    pub connector: Connector,
    pub idle: Arc<IdleConnections>,
}

impl HttpOptions {
    pub fn new(allow_private: bool, preview_bytes: usize) -> Self {
        HttpOptions {
            preview_bytes,
            connector: Connector::new(allow_private),
            idle: Arc::default(),
        }
    }
}

/// Where a connection leads: TLS or not, the Host header, the address vetted when it
/// was opened.
type ConnectionKey = (bool, String, Vetted);

/// How long a connection may wait for its next call: shorter than the keep-alive
/// timeouts of common servers, so that a server rarely closes one as it is reused.
const IDLE_AT_MOST: Duration = Duration::from_secs(4);
/// Idle connections kept per place.
const IDLE_PER_KEY: usize = 16;

type Idle = HashMap<ConnectionKey, Vec<(Instant, Sender)>>;

/// Keep-alive connections waiting for the next call, by where they lead. Connections
/// idle for longer than [`IDLE_AT_MOST`] are closed at the next call after that.
#[derive(Default)]
pub struct IdleConnections {
    by_key: Mutex<(Idle, Option<Instant>)>,
}

impl IdleConnections {
    /// The most recently used idle connection to `key` that is still open, if any.
    async fn take(&self, key: &ConnectionKey) -> Option<Sender> {
        loop {
            let (since, mut sender) = self
                .by_key
                .lock()
                .expect("not poisoned")
                .0
                .get_mut(key)?
                .pop()?;
            if since.elapsed() >= IDLE_AT_MOST || sender.is_closed() {
                continue;
            }
            // Ready at once unless the connection is closing.
            match tokio::time::timeout(Duration::from_millis(50), sender.ready()).await {
                Ok(Ok(())) => return Some(sender),
                _ => continue,
            }
        }
    }

    fn put(&self, key: ConnectionKey, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut guard = self.by_key.lock().expect("not poisoned");
        let (by_key, last_sweep) = &mut *guard;
        // Dropping a sender closes its connection.
        if last_sweep.is_none_or(|at| at.elapsed() >= IDLE_AT_MOST) {
            by_key.retain(|_, idle| {
                idle.retain(|(since, s)| since.elapsed() < IDLE_AT_MOST && !s.is_closed());
                !idle.is_empty()
            });
            *last_sweep = Some(Instant::now());
        }
        let idle = by_key.entry(key).or_default();
        if idle.len() < IDLE_PER_KEY {
            idle.push((Instant::now(), sender));
        }
    }
}

/// A response, and the connection it came on (to be kept if its body is read to the end).
struct Answer {
    response: Response<hyper::body::Incoming>,
    connection: (ConnectionKey, Sender),
}

/// Sends `request`, following redirects, and reads the start of the body.
pub async fn call(request: &HttpRequest, options: &HttpOptions) -> Result<Reply, CallError> {
    let mut method = Method::from_bytes(request.method.as_bytes())
        .map_err(|e| CallError::Request(e.to_string()))?;
    let mut body = request.body.clone().unwrap_or_default();
    let mut url: Uri = request.url.parse().map_err(|_| invalid_url(&request.url))?;
    // The job's headers (its `Authorization`, cookies, anything custom) go to the origin
    // it named and to no other: a redirect elsewhere drops them all.
    let no_headers: std::collections::BTreeMap<String, String> = Default::default();
    let mut headers = &request.headers;
    for _ in 0..=MAX_REDIRECTS {
        let Answer {
            response,
            connection,
        } = send_once(&method, &url, headers, &body, options).await?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match (status.is_redirection(), location) {
            (true, Some(location)) => {
                let next = resolve_location(&url, &location)?;
                if !follow_redirect(&url, &next)? {
                    headers = &no_headers;
                }
                url = next;
                // As browsers do: 303 (and 301/302 after a POST) continue with a GET.
                let to_get = status == StatusCode::SEE_OTHER
                    || (matches!(status.as_u16(), 301 | 302) && method == Method::POST);
                if to_get && method != Method::HEAD {
                    method = Method::GET;
                    body.clear();
                }
            }
            _ => {
                let (body_start, complete) = read_start(response, options.preview_bytes).await?;
                if complete {
                    options.idle.put(connection.0, connection.1);
                }
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

/// Whether a redirect from `from` to `to` may keep the job's headers (true: same origin,
/// i.e. scheme, host and port); an https → http redirect is refused outright.
fn follow_redirect(from: &Uri, to: &Uri) -> Result<bool, CallError> {
    if from.scheme_str() == Some("https") && to.scheme_str() != Some("https") {
        return Err(CallError::Downgrade(to.to_string()));
    }
    Ok(origin(from) == origin(to))
}

/// Scheme, host (lower case, without brackets) and port (the scheme's default if none).
fn origin(url: &Uri) -> (String, String, u16) {
    let scheme = url.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = url.host().unwrap_or_default().to_ascii_lowercase();
    let port = url
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    (scheme, host, port)
}

fn resolve_location(base: &Uri, location: &str) -> Result<Uri, CallError> {
    let invalid = || invalid_url(location);
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
) -> Result<Answer, CallError> {
    let endpoint = Endpoint::of(url)?;
    let addr = options.connector.vet(&endpoint).await?;
    let host_header = url
        .authority()
        .map_or(endpoint.host.as_str(), |a| a.as_str())
        .to_string();
    let build = || -> Result<Request<Full<Bytes>>, CallError> {
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url.path_and_query().map_or("/", |p| p.as_str()))
            .header(HOST, host_header.as_str())
            .header(USER_AGENT, "jobcenter")
            .header(CONTENT_LENGTH, body.len());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| CallError::Request(e.to_string()))?;
            let value =
                HeaderValue::from_str(value).map_err(|e| CallError::Request(e.to_string()))?;
            builder = builder.header(name, value);
        }
        builder
            .body(Full::new(Bytes::from(body.to_owned())))
            .map_err(|e| CallError::Request(e.to_string()))
    };
    let key: ConnectionKey = (endpoint.https(), host_header.clone(), addr);
    if let Some(mut sender) = options.idle.take(&key).await {
        match sender.send_request(build()?).await {
            Ok(response) => {
                return Ok(Answer {
                    response,
                    connection: (key, sender),
                })
            }
            // The server closed the idle connection: the request was not sent (or, for a
            // method safe to repeat, may have been cut off): send it on a new one.
            Err(e) if e.is_canceled() || (safe_to_repeat(method) && cut_off(&e)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut sender = options.connector.connect(&endpoint, addr).await?;
    let response = sender.send_request(build()?).await?;
    Ok(Answer {
        response,
        connection: (key, sender),
    })
}

/// Whether the connection ended before the answer came: closed mid-message, or reset by
/// a server that had already closed it (the request then met a closed socket).
fn cut_off(e: &hyper::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    e.is_incomplete_message()
        || std::error::Error::source(e)
            .and_then(|source| source.downcast_ref::<std::io::Error>())
            .is_some_and(|io| matches!(io.kind(), ConnectionReset | BrokenPipe | ConnectionAborted))
}

/// Methods a client may send again when a reused connection was cut off.
fn safe_to_repeat(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Reads at most `cap` bytes of the body, leaving the rest unread; true if the body
/// was read to its end (the connection can carry another request).
async fn read_start(
    response: Response<hyper::body::Incoming>,
    cap: usize,
) -> Result<(Vec<u8>, bool), CallError> {
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
            None => return Ok((start, true)),
        }
    }
    Ok((start, hyper::body::Body::is_end_stream(&body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// How the test server treats a connection after its first answer.
    #[derive(Clone, Copy, PartialEq)]
    enum AfterAnswer {
        KeepOpen,
        Close,
        /// Close with an RST (SO_LINGER 0), as a server dropping idle connections may.
        Reset,
    }

    /// Reads until `seen` holds a whole request head (through the blank line) and takes
    /// it out; None once the client has closed or the read fails.
    async fn next_head(stream: &mut tokio::net::TcpStream, seen: &mut Vec<u8>) -> Option<Vec<u8>> {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(seen.drain(..end + 4).collect());
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// A local HTTP/1.1 server answering "ok" to every request; counts the connections it
    /// accepted. With `Close` or `Reset` it ends each connection after one answer without
    /// saying so (as a server whose keep-alive timer just ran out).
    async fn server(after: AfterAnswer) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while next_head(&mut stream, &mut seen).await.is_some() {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                        match after {
                            AfterAnswer::KeepOpen => {}
                            AfterAnswer::Close => return,
                            AfterAnswer::Reset => {
                                let _ = stream.set_zero_linger();
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn get(url: &str) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Default::default(),
            body: None,
        }
    }

    #[tokio::test]
    async fn a_connection_is_kept_for_the_next_call_to_the_same_place() {
        let options = HttpOptions::new(true, 100);
        let (url, accepted) = server(AfterAnswer::KeepOpen).await;
        for _ in 0..3 {
            let reply = call(&get(&url), &options).await.unwrap();
            assert_eq!(
                (reply.status, reply.body_start.as_slice()),
                (200, &b"ok"[..])
            );
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for three calls"
        );
        // Another place gets its own connection.
        let (other, other_accepted) = server(AfterAnswer::KeepOpen).await;
        call(&get(&other), &options).await.unwrap();
        assert_eq!(other_accepted.load(Ordering::SeqCst), 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_kept_connection_the_server_closed_is_replaced_not_failed() {
        let options = HttpOptions::new(true, 100);
        for after in [AfterAnswer::Close, AfterAnswer::Reset] {
            let (url, accepted) = server(after).await;
            for round in 1..=3 {
                let reply = call(&get(&url), &options).await.unwrap();
                assert_eq!(reply.status, 200, "call {round}");
                assert_eq!(
                    accepted.load(Ordering::SeqCst),
                    round,
                    "a new connection each time"
                );
            }
        }
    }

    /// A local server giving `answer` to every request; keeps each request's head.
    async fn recording_server(answer: String) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen_heads = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let heads = seen_heads.clone();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while let Some(head) = next_head(&mut stream, &mut seen).await {
                        heads
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).to_ascii_lowercase());
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (base, heads)
    }

    fn redirect_to(location: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
    }

    fn with_secrets(url: &str) -> HttpRequest {
        let mut request = get(url);
        request.headers = [
            ("Authorization", "Bearer s3cret-token"),
            ("Cookie", "session=s3cret-cookie"),
            ("X-Custom", "s3cret-custom"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        request
    }

    #[tokio::test]
    async fn a_redirect_to_another_origin_drops_the_jobs_headers() {
        let options = HttpOptions::new(true, 100);
        let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_string();
        let (second, second_heads) = recording_server(ok).await;
        let (first, first_heads) = recording_server(redirect_to(&format!("{second}/landed"))).await;
        let reply = call(&with_secrets(&format!("{first}/start")), &options)
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.url, format!("{second}/landed"));
        let first_heads = first_heads.lock().unwrap().clone();
        assert!(first_heads[0].contains("s3cret-token"), "{first_heads:?}");
        assert!(first_heads[0].contains("s3cret-custom"), "{first_heads:?}");
        let second_heads = second_heads.lock().unwrap().clone();
        assert_eq!(second_heads.len(), 1, "{second_heads:?}");
        assert!(
            second_heads[0].starts_with("get /landed "),
            "{second_heads:?}"
        );
        for secret in ["s3cret", "authorization", "cookie", "x-custom"] {
            assert!(
                !second_heads[0].contains(secret),
                "{secret} reached another origin: {second_heads:?}"
            );
        }
    }

    #[test]
    fn redirects_keep_headers_only_on_the_same_origin_and_never_leave_https() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        let same = |a: &str, b: &str| follow_redirect(&uri(a), &uri(b)).unwrap();
        assert!(same("http://a.example/x", "http://a.example:80/y"));
        assert!(same("https://a.example/x", "https://A.example:443/y"));
        assert!(!same("http://a.example/x", "http://a.example:8080/y"));
        assert!(!same("http://a.example/x", "http://b.example/x"));
        assert!(!same("http://a.example/x", "https://a.example/x"));
        assert!(matches!(
            follow_redirect(&uri("https://a.example/x"), &uri("http://a.example/x")),
            Err(CallError::Downgrade(_))
        ));
    }

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
