//! The agent's local channel: how `latchkey-agent open-url`, which the
//! browser's URL handler runs in the user's desktop session, reaches the
//! running agent, and what it does with the answer.
//!
//! One connection carries one sign-in link: the client writes the link as
//! a line and reads the agent's report as a JSON line. For a confirmed
//! `bound` answer the report holds the one-time redemption link and code;
//! the client opens the link in the user's default browser, then writes
//! `await` and reads where the proof went. When it did not reach the
//! sign-in (a desktop app's sign-in window, another browser), the client
//! shows the code in a dialog that warns where it may be typed.
//!
//! The report carries secrets, so the agent answers only the user at the
//! device's console or desktop (and its own user and root, who hold the
//! device key anyway); anyone else is refused and logged. Each connection
//! has a read deadline and the number of connections at once is capped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tracing::{info, warn};

use crate::device_auth::{Answerer, Delivery, DeviceAuthError, Report, txn_from_url};
use crate::state::StateDir;

/// The socket file the running agent listens on, in the state directory.
pub const SOCKET_FILE: &str = "agent.sock";
/// Longest line accepted on the local socket.
const MAX_LINE: usize = 4096;
/// How long a client has to send each line.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more are turned away.
const MAX_CONNECTIONS: usize = 8;
/// How many times the client asks where the proof went before showing
/// the code (each ask waits up to about ten seconds on the server).
const DELIVERY_ASKS: usize = 2;

/// Where the system service listens, so that a desktop user's `open-url`
/// can reach the socket while the state directory stays private: systemd
/// creates this directory (`RuntimeDirectory=`, mode 0755); on macOS the
/// agent does, as launchd's `RUNTIME_DIRECTORY` names it.
#[cfg(not(target_os = "macos"))]
pub const SYSTEM_SOCKET_DIR: &str = "/run/latchkey-agent";
#[cfg(target_os = "macos")]
pub const SYSTEM_SOCKET_DIR: &str = crate::platform::service::MACOS_SOCKET_DIR;

/// Where the running agent listens for `open-url`: the runtime directory
/// systemd gave the service, else the state directory.
pub fn socket_path(state: &StateDir) -> PathBuf {
    match std::env::var_os("RUNTIME_DIRECTORY") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(SOCKET_FILE),
        _ => state.file(SOCKET_FILE),
    }
}

/// Where `open-url` looks for the running agent, in order: the socket a
/// per-user or test agent keeps in its state directory, then the system
/// service's.
pub fn socket_candidates(state: &StateDir) -> Vec<PathBuf> {
    let mut candidates = vec![socket_path(state)];
    let system = Path::new(SYSTEM_SOCKET_DIR).join(SOCKET_FILE);
    if !candidates.contains(&system) {
        candidates.push(system);
    }
    candidates
}

/// Whether a local user may hand the agent a sign-in link: the user at the
/// console or desktop, the agent's own user, or root.
pub fn may_hand_over(peer_uid: u32, agent_uid: u32, console_uids: &[u32]) -> bool {
    peer_uid == 0 || peer_uid == agent_uid || console_uids.contains(&peer_uid)
}

/// The session ids `loginctl list-sessions --no-legend` prints.
pub fn session_ids(list_output: &str) -> Vec<String> {
    list_output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|id| id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_owned)
        .collect()
}

/// The user of a session as `loginctl show-session ID -p Uid -p Active -p
/// Remote -p Type` describes it, if it is the active, local, graphical or
/// text-console session of a seat.
pub fn console_uid(show_output: &str) -> Option<u32> {
    let value = |key: &str| {
        show_output.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_owned())
        })
    };
    let active = value("Active").as_deref() == Some("yes");
    let local = value("Remote").as_deref() == Some("no");
    let console = matches!(
        value("Type").as_deref(),
        Some("x11" | "wayland" | "tty" | "mir")
    );
    (active && local && console)
        .then(|| value("Uid")?.parse().ok())
        .flatten()
}

/// The users at this device's console or desktop now.
#[cfg(unix)]
fn console_uids() -> Vec<u32> {
    #[cfg(target_os = "macos")]
    {
        use std::os::unix::fs::MetadataExt;
        // The console's owner is the user logged in at the login window.
        std::fs::metadata("/dev/console")
            .map(|m| vec![m.uid()])
            .unwrap_or_default()
    }
    #[cfg(not(target_os = "macos"))]
    {
        let timeout = Duration::from_secs(2);
        let Some(list) = crate::platform::run_command(
            "loginctl",
            &["list-sessions", "--no-legend", "--no-pager"],
            timeout,
        ) else {
            return Vec::new();
        };
        session_ids(&list)
            .iter()
            .filter_map(|id| {
                crate::platform::run_command(
                    "loginctl",
                    &[
                        "show-session",
                        id,
                        "-p",
                        "Uid",
                        "-p",
                        "Active",
                        "-p",
                        "Remote",
                        "-p",
                        "Type",
                    ],
                    timeout,
                )
            })
            .filter_map(|out| console_uid(&out))
            .collect()
    }
}

