//! `latchkey-agent run`: keep an mTLS MQTT session to the server, execute
//! commands and acknowledge them, report posture, apply the policy and renew
//! the device certificate well before it expires.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use latchkey_proto::topics;
use latchkey_proto::v1::{self, agent_message, server_message};
use prost::Message;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::device_auth;
use crate::enroll::{self, EnrollError};
use crate::keystore;
use crate::platform::{actions, posture};
use crate::policy::AppliedPolicy;
use crate::state::{ConnectionStatus, HandledCommand, StateDir, StateError};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Execute nothing; acknowledge every command with result `dry-run`.
    pub dry_run: bool,
    /// Renew when the certificate has less than this left; by default a
    /// third of its lifetime.
    pub renew_before: Option<Duration>,
    /// How `confirm`-mode sign-ins get the number the browser shows.
    pub approval: crate::device_auth::Approval,
    /// Where the local channel for `open-url` listens; by default the
    /// service's runtime directory, else the state directory.
    pub socket: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Stopped,
    /// A wipe command removed the enrollment.
    Wiped,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{0}")]
    Config(String),
}

const DEFAULT_POSTURE_INTERVAL: Duration = Duration::from_secs(15 * 60);
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

enum SessionEnd {
    Shutdown,
    Wiped,
    Renew,
    Failed { refused: bool, detail: String },
}

fn set_status(state: &StateDir, name: &str, detail: &str) {
    let status = ConnectionStatus {
        state: name.to_owned(),
        detail: detail.to_owned(),
        since: Utc::now().timestamp(),
    };
    if let Err(e) = state.save_status(&status) {
        warn!(error = %e, "could not record the connection status");
    }
}

fn message_id() -> String {
    latchkey_certs::random_bytes::<12>().map_or_else(
        |_| Utc::now().timestamp_nanos_opt().unwrap_or(0).to_string(),
        hex::encode,
    )
}

fn encode(body: agent_message::Body) -> Vec<u8> {
    v1::AgentMessage {
        id: message_id(),
        body: Some(body),
    }
    .encode_to_vec()
}

fn check_state(state: posture::CheckState) -> i32 {
    match state {
        posture::CheckState::Enabled => v1::CheckState::Enabled.into(),
        posture::CheckState::Disabled => v1::CheckState::Disabled.into(),
        posture::CheckState::Unknown => v1::CheckState::Unknown.into(),
    }
}

async fn posture_message() -> Vec<u8> {
    let p = tokio::task::spawn_blocking(posture::collect)
        .await
        .unwrap_or_else(|_| posture::Posture {
            os_version: String::new(),
            disk_encryption: posture::CheckState::Unknown,
            screen_lock: posture::CheckState::Unknown,
            firewall: posture::CheckState::Unknown,
        });
    encode(agent_message::Body::Posture(v1::Posture {
        os_version: p.os_version,
        disk_encryption: check_state(p.disk_encryption),
        screen_lock: check_state(p.screen_lock),
        firewall: check_state(p.firewall),
        collected_at: Utc::now().timestamp(),
    }))
}

/// Whether the certificate in the state dir should be renewed now.
fn needs_renewal(state: &StateDir, options: &RunOptions) -> Result<bool, RunError> {
    let chain = state.certificate_chain()?;
    let info = latchkey_certs::inspect_pem(&chain)
        .map_err(|e| RunError::Config(format!("device certificate: {e}")))?;
    let lifetime = (info.not_after - info.not_before)
        .to_std()
        .unwrap_or_default();
    let remaining = (info.not_after - Utc::now()).to_std().unwrap_or_default();
    let threshold = options.renew_before.unwrap_or(lifetime / 3);
    Ok(remaining < threshold)
}

