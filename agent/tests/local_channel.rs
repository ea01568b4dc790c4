//! The agent's local channel as other local users meet it: a second local
//! account (here `nobody`) runs the real `latchkey-agent open-url` against
//! the running agent's socket and is refused; the agent's own user gets
//! through to the device-auth step; a client that connects and says
//! nothing does not hold up anyone else.
//!
//! Switching to another user needs root, which the test machines run as.

#![cfg(unix)]
// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey_agent::device_auth::{Answerer, Approval};
use latchkey_agent::local;
use latchkey_agent::state::StateDir;
use tokio_util::sync::CancellationToken;

const LINK: &str = "latchkey://device-auth?txn=0123456789abcdef0123456789abcdef";
const NOBODY: u32 = 65534;

/// Starts the local channel in a directory every user can reach, as the
/// system service's runtime directory is, and waits until it listens.
async fn running_channel(dir: &Path) -> (PathBuf, CancellationToken) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = dir.join("agent.sock");
    let state = StateDir::new(dir.join("state"));
    let shutdown = CancellationToken::new();
    let (path, stop) = (socket.clone(), shutdown.clone());
    tokio::spawn(async move {
        local::serve_local(&path, Answerer::new(state, Approval::Ask), stop)
            .await
            .unwrap();
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the channel never listened"
        );
        tokio::task::yield_now().await;
    }
    (socket, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_local_user_is_refused_on_the_agents_socket() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("probe");
    std::fs::write(&probe, "").unwrap();
    assert_eq!(
        std::fs::metadata(&probe).unwrap().uid(),
        0,
        "this test switches to another local user and must run as root"
    );
    let (socket, shutdown) = running_channel(dir.path()).await;

    // Another local account runs the real URL handler with a sign-in link.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey-agent"))
        .args(["--state-dir", "/nonexistent", "open-url", "--socket"])
        .arg(&socket)
        .arg(LINK)
        .uid(NOBODY)
        .gid(NOBODY)
        .env("LATCHKEY_LOG", "off")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("refused: only the user signed in at this device's screen"),
        "{said} {}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The agent's own user (and root) is answered: here the agent is not
    // enrolled, so the answer says so; the link reached the device step.
    let report = local::hand_over(std::slice::from_ref(&socket), LINK)
        .await
        .unwrap()
        .report;
    assert!(!report.confirmed);
    assert_eq!(report.failure, "agent", "{report:?}");
    assert!(report.message.contains("enroll"), "{report:?}");

    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_says_nothing_holds_up_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, shutdown) = running_channel(dir.path()).await;
    // Connected and silent, as a stuck or hostile client would be.
    let _silent: Vec<tokio::net::UnixStream> = {
        let mut silent = Vec::new();
        for _ in 0..3 {
            silent.push(tokio::net::UnixStream::connect(&socket).await.unwrap());
        }
        silent
    };
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        local::hand_over(std::slice::from_ref(&socket), LINK),
    )
    .await
    .expect("answered while others are silent")
    .unwrap()
    .report;
    assert_eq!(report.failure, "agent", "{report:?}");
    // A line that is not a sign-in link is refused with the reason.
    let refused = local::hand_over(
        std::slice::from_ref(&socket),
        "latchkey://device-auth?txn=../../etc/passwd",
    )
    .await;
    assert!(refused.is_err(), "the URL is checked before it is sent");
    shutdown.cancel();
}
