//! Connect, read and total timeouts of the provider HTTP client against raw listeners on 127.0.0.1 that
//! misbehave on purpose. Each asserts the call ends as `Timeout` within ±20 % of the configured value.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dashtam_adapters::providers::{AlpacaConnector, AlpacaSettings, HttpTimeouts};
use dashtam_domain::connector::{ApiKeyCredentials, Connector, ConnectorError};
use secrecy::SecretString;
use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn connector(address: SocketAddr, timeouts: HttpTimeouts) -> AlpacaConnector {
    let base_url = format!("http://{address}").parse().expect("url");
    AlpacaConnector::new(AlpacaSettings { base_url }, &timeouts).expect("connector")
}

fn keys() -> ApiKeyCredentials {
    ApiKeyCredentials { api_key: SecretString::from("KEYID-1234"), api_secret: SecretString::from("SECRET-5678") }
}

/// Runs the cheapest call and answers how it ended and how long it took.
async fn timed_call(address: SocketAddr, timeouts: HttpTimeouts) -> (Result<(), ConnectorError>, Duration) {
    let connector = connector(address, timeouts);
    let keys = keys();
    let started = Instant::now();
    let result = connector.verify_api_key(&keys).await;
    (result, started.elapsed())
}

fn assert_near(elapsed: Duration, expected: Duration) {
    let (low, high) = (expected.mul_f64(0.8), expected.mul_f64(1.2));
    assert!(elapsed >= low && elapsed <= high, "took {elapsed:?}, expected {expected:?} ± 20 %");
}

/// Reads a request head (up to the blank line), so the client is waiting on us.
async fn read_head(stream: &mut tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test]
async fn connect_timeout_fires_when_syns_go_unanswered() {
    // A listener with a backlog of 0 that never accepts: once its accept queue holds a connection, the kernel
    // drops further SYNs, so the next connect hangs until our connect timeout.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    socket.listen(0).expect("listen");
    let address = socket.local_addr().expect("address").as_socket().expect("inet");
    let fillers: Vec<TcpStream> =
        (0..3).filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()).collect();
    assert!(!fillers.is_empty(), "the accept queue could not be filled");

    let connect = Duration::from_millis(500);
    let timeouts = HttpTimeouts { connect, read: Duration::from_secs(5), total: Duration::from_secs(5) };
    let (result, elapsed) = timed_call(address, timeouts).await;
    assert!(matches!(result, Err(ConnectorError::Timeout)), "{result:?}");
    assert_near(elapsed, connect);
    drop((fillers, socket));
}

#[tokio::test]
async fn read_timeout_fires_when_the_provider_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        read_head(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(stream);
    });

    let read = Duration::from_millis(500);
    let timeouts = HttpTimeouts { connect: Duration::from_secs(5), read, total: Duration::from_secs(5) };
    let (result, elapsed) = timed_call(address, timeouts).await;
    assert!(matches!(result, Err(ConnectorError::Timeout)), "{result:?}");
    assert_near(elapsed, read);
    server.abort();
}

#[tokio::test]
async fn total_deadline_fires_while_a_body_trickles_in() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        read_head(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{\"id\":\"";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        // One byte every 100 ms: never silent long enough for the read timeout, never done before the total.
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream.write_all(b"a").await.is_err() {
                return;
            }
        }
    });

    let total = Duration::from_secs(1);
    let timeouts = HttpTimeouts { connect: Duration::from_secs(5), read: Duration::from_millis(400), total };
    let (result, elapsed) = timed_call(address, timeouts).await;
    assert!(matches!(result, Err(ConnectorError::Timeout)), "{result:?}");
    assert_near(elapsed, total);
    server.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error_without_secrets() {
    // Bind then drop, so nothing listens on the port.
    let address = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("address");
    let (result, _) = timed_call(address, HttpTimeouts::default()).await;
    let Err(ConnectorError::Network(text)) = result else { panic!("{result:?}") };
    assert!(!text.contains("KEYID-1234") && !text.contains("SECRET-5678"), "{text}");
}
