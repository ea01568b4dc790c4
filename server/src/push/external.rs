//! External broker mode: latchkeyd is an MQTT client (mTLS, its own client
//! certificate from the Latchkey CA) of a broker such as Mosquitto that
//! verifies device certificates against the Latchkey CA and CRL and confines
//! each device to its topics by ACL. See docs/external-broker.md.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Outgoing, Push, PushError, SessionRegistry, Uplink};
use crate::ca::TlsIdentity;

/// The common name of the server's client certificate; broker ACLs grant it
/// every device topic.
pub const SERVER_CLIENT_NAME: &str = "latchkeyd";

pub fn start(
    url: &str,
    identity: &TlsIdentity,
    ca_pem: &str,
    shutdown: CancellationToken,
) -> Result<(Push, mpsc::Receiver<Uplink>), PushError> {
    let (host, port) =
        latchkey_proto::text::parse_mqtts_url(url).map_err(|e| PushError::Start(e.to_string()))?;
    let tls = latchkey_certs::tls::client_config(
        ca_pem,
        Some((identity.chain_pem.as_str(), &identity.key_pem)),
    )
    .map_err(|e| PushError::Start(e.to_string()))?;
    let client_id = format!(
        "{SERVER_CLIENT_NAME}-{}",
        hex::encode(
            latchkey_certs::random_bytes::<6>().map_err(|e| PushError::Start(e.to_string()))?
        )
    );
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(
            super::embedded::MAX_PAYLOAD + 1024,
            super::embedded::MAX_PAYLOAD + 1024,
        )
        .set_transport(Transport::Tls(TlsConfiguration::Rustls(tls)));
    let (client, mut eventloop) = AsyncClient::new(options, 65_536);
    let (uplink_tx, uplink_rx) = mpsc::channel(16_384);
    let subscriber = client.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(100);
                    info!("connected to the external MQTT broker");
                    if let Err(e) =
                        subscriber.try_subscribe(latchkey_proto::topics::ALL_UP, QoS::AtLeastOnce)
                    {
                        warn!(error = %e, "could not subscribe to device uplinks");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let uplink = Uplink {
                        topic: publish.topic.clone(),
                        payload: publish.payload.clone(),
                    };
                    if uplink_tx.send(uplink).await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "external MQTT broker connection failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        let _ = subscriber.try_disconnect();
    });
    let (queue, mut outgoing) = mpsc::unbounded_channel::<Outgoing>();
    tokio::spawn(async move {
        // AsyncClient::publish waits for room in rumqttc's request queue
        // (try_publish would fail when it is full).
        while let Some(message) = outgoing.recv().await {
            if let Err(e) = client
                .publish(message.topic, QoS::AtLeastOnce, false, message.payload)
                .await
            {
                warn!(error = %e, "external MQTT client stopped; no more pushes");
                break;
            }
        }
    });
    let push = Push {
        queue,
        sessions: SessionRegistry::default(),
    };
    Ok((push, uplink_rx))
}
