//! External-broker mode against a real Mosquitto: latchkeyd is an MQTT
//! client with its own certificate; Mosquitto verifies device certificates
//! against the Latchkey CA and CRL and confines devices by ACL.

use latchkey_proto::topics;
use latchkey_proto::v1;
use latchkey_tests::{Mosquitto, MqttSetup, System, device_mqtt_client, until_connected};
use prost::Message;
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_is_acknowledged_through_mosquitto() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start(&dir.path().join("data")).await?;
    let sys = System::start_in(dir, MqttSetup::External { url: broker.url() }).await?;
    assert_eq!(sys.running().mqtt_addr, None, "no embedded MQTT listener");

    let token = sys.enrollment_token(&["--uses", "2"]).await?;
    let mut agent = sys.enroll(&token).await?;
    assert_eq!(agent.state.enrollment()?.mqtt_url, broker.url());
    agent.start_dry_run();
    sys.wait_for_posture(&agent.device_id).await?;
    let acked = sys.lock_acknowledged(&agent.device_id).await?;
    assert_eq!(acked["result"], "dry-run");

    agent.stop().await?;

    // Mosquitto's ACL drops a forged acknowledgement on another device's uplink.
    let victim = sys.enroll(&token).await?;
    let victim_unlock = sys
        .ctl_json(&["device", "unlock", &victim.device_id])
        .await?;
    let own_unlock = sys
        .ctl_json(&["device", "unlock", &agent.device_id])
        .await?;
    let ack = |command: &serde_json::Value, result: &str| {
        v1::AgentMessage {
            id: result.into(),
            body: Some(v1::agent_message::Body::Ack(v1::CommandAck {
                command_id: command["command"]["id"].as_str().unwrap().to_owned(),
                success: true,
                result: result.into(),
            })),
        }
        .encode_to_vec()
    };
    let (client, mut eventloop) = device_mqtt_client(&sys, &agent, "forger")?;
    until_connected(&mut eventloop).await?;
    client
        .publish(
            topics::up(&victim.device_id),
            QoS::AtLeastOnce,
            false,
            ack(&victim_unlock, "forged"),
        )
        .await?;
    // Sent after the forged one on the same connection: once it arrives, the
    // forged one would have arrived too had the broker let it through.
    client
        .publish(
            topics::up(&agent.device_id),
            QoS::AtLeastOnce,
            false,
            ack(&own_unlock, "own"),
        )
        .await?;
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let own_id = own_unlock["command"]["id"].as_str().unwrap();
    let own = sys
        .wait_for_command(&agent.device_id, own_id, "acknowledged")
        .await?;
    assert_eq!(own["result"], "own");
    let commands = sys.commands(&victim.device_id).await?;
    assert_ne!(commands[0]["status"], "acknowledged", "{commands:?}");
    pump.abort();

    sys.stop().await?;
    drop(broker);
    Ok(())
}
