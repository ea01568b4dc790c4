//! The server when descriptors run out. Its own process (this file), since
//! it lowers the process's RLIMIT_NOFILE and fills every descriptor: a
//! device connecting then cannot be accepted (EMFILE). The MQTT accept loop
//! must pause between attempts instead of spinning (it once retried at once
//! and wrote millions of "MQTT accept failed" lines), log a few lines with
//! counts instead of one per attempt, stay up, and accept again once
//! descriptors are free.

#![cfg(target_os = "linux")]
// A test: a panic here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_tests::{DEADLINE, System, wait_until};
use tokio::io::AsyncReadExt;

/// Every log line of the process, for counting.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(needle) && line.contains("listener=\"MQTT\""))
            .map(str::to_owned)
            .collect()
    }
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_when_descriptors_have_run_out_waits_and_is_served_later()
-> anyhow::Result<()> {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("this test file owns the process's logging");

    // Nothing connects before the descriptors are filled: a connection
    // closing later would free one, and the device would be accepted.
    let sys = System::start().await?;
    let mqtt = sys.running().mqtt_addr.unwrap();

    // A small limit: what is open now and some room, then fill the room.
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let small = u64::try_from(open_descriptors())? + 64;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(small),
            maximum: before.maximum,
        },
    )?;
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => filler.push(file),
            Err(e) if e.raw_os_error() == Some(24) => break,
            Err(e) => return Err(e.into()),
        }
    }
    assert!(!filler.is_empty());

    // One descriptor for the device's socket; the server has none left to
    // accept it with.
    drop(filler.pop());
    let mut device = tokio::net::TcpStream::from_std({
        let stream = std::net::TcpStream::connect(mqtt)?;
        stream.set_nonblocking(true)?;
        stream
    })?;
    wait_until("the first failed accept", DEADLINE, || async {
        (!log.lines_with("accept failed").is_empty()).then_some(())
    })
    .await
    .map_err(|e| {
        let all = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
        anyhow::anyhow!("{e}; the log:\n{all}")
    })?;
    // For a second and a half the device waits in the backlog; a loop
    // retrying at once would try tens of thousands of times meanwhile.
    let mut byte = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(1500), device.read(&mut byte)).await;
    assert!(
        waited.is_err(),
        "the server cannot have answered: {waited:?}"
    );

    // Descriptors are free again: the waiting connection is accepted (and
    // soon dropped, it never starts TLS) and devices are served.
    drop(filler);
    let recovered = wait_until("accepting again", DEADLINE, || async {
        log.lines_with("accepting connections again").pop()
    })
    .await
    .map_err(|e| {
        let all = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
        anyhow::anyhow!("{e}; the log:\n{all}")
    })?;
    let failures: u64 = recovered
        .split("failures=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the line counts the failures");
    assert!(
        (2..=20).contains(&failures),
        "{failures} accept attempts in about two seconds: {recovered}"
    );
    let failure_lines = log.lines_with("accept failed");
    assert!(
        failure_lines.len() <= 2,
        "one line per 10 s, not one per attempt: {failure_lines:#?}"
    );

    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start_dry_run();
    sys.wait_for_posture(&agent.device_id).await?;
    let (status, _) = sys.https_get("/healthz").await?;
    assert_eq!(status, 200);
    agent.stop().await?;
    drop(device);
    setrlimit(Resource::Nofile, before)?;
    sys.stop().await
}
