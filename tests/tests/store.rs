//! Core and store with a fixed clock, on the real migrated database (SQLite,
//! or PostgreSQL when LATCHKEY_TEST_DATABASE_URL is set), without
//! listeners (`CoreFixture`); the one-statement confirmation test still
//! runs on the whole system.

use chrono::{Duration, Utc};
use latchkey_tests::System;
use latchkey_tests::fixture::CoreFixture;
use latchkeyd::core::AgentEvent;
use latchkeyd::core::users::NewUser;
use latchkeyd::domain::command::CommandStatus;
use latchkeyd::domain::device::DeviceFacts;
use latchkeyd::domain::ids::{AuthRequestId, CommandId, DeviceAuthTxnId, DeviceId, SsoSessionId};
use latchkeyd::domain::user::UserKind;

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
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let secret = fixture.enrollment_token(&owner, None, 3).await?;
    let core = fixture.core.clone();
    let now = fixture.now;
    let mut tasks = Vec::new();
    for n in 0..10 {
        let (core, secret) = (core.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let (_, csr) = latchkey_certs::new_key_and_csr("h").unwrap();
            core.enrollment.enroll(&secret, &csr, facts(n), now).await
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
    assert_eq!(core.devices.list_devices(&owner, now).await?.len(), 3);
    let tokens = core.enrollment.list_enrollment_tokens(&owner, now).await?;
    assert_eq!(tokens[0].uses_count, 3);
    fixture.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_count_once_and_posture_ages_with_the_clock() -> anyhow::Result<()> {
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let secret = fixture.enrollment_token(&owner, None, 1).await?;
    let core = fixture.core.clone();
    let now = fixture.now;
    let enrolled = fixture.enroll(&secret, "host-0").await?;
    let device = core
        .devices
        .authenticate_broker_device(enrolled.device_id.as_str())
        .await?;

    let (_, locked) = core
        .devices
        .lock_device(
            &owner,
            enrolled.device_id.as_str(),
            latchkeyd::core::LockRequest::showing(""),
            now,
        )
        .await?;
    let command_id = locked.id.to_string();
    for result in ["first", "second"] {
        core.devices
            .handle_agent_event(
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
    let command = fixture
        .store
        .command(&CommandId::parse(&command_id).unwrap())
        .await?
        .unwrap();
    assert_eq!(command.status, CommandStatus::Acknowledged);
    assert_eq!(
        command.result.as_deref(),
        Some("first"),
        "a repeated ack changes nothing"
    );

    core.devices
        .handle_agent_event(
            &device,
            AgentEvent::Posture(latchkeyd::domain::device::Posture {
                os_version: "12".into(),
                disk_encryption: latchkeyd::domain::device::CheckState::Enabled,
                screen_lock: latchkeyd::domain::device::CheckState::Enabled,
                firewall: latchkeyd::domain::device::CheckState::Unknown,
            }),
            now,
        )
        .await?;
    let id = DeviceId::parse(enrolled.device_id.as_str()).unwrap();
    let fresh = core
        .policies
        .compliance_of(&id, now + Duration::hours(23))
        .await?;
    assert_eq!(fresh.compliance.as_str(), "compliant");
    let stale = core
        .policies
        .compliance_of(&id, now + Duration::hours(25))
        .await?;
    assert_eq!(stale.compliance.failed_checks()[0].check, "posture_age");
    fixture.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_commands_are_redelivered_after_a_minute() -> anyhow::Result<()> {
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let secret = fixture.enrollment_token(&owner, None, 1).await?;
    let core = fixture.core.clone();
    let now = fixture.now;
    let enrolled = fixture.enroll(&secret, "host-0").await?;
    core.devices
        .lock_device(
            &owner,
            enrolled.device_id.as_str(),
            latchkeyd::core::LockRequest::showing(""),
            now,
        )
        .await?;

    let soon = core
        .devices
        .redeliver(Duration::seconds(60), now + Duration::seconds(30))
        .await?;
    assert_eq!(soon, 0, "sent 30 s ago: not yet");
    let later = core
        .devices
        .redeliver(Duration::seconds(60), now + Duration::seconds(61))
        .await?;
    assert_eq!(later, 1);
    // The agent's channel carried it twice: once when queued, once again.
    assert_eq!(fixture.agent.wakes().len(), 2);
    fixture.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sign_in_state_and_old_history_are_purged() -> anyhow::Result<()> {
    use latchkeyd::core::sso::{BrowserContext, HISTORY_RETENTION};
    use latchkeyd::domain::sign_in::LoginEvent;
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let core = fixture.core.clone();
    let now = fixture.now;
    let user = core
        .users
        .add_user(
            &owner,
            NewUser {
                email: "aiko@example.com".into(),
                name: "Aiko".into(),
                groups: Vec::new(),
                kind: UserKind::Employee,
            },
            now,
        )
        .await?;
    let browser = BrowserContext::new("192.0.2.7".into(), "Test");
    // Sessions are written when their browser submits a form.
    let (old, _) = core
        .sign_in
        .start_session(&browser, now - Duration::days(3))
        .await?;
    fixture
        .store
        .insert_session(&old, "old-secret-hash")
        .await?;
    let (fresh, _) = core.sign_in.start_session(&browser, now).await?;
    fixture
        .store
        .insert_session(&fresh, "fresh-secret-hash")
        .await?;
    for at in [now - HISTORY_RETENTION - Duration::days(1), now] {
        fixture
            .store
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
    // Throttling counts: one whose window has passed, one still counting.
    // A failure after a quiet window starts the count again.
    let window = latchkeyd::core::limits::WINDOW;
    let rule = latchkeyd::core::limits::ACCOUNT_RULE;
    let store = &fixture.store;
    let (quiet, counting) = (vec!["a:quiet".to_owned()], vec!["a:counting".to_owned()]);
    assert!(
        store
            .reserve_throttle(&quiet[0], &rule, now - window - Duration::minutes(2))
            .await?
    );
    for at in [
        now - window - Duration::minutes(1),
        now - Duration::minutes(1),
        now,
    ] {
        assert!(store.reserve_throttle(&counting[0], &rule, at).await?);
    }
    let counted = store.login_throttles(&counting).await?;
    assert_eq!(counted[0].failures, 2, "{counted:?}");
    // A request whose time is older than a racing request's count is not
    // taken for locked out below the threshold.
    let raced = "a:raced";
    assert!(store.reserve_throttle(raced, &rule, now).await?);
    assert!(
        store
            .reserve_throttle(raced, &rule, now - Duration::milliseconds(3))
            .await?
    );
    store.clear_login_throttle(raced).await?;
    let deleted = core.sign_in.purge_sso(now).await?;
    assert_eq!(
        deleted, 3,
        "the old session, the old history line and the quiet count"
    );
    assert!(store.login_throttles(&quiet).await?.is_empty());
    assert_eq!(store.login_throttles(&counting).await?, counted);
    assert!(fixture.store.session(&old.id).await?.is_none());
    assert!(fixture.store.session(&fresh.id).await?.is_some());
    let history = fixture.store.login_events(&user.id, 10).await?;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].at.timestamp(), now.timestamp());
    assert_eq!(
        core.sign_in.purge_sso(now).await?,
        0,
        "nothing left to purge"
    );
    fixture.stop().await
}

/// The one-statement read a device's sign-in answer is decided on sees the
/// same policy as the admin API: the device's own assignment, else its
/// group's; with its certificate, device and the transaction it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_auth_facts_follow_the_policy_in_force() -> anyhow::Result<()> {
    let fixture = CoreFixture::start().await?;
    let owner = fixture.owner().await?;
    let secret = fixture.enrollment_token(&owner, Some("sales"), 1).await?;
    let core = fixture.core.clone();
    let now = fixture.now;
    let enrolled = fixture.enroll(&secret, "host-0").await?;
    let serial = latchkey_certs::inspect_pem(&enrolled.certificate_chain_pem)?.serial_hex;
    let no_such_transaction = DeviceAuthTxnId::from_bytes([0; 16]);
    let policy_in_force = || async {
        let facts = fixture
            .store
            .device_auth_facts(&serial, Some(&no_such_transaction))
            .await?
            .expect("the certificate is known");
        assert!(facts.txn.is_none() && facts.user.is_none() && facts.app_name.is_none());
        assert_eq!(facts.certificate.device_id, enrolled.device_id);
        let (device, policy) = facts.device.expect("the device exists");
        assert_eq!(device.group.as_deref(), Some("sales"));
        assert!(device.certificate_expires_at.is_some());
        // What the admin API shows for the device.
        let shown = core
            .devices
            .get_device(&owner, enrolled.device_id.as_str(), now)
            .await?;
        let name = policy.map(|p| p.name);
        assert_eq!(shown.view.policy, name);
        anyhow::Ok(name)
    };
    assert_eq!(policy_in_force().await?, None);

    for name in ["for-sales", "for-this-device"] {
        core.policies
            .set_policy(&owner, name, "[compliance]\n", now)
            .await?;
    }
    core.policies
        .assign_policy(&owner, "for-sales", Some("sales"), None, now)
        .await?;
    assert_eq!(policy_in_force().await?.as_deref(), Some("for-sales"));
    core.policies
        .assign_policy(
            &owner,
            "for-this-device",
            None,
            Some(enrolled.device_id.as_str()),
            now,
        )
        .await?;
    assert_eq!(policy_in_force().await?.as_deref(), Some("for-this-device"));
    assert!(fixture.store.device_auth_facts("00", None).await?.is_none());
    fixture.stop().await
}

/// Inserts `txn`, answers it with `answer` at `at` through the one-statement
/// confirmation, and says whether it was confirmed. A refusal must leave the
/// transaction as it was.
async fn confirms(
    store: &latchkeyd::store::Store,
    txn: &latchkeyd::domain::sign_in::DeviceAuthTxn,
    answer: latchkeyd::store::FitAnswer<'_>,
    at: chrono::DateTime<Utc>,
) -> anyhow::Result<bool> {
    use latchkeyd::domain::sign_in::TxnOutcome;
    store.insert_txn(txn).await?;
    let mode = store.confirm_fit_answer(&answer, at).await?;
    let done = mode.is_some();
    let stored = store
        .txn(&txn.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the transaction is gone"))?;
    if let Some(mode) = mode {
        assert_eq!(mode, txn.mode, "the statement returns the mode");
        assert_eq!(stored.outcome, TxnOutcome::Confirmed);
        assert_eq!(stored.device_id.as_ref(), Some(answer.device_id));
    } else {
        assert_eq!(
            stored.outcome,
            TxnOutcome::Pending,
            "a refusal writes nothing"
        );
        assert!(stored.device_id.is_none() && stored.answered_at.is_none());
    }
    Ok(done)
}

/// A verified answer is confirmed in one statement only while everything
/// the full check would look at still holds; after any change since the
/// posture was judged (the policy in force, the verdict's age, the device,
/// its user, its certificate, the transaction) the statement writes
/// nothing, so the full check decides and names the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fit_answer_confirms_in_one_statement_only_while_nothing_changed() -> anyhow::Result<()> {
    use latchkeyd::domain::app::DevicePolicy;
    use latchkeyd::domain::device::{CheckState, Posture};
    use latchkeyd::domain::ids::ClientId;
    use latchkeyd::domain::sign_in::{DeviceAuthTxn, TxnOutcome};
    use latchkeyd::store::{FitAnswer, ProofHashes};
    use sea_orm::ConnectionTrait;

    let sys = System::start().await?;
    for (email, name) in [("alice@example.com", "Alice"), ("bob@example.com", "Bob")] {
        sys.ctl(&["user", "add", email, "--name", name]).await?;
    }
    let secret = sys
        .enrollment_token(&["--user", "alice@example.com", "--group", "sales"])
        .await?;
    let core = sys.running().core.clone();
    let store = &sys.running().store;
    let db = sys.database().await?;
    let now = Utc::now();
    let (_, csr) = latchkey_certs::new_key_and_csr("h")?;
    let enrolled = core.enrollment.enroll(&secret, &csr, facts(0), now).await?;
    let leaf = latchkey_certs::inspect_pem(&enrolled.certificate_chain_pem)?;
    let spki = hex::encode(leaf.spki_sha256);
    let device_id = enrolled.device_id.clone();
    let device = core
        .devices
        .authenticate_broker_device(device_id.as_str())
        .await?;
    let report = |os: &str| {
        AgentEvent::Posture(Posture {
            os_version: os.into(),
            disk_encryption: CheckState::Enabled,
            screen_lock: CheckState::Enabled,
            firewall: CheckState::Enabled,
        })
    };
    core.devices
        .handle_agent_event(&device, report("12"), now)
        .await?;
    let alice = store
        .user_by_email("alice@example.com")
        .await?
        .expect("alice exists");

    let mut n = 0u128;
    let mut txn = |mode: DevicePolicy, expected: &DeviceId| {
        n += 1;
        let bytes = u128::to_be_bytes(n);
        DeviceAuthTxn {
            id: DeviceAuthTxnId::from_bytes(bytes),
            nonce: format!("nonce-{n}"),
            short_code: "42".into(),
            mode,
            request_id: AuthRequestId::from_bytes(bytes),
            session_id: SsoSessionId::from_bytes(bytes),
            user_id: alice.id.clone(),
            client_id: ClientId::generate(),
            expected_devices: vec![DeviceId::generate(), expected.clone()],
            browser_ip: "192.0.2.10".into(),
            browser_ua: "test".into(),
            created_at: now,
            expires_at: now + Duration::minutes(2),
            device_id: None,
            answered_at: None,
            outcome: TxnOutcome::Pending,
            code_attempts: 0,
            link_opened_at: None,
            delivered: None,
            redeemed_at: None,
        }
    };
    let soon = now + Duration::seconds(1);
    let basis_prefix = latchkeyd::domain::policy::verdict_basis("");
    // The answer to `t` as the device sends it.
    macro_rules! fit {
        ($t:expr) => {
            FitAnswer {
                txn_id: &$t.id,
                nonce: &$t.nonce,
                device_id: &device_id,
                serial_hex: &leaf.serial_hex,
                spki_sha256_hex: &spki,
                required_ip: None,
                basis_prefix: &basis_prefix,
                number: &$t.short_code,
                proof: ProofHashes {
                    link: "link-hash",
                    code: "code-hash",
                },
            }
        };
    }

    // Fit: confirmed once; a second answer to it changes nothing.
    let t = txn(DevicePolicy::Bound, &device_id);
    assert!(confirms(store, &t, fit!(t), soon).await?);
    assert!(store.confirm_fit_answer(&fit!(t), soon).await?.is_none());

    // The transaction: another nonce, past its expiry, another device
    // expected, another browser address where `bound` requires the same.
    let t = txn(DevicePolicy::Bound, &device_id);
    let a = FitAnswer {
        nonce: "another nonce",
        ..fit!(t)
    };
    assert!(!confirms(store, &t, a, soon).await?);
    let t = txn(DevicePolicy::Bound, &device_id);
    assert!(!confirms(store, &t, fit!(t), now + Duration::minutes(3)).await?);
    let t = txn(DevicePolicy::Bound, &DeviceId::generate());
    assert!(!confirms(store, &t, fit!(t), soon).await?);
    for (mode, ip, expected) in [
        (DevicePolicy::Bound, "192.0.2.99", false),
        (DevicePolicy::Bound, "192.0.2.10", true),
        (DevicePolicy::Confirm, "192.0.2.99", true),
    ] {
        let t = txn(mode, &device_id);
        let a = FitAnswer {
            required_ip: Some(ip),
            ..fit!(t)
        };
        assert_eq!(
            confirms(store, &t, a, soon).await?,
            expected,
            "{mode:?} from {ip}"
        );
    }
    // Number matching: a `confirm` answer carries the number typed on the
    // device; any other number (or none) confirms nothing.
    for (typed, expected) in [("41", false), ("", false), ("42", true)] {
        let t = txn(DevicePolicy::Confirm, &device_id);
        let a = FitAnswer {
            number: typed,
            ..fit!(t)
        };
        assert_eq!(
            confirms(store, &t, a, soon).await?,
            expected,
            "typed {typed:?}"
        );
    }

    // The certificate: another serial, another key.
    let t = txn(DevicePolicy::Bound, &device_id);
    let a = FitAnswer {
        serial_hex: "01",
        ..fit!(t)
    };
    assert!(!confirms(store, &t, a, soon).await?);
    let t = txn(DevicePolicy::Bound, &device_id);
    let a = FitAnswer {
        spki_sha256_hex: "00",
        ..fit!(t)
    };
    assert!(!confirms(store, &t, a, soon).await?);

    // The verdict's age: a millisecond before the posture is as old as the
    // default rules allow (24 h), and then. Past that, only the full check
    // (which may still pass within the millisecond) is trusted.
    let day = now + Duration::hours(24);
    for (at, expected) in [(day - Duration::milliseconds(1), true), (day, false)] {
        let mut t = txn(DevicePolicy::Bound, &device_id);
        t.expires_at = day + Duration::hours(1);
        assert_eq!(confirms(store, &t, fit!(t), at).await?, expected, "{at}");
    }

    // The policy in force: a group policy, then the device's own, then an
    // edit of it. None is taken on trust until a posture is judged under
    // it; a posture the policy fails leaves no verdict at all.
    let file = sys.dir.path().join("p.toml");
    let path = file.to_str().unwrap_or_default();
    let mut posture_at = now;
    for (change, policy, document, os, passes) in [
        (
            "group",
            "for-sales",
            "[compliance]\nfirewall = true\n",
            "12",
            true,
        ),
        ("device", "for-this-device", "[compliance]\n", "12", true),
        (
            "edit",
            "for-this-device",
            "[compliance]\nscreen_lock = true\n",
            "12",
            true,
        ),
        (
            "failing",
            "for-this-device",
            "[compliance]\nmin_os_version = { linux = \"13\" }\n",
            "12",
            false,
        ),
        (
            "upgrade",
            "for-this-device",
            "[compliance]\nmin_os_version = { linux = \"13\" }\n",
            "13",
            true,
        ),
    ] {
        std::fs::write(&file, document)?;
        sys.ctl(&["policy", "set", policy, path]).await?;
        match change {
            "group" => {
                sys.ctl(&["policy", "assign", policy, "--group", "sales"])
                    .await?;
            }
            "device" => {
                sys.ctl(&["policy", "assign", policy, "--device", device_id.as_str()])
                    .await?;
            }
            _ => {}
        }
        if change != "upgrade" {
            let t = txn(DevicePolicy::Bound, &device_id);
            assert!(
                !confirms(store, &t, fit!(t), soon).await?,
                "after the {change}"
            );
        }
        posture_at += Duration::milliseconds(10);
        core.devices
            .handle_agent_event(&device, report(os), posture_at)
            .await?;
        let t = txn(DevicePolicy::Bound, &device_id);
        assert_eq!(
            confirms(store, &t, fit!(t), soon).await?,
            passes,
            "a posture judged after the {change}"
        );
    }

    // Another rules revision than the one the verdict was reached under.
    let t = txn(DevicePolicy::Bound, &device_id);
    let a = FitAnswer {
        basis_prefix: "0:",
        ..fit!(t)
    };
    assert!(!confirms(store, &t, a, soon).await?);

    // The device, its binding, its user, its certificate and a posture
    // written without a verdict (as an older release would), each changed
    // and changed back.
    for (change, undo) in [
        (
            "UPDATE devices SET posture_at = posture_at + 1",
            "UPDATE devices SET posture_at = posture_at - 1",
        ),
        (
            "UPDATE devices SET state = 'locked'",
            "UPDATE devices SET state = 'active'",
        ),
        (
            "UPDATE devices SET user_email = 'bob@example.com'",
            "UPDATE devices SET user_email = 'alice@example.com'",
        ),
        (
            "UPDATE users SET status = 'suspended' WHERE email = 'alice@example.com'",
            "UPDATE users SET status = 'active' WHERE email = 'alice@example.com'",
        ),
        (
            "UPDATE device_certificates SET revoked_at = 1",
            "UPDATE device_certificates SET revoked_at = NULL",
        ),
    ] {
        db.execute_unprepared(change).await?;
        let t = txn(DevicePolicy::Bound, &device_id);
        assert!(!confirms(store, &t, fit!(t), soon).await?, "after {change}");
        db.execute_unprepared(undo).await?;
        let t = txn(DevicePolicy::Bound, &device_id);
        assert!(confirms(store, &t, fit!(t), soon).await?, "after {undo}");
    }
    sys.stop().await
}
