//! The agent's side of device-bound login.
//!
//! A sign-in page opens `latchkey://device-auth?txn=…`; the URL handler
//! (`latchkey-agent open-url`) hands it to the running agent over a local
//! socket. The agent fetches the challenge over its mTLS channel, signs
//! `{txn, nonce, device_id, aud, iat}` with the device key and sends the
//! answer back the same way. In `confirm` mode the server asks over MQTT
//! instead, and the agent asks the person at the device first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use latchkey_proto::v1::{self, device_service_client::DeviceServiceClient};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::enroll::{self, EnrollError};
use crate::keystore;
use crate::state::{StateDir, StateError};

/// The `typ` of the statement the agent signs; the server checks it.
pub const STATEMENT_TYP: &str = "latchkey-device-auth+jwt";
/// The socket file the running agent listens on, in the state directory.
pub const SOCKET_FILE: &str = "agent.sock";
/// Longest line accepted on the local socket.
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum DeviceAuthError {
    #[error("not a Latchkey sign-in link: {0}")]
    BadUrl(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Connect(#[from] EnrollError),
    #[error("the server refused: {0}")]
    Refused(String),
    #[error("cannot sign: {0}")]
    Sign(#[from] latchkey_certs::CertError),
    #[error("the sign-in was not confirmed on this device")]
    Declined,
}

/// The transaction id in a `latchkey://device-auth?txn=…` URL.
pub fn txn_from_url(url: &str) -> Result<String, DeviceAuthError> {
    let bad = || DeviceAuthError::BadUrl(url.chars().take(200).collect());
    let rest = url.strip_prefix("latchkey://device-auth").ok_or_else(bad)?;
    let query = rest.strip_prefix('/').unwrap_or(rest);
    let query = query.strip_prefix('?').ok_or_else(bad)?;
    let txn = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "txn")
        .map(|(_, v)| v)
        .ok_or_else(bad)?;
    let canonical = txn.len() == 32 && txn.bytes().all(|b| b.is_ascii_hexdigit());
    if !canonical {
        return Err(bad());
    }
    Ok(txn.to_ascii_lowercase())
}

/// How the agent decides a `confirm`-mode request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approval {
    /// Ask the person at the device (a desktop prompt).
    #[default]
    Ask,
    /// Sign without asking: for tests and kiosks; set explicitly.
    Auto,
}

/// What happened to one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub confirmed: bool,
    /// The failed check, e.g. `device_locked`; empty when confirmed.
    pub failure: String,
    pub message: String,
}

/// Answers device-auth requests with the device key over mTLS, reusing one
/// gRPC channel (reconnecting after a certificate renewal).
#[derive(Clone)]
pub struct Answerer {
    state: StateDir,
    channel: Arc<Mutex<Option<(String, Channel)>>>,
    approval: Approval,
}

impl Answerer {
    pub fn new(state: StateDir, approval: Approval) -> Self {
        Answerer {
            state,
            channel: Arc::new(Mutex::new(None)),
            approval,
        }
    }

    async fn client(&self) -> Result<DeviceServiceClient<Channel>, DeviceAuthError> {
        let chain = self.state.certificate_chain()?;
        let mut cached = self.channel.lock().await;
        if let Some((for_chain, channel)) = cached.as_ref()
            && *for_chain == chain
        {
            return Ok(DeviceServiceClient::new(channel.clone()));
        }
        let enrollment = self.state.enrollment()?;
        let key = keystore::load(&self.state)?;
        let ca = self.state.ca()?.ok_or(StateError::NotEnrolled)?;
        let channel =
            enroll::channel(&enrollment.server_url, &ca, Some((chain.as_str(), &key))).await?;
        *cached = Some((chain, channel.clone()));
        Ok(DeviceServiceClient::new(channel))
    }

    /// Fetches, (in confirm mode) approves, signs and answers `txn_id`.
    pub async fn answer(
        &self,
        txn_id: &str,
        confirm_mode_expected: bool,
    ) -> Result<Report, DeviceAuthError> {
        let mut client = self.client().await?;
        let challenge = client
            .get_device_auth(v1::GetDeviceAuthRequest {
                txn_id: txn_id.to_owned(),
            })
            .await
            .map_err(|s| DeviceAuthError::Refused(s.message().to_owned()))?
            .into_inner();
        if challenge.mode == "confirm" || confirm_mode_expected {
            let approved = match self.approval {
                Approval::Auto => true,
                Approval::Ask => {
                    let (app, user, code) = (
                        challenge.app_name.clone(),
                        challenge.user_email.clone(),
                        challenge.short_code.clone(),
                    );
                    tokio::task::spawn_blocking(move || {
                        crate::platform::prompt::confirm_sign_in(&app, &user, &code)
                    })
                    .await
                    .unwrap_or(false)
                }
            };
            if !approved {
                return Err(DeviceAuthError::Declined);
            }
        }
        let signed = sign_statement(&self.state, &challenge)?;
        let answer = client
            .answer_device_auth(v1::AnswerDeviceAuthRequest { signed })
            .await
            .map_err(|s| DeviceAuthError::Refused(s.message().to_owned()))?
            .into_inner();
        Ok(Report {
            confirmed: answer.confirmed,
            failure: answer.failure,
            message: answer.message,
        })
    }
}

