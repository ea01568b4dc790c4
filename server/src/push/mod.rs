//! Outbound channels to devices. MQTT only for now: the embedded broker
//! (rumqttd's router behind Latchkey's own TLS gateway) or an external broker
//! (Mosquitto, EMQX) that Latchkey joins as a client. Both carry the same
//! topics and protobuf messages; uplink messages from agents arrive on the
//! receiver returned at start.

pub mod embedded;
pub mod external;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use latchkey_proto::topics;
use latchkey_proto::v1;
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::core::ids::DeviceId;
use crate::core::model::{Command, CommandKind};

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

enum Channel {
    Embedded(std::sync::Mutex<rumqttd::local::LinkTx>),
    External(rumqttc::AsyncClient),
}

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
    channel: Arc<Channel>,
    sessions: SessionRegistry,
}

impl Push {
    fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), PushError> {
        match &*self.channel {
            Channel::Embedded(link) => {
                let mut link = link
                    .lock()
                    .map_err(|_| PushError::Broker("link poisoned".into()))?;
                // Never block a runtime thread on the router: a full queue
                // leaves the command in the outbox for redelivery.
                link.try_publish(topic, payload)
                    .map(|_| ())
                    .map_err(|e| PushError::Broker(e.to_string()))
            }
            Channel::External(client) => client
                .try_publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .map_err(|e| PushError::Broker(e.to_string())),
        }
    }

    pub fn send_command(&self, command: &Command) -> Result<(), PushError> {
        let kind = match command.kind {
            CommandKind::Lock => v1::CommandKind::Lock,
            CommandKind::Unlock => v1::CommandKind::Unlock,
            CommandKind::Wipe => v1::CommandKind::Wipe,
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
    pub fn device_auth_request(&self, device: &DeviceId, txn_id: &str) {
        let message = v1::ServerMessage {
            body: Some(v1::server_message::Body::DeviceAuth(
                v1::DeviceAuthRequest {
                    txn_id: txn_id.to_owned(),
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
