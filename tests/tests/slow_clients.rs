//! Clients that hold a connection without finishing a request: a header
//! that never ends, a keep-alive connection left idle, a body shorter than
//! its Content-Length and a chunk that never arrives. Each is cut off once
//! its timeout has passed (300 ms here; the others are set far longer, so
//! each test sees one timeout at work), and the server carries on. A device
//! connecting when the MQTT gateway holds all the sessions it may is closed
//! at once.

// A test: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use latchkey_tests::System;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for the server to close a connection: far past
/// the 300 ms timeout under test, far short of the 30 s ones it is not.
const CLOSE_DEADLINE: Duration = Duration::from_secs(8);

async fn system(header: &str, idle: &str, body: &str) -> anyhow::Result<System> {
    let (header, idle, body) = (header.to_owned(), idle.to_owned(), body.to_owned());
    System::start_configured(Arc::new(move |file| {
        file.https.header_timeout = Some(header.clone());
        file.https.idle_timeout = Some(idle.clone());
        file.https.body_timeout = Some(body.clone());
    }))
    .await
}

async fn connect(
    sys: &System,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, None)?;
    let tcp = tokio::net::TcpStream::connect(sys.running().https_addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    Ok(tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?)
}

/// Reads until the server closes the connection; what it sent before.
/// Fails if the connection is still open at the deadline.
async fn until_closed(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> anyhow::Result<String> {
    let mut received = Vec::new();
    let end = tokio::time::Instant::now() + CLOSE_DEADLINE;
    loop {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout_at(end, stream.read(&mut buffer)).await {
            Err(_) => anyhow::bail!(
                "the connection was still open after {CLOSE_DEADLINE:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            // Closed, with or without TLS close_notify.
            Ok(Ok(0) | Err(_)) => return Ok(String::from_utf8_lossy(&received).into_owned()),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

async fn still_serving(sys: &System) -> anyhow::Result<()> {
    let (status, body) = sys.https_get("/healthz").await?;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_header_is_disconnected() -> anyhow::Result<()> {
    let sys = system("300ms", "30s", "30s").await?;
    let mut slowloris = connect(&sys).await?;
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n")
        .await?;
    slowloris.flush().await?;
    let received = until_closed(&mut slowloris).await?;
    assert!(!received.contains("ok\n"), "{received}");
    still_serving(&sys).await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_connects_and_says_nothing_is_disconnected() -> anyhow::Result<()> {
    let sys = system("30s", "300ms", "30s").await?;
    let mut silent = connect(&sys).await?;
    until_closed(&mut silent).await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() -> anyhow::Result<()> {
    let sys = system("30s", "300ms", "30s").await?;
    let mut browser = connect(&sys).await?;
    browser
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    browser.flush().await?;
    // The answer comes, then nothing more is asked: the connection closes.
    let received = until_closed(&mut browser).await?;
    assert!(
        received.starts_with("HTTP/1.1 200") && received.ends_with("ok\n"),
        "{received}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_is_given_up() -> anyhow::Result<()> {
    let sys = system("30s", "30s", "300ms").await?;
    let mut client = connect(&sys).await?;
    client
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ngrant_type",
        )
        .await?;
    client.flush().await?;
    let received = until_closed(&mut client).await?;
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 4"),
        "{received}"
    );
    still_serving(&sys).await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_size_no_body_will_reach_is_given_up() -> anyhow::Result<()> {
    let sys = system("30s", "30s", "300ms").await?;
    let mut client = connect(&sys).await?;
    client
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Transfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\ngrant_type=",
        )
        .await?;
    client.flush().await?;
    let received = until_closed(&mut client).await?;
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 4"),
        "{received}"
    );
    still_serving(&sys).await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_past_the_session_limit_is_closed_at_once() -> anyhow::Result<()> {
    let sys = System::start_configured(Arc::new(|file| file.mqtt.max_sessions = Some(1))).await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start_dry_run();
    sys.wait_for_posture(&agent.device_id).await?;
    // The one session is taken: the next connection is closed as soon as
    // it is accepted, before a TLS handshake.
    let mut second = tokio::net::TcpStream::connect(sys.running().mqtt_addr.unwrap()).await?;
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(CLOSE_DEADLINE, second.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the connection was not closed: {read:?}"
    );
    // The first device still has its session.
    let device = agent.device_id.clone();
    let device = latchkeyd::domain::ids::DeviceId::parse(&device).expect("a device id");
    assert!(sys.running().sessions.is_connected(&device));
    agent.stop().await?;
    sys.stop().await
}