/// The device's answer to `challenge`: `{txn, nonce, device_id, aud, iat}`
/// signed with the device key as a compact JWS.
pub fn sign_statement(
    state: &StateDir,
    challenge: &v1::DeviceAuthChallenge,
) -> Result<String, DeviceAuthError> {
    let enrollment = state.enrollment()?;
    let key = keystore::load(state)?;
    let signing_key = latchkey_certs::jose::SigningKey::from_pkcs8_pem(key.expose())?;
    statement_signed_by(&signing_key, &enrollment.device_id, challenge)
}

/// The answer to `challenge` in the name of `device_id`, signed with `key`.
pub fn statement_signed_by(
    key: &latchkey_certs::jose::SigningKey,
    device_id: &str,
    challenge: &v1::DeviceAuthChallenge,
) -> Result<String, DeviceAuthError> {
    let statement = serde_json::json!({
        "txn": challenge.txn_id,
        "nonce": challenge.nonce,
        "device_id": device_id,
        "aud": challenge.audience,
        "iat": chrono::Utc::now().timestamp(),
    });
    Ok(latchkey_certs::jose::compact_jws(
        key,
        STATEMENT_TYP,
        device_id,
        statement.to_string().as_bytes(),
    )?)
}

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
fn socket_candidates(state: &StateDir) -> Vec<PathBuf> {
    let mut candidates = vec![socket_path(state)];
    let system = Path::new(SYSTEM_SOCKET_DIR).join(SOCKET_FILE);
    if !candidates.contains(&system) {
        candidates.push(system);
    }
    candidates
}

/// Serves `open-url` hand-offs until `shutdown`: one request line (the
/// URL), one answer line (JSON `{"confirmed","failure","message"}`).
#[cfg(unix)]
pub async fn serve_local(
    path: &Path,
    answerer: Answerer,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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
    // Any local user may hand over a sign-in link: the link alone proves
    // nothing, and the server checks the browser that started it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "local socket accept failed");
                    continue;
                }
            },
        };
        let uid = stream.peer_cred().ok().map(|c| c.uid());
        let answerer = answerer.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read).take(MAX_LINE as u64);
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let reply = match txn_from_url(line.trim()) {
                Ok(txn) => {
                    info!(?uid, txn = %txn, "sign-in link handed over");
                    match answerer.answer(&txn, false).await {
                        Ok(report) => report,
                        Err(e) => Report {
                            confirmed: false,
                            failure: "agent".into(),
                            message: e.to_string(),
                        },
                    }
                }
                Err(e) => Report {
                    confirmed: false,
                    failure: "bad_url".into(),
                    message: e.to_string(),
                },
            };
            let json = serde_json::json!({
                "confirmed": reply.confirmed,
                "failure": reply.failure,
                "message": reply.message,
            });
            let _ = write.write_all(format!("{json}\n").as_bytes()).await;
        });
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// `latchkey-agent open-url URL`: hands the link to the running agent and
/// returns its report.
#[cfg(unix)]
pub async fn open_url(state: &StateDir, url: &str) -> Result<Report, DeviceAuthError> {
    txn_from_url(url)?;
    let mut tried = Vec::new();
    let mut connected = None;
    for path in socket_candidates(state) {
        match tokio::net::UnixStream::connect(&path).await {
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
    let mut line = String::new();
    BufReader::new(read)
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .await
        .map_err(|e| DeviceAuthError::Refused(e.to_string()))?;
    let value: serde_json::Value = serde_json::from_str(line.trim())
        .map_err(|_| DeviceAuthError::Refused("the agent gave no answer".into()))?;
    let text = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    Ok(Report {
        confirmed: value.get("confirmed").and_then(serde_json::Value::as_bool) == Some(true),
        failure: text("failure"),
        message: text("message"),
    })
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
    fn only_device_auth_links_with_a_canonical_txn_parse() {
        let txn = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            txn_from_url(&format!("latchkey://device-auth?txn={txn}")).unwrap(),
            txn
        );
        assert_eq!(
            txn_from_url(&format!("latchkey://device-auth/?x=1&txn={txn}")).unwrap(),
            txn
        );
        assert!(
            txn_from_url("https://evil.example/?txn=0123456789abcdef0123456789abcdef").is_err()
        );
        assert!(txn_from_url("latchkey://device-auth?txn=../../etc").is_err());
        assert!(txn_from_url("latchkey://wipe?txn=0123456789abcdef0123456789abcdef").is_err());
    }
}
