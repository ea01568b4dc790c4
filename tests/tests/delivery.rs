//! The command outbox: offline agents, server restarts, redelivery,
//! certificate renewal and wipe.

use latchkey_agent::run::{RunOptions, RunOutcome};
use latchkey_tests::{DEADLINE, System, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_agent_receives_queued_command_on_reconnect() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    // Never started: the agent is offline when the lock is issued.
    let locked = sys.ctl_json(&["device", "lock", &agent.device_id]).await?;
    assert_eq!(
        locked["device"]["state"], "locked",
        "the lock is in force before delivery"
    );
    let id = locked["command"]["id"].as_str().unwrap().to_owned();
    let pending = sys.commands(&agent.device_id).await?;
    assert!(
        ["pending", "sent"].contains(&pending[0]["status"].as_str().unwrap()),
        "{pending:?}"
    );

    agent.start_dry_run();
    let acked = sys
        .wait_for_command(&agent.device_id, &id, "acknowledged")
        .await?;
    assert_eq!(acked["result"], "dry-run");
    agent.stop().await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_before_a_server_restart_are_delivered_after_it() -> anyhow::Result<()> {
    let mut sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    let lock = sys.ctl_json(&["device", "lock", &agent.device_id]).await?;
    let unlock = sys
        .ctl_json(&["device", "unlock", &agent.device_id])
        .await?;

    sys.restart().await?;
    // The restarted server listens on new ports: the agent must be told.
    let mut enrollment = agent.state.enrollment()?;
    enrollment.mqtt_url = sys.running().mqtt_url.clone();
    enrollment.server_url = sys.grpc_url.clone();
    agent.state.save_enrollment(&enrollment)?;

    agent.start_dry_run();
    for command in [&lock, &unlock] {
        let id = command["command"]["id"].as_str().unwrap();
        sys.wait_for_command(&agent.device_id, id, "acknowledged")
            .await?;
    }
    assert_eq!(sys.device(&agent.device_id).await?["state"], "active");
    agent.stop().await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_renews_its_certificate_and_the_old_one_stops_working() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    let first_chain = agent.state.certificate_chain()?;
    let first = latchkey_certs::inspect_pem(&first_chain)?;

    // Renew whenever less than 31 days are left: at once, for a 30-day certificate.
    agent.start(RunOptions {
        dry_run: true,
        renew_before: Some(std::time::Duration::from_secs(31 * 86400)),
        ..RunOptions::default()
    });
    let renewed = wait_until("a renewed certificate", DEADLINE, || async {
        let chain = agent.state.certificate_chain().ok()?;
        let info = latchkey_certs::inspect_pem(&chain).ok()?;
        (info.serial_hex != first.serial_hex).then_some(info)
    })
    .await?;
    assert_eq!(
        renewed.spki_sha256, first.spki_sha256,
        "renewal keeps the device key"
    );
    assert_eq!(renewed.device_id, first.device_id);
    agent.stop().await?;

    // The superseded certificate is refused and listed in the CRL.
    let key = latchkey_agent::keystore::load(&agent.state)?;
    let channel =
        latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, Some((&first_chain, &key)))
            .await?;
    let refused = latchkey_proto::v1::device_service_client::DeviceServiceClient::new(channel)
        .renew(latchkey_proto::v1::RenewRequest {
            csr_der: latchkey_certs::csr_for_key(&key, &agent.device_id)?,
        })
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("superseded"),
        "{}",
        refused.message()
    );
    let crl = std::fs::read_to_string(sys.data_dir().join("crl.pem"))?;
    assert!(latchkey_certs::revoked_serials(&crl)?.contains(&first.serial_hex));

    // The renewed certificate works on MQTT: a lock is acknowledged.
    agent.start_dry_run();
    sys.lock_acknowledged(&agent.device_id).await?;
    agent.stop().await?;

    let audit = sys.ctl(&["audit"]).await?;
    assert!(audit.contains("device.renew"), "{audit}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wipe_removes_the_enrollment_and_revokes_the_device() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let token = sys.enrollment_token(&[]).await?;
    let mut agent = sys.enroll(&token).await?;
    agent.start(RunOptions::default());
    sys.wait_for_posture(&agent.device_id).await?;

    let refused = sys
        .ctl(&["device", "wipe", &agent.device_id])
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("--confirm"), "{refused}");

    let wiped = sys
        .ctl_json(&["device", "wipe", &agent.device_id, "--confirm"])
        .await?;
    assert_eq!(wiped["device"]["state"], "wipe-pending");
    assert_eq!(agent.finished().await?, RunOutcome::Wiped);
    assert!(agent.state.enrollment().is_err(), "enrollment removed");
    assert!(
        !agent.path().join("device.key").exists(),
        "device key removed"
    );

    let device = wait_until("the device to be wiped", DEADLINE, || async {
        let d = sys.device(&agent.device_id).await.ok()?;
        (d["state"] == "wiped").then_some(d)
    })
    .await?;
    assert!(
        device["certificate_expires_at"].is_null(),
        "certificates revoked: {device}"
    );
    let crl = std::fs::read_to_string(sys.data_dir().join("crl.pem"))?;
    assert!(crl.contains("BEGIN X509 CRL"));
    sys.stop().await
}
