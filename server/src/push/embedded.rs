//! The embedded broker: rumqttd's router and a plain MQTT listener on a
//! loopback port that only Latchkey's TLS gateway (`api::mqtt::gateway`)
//! can log in to, plus the server's own in-process link.
//!
//! rumqttd's TLS listener is not used: it completes each TLS handshake inside
//! its accept loop (one stalled client blocks every other), has no revocation
//! check and takes identity from the subject's O. The gateway terminates TLS
//! per connection with a deadline, authenticates the device against the store
//! and confines it to its own topics before any byte reaches rumqttd.

use std::net::{Ipv4Addr, SocketAddr};

use rumqttd::local::LinkBuilder;
use rumqttd::protocol::v4::V4;
use rumqttd::{
    ConnectionSettings, LinkType, Notification, Router, RouterConfig, Server, ServerSettings,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Outgoing, Push, PushError, SessionRegistry, Uplink};

/// Largest MQTT payload accepted from or sent to a device.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Where the gateway finds the internal listener and how it logs in.
#[derive(Clone)]
pub struct InternalBroker {
    pub addr: SocketAddr,
    pub password: String,
}

impl std::fmt::Debug for InternalBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalBroker")
            .field("addr", &self.addr)
            .field("password", &"[redacted]")
            .finish()
    }
}

fn router_config() -> RouterConfig {
    RouterConfig {
        max_connections: 200_000,
        max_outgoing_packet_count: 200,
        // Per-filter log segments; rumqttd's example (100 MB x 10) would let
        // every device topic hold a gigabyte.
        max_segment_size: 256 * 1024,
        max_segment_count: 4,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    }
}

fn server_settings(addr: SocketAddr, password: String) -> ServerSettings {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PAYLOAD,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let ok = user == client_id && pass == password;
        async move { ok }
    });
    ServerSettings {
        name: "latchkey-internal".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    }
}