/// The agent's answer on the local channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct WireReport {
    confirmed: bool,
    failure: String,
    message: String,
    redeem_url: String,
    code: String,
    app_name: String,
    browser: String,
    browser_ip: String,
    issuer: String,
}

impl From<Report> for WireReport {
    fn from(r: Report) -> Self {
        WireReport {
            confirmed: r.confirmed,
            failure: r.failure,
            message: r.message,
            redeem_url: r.redeem_url,
            code: r.code,
            app_name: r.app_name,
            browser: r.browser,
            browser_ip: r.browser_ip,
            issuer: r.issuer,
        }
    }
}

impl From<WireReport> for Report {
    fn from(r: WireReport) -> Self {
        Report {
            confirmed: r.confirmed,
            failure: r.failure,
            message: r.message,
            redeem_url: r.redeem_url,
            code: r.code,
            app_name: r.app_name,
            browser: r.browser,
            browser_ip: r.browser_ip,
            issuer: r.issuer,
        }
    }
}

fn refusal(failure: &str, message: String) -> WireReport {
    WireReport {
        failure: failure.to_owned(),
        message,
        ..WireReport::default()
    }
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    let mut line = String::new();
    let mut limited = reader.take(MAX_LINE as u64);
    match tokio::time::timeout(READ_DEADLINE, limited.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => Some(line.trim().to_owned()),
        _ => None,
    }
}

/// Serves `open-url` hand-offs until `shutdown`.
#[cfg(unix)]
pub async fn serve_local(
    path: &Path,
    answerer: Answerer,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    use std::sync::Arc;
    // The socket's directory may be one the service manager does not make
    // (macOS empties /var/run at boot); other users must reach into it.
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    // Every local user can connect, so that a refusal is logged; who is
    // answered is decided by the peer's credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    let agent_uid = std::fs::metadata(path).map_or(0, |m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(10);
                    stream
                }
                Err(e) => {
                    warn!(error = %e, "local socket accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!("local socket busy: connection turned away");
            let mut stream = stream;
            let busy = refusal("busy", "the agent is busy; try again".into());
            let _ = write_json(&mut stream, &busy).await;
            continue;
        };
        let answerer = answerer.clone();
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, answerer, agent_uid).await;
        });
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

#[cfg(unix)]
async fn write_json<W: tokio::io::AsyncWrite + Unpin, T: Serialize>(
    write: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let json = serde_json::to_string(value).map_err(std::io::Error::other)?;
    write.write_all(format!("{json}\n").as_bytes()).await
}

#[cfg(unix)]
async fn serve_connection(stream: tokio::net::UnixStream, answerer: Answerer, agent_uid: u32) {
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    let allowed = match uid {
        Some(uid) => {
            let console = tokio::task::spawn_blocking(console_uids)
                .await
                .unwrap_or_default();
            may_hand_over(uid, agent_uid, &console)
        }
        None => false,
    };
    if !allowed {
        warn!(
            ?uid,
            "sign-in link refused: only the user at this device's console may hand one over"
        );
        let refused = refusal(
            "refused",
            "refused: only the user signed in at this device's screen may use the Latchkey agent"
                .into(),
        );
        let _ = write_json(&mut write, &refused).await;
        return;
    }
    let mut reader = BufReader::new(read);
    let Some(line) = read_line(&mut reader).await else {
        return;
    };
    let (reply, txn) = match txn_from_url(&line) {
        Ok(txn) => {
            info!(?uid, txn = %txn, "sign-in link handed over");
            let reply = match answerer.answer(&txn, false).await {
                Ok(report) => WireReport::from(report),
                Err(e) => refusal("agent", e.to_string()),
            };
            (reply, Some(txn))
        }
        Err(e) => (refusal("bad_url", e.to_string()), None),
    };
    let awaits = reply.confirmed && !reply.redeem_url.is_empty();
    if write_json(&mut write, &reply).await.is_err() || !awaits {
        return;
    }
    let Some(txn) = txn else { return };
    for _ in 0..DELIVERY_ASKS {
        match read_line(&mut reader).await.as_deref() {
            Some("await") => {}
            _ => return,
        }
        let delivery = answerer
            .await_delivery(&txn)
            .await
            .unwrap_or(Delivery::Over);
        let answer = serde_json::json!({ "delivery": delivery.as_str() });
        if write_json(&mut write, &answer).await.is_err() {
            return;
        }
    }
}

/// A hand-off in progress: the agent's report, and the connection on
/// which to ask where the proof went.
#[cfg(unix)]
pub struct Handover {
    pub report: Report,
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    write: tokio::net::unix::OwnedWriteHalf,
}

