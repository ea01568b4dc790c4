//! Device identity on MQTT and gRPC: foreign and expired certificates,
//! retired devices, topic confinement, oversized and malformed packets, and
//! a stalled TLS handshake that must not delay anyone else.

use std::time::Duration;

use latchkey_proto::topics;
use latchkey_proto::v1::{self, device_service_client::DeviceServiceClient};
use latchkey_tests::{
    DEADLINE, System, device_mqtt_client, expired_identity, foreign_identity, mqtt_client_with,
    until_connected, until_disconnected, wait_until,
};
use prost::Message;
use rumqttc::QoS;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_expired_and_missing_certificates_are_refused() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let agent = sys.enroll(&token).await?;

    let (foreign_chain, foreign_key) = foreign_identity()?;
    let (expired_chain, expired_key) = expired_identity(&sys, &agent)?;
    for (what, identity) in [
        ("another CA", Some((foreign_chain.as_str(), &foreign_key))),
        ("expired", Some((expired_chain.as_str(), &expired_key))),
        ("none", None),
    ] {
        let (_client, mut eventloop) = mqtt_client_with(&sys, identity, &agent.device_id)?;
        let ended = until_disconnected(&mut eventloop).await?;
        assert!(!ended.is_empty(), "{what}");
        assert!(
            until_connected(&mut eventloop).await.is_err(),
            "MQTT accepted a certificate that is {what}"
        );
    }
    // gRPC renewal with the same credentials fails too.
    for (chain, key) in [
        (&foreign_chain, &foreign_key),
        (&expired_chain, &expired_key),
    ] {
        let result = async {
            let channel =
                latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, Some((chain, key)))
                    .await?;
            let csr = latchkey_certs::csr_for_key(key, "x")?;
            DeviceServiceClient::new(channel)
                .renew(v1::RenewRequest { csr_der: csr })
                .await
                .map_err(anyhow::Error::from)
        }
        .await;
        assert!(result.is_err(), "renewal accepted a bad certificate");
    }
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_device_is_cut_off_and_refused_everywhere() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start_dry_run();
    sys.wait_for_posture(&agent.device_id).await?;

    let id = latchkeyd::domain::ids::DeviceId::parse(&agent.device_id).unwrap();
    assert!(sys.running().sessions.is_connected(&id));
    let retired = sys
        .ctl_json(&["device", "retire", &agent.device_id])
        .await?;
    assert_eq!(retired["state"], "retired");
    assert!(
        !sys.running().sessions.is_connected(&id),
        "the session is closed as part of retiring"
    );
    wait_until("the agent to be refused", DEADLINE, || async {
        (agent.connection_state() == "refused").then_some(())
    })
    .await?;
    let status = latchkey_agent::status_report(&agent.state, chrono::Utc::now())?;
    assert!(status.contains("refused"), "{status}");
    agent.stop().await?;

    let renewal = latchkey_agent::enroll::renew(&agent.state)
        .await
        .unwrap_err();
    assert!(renewal.to_string().contains("revoked"), "{renewal}");
    let locked = sys
        .ctl(&["device", "lock", &agent.device_id])
        .await
        .unwrap_err();
    assert!(locked.to_string().contains("retired"), "{locked}");
    let audit = sys.ctl(&["audit"]).await?;
    assert!(
        audit.contains("device.retire") && audit.contains("mqtt.connect"),
        "{audit}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_is_confined_to_its_own_topics() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&["--uses", "2"]).await?;
    let mallory = sys.enroll(&token).await?;
    let victim = sys.enroll(&token).await?;
    let lock = sys.ctl_json(&["device", "lock", &victim.device_id]).await?;
    let command_id = lock["command"]["id"].as_str().unwrap().to_owned();

    // Publishing a forged acknowledgement on the victim's uplink.
    let (client, mut eventloop) = device_mqtt_client(&sys, &mallory, &victim.device_id)?;
    until_connected(&mut eventloop).await?;
    let forged = v1::AgentMessage {
        id: "forged".into(),
        body: Some(v1::agent_message::Body::Ack(v1::CommandAck {
            command_id: command_id.clone(),
            success: true,
            result: "forged".into(),
        })),
    };
    client
        .publish(
            topics::up(&victim.device_id),
            QoS::AtLeastOnce,
            false,
            forged.encode_to_vec(),
        )
        .await?;
    until_disconnected(&mut eventloop).await?;

    // Subscribing to the victim's commands, or to everything.
    for filter in [
        topics::command(&victim.device_id),
        "latchkey/v1/#".to_owned(),
    ] {
        let (client, mut eventloop) = device_mqtt_client(&sys, &mallory, "m")?;
        until_connected(&mut eventloop).await?;
        client.subscribe(filter, QoS::AtLeastOnce).await?;
        until_disconnected(&mut eventloop).await?;
    }

    let commands = sys.commands(&victim.device_id).await?;
    assert_ne!(
        commands[0]["status"], "acknowledged",
        "forged ack reached the server"
    );
    let audit = sys.ctl_json(&["audit"]).await?;
    let forbidden = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["action"] == "mqtt.forbidden" && e["actor"] == format!("device:{}", mallory.device_id)
        })
        .count();
    assert_eq!(forbidden, 3, "{audit}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_mqtt_packets_close_only_that_connection() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;

    let (client, mut eventloop) = device_mqtt_client(&sys, &agent, "big")?;
    until_connected(&mut eventloop).await?;
    client
        .publish(
            topics::up(&agent.device_id),
            QoS::AtLeastOnce,
            false,
            vec![0u8; 200 * 1024],
        )
        .await?;
    until_disconnected(&mut eventloop).await?;

    // Garbage after a valid TLS handshake.
    let key = latchkey_agent::keystore::load(&agent.state)?;
    let chain = agent.state.certificate_chain()?;
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, Some((chain.as_str(), &key)))?;
    let addr = sys.running().mqtt_addr.unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    stream.write_all(&[0xff; 64]).await?;
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read(&mut stream, &mut buffer),
    )
    .await?;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "server kept a malformed connection: {read:?}"
    );

    // The same device still works normally.
    agent.start_dry_run();
    sys.lock_acknowledged(&agent.device_id).await?;
    agent.stop().await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_does_not_delay_other_agents() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let addr = sys.running().mqtt_addr.unwrap();
    // One connection that never says a word, one that stops mid-ClientHello.
    let _silent = tokio::net::TcpStream::connect(addr).await?;
    let mut partial = tokio::net::TcpStream::connect(addr).await?;
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await?;

    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start_dry_run();
    let started = tokio::time::Instant::now();
    sys.lock_acknowledged(&agent.device_id).await?;
    // The handshake deadline is 10 s; the agent got through well before it.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    agent.stop().await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_an_expired_certificate_says_to_enroll_again() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    let (expired_chain, _) = expired_identity(&sys, &agent)?;
    agent.state.save_certificate_chain(&expired_chain)?;
    agent.start_dry_run();
    let error = agent.finished().await.unwrap_err().to_string();
    assert!(
        error.contains("expired") && error.contains("enroll this device again"),
        "{error}"
    );
    let status = latchkey_agent::status_report(&agent.state, chrono::Utc::now())?;
    assert!(
        status.contains("EXPIRED") && status.contains("refused"),
        "{status}"
    );
    sys.stop().await
}