/// Logs in to the internal listener as the gateway would: true once it
/// answers with a successful CONNACK, which also proves the port is ours.
async fn probe(addr: SocketAddr, password: &str) -> bool {
    use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let client_id = "latchkeyd-probe";
    let mut connect = Connect::new(client_id);
    connect.login = Some(Login::new(client_id, password));
    let mut out = bytes::BytesMut::new();
    if Packet::Connect(connect).write(&mut out, 1024).is_err()
        || stream.write_all(&out).await.is_err()
    {
        return false;
    }
    let mut buffer = bytes::BytesMut::new();
    loop {
        match Packet::read(&mut buffer, 1024) {
            Ok(Packet::ConnAck(ack)) => {
                // Closing without DISCONNECT: rumqttd handles a DISCONNECT
                // and the following close as two disconnections of the same
                // connection slot, and the second can hit a newer client.
                return ack.code == ConnectReturnCode::Success;
            }
            Ok(_) => return false,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(_) => return false,
        }
        match stream.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

/// Starts the router, the internal listener and the server's link.
pub async fn start(
    shutdown: CancellationToken,
) -> Result<(Push, mpsc::Receiver<Uplink>, InternalBroker), PushError> {
    let password = hex::encode(
        latchkey_certs::random_bytes::<32>().map_err(|e| PushError::Start(e.to_string()))?,
    );
    let router_tx = Router::new(0, router_config()).spawn();

    // The server's own link is registered first: the router reuses the
    // connection slot of a closed connection, and a late disconnect of the
    // readiness probe must not land on the link.
    let link_router = router_tx.clone();
    let (mut link_tx, mut link_rx) = tokio::task::spawn_blocking(move || {
        LinkBuilder::new("latchkeyd", link_router)
            .dynamic_filters(true)
            .build()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| PushError::Start(e.to_string()))?
    .map(|(tx, rx, _ack)| (tx, rx))
    .map_err(PushError::Start)?;
    link_tx
        .subscribe(latchkey_proto::topics::ALL_UP)
        .map_err(|e| PushError::Start(e.to_string()))?;

    // rumqttd binds its listener itself and cannot report a port chosen by
    // the kernel, so reserve a free loopback port and hand it over; a lost
    // race shows as an early exit and is retried.
    let mut internal = None;
    for _ in 0..5 {
        let addr = {
            let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| PushError::Start(e.to_string()))?;
            probe
                .local_addr()
                .map_err(|e| PushError::Start(e.to_string()))?
        };
        let mut server = Server::new(
            server_settings(addr, password.clone()),
            router_tx.clone(),
            V4,
        );
        let task = tokio::spawn(async move { server.start(LinkType::Remote).await });
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if task.is_finished() {
                break;
            }
            if probe(addr, &password).await {
                internal = Some((addr, task));
                break;
            }
            if tokio::time::Instant::now() > deadline {
                task.abort();
                break;
            }
            tokio::task::yield_now().await;
        }
        if internal.is_some() {
            break;
        }
    }
    let Some((addr, listener_task)) = internal else {
        return Err(PushError::Start(
            "the internal MQTT listener did not start".into(),
        ));
    };
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        listener_task.abort();
    });

    let (uplink_tx, uplink_rx) = mpsc::channel(16_384);
    tokio::spawn(async move {
        loop {
            let notification = tokio::select! {
                () = shutdown.cancelled() => break,
                n = link_rx.next() => n,
            };
            match notification {
                Ok(Some(Notification::Forward(forward))) => {
                    let Ok(topic) = std::str::from_utf8(&forward.publish.topic) else {
                        continue;
                    };
                    let uplink = Uplink {
                        topic: topic.to_owned(),
                        payload: forward.publish.payload.clone(),
                    };
                    if uplink_tx.send(uplink).await.is_err() {
                        break;
                    }
                }
                Ok(Some(other)) => debug!(?other, "broker notification"),
                Ok(None) => {}
                Err(e) => {
                    warn!(error = %e, "embedded broker link closed");
                    break;
                }
            }
        }
    });

    let (queue, mut outgoing) = mpsc::unbounded_channel::<Outgoing>();
    std::thread::Builder::new()
        .name("latchkey-push".into())
        .spawn(move || {
            // LinkTx::publish waits while the router's event channel is
            // full; this thread exists to do that waiting. It ends when the
            // last Push is dropped.
            while let Some(message) = outgoing.blocking_recv() {
                if let Err(e) = link_tx.publish(message.topic, message.payload) {
                    warn!(error = %e, "embedded broker link closed; no more pushes");
                    break;
                }
            }
        })
        .map_err(|e| PushError::Start(e.to_string()))?;
    let push = Push {
        queue,
        sessions: SessionRegistry::default(),
    };
    Ok((push, uplink_rx, InternalBroker { addr, password }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    use super::*;
    use crate::domain::ids::DeviceId;

    /// Far more pushes at once than rumqttd's router channel holds (1,000
    /// events, shared by every connection).
    const PUSHES: usize = 10_000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_policy_pushes_larger_than_the_router_channel_all_arrive() {
        let shutdown = CancellationToken::new();
        let (push, _uplinks, internal) = start(shutdown.clone()).await.unwrap();

        let mut options = MqttOptions::new("observer", "127.0.0.1", internal.addr.port());
        options
            .set_credentials("observer", internal.password.clone())
            .set_max_packet_size(MAX_PAYLOAD + 1024, MAX_PAYLOAD + 1024);
        let (observer, mut events) = AsyncClient::new(options, 64);
        observer
            .subscribe("latchkey/v1/d/+/cmd", QoS::AtMostOnce)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, events.poll()).await;
            if let Ok(Ok(Event::Incoming(Packet::SubAck(_)))) = event {
                break;
            }
            assert!(matches!(event, Ok(Ok(_))), "subscribing: {event:?}");
        }

        let devices: Vec<DeviceId> = (0..PUSHES).map(|_| DeviceId::generate()).collect();
        let refused = devices
            .iter()
            .filter(|device| {
                push.send_policy(device, "baseline", 1, Duration::from_secs(60))
                    .is_err()
            })
            .count();
        assert_eq!(refused, 0, "pushes refused while the router was busy");

        let mut received = 0;
        while received < PUSHES {
            match tokio::time::timeout_at(deadline, events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => received += 1,
                Ok(Ok(_)) => {}
                other => panic!("after {received} of {PUSHES} pushes: {other:?}"),
            }
        }
        shutdown.cancel();
    }
}