fn mqtt_options(state: &StateDir) -> Result<(MqttOptions, String), RunError> {
    let enrollment = state.enrollment()?;
    let key = keystore::load(state)?;
    let chain = state.certificate_chain()?;
    let ca = state.ca()?.ok_or(StateError::NotEnrolled)?;
    let (host, port) = latchkey_proto::text::parse_mqtts_url(&enrollment.mqtt_url)
        .map_err(|e| RunError::Config(e.to_string()))?;
    let tls = latchkey_certs::tls::client_config(&ca, Some((chain.as_str(), &key)))
        .map_err(|e| RunError::Config(format!("TLS: {e}")))?;
    let mut options = MqttOptions::new(enrollment.device_id.clone(), host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(64 * 1024 + 1024, 64 * 1024 + 1024)
        .set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::clone(&tls))));
    Ok((options, enrollment.device_id))
}

/// Runs until `shutdown` fires or a wipe removes the enrollment.
pub async fn run(
    state: &StateDir,
    options: &RunOptions,
    shutdown: CancellationToken,
) -> Result<RunOutcome, RunError> {
    state.enrollment()?;
    let answerer = device_auth::Answerer::new(state.clone(), options.approval.clone());
    #[cfg(unix)]
    {
        let path = options
            .socket
            .clone()
            .unwrap_or_else(|| crate::local::socket_path(state));
        let (answerer, shutdown) = (answerer.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::local::serve_local(&path, answerer, shutdown).await {
                warn!(error = %e, path = %path.display(), "sign-in links cannot reach this agent");
            }
        });
    }
    let mut backoff = Duration::from_millis(250);
    loop {
        // An expired certificate cannot be renewed (renewal is over mTLS
        // with it) and no server will take it: say so instead of retrying.
        let chain = state.certificate_chain()?;
        if let Ok(info) = latchkey_certs::inspect_pem(&chain)
            && info.not_after <= Utc::now()
        {
            let detail = format!(
                "the device certificate expired at {}; enroll this device again with a new token",
                info.not_after.to_rfc3339()
            );
            set_status(state, "refused", &detail);
            return Err(RunError::Config(detail));
        }
        if needs_renewal(state, options)? {
            match enroll::renew(state).await {
                Ok(_) => info!("device certificate renewed"),
                Err(EnrollError::Refused(reason)) => {
                    warn!(%reason, "certificate renewal refused")
                }
                Err(e) => warn!(error = %e, "certificate renewal failed; will retry"),
            }
        }
        let (mqtt, device_id) = mqtt_options(state)?;
        let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
        // A server restart brings every agent back at once; a generous
        // connect deadline keeps the queue from turning into a retry storm.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_connection_timeout(30).set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let end = session(
            state, options, &answerer, &device_id, &client, eventloop, &shutdown,
        )
        .await;
        match end {
            SessionEnd::Shutdown => {
                set_status(state, "stopped", "");
                return Ok(RunOutcome::Stopped);
            }
            SessionEnd::Wiped => return Ok(RunOutcome::Wiped),
            SessionEnd::Renew => {
                backoff = Duration::from_millis(250);
                continue;
            }
            SessionEnd::Failed { refused, detail } => {
                set_status(
                    state,
                    if refused { "refused" } else { "reconnecting" },
                    &detail,
                );
                warn!(%detail, retry_in = ?backoff, "MQTT session ended");
                tokio::select! {
                    () = shutdown.cancelled() => {
                        set_status(state, "stopped", "");
                        return Ok(RunOutcome::Stopped);
                    }
                    () = tokio::time::sleep(jittered(backoff)) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// `backoff` plus up to half again, so agents that lost the server together
/// do not come back together.
fn jittered(backoff: Duration) -> Duration {
    let random = latchkey_certs::random_bytes::<2>().map_or(0, u16::from_le_bytes);
    backoff + backoff.mul_f64(f64::from(random) / f64::from(u16::MAX) / 2.0)
}

fn failed(error: &ConnectionError) -> SessionEnd {
    let refused = matches!(
        error,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
        )
    );
    SessionEnd::Failed {
        refused,
        detail: if refused {
            "the server refused this device (retired, wiped or revoked)".to_owned()
        } else {
            latchkey_proto::text::error_chain(error)
        },
    }
}

async fn session(
    state: &StateDir,
    options: &RunOptions,
    answerer: &device_auth::Answerer,
    device_id: &str,
    client: &AsyncClient,
    mut eventloop: EventLoop,
    shutdown: &CancellationToken,
) -> SessionEnd {
    let up = topics::up(device_id);
    let cmd = topics::command(device_id);
    let policy = state.policy().ok().flatten();
    let mut posture_every = policy
        .as_ref()
        .map(|p| Duration::from_secs(u64::from(p.posture_interval_seconds.max(30))))
        .unwrap_or(DEFAULT_POSTURE_INTERVAL);
    let mut posture_tick = tokio::time::interval(posture_every);
    posture_tick.reset();
    let mut renewal_tick = tokio::time::interval(RENEWAL_CHECK);
    renewal_tick.reset();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => {
                let _ = client.try_disconnect();
                return SessionEnd::Shutdown;
            }
            _ = posture_tick.tick() => {
                let _ = client.try_publish(&up, QoS::AtLeastOnce, false, posture_message().await);
                continue;
            }
            _ = renewal_tick.tick() => {
                if needs_renewal(state, options).unwrap_or(false) {
                    let _ = client.try_disconnect();
                    return SessionEnd::Renew;
                }
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(device = device_id, "connected");
                set_status(state, "connected", "");
                let policy_version = state.policy().ok().flatten().map_or(0, |p| p.version);
                let hello = encode(agent_message::Body::Hello(v1::Hello {
                    agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                    policy_version,
                }));
                let results = [
                    client.try_subscribe(&cmd, QoS::AtLeastOnce),
                    client.try_publish(&up, QoS::AtLeastOnce, false, hello),
                    client.try_publish(&up, QoS::AtLeastOnce, false, posture_message().await),
                ];
                if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                    return SessionEnd::Failed {
                        refused: false,
                        detail: e.to_string(),
                    };
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) if publish.topic == cmd => {
                let Ok(message) = v1::ServerMessage::decode(publish.payload.as_ref()) else {
                    warn!("malformed message from the server ignored");
                    continue;
                };
                match message.body {
                    Some(server_message::Body::Command(command)) => {
                        let outcome = handle_command(state, options, &command).await;
                        let ack = encode(agent_message::Body::Ack(v1::CommandAck {
                            command_id: command.id.clone(),
                            success: outcome.success,
                            result: outcome.result.clone(),
                        }));
                        if let Err(e) = client.try_publish(&up, QoS::AtLeastOnce, false, ack) {
                            warn!(error = %e, "acknowledgement not queued; the server will resend");
                        }
                        if outcome.wipe {
                            // The files are gone already; the session lives on
                            // in memory just long enough to deliver the answer.
                            flush(&mut eventloop).await;
                            info!("device wiped: key, certificates and enrollment removed");
                            return SessionEnd::Wiped;
                        }
                    }
                    Some(server_message::Body::Policy(update)) => {
                        let applied = AppliedPolicy {
                            name: update.name,
                            version: update.version,
                            posture_interval_seconds: update.posture_interval_seconds.max(30),
                        };
                        if let Err(e) = state.save_policy(&applied) {
                            warn!(error = %e, "could not save the policy");
                        }
                        let every =
                            Duration::from_secs(u64::from(applied.posture_interval_seconds));
                        if every != posture_every {
                            posture_every = every;
                            posture_tick = tokio::time::interval(every);
                            posture_tick.reset();
                        }
                        info!(policy = %applied.name, version = applied.version, "policy applied");
                    }
                    Some(server_message::Body::DeviceAuth(request)) => {
                        let answerer = answerer.clone();
                        tokio::spawn(async move {
                            match answerer.answer(&request.txn_id, true).await {
                                Ok(report) => {
                                    info!(confirmed = report.confirmed, failure = %report.failure, "sign-in answered");
                                }
                                Err(e) => warn!(error = %e, "sign-in not answered"),
                            }
                        });
                    }
                    None => {}
                }
            }
            Ok(_) => {}
            Err(e) => return failed(&e),
        }
    }
}

