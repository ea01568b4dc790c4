//! Outbound channels to devices, behind one port ([`port::WorkPort`], "this
//! device has work"). The agent's channel is MQTT: the embedded broker
//! (rumqttd's router behind Latchkey's own TLS gateway) or an external broker
//! (Mosquitto, EMQX) that Latchkey joins as a client. Both carry the same
//! topics and protobuf messages; uplink messages from agents arrive on the
//! receiver returned at start.
//!
//! A message to a device is never dropped because a channel is full: it is
//! queued for the channel's publisher, which waits for room. rumqttd's
//! router takes events on a channel of 1,000 shared by every connection,
//! and its non-blocking publish fails under load ("Channel try send
//! error"), which left policies unpushed; the embedded publisher is a
//! thread of its own that may block on that channel. The external client's
//! publisher is a task that awaits room in rumqttc's request queue.

pub mod apns;
pub mod apple;
pub mod embedded;
pub mod external;
pub mod port;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use latchkey_proto::topics;
use latchkey_proto::v1;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::domain::command::{Command, CommandKind};
use crate::domain::device::Channel;
use crate::domain::ids::{DeviceAuthTxnId, DeviceId};
use port::{Handover, PortError, WorkPort};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the MQTT broker is not reachable: {0}")]
    Broker(String),
    #[error("could not start the embedded broker: {0}")]
    Start(String),
}

/// A message an agent published on its uplink topic.
#[derive(Debug, Clone)]
pub struct Uplink {
    pub topic: String,
    pub payload: Bytes,
}

/// A message on its way to the broker.
#[derive(Debug)]
struct Outgoing {
    topic: String,
    payload: Vec<u8>,
}

/// The queue in front of a channel's publisher. Unbounded: what is queued
/// is what admins and sign-ins asked for (commands are also in the
/// outbox), and waiting for the broker must not block the caller.
type Queue = tokio::sync::mpsc::UnboundedSender<Outgoing>;

/// Open device sessions on the embedded gateway, so a retired device can be
/// cut off at once.
/// Open sessions per device id: (session key, the token that ends it).
type Sessions = HashMap<String, Vec<(u64, CancellationToken)>>;

#[derive(Clone, Default)]
pub struct SessionRegistry {
    sessions: Arc<Mutex<Sessions>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// Removes its session from the registry when dropped.
pub struct SessionGuard {
    registry: SessionRegistry,
    device: String,
    key: u64,
}

impl SessionRegistry {
    pub fn register(&self, device: &DeviceId, token: CancellationToken) -> SessionGuard {
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut map) = self.sessions.lock() {
            map.entry(device.to_string())
                .or_default()
                .push((key, token));
        }
        SessionGuard {
            registry: self.clone(),
            device: device.to_string(),
            key,
        }
    }

    pub fn disconnect(&self, device: &DeviceId) {
        if let Ok(mut map) = self.sessions.lock()
            && let Some(sessions) = map.remove(device.as_str())
        {
            for (_, token) in sessions {
                token.cancel();
            }
        }
    }

    pub fn is_connected(&self, device: &DeviceId) -> bool {
        self.sessions
            .lock()
            .is_ok_and(|map| map.get(device.as_str()).is_some_and(|s| !s.is_empty()))
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.sessions.lock()
            && let Some(sessions) = map.get_mut(&self.device)
        {
            sessions.retain(|(key, _)| *key != self.key);
            if sessions.is_empty() {
                map.remove(&self.device);
            }
        }
    }
}

#[derive(Clone)]
pub struct Push {
    queue: Queue,
    sessions: SessionRegistry,
}

/// What a detached [`Push`] was asked to publish, for tests of the core
/// without a broker.
pub struct Published {
    receiver: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
}

impl Published {
    /// The topics published to since the last call, oldest first.
    pub fn topics(&mut self) -> Vec<String> {
        let mut topics = Vec::new();
        while let Ok(message) = self.receiver.try_recv() {
            topics.push(message.topic);
        }
        topics
    }
}

impl Push {
    /// The agent's channel without a broker: what it publishes is kept in
    /// the returned [`Published`], for tests of the core and the store.
    pub fn detached() -> (Push, Published) {
        let (queue, receiver) = tokio::sync::mpsc::unbounded_channel();
        let push = Push {
            queue,
            sessions: SessionRegistry::default(),
        };
        (push, Published { receiver })
    }

