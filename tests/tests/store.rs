//! Core and store with a fixed clock, on the real migrated database (SQLite,
//! or PostgreSQL when LATCHKEY_TEST_DATABASE_URL is set).

use chrono::{Duration, Utc};
use latchkey_tests::System;
use latchkeyd::core::AgentEvent;
use latchkeyd::core::ids::{CommandId, DeviceId};
use latchkeyd::core::model::{CommandStatus, DeviceFacts};

fn facts(n: usize) -> DeviceFacts {
    DeviceFacts {
        hostname: format!("host-{n}"),
        platform: "linux".into(),
        os_version: "12".into(),
        ..DeviceFacts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_three_uses_enrolls_exactly_three_of_ten_racing_devices() -> anyhow::Result<()>
{
    let sys = System::start().await?;
    let secret = sys.enrollment_token(&["--uses", "3"]).await?;
    let core = sys.running().core.clone();
    let now = Utc::now();
    let mut tasks = Vec::new();
    for n in 0..10 {
        let (core, secret) = (core.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let (_, csr) = latchkey_certs::new_key_and_csr("h").unwrap();
            core.enroll(&secret, &csr, facts(n), now).await
        }));
    }
    let mut enrolled = 0;
    for task in tasks {
        match task.await? {
            Ok(_) => enrolled += 1,
            Err(e) => assert!(e.to_string().contains("used up"), "{e}"),
        }
    }
    assert_eq!(enrolled, 3);
    assert_eq!(
        sys.ctl_json(&["device", "list"])
            .await?
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let tokens = sys.ctl_json(&["token", "list"]).await?;
    assert_eq!(tokens[0]["uses_count"], 3);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_count_once_and_posture_ages_with_the_clock() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let secret = sys.enrollment_token(&[]).await?;
    let core = sys.running().core.clone();
    let now = Utc::now();
    let (_, csr) = latchkey_certs::new_key_and_csr("h")?;
    let enrolled = core.enroll(&secret, &csr, facts(0), now).await?;
    let device = core
        .authenticate_broker_device(enrolled.device_id.as_str())
        .await?;

    let locked = sys
        .ctl_json(&["device", "lock", enrolled.device_id.as_str()])
        .await?;
    let command_id = locked["command"]["id"].as_str().unwrap().to_owned();
    for result in ["first", "second"] {
        core.handle_agent_event(
            &device,
            AgentEvent::Ack {
                command_id: command_id.clone(),
                success: true,
                result: result.into(),
            },
            now,
        )
        .await?;
    }
    let command = core
        .store()
        .command(&CommandId::parse(&command_id).unwrap())
        .await?
        .unwrap();
    assert_eq!(command.status, CommandStatus::Acknowledged);
    assert_eq!(
        command.result.as_deref(),
        Some("first"),
        "a repeated ack changes nothing"
    );

    core.handle_agent_event(
        &device,
        AgentEvent::Posture(latchkeyd::core::model::Posture {
            os_version: "12".into(),
            disk_encryption: latchkeyd::core::model::CheckState::Enabled,
            screen_lock: latchkeyd::core::model::CheckState::Enabled,
            firewall: latchkeyd::core::model::CheckState::Unknown,
        }),
        now,
    )
    .await?;
    let id = DeviceId::parse(enrolled.device_id.as_str()).unwrap();
    let fresh = core.compliance_of(&id, now + Duration::hours(23)).await?;
    assert_eq!(fresh.compliance.as_str(), "compliant");
    let stale = core.compliance_of(&id, now + Duration::hours(25)).await?;
    assert_eq!(stale.compliance.failed_checks()[0].check, "posture_age");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_commands_are_redelivered_after_a_minute() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let secret = sys.enrollment_token(&[]).await?;
    let core = sys.running().core.clone();
    let now = Utc::now();
    let (_, csr) = latchkey_certs::new_key_and_csr("h")?;
    let enrolled = core.enroll(&secret, &csr, facts(0), now).await?;
    sys.ctl(&["device", "lock", enrolled.device_id.as_str()])
        .await?;

    let soon = core
        .redeliver(Duration::seconds(60), Utc::now() + Duration::seconds(30))
        .await?;
    assert_eq!(soon, 0, "sent 30 s ago: not yet");
    let later = core
        .redeliver(Duration::seconds(60), Utc::now() + Duration::seconds(61))
        .await?;
    assert_eq!(later, 1);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sign_in_state_and_old_history_are_purged() -> anyhow::Result<()> {
    use latchkeyd::core::sso::{BrowserContext, HISTORY_RETENTION, LoginEvent};
    let sys = System::start().await?;
    sys.ctl(&["user", "add", "aiko@example.com", "--name", "Aiko"])
        .await?;
    let core = sys.running().core.clone();
    let user = core
        .store()
        .user_by_email("aiko@example.com")
        .await?
        .unwrap();
    let now = Utc::now();
    let browser = BrowserContext::new("192.0.2.7".into(), "Test");
    let (old, _) = core
        .start_session(&browser, now - Duration::days(3))
        .await?;
    let (fresh, _) = core.start_session(&browser, now).await?;
    for at in [now - HISTORY_RETENTION - Duration::days(1), now] {
        core.store()
            .insert_login_event(&LoginEvent {
                at,
                user_id: Some(user.id.clone()),
                login: user.email.clone(),
                ip: "192.0.2.7".into(),
                user_agent: "Test".into(),
                client_id: None,
                device_id: None,
                method: "password".into(),
                result: "ok".into(),
                reason: None,
            })
            .await?;
    }
    let deleted = core.purge_sso(now).await?;
    assert_eq!(deleted, 2, "the old session and the old history line");
    assert!(core.store().session(&old.id).await?.is_none());
    assert!(core.store().session(&fresh.id).await?.is_some());
    let history = core.store().login_events(&user.id, 10).await?;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].at.timestamp(), now.timestamp());
    assert_eq!(core.purge_sso(now).await?, 0, "nothing left to purge");
    sys.stop().await
}