/// Drives the event loop until the broker acknowledges the next publish
/// that leaves (the wipe's answer), at most five seconds.
async fn flush(eventloop: &mut EventLoop) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut ours = None;
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        match event {
            Event::Outgoing(rumqttc::Outgoing::Publish(pkid)) if ours.is_none() => {
                ours = Some(pkid)
            }
            Event::Incoming(Packet::PubAck(ack)) if Some(ack.pkid) == ours => return,
            _ => {}
        }
    }
}

struct Outcome {
    success: bool,
    result: String,
    wipe: bool,
}

async fn handle_command(state: &StateDir, options: &RunOptions, command: &v1::Command) -> Outcome {
    let mut handled = state.handled_commands().unwrap_or_default();
    if let Some(done) = handled.find(&command.id) {
        // Redelivered: answer again, run nothing twice.
        return Outcome {
            success: done.success,
            result: done.result.clone(),
            wipe: false,
        };
    }
    let kind = v1::CommandKind::try_from(command.kind).unwrap_or(v1::CommandKind::Unspecified);
    let outcome = if options.dry_run {
        Outcome {
            success: true,
            result: "dry-run".to_owned(),
            wipe: false,
        }
    } else {
        match kind {
            v1::CommandKind::Lock => {
                let message = (!command.message.is_empty()).then(|| command.message.clone());
                let result =
                    tokio::task::spawn_blocking(move || actions::lock_screen(message.as_deref()))
                        .await;
                match result {
                    Ok(Ok(done)) => Outcome {
                        success: true,
                        result: done,
                        wipe: false,
                    },
                    Ok(Err(e)) => Outcome {
                        success: false,
                        result: e.to_string(),
                        wipe: false,
                    },
                    Err(e) => Outcome {
                        success: false,
                        result: e.to_string(),
                        wipe: false,
                    },
                }
            }
            v1::CommandKind::Unlock => Outcome {
                success: true,
                result: "unlocked: the device may sign in again".to_owned(),
                wipe: false,
            },
            // A desktop wipe removes what the agent holds and unenrolls;
            // it never erases the disk. Removal comes first, so "wiped" is
            // only ever said of a device that is.
            v1::CommandKind::Wipe => match state
                .remove_enrollment()
                .and_then(|()| keystore::remove(state))
            {
                Ok(()) => {
                    return Outcome {
                        success: true,
                        result: "wiped: agent key, certificates and managed data removed; the disk was not erased".to_owned(),
                        wipe: true,
                    };
                }
                Err(e) => Outcome {
                    success: false,
                    result: format!("wipe failed: {e}"),
                    wipe: false,
                },
            },
            v1::CommandKind::Unspecified => Outcome {
                success: false,
                result: format!("unknown command kind {}", command.kind),
                wipe: false,
            },
            // Commands of a platform's own MDM; the agent has none of them.
            v1::CommandKind::LostMode
            | v1::CommandKind::Inventory
            | v1::CommandKind::SecurityInfo
            | v1::CommandKind::InstallProfile
            | v1::CommandKind::ReleaseSetup
            | v1::CommandKind::EndLostMode
            | v1::CommandKind::Locate
            | v1::CommandKind::Restart
            | v1::CommandKind::ListProfiles
            | v1::CommandKind::RemoveProfile => Outcome {
                success: false,
                result: format!(
                    "the agent does not carry out {} commands",
                    kind.as_str_name()
                ),
                wipe: false,
            },
        }
    };
    handled.push(HandledCommand {
        id: command.id.clone(),
        success: outcome.success,
        result: outcome.result.clone(),
    });
    if let Err(e) = state.save_handled_commands(&handled) {
        warn!(error = %e, "could not record the handled command");
    }
    outcome
}