    /// Queues a message for the publisher; fails only once the publisher
    /// has stopped (shutdown, or the broker link is gone).
    fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), PushError> {
        self.queue
            .send(Outgoing { topic, payload })
            .map_err(|_| PushError::Broker("the publisher has stopped".into()))
    }

    pub fn send_command(&self, command: &Command) -> Result<(), PushError> {
        let kind = match command.kind {
            CommandKind::Lock => v1::CommandKind::Lock,
            CommandKind::Unlock => v1::CommandKind::Unlock,
            CommandKind::Wipe => v1::CommandKind::Wipe,
            CommandKind::LostMode => v1::CommandKind::LostMode,
            CommandKind::Inventory => v1::CommandKind::Inventory,
            CommandKind::SecurityInfo => v1::CommandKind::SecurityInfo,
            CommandKind::InstallProfile => v1::CommandKind::InstallProfile,
            CommandKind::ReleaseSetup => v1::CommandKind::ReleaseSetup,
            CommandKind::EndLostMode => v1::CommandKind::EndLostMode,
            CommandKind::Locate => v1::CommandKind::Locate,
            CommandKind::Restart => v1::CommandKind::Restart,
            CommandKind::ListProfiles => v1::CommandKind::ListProfiles,
            CommandKind::RemoveProfile => v1::CommandKind::RemoveProfile,
        };
        let message = v1::ServerMessage {
            body: Some(v1::server_message::Body::Command(v1::Command {
                id: command.id.to_string(),
                kind: kind.into(),
                message: command.message.clone(),
            })),
        };
        self.publish(
            topics::command(command.device_id.as_str()),
            message.encode_to_vec(),
        )
    }

    pub fn send_policy(
        &self,
        device: &DeviceId,
        name: &str,
        version: i64,
        posture_interval: Duration,
    ) -> Result<(), PushError> {
        let message = v1::ServerMessage {
            body: Some(v1::server_message::Body::Policy(v1::PolicyUpdate {
                name: name.to_owned(),
                version,
                posture_interval_seconds: u32::try_from(posture_interval.as_secs())
                    .unwrap_or(u32::MAX),
            })),
        };
        self.publish(topics::command(device.as_str()), message.encode_to_vec())
    }

    /// Asks a device to confirm a sign-in (`confirm` mode). A device that is
    /// offline misses it; the sign-in page then times out with "the agent
    /// did not answer".
    pub fn device_auth_request(&self, device: &DeviceId, txn_id: &DeviceAuthTxnId) {
        let message = v1::ServerMessage {
            body: Some(v1::server_message::Body::DeviceAuth(
                v1::DeviceAuthRequest {
                    txn_id: txn_id.to_string(),
                },
            )),
        };
        if let Err(e) = self.publish(topics::command(device.as_str()), message.encode_to_vec()) {
            tracing::warn!(device = %device, error = %e, "device-auth request not sent");
        }
    }

    /// Closes the device's MQTT sessions on the embedded gateway. With an
    /// external broker the CRL and the store's device state refuse it.
    pub fn disconnect_device(&self, device: &DeviceId) {
        self.sessions.disconnect(device);
    }

    pub fn sessions(&self) -> &SessionRegistry {
        &self.sessions
    }
}

/// The agent's channel carries the commands themselves: each is published
/// on the device's command topic and counts as delivered once queued for
/// the publisher (the agent's acknowledgement closes it; an unacknowledged
/// command is published again by the redelivery job).
impl WorkPort for Push {
    fn channel(&self) -> &'static str {
        Channel::AGENT
    }

    fn has_work<'a>(
        &'a self,
        _device: &'a DeviceId,
        commands: &'a [Command],
        _now: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<Handover, PortError>> {
        let mut delivered = Vec::with_capacity(commands.len());
        let mut failure = None;
        for command in commands {
            match self.send_command(command) {
                Ok(()) => delivered.push(command.id.clone()),
                Err(e) => failure = Some(e),
            }
        }
        let result = match failure {
            Some(e) if delivered.is_empty() => Err(PortError::Unavailable {
                channel: Channel::AGENT,
                reason: e.to_string(),
            }),
            _ => Ok(Handover { delivered }),
        };
        Box::pin(std::future::ready(result))
    }
}
