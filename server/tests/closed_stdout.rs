//! latchkeyd started by a parent that has gone away: its stdout and stderr
//! are pipes nobody reads any more. It must start, serve and stop cleanly
//! all the same (it once panicked with "failed printing to stdout: Broken
//! pipe" on its first line of output).
//!
//! Linux only: the server's ports (it listens on port 0) are read from
//! /proc, since its output cannot be.

#![cfg(target_os = "linux")]
// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(60);

/// The TCP ports process `pid` listens on, from /proc.
fn listening_ports(pid: u32) -> Vec<u16> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let inodes: HashSet<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if *state != "0A" || !inodes.contains(*inode) {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

/// GET /healthz over TLS trusting `ca_pem`; the status line and body.
async fn healthz(port: u16, ca_pem: &str) -> Option<String> {
    let tls = latchkey_certs::tls::client_config(ca_pem, None).ok()?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = rustls_pki_types::ServerName::try_from("localhost").ok()?;
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .ok()?
    .ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    Some(String::from_utf8_lossy(&response).into_owned())
}

async fn serving(pid: u32, data: &Path) -> bool {
    let Ok(ca_pem) = std::fs::read_to_string(data.join("ca.pem")) else {
        return false;
    };
    for port in listening_ports(pid) {
        if let Some(answer) = healthz(port, &ca_pem).await
            && answer.starts_with("HTTP/1.1 200")
            && answer.ends_with("ok\n")
        {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latchkeyd_whose_parent_closed_its_output_serves_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (stdout_reader, stdout_writer) = std::io::pipe().unwrap();
    let (stderr_reader, stderr_writer) = std::io::pipe().unwrap();
    drop(stdout_reader);
    drop(stderr_reader);
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkeyd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen-grpc", "127.0.0.1:0"])
        .args(["--listen-mqtt", "127.0.0.1:0"])
        .args(["--listen-https", "127.0.0.1:0"])
        .args(["--listen-https-device", "127.0.0.1:0"])
        // Plenty of log lines to write into the closed pipe.
        .env("LATCHKEY_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(stdout_writer)
        .stderr(stderr_writer)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = server.id().unwrap();

    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("latchkeyd exited with {status} while its output was closed");
        }
        if serving(pid, &data).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "latchkeyd did not serve /healthz within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // SIGTERM: it says "shutting down" into the closed pipe and exits 0.
    let raw = i32::try_from(pid).unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(raw).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::time::timeout(DEADLINE, server.wait())
        .await
        .expect("latchkeyd stops after SIGTERM")
        .unwrap();
    assert!(
        status.success(),
        "latchkeyd exited with {status} (101 is a panic)"
    );
}
