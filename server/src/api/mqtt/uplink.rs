//! Agent messages: decode `AgentMessage` protobufs from uplink topics and
//! hand them to the core as the device the topic names (the broker has
//! verified the certificate and confined the device to its own topics).

use std::sync::Arc;

use chrono::Utc;
use latchkey_proto::v1::{self, agent_message::Body};
use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::core::{AgentEvent, Core};
use crate::domain::device::{CheckState, Posture};
use crate::push::Uplink;
use crate::push::embedded::MAX_PAYLOAD;

fn check(state: i32) -> CheckState {
    match v1::CheckState::try_from(state) {
        Ok(v1::CheckState::Enabled) => CheckState::Enabled,
        Ok(v1::CheckState::Disabled) => CheckState::Disabled,
        _ => CheckState::Unknown,
    }
}

/// Decodes an uplink payload into a core event; `None` for anything malformed.
pub fn decode(payload: &[u8]) -> Option<AgentEvent> {
    if payload.len() > MAX_PAYLOAD {
        return None;
    }
    let message = v1::AgentMessage::decode(payload).ok()?;
    Some(match message.body? {
        Body::Hello(h) => AgentEvent::Hello {
            policy_version: h.policy_version,
        },
        Body::Ack(a) => AgentEvent::Ack {
            command_id: a.command_id,
            success: a.success,
            result: a.result,
        },
        Body::Posture(p) => AgentEvent::Posture(Posture {
            os_version: crate::core::printable(&p.os_version, 64),
            disk_encryption: check(p.disk_encryption),
            screen_lock: check(p.screen_lock),
            firewall: check(p.firewall),
        }),
    })
}

async fn handle(core: &Core, uplink: Uplink) {
    let Some(device_id) = latchkey_proto::topics::device_of_up(&uplink.topic) else {
        return;
    };
    let Some(event) = decode(&uplink.payload) else {
        warn!(device = device_id, "malformed agent message dropped");
        return;
    };
    let device = match core.devices.authenticate_broker_device(device_id).await {
        Ok(device) => device,
        Err(e) => {
            debug!(device = device_id, error = %e, "message from a refused device dropped");
            return;
        }
    };
    if let Err(e) = core
        .devices
        .handle_agent_event(&device, event, Utc::now())
        .await
    {
        warn!(device = device_id, error = %e, "agent message not handled");
    }
}

/// Handles uplink messages, up to 64 at a time.
pub async fn run(
    core: Arc<Core>,
    mut uplinks: mpsc::Receiver<Uplink>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(64));
    loop {
        let uplink = tokio::select! {
            () = shutdown.cancelled() => break,
            u = uplinks.recv() => match u { Some(u) => u, None => break },
        };
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let core = core.clone();
        tokio::spawn(async move {
            handle(&core, uplink).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_and_empty_messages_decode_to_nothing() {
        assert!(decode(b"\xff\xff\xff").is_none());
        assert!(decode(&v1::AgentMessage::default().encode_to_vec()).is_none());
        assert!(decode(&vec![0u8; MAX_PAYLOAD + 1]).is_none());
        let ack = v1::AgentMessage {
            id: "1".into(),
            body: Some(Body::Ack(v1::CommandAck {
                command_id: "c".into(),
                success: true,
                result: "ok".into(),
            })),
        };
        assert!(matches!(
            decode(&ack.encode_to_vec()),
            Some(AgentEvent::Ack { success: true, .. })
        ));
    }
}