/// The one-statement read a device's sign-in answer is decided on sees the
/// same policy as the admin API: the device's own assignment, else its
/// group's; with its certificate, device and the transaction it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_auth_facts_follow_the_policy_in_force() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let secret = sys.enrollment_token(&["--group", "sales"]).await?;
    let core = sys.running().core.clone();
    let now = Utc::now();
    let (_, csr) = latchkey_certs::new_key_and_csr("h")?;
    let enrolled = core.enroll(&secret, &csr, facts(0), now).await?;
    let serial = latchkey_certs::inspect_pem(&enrolled.certificate_chain_pem)?.serial_hex;
    let policy_in_force = || async {
        let facts = core
            .store()
            .device_auth_facts(&serial, "no-such-transaction")
            .await?
            .expect("the certificate is known");
        assert!(facts.txn.is_none() && facts.user.is_none() && facts.app_name.is_none());
        assert_eq!(facts.certificate.device_id, enrolled.device_id);
        let (device, policy) = facts.device.expect("the device exists");
        assert_eq!(device.group.as_deref(), Some("sales"));
        assert!(device.certificate_expires_at.is_some());
        let shown = sys
            .ctl_json(&["device", "show", enrolled.device_id.as_str()])
            .await?;
        let name = policy.map(|p| p.name);
        assert_eq!(shown["policy"].as_str(), name.as_deref(), "{shown}");
        anyhow::Ok(name)
    };
    assert_eq!(policy_in_force().await?, None);

    let file = sys.dir.path().join("p.toml");
    std::fs::write(&file, "[compliance]\n")?;
    let file = file.to_str().unwrap_or_default();
    for name in ["for-sales", "for-this-device"] {
        sys.ctl(&["policy", "set", name, file]).await?;
    }
    sys.ctl(&["policy", "assign", "for-sales", "--group", "sales"])
        .await?;
    assert_eq!(policy_in_force().await?.as_deref(), Some("for-sales"));
    sys.ctl(&[
        "policy",
        "assign",
        "for-this-device",
        "--device",
        enrolled.device_id.as_str(),
    ])
    .await?;
    assert_eq!(policy_in_force().await?.as_deref(), Some("for-this-device"));
    assert!(core.store().device_auth_facts("00", "").await?.is_none());
    sys.stop().await
}