#[cfg(unix)]
impl Handover {
    /// Where the proof of the answer is now (the agent asks the server,
    /// which waits up to about ten seconds for it to move).
    pub async fn await_delivery(&mut self) -> Result<Delivery, DeviceAuthError> {
        let lost = |e: std::io::Error| DeviceAuthError::Refused(e.to_string());
        self.write.write_all(b"await\n").await.map_err(lost)?;
        let mut line = String::new();
        (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await
            .map_err(lost)?;
        let value: serde_json::Value = serde_json::from_str(line.trim())
            .map_err(|_| DeviceAuthError::Refused("the agent gave no answer".into()))?;
        Ok(Delivery::parse(
            value
                .get("delivery")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(""),
        ))
    }
}

/// Hands `url` to the running agent listening at the first of `sockets`
/// that answers, and reads its report.
#[cfg(unix)]
pub async fn hand_over(sockets: &[PathBuf], url: &str) -> Result<Handover, DeviceAuthError> {
    txn_from_url(url)?;
    let mut tried = Vec::new();
    let mut connected = None;
    for path in sockets {
        match tokio::net::UnixStream::connect(path).await {
            Ok(stream) => {
                connected = Some(stream);
                break;
            }
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    let Some(stream) = connected else {
        return Err(DeviceAuthError::Refused(format!(
            "the Latchkey agent is not running ({}); start it and try again",
            tried.join("; ")
        )));
    };
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{}\n", url.trim()).as_bytes())
        .await
        .map_err(|e| DeviceAuthError::Refused(e.to_string()))?;
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    (&mut reader)
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .await
        .map_err(|e| DeviceAuthError::Refused(e.to_string()))?;
    let wire: WireReport = serde_json::from_str(line.trim())
        .map_err(|_| DeviceAuthError::Refused("the agent gave no answer".into()))?;
    Ok(Handover {
        report: wire.into(),
        reader,
        write,
    })
}

/// `latchkey-agent open-url URL`: hands the link to the running agent; for
/// a confirmed `bound` answer, opens the redemption link in the user's
/// browser (`browser` is `$BROWSER`), and shows the code when the link did
/// not reach the sign-in. Returns the agent's report.
#[cfg(unix)]
pub async fn open_url(
    sockets: &[PathBuf],
    url: &str,
    browser: Option<&str>,
) -> Result<Report, DeviceAuthError> {
    let mut handover = hand_over(sockets, url).await?;
    let report = handover.report.clone();
    if !report.confirmed || report.redeem_url.is_empty() {
        return Ok(report);
    }
    let opened = crate::platform::browser::open(&report.redeem_url, browser);
    let mut delivery = Delivery::Waiting;
    if opened {
        for _ in 0..DELIVERY_ASKS {
            delivery = handover.await_delivery().await.unwrap_or(Delivery::Over);
            if delivery != Delivery::Waiting {
                break;
            }
        }
    }
    if matches!(delivery, Delivery::Waiting | Delivery::OtherBrowser) {
        let dialog = crate::platform::prompt::CodeDialog {
            code: report.code.clone(),
            app: report.app_name.clone(),
            browser: report.browser.clone(),
            ip: report.browser_ip.clone(),
            issuer: report.issuer.clone(),
        };
        if !tokio::task::spawn_blocking(move || dialog.show())
            .await
            .unwrap_or(false)
        {
            warn!("the sign-in code could not be shown: no dialog tool is reachable");
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_url_tries_the_state_dir_then_the_system_service() {
        let state = StateDir::new("/home/aiko/.local/share/latchkey");
        let candidates = socket_candidates(&state);
        if std::env::var_os("RUNTIME_DIRECTORY").is_none() {
            assert_eq!(
                candidates.first(),
                Some(&PathBuf::from(
                    "/home/aiko/.local/share/latchkey/agent.sock"
                ))
            );
        }
        assert_eq!(
            candidates.last(),
            Some(&PathBuf::from("/run/latchkey-agent/agent.sock"))
        );
    }

    #[test]
    fn only_the_console_user_the_agent_and_root_may_hand_over_links() {
        let console = [1000];
        assert!(may_hand_over(1000, 0, &console));
        assert!(may_hand_over(0, 0, &console));
        assert!(may_hand_over(501, 501, &[]));
        assert!(!may_hand_over(1001, 0, &console));
        assert!(!may_hand_over(65534, 0, &[]));
    }

    #[test]
    fn the_console_user_is_the_active_local_seat_session() {
        let list = "     2 1000 aiko seat0 tty2\n    c3 1001 ken          \n";
        assert_eq!(session_ids(list), vec!["2", "c3"]);
        let desktop = "Uid=1000\nActive=yes\nRemote=no\nType=wayland\n";
        assert_eq!(console_uid(desktop), Some(1000));
        let ssh = "Uid=1001\nActive=yes\nRemote=yes\nType=tty\n";
        assert_eq!(console_uid(ssh), None);
        let background = "Uid=1002\nActive=no\nRemote=no\nType=x11\n";
        assert_eq!(console_uid(background), None);
        let unspecified = "Uid=1003\nActive=yes\nRemote=no\nType=unspecified\n";
        assert_eq!(console_uid(unspecified), None);
    }
}
