use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn endpoint(url: &str) -> Endpoint {
    Endpoint::of(&url.parse().unwrap()).unwrap()
}

/// A local server answering 204 to the first request of each connection.
async fn server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                let _ = stream.write_all(answer).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_private_address_is_refused_unless_allowed() {
    let addr = server().await;
    let place = endpoint(&format!("http://{addr}/x"));
    let refused = Connector::new(false).vet(&place).await;
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");
    // A name is refused when any address it resolves to is.
    let by_name = endpoint(&format!("http://localhost:{}/x", addr.port()));
    let refused = Connector::new(false).vet(&by_name).await;
    assert!(matches!(refused, Err(Error::Refused(_))), "{refused:?}");

    let connector = Connector::new(true);
    let vetted = connector.vet(&place).await.unwrap();
    assert_eq!(vetted.addr(), addr);
    let mut sender = connector.connect(&place, vetted).await.unwrap();
    let request = hyper::Request::builder()
        .uri("/x")
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn metadata_addresses_are_refused_even_when_private_ones_are_allowed() {
    for url in ["http://169.254.169.254/latest", "http://[fe80::1]:8080/"] {
        let refused = Connector::new(true).vet(&endpoint(url)).await;
        assert!(
            matches!(refused, Err(Error::Refused(_))),
            "{url}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn https_to_a_server_without_tls_fails_in_the_handshake() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let place = endpoint(&format!("https://127.0.0.1:{}/", addr.port()));
    let connector = Connector::new(true);
    let vetted = connector.vet(&place).await.unwrap();
    let failed = connector.connect(&place, vetted).await;
    assert!(
        matches!(failed, Err(Error::Tls { .. })),
        "{:?}",
        failed.err()
    );
}

#[test]
fn an_endpoint_is_a_scheme_a_host_and_a_port() {
    let plain = endpoint("http://example.com/a");
    assert_eq!(
        (plain.https(), plain.host.as_str(), plain.port),
        (false, "example.com", 80)
    );
    let tls = endpoint("https://[::1]/a");
    assert_eq!(
        (tls.https(), tls.host.as_str(), tls.port),
        (true, "::1", 443)
    );
    assert_eq!(endpoint("https://example.com:8443").port, 8443);
    for bad in ["ftp://example.com/", "/relative"] {
        let refused = Endpoint::of(&bad.parse().unwrap());
        assert!(matches!(refused, Err(Error::Url(_))), "{bad}");
    }
}
