//! Locking many devices at once, as the helpdesk does when a bag with a
//! laptop and a phone is stolen, or an incident names a team's devices:
//! every device selected is locked and woken in one call, devices that
//! cannot be locked are skipped with the reason, and a caller who may not
//! lock devices changes nothing.

use anyhow::{Context, Result};
use latchkey_tests::System;
use latchkey_tests::apple::{SimulatedAppleDevice, enrolled_device, woken};

/// The ids of the devices a bulk lock's `--json` answer lists as locked.
fn locked_ids(answer: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["locked"]
        .as_array()
        .map(|locked| {
            locked
                .iter()
                .filter_map(|l| l.pointer("/device/id")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_of_a_user_is_locked_and_woken_in_one_call() -> Result<()> {
    let sys = System::start().await?;
    let hanako = "hanako@example.com";
    sys.ctl(&["user", "add", hanako, "--name", "山田 花子"])
        .await?;
    sys.ctl(&["user", "add", "taro@example.com", "--name", "Taro"])
        .await?;
    let (phone, phone_id) =
        enrolled_device(&sys, SimulatedAppleDevice::iphone, Some(hanako)).await?;
    let (mac, mac_id) = enrolled_device(&sys, SimulatedAppleDevice::mac, Some(hanako)).await?;
    let laptop = sys
        .enroll(&sys.enrollment_token(&["--user", hanako]).await?)
        .await?;
    let (_other, other_id) =
        enrolled_device(&sys, SimulatedAppleDevice::iphone, Some("taro@example.com")).await?;
    let mut pushes = sys.apns.watch();

    let answer = sys
        .ctl_json(&[
            "device",
            "lock",
            "--user",
            hanako,
            "--message",
            "盗難のためロックしました",
            "--phone",
            "03-1234-5678",
        ])
        .await?;
    let mut expected = vec![phone_id.clone(), mac_id.clone(), laptop.device_id.clone()];
    expected.sort();
    assert_eq!(locked_ids(&answer), expected, "{answer}");
    assert_eq!(answer["skipped"], serde_json::json!([]), "{answer}");
    // The Mac's lock carries the PIN the helpdesk reads to its user.
    let mac_lock = answer["locked"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["device"]["id"] == mac_id.as_str()))
        .context("the Mac is listed")?;
    let pin = mac_lock["command"]["pin"].as_str().unwrap_or_default();
    assert!(
        pin.len() == 6 && pin.bytes().all(|b| b.is_ascii_digit()),
        "{mac_lock}"
    );

    // Cut off at once: locked before any device answers; Taro's phone is
    // untouched.
    for id in &expected {
        assert_eq!(sys.device(id).await?["state"], "locked", "{id}");
    }
    assert_eq!(sys.device(&other_id).await?["state"], "active");

    // Both Apple devices were pushed, and fetch their DeviceLock with the
    // message, the phone number and, for the Mac, the PIN.
    for device in [&phone, &mac] {
        woken(&mut pushes, device).await?;
        let fetched = device.check_for_commands().await?;
        assert_eq!(fetched.len(), 1, "{:?}", fetched);
        assert_eq!(fetched[0].request_type, "DeviceLock");
        let text = |key: &str| {
            fetched[0]
                .command
                .get(key)
                .and_then(plist::Value::as_string)
                .map(str::to_owned)
        };
        assert_eq!(text("Message").as_deref(), Some("盗難のためロックしました"));
        assert_eq!(text("PhoneNumber").as_deref(), Some("03-1234-5678"));
    }
    let mac_fetched = mac.received();
    let mac_pin = mac_fetched
        .iter()
        .find(|r| r.request_type == "DeviceLock")
        .and_then(|r| r.command.get("PIN"))
        .and_then(plist::Value::as_string)
        .context("the Mac's DeviceLock carries a PIN")?;
    assert_eq!(mac_pin, pin);
    for id in [&phone_id, &mac_id] {
        let commands = sys.commands(id).await?;
        assert!(
            commands
                .iter()
                .any(|c| c["kind"] == "lock" && c["status"] == "acknowledged"),
            "{commands:?}"
        );
    }

    // Every device's lock is in the audit log, naming the bulk lock.
    let audit = sys.ctl(&["audit"]).await?;
    for id in &expected {
        assert!(
            audit
                .lines()
                .any(|l| l.contains("device.lock") && l.contains(id.as_str())),
            "{id} not audited:\n{audit}"
        );
    }
    assert!(
        audit.contains("bulk lock of user hanako@example.com"),
        "{audit}"
    );

    // The human-readable answer says what happened, in one line at the end.
    let again = sys.ctl(&["device", "lock", "--user", hanako]).await?;
    assert!(again.contains("3 locked, 0 skipped"), "{again}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_locked_is_skipped_with_the_reason_and_the_rest_is_locked() -> Result<()> {
    let sys = System::start().await?;
    let (_lost, lost_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let (_retired, retired_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let (_plain, plain_id) = enrolled_device(&sys, SimulatedAppleDevice::mac, None).await?;
    sys.ctl(&["device", "retire", &retired_id]).await?;
    // Supervision comes with the device's facts; a simulated iPhone is
    // supervised, so it can be put in lost mode.
    sys.ctl(&["device", "lock", &lost_id, "--lost", "--phone", "110"])
        .await?;
    let unknown = "0123456789abcdef0123456789abcdef";

    let answer = sys
        .ctl_json(&[
            "device",
            "lock",
            &lost_id,
            &retired_id,
            &plain_id,
            unknown,
            &plain_id,
        ])
        .await?;
    assert_eq!(locked_ids(&answer), vec![plain_id.clone()], "{answer}");
    let reason = |id: &str| {
        answer["skipped"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == id))
            .map(|s| s["reason"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        reason(&lost_id).as_deref(),
        Some("in lost mode; it stays in lost mode")
    );
    assert_eq!(reason(&retired_id).as_deref(), Some("retired"));
    assert_eq!(reason(unknown).as_deref(), Some("no such device"));
    assert_eq!(sys.device(&lost_id).await?["state"], "lost");
    assert_eq!(sys.device(&retired_id).await?["state"], "retired");
    // Named twice, locked once.
    let locks = sys
        .commands(&plain_id)
        .await?
        .into_iter()
        .filter(|c| c["kind"] == "lock")
        .count();
    assert_eq!(locks, 1);

    // A malformed id refuses the whole request: nothing is locked.
    let (_active, active_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let refused = sys
        .ctl(&["device", "lock", &active_id, "not-a-device-id"])
        .await
        .expect_err("a malformed id is refused");
    assert!(refused.to_string().contains("not-a-device-id"), "{refused}");
    assert_eq!(sys.device(&active_id).await?["state"], "active");

    // Lost mode is for one device at a time; a group with no devices and
    // an unknown user are named in the refusal.
    let lost_many = sys
        .ctl(&["device", "lock", &active_id, &plain_id, "--lost"])
        .await
        .expect_err("lost mode for many is refused");
    assert!(
        lost_many.to_string().contains("one device at a time"),
        "{lost_many}"
    );
    let no_group = sys
        .ctl(&["device", "lock", "--group", "営業部"])
        .await
        .expect_err("an empty group is refused");
    assert!(no_group.to_string().contains("営業部"), "{no_group}");
    let no_user = sys
        .ctl(&["device", "lock", "--user", "nobody@example.com"])
        .await
        .expect_err("an unknown user is refused");
    assert!(
        no_user.to_string().contains("nobody@example.com"),
        "{no_user}"
    );
    assert_eq!(sys.device(&active_id).await?["state"], "active");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_devices_are_locked_and_an_auditor_can_lock_none() -> Result<()> {
    let sys = System::start().await?;
    let token = sys
        .enrollment_token(&["--group", "sales", "--uses", "2"])
        .await?;
    let first = sys.enroll(&token).await?;
    let second = sys.enroll(&token).await?;
    let outside = sys.enroll(&sys.enrollment_token(&[]).await?).await?;
    let auditor = sys
        .ctl_json(&["admin", "add", "audit@example.com", "--role", "auditor"])
        .await?["token"]
        .as_str()
        .context("a token")?
        .to_owned();

    let refused = sys
        .ctl_as(&auditor, &["device", "lock", "--group", "sales"])
        .await
        .expect_err("an auditor may not lock devices");
    assert!(refused.to_string().contains("permission"), "{refused}");
    assert_eq!(sys.device(&first.device_id).await?["state"], "active");
    let audit = sys.ctl(&["audit"]).await?;
    assert!(
        audit
            .lines()
            .any(|l| l.contains("audit@example.com") && l.contains("group sales")),
        "the refusal is audited:\n{audit}"
    );

    let answer = sys
        .ctl_json(&["device", "lock", "--group", "sales"])
        .await?;
    let mut expected = vec![first.device_id.clone(), second.device_id.clone()];
    expected.sort();
    assert_eq!(locked_ids(&answer), expected, "{answer}");
    assert_eq!(sys.device(&outside.device_id).await?["state"], "active");
    sys.stop().await
}
