//! The device-facing MQTT listener of the embedded broker (MQTT 3.1.1 over
//! TLS, port 8883 by default).
//!
//! Each connection is handled in its own task: the TLS handshake has a
//! deadline, so a client that never finishes it delays no one. The device
//! certificate must chain to the Latchkey CA (rustls) and map to a device
//! that may connect (store). The CONNECT is rewritten so the broker sees the
//! device id as client id and the gateway's internal credentials; after it,
//! every packet from the device is decoded and checked: it may subscribe only
//! to its own `cmd` and `auth` topics and publish only to its own `up` topic.
//! Anything else, or a malformed or oversized packet, closes the connection.
//! Packets from the broker to the device pass through unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use chrono::Utc;
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Login, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::api::accept::{Acceptor, LOG_EVERY};

use crate::core::Core;
use crate::core::auth::{AuthenticatedDevice, DeviceChannel};
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditOutcome};
use crate::domain::ids::DeviceId;
use crate::push::SessionRegistry;
use crate::push::embedded::{InternalBroker, MAX_PAYLOAD};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest packet: the payload limit plus room for topic and header.
const MAX_PACKET: usize = MAX_PAYLOAD + 1024;

#[derive(Debug, thiserror::Error)]
enum GatewayError {
    #[error("TLS handshake: {0}")]
    Handshake(String),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    #[error("no CONNECT within the deadline")]
    ConnectTimeout,
    #[error("malformed MQTT: {0}")]
    Malformed(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Gateway {
    pub core: Arc<Core>,
    pub tls: Arc<rustls::ServerConfig>,
    pub broker: InternalBroker,
    pub sessions: SessionRegistry,
    /// Most sessions at once (see `descriptors`): past it, a connection is
    /// closed as soon as it is accepted, before it costs a TLS handshake
    /// and two more descriptors.
    pub max_sessions: usize,
}

pub async fn serve(gateway: Gateway, listener: TcpListener, shutdown: CancellationToken) {
    let open = Arc::new(Semaphore::new(
        gateway.max_sessions.min(Semaphore::MAX_PERMITS),
    ));
    let gateway = Arc::new(gateway);
    let mut acceptor = Acceptor::new("MQTT");
    let mut refusals = RefusalLog::default();
    while let Some((stream, peer)) = acceptor.accept(&listener, &shutdown).await {
        let Ok(permit) = open.clone().try_acquire_owned() else {
            drop(stream);
            refusals.refused(gateway.max_sessions);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = gateway.connection(stream, shutdown).await {
                debug!(%peer, error = %e, "MQTT connection closed");
            }
            drop(permit);
        });
    }
}

/// Logs refused sessions at most once per `accept::LOG_EVERY`, with the
/// number refused in between.
#[derive(Debug, Default)]
struct RefusalLog {
    last_logged: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn refused(&mut self, max_sessions: usize) {
        let now = tokio::time::Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            warn!(
                max_sessions,
                refused_not_logged = self.unlogged,
                "MQTT connection refused: the server holds as many sessions as its descriptor limit allows"
            );
            self.last_logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
    }
}

/// Reads one MQTT packet, growing `buffer` from `stream` as needed.
async fn read_packet<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
) -> Result<Option<Packet>, GatewayError> {
    loop {
        match Packet::read(buffer, MAX_PACKET) {
            Ok(packet) => return Ok(Some(packet)),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(GatewayError::Malformed(e.to_string())),
        }
        if stream.read_buf(buffer).await? == 0 {
            return Ok(None);
        }
    }
}

fn encode(packet: &Packet) -> Result<BytesMut, GatewayError> {
    let mut out = BytesMut::new();
    packet
        .write(&mut out, MAX_PACKET)
        .map_err(|e| GatewayError::Malformed(e.to_string()))?;
    Ok(out)
}

impl Gateway {
    async fn connection(
        &self,
        stream: TcpStream,
        shutdown: CancellationToken,
    ) -> Result<(), GatewayError> {
        let acceptor = TlsAcceptor::from(self.tls.clone());
        let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
            .await
            .map_err(|_| GatewayError::HandshakeTimeout)?
            .map_err(|e| GatewayError::Handshake(e.to_string()))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec());
        let now = Utc::now();
        let device = self
            .core
            .enrollment
            .authenticate_device(leaf.as_deref(), DeviceChannel::Mqtt, now)
            .await;

        let mut from_device = BytesMut::with_capacity(4096);
        let first = tokio::time::timeout(CONNECT_TIMEOUT, read_packet(&mut tls, &mut from_device))
            .await
            .map_err(|_| GatewayError::ConnectTimeout)??;
        let Some(Packet::Connect(connect)) = first else {
            return Err(GatewayError::Malformed(
                "the first packet must be CONNECT".into(),
            ));
        };
        let device = match device {
            Ok(device) => device,
            Err(e) => {
                self.audit_refusal(leaf.as_deref(), &e.to_string()).await;
                let refused = encode(&Packet::ConnAck(ConnAck::new(
                    ConnectReturnCode::NotAuthorized,
                    false,
                )))?;
                tls.write_all(&refused).await?;
                tls.shutdown().await?;
                return Err(GatewayError::Forbidden(e.to_string()));
            }
        };

