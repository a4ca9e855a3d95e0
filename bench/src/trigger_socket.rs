//! The idle-latency triggers' own HTTP connection: one keep-alive HTTP/1.1 connection to
//! the API, a request built once, sent with one `write`. The instant taken just before
//! that write is the instant the trigger leaves the driver, so trigger → process start
//! holds jobcenter's time and not the driver's: with `reqwest` the instant was taken
//! before its request building, pool checkout and hand-over to its connection task
//! (BENCHMARKS.md gives what that cost).

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct TriggerSocket {
    addr: String,
    request: Vec<u8>,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl TriggerSocket {
    /// `base` is the API's `http://host:port`; the request is `POST
    /// /api/v1/jobs/{job}/runs` with `token` and the body `{"input":null}`.
    pub fn new(base: &str, token: &str, job: &str) -> anyhow::Result<TriggerSocket> {
        let addr = base
            .strip_prefix("http://")
            .context("the API serves plain HTTP")?
            .trim_end_matches('/')
            .to_string();
        let body = r#"{"input":null}"#;
        let request = format!(
            "POST /api/v1/jobs/{job}/runs HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Ok(TriggerSocket {
            addr,
            request: request.into_bytes(),
            stream: None,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends the trigger; returns the instant just before its write (`now_ns`) and the
    /// run id when the API accepted it (202).
    pub async fn trigger(&mut self) -> anyhow::Result<(i128, Option<String>)> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        let sent = crate::scenarios::now_ns();
        stream.write_all(&self.request).await?;
        let (status, body, keep_alive) = read_response(stream, &mut self.buffer).await?;
        if !keep_alive {
            self.stream = None;
        }
        let id = (status == 202)
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .and_then(|reply| reply["id"].as_str().map(str::to_string));
        Ok((sent, id))
    }
}

/// Reads one response with a `Content-Length` body (as actix-web answers JSON): its
/// status, its body and whether the connection stays open.
async fn read_response(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> anyhow::Result<(u16, Vec<u8>, bool)> {
    buffer.clear();
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if stream.read_buf(buffer).await? == 0 {
            bail!("the API closed the connection before answering");
        }
    };
    let head = std::str::from_utf8(&buffer[..header_end]).context("an ASCII head")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("a status line")?;
    let (mut length, mut keep_alive) = (None, true);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("a numeric Content-Length")?);
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            keep_alive = false;
        }
    }
    let length = length.context("a Content-Length (the API answers JSON with one)")?;
    while buffer.len() < header_end + length {
        if stream.read_buf(buffer).await? == 0 {
            bail!("the API closed the connection within the body");
        }
    }
    if buffer.len() > header_end + length {
        bail!("bytes after the response: the API does not pipeline");
    }
    Ok((status, buffer[header_end..].to_vec(), keep_alive))
}