        let id = device.id().to_string();
        let rewritten = Connect {
            protocol: connect.protocol,
            keep_alive: connect.keep_alive,
            client_id: id.clone(),
            clean_session: connect.clean_session,
            // A will could publish anywhere; devices get none.
            last_will: None,
            login: Some(Login::new(id.clone(), self.broker.password.clone())),
        };
        let mut broker = TcpStream::connect(self.broker.addr).await?;
        broker.set_nodelay(true)?;
        broker
            .write_all(&encode(&Packet::Connect(rewritten))?)
            .await?;

        let kick = CancellationToken::new();
        let _session = self.sessions.register(device.id(), kick.clone());
        debug!(device = %id, "device connected over MQTT");
        let result = self
            .pump(&device, tls, broker, from_device, kick, shutdown)
            .await;
        if let Err(GatewayError::Forbidden(reason)) = &result {
            warn!(device = %id, %reason, "device broke the topic rules; disconnected");
            let entry = AuditEntry {
                at: Utc::now(),
                actor: device.actor(),
                action: AuditAction::MqttForbidden,
                target: id.clone(),
                outcome: AuditOutcome::Denied,
                detail: reason.clone(),
            };
            if let Err(e) = self.core.audit.record_device(&device, entry).await {
                warn!(device = %id, error = %e, "the refusal could not be audited");
            }
        }
        result
    }

    async fn audit_refusal(&self, leaf: Option<&[u8]>, reason: &str) {
        // The certificate passed the TLS handshake, so our CA issued it and
        // the device id it names is one we generated.
        let who = leaf
            .and_then(|der| latchkey_certs::inspect_certificate(der).ok())
            .and_then(|info| info.device_id)
            .and_then(|id| DeviceId::parse(&id))
            .map_or(Actor::UnknownDevice, Actor::Device);
        info!(actor = %who, %reason, "MQTT connection refused");
        let entry = AuditEntry {
            at: Utc::now(),
            actor: who,
            action: AuditAction::MqttConnect,
            target: String::new(),
            outcome: AuditOutcome::Denied,
            detail: reason.to_owned(),
        };
        if let Err(e) = self
            .core
            .audit
            .record_unauthenticated(entry, Utc::now())
            .await
        {
            warn!(error = %e, "the refusal could not be audited");
        }
    }

    fn allowed(device: &AuthenticatedDevice, packet: &Packet) -> Result<(), GatewayError> {
        let id = device.id().as_str();
        match packet {
            Packet::Subscribe(subscribe) => {
                let allowed = [
                    latchkey_proto::topics::command(id),
                    latchkey_proto::topics::auth(id),
                ];
                for filter in &subscribe.filters {
                    if !allowed.contains(&filter.path) {
                        return Err(GatewayError::Forbidden(format!(
                            "subscribe to {:?}",
                            filter.path
                        )));
                    }
                }
                Ok(())
            }
            Packet::Publish(publish) => {
                if publish.topic == latchkey_proto::topics::up(id) && !publish.retain {
                    Ok(())
                } else {
                    Err(GatewayError::Forbidden(format!(
                        "publish to {:?}",
                        publish.topic
                    )))
                }
            }
            Packet::Connect(_) => Err(GatewayError::Malformed("second CONNECT".into())),
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => Err(
                GatewayError::Malformed("server packet sent by a client".into()),
            ),
            _ => Ok(()),
        }
    }

    async fn pump(
        &self,
        device: &AuthenticatedDevice,
        tls: tokio_rustls::server::TlsStream<TcpStream>,
        broker: TcpStream,
        mut from_device: BytesMut,
        kick: CancellationToken,
        shutdown: CancellationToken,
    ) -> Result<(), GatewayError> {
        let (mut device_rx, mut device_tx) = tokio::io::split(tls);
        let (mut broker_rx, mut broker_tx) = broker.into_split();
        let upstream = async {
            loop {
                let Some(packet) = read_packet(&mut device_rx, &mut from_device).await? else {
                    return Ok(());
                };
                Self::allowed(device, &packet)?;
                if matches!(packet, Packet::Disconnect) {
                    // Not forwarded: closing the broker connection ends the
                    // session once. rumqttd would count a DISCONNECT and the
                    // close as two disconnections of one connection slot,
                    // and the second could cut off a device that took the
                    // slot in between. Devices have no will to discard.
                    return Ok(());
                }
                broker_tx.write_all(&encode(&packet)?).await?;
            }
        };
        let downstream = async {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let n = broker_rx.read(&mut buffer).await?;
                if n == 0 {
                    debug!(device = %device.id(), "the broker ended the session");
                    return Ok::<(), GatewayError>(());
                }
                let chunk = buffer.get(..n).unwrap_or_default();
                device_tx.write_all(chunk).await?;
                device_tx.flush().await?;
            }
        };
        tokio::select! {
            r = upstream => r,
            r = downstream => r,
            () = kick.cancelled() => Ok(()),
            () = shutdown.cancelled() => Ok(()),
        }
    }
}
