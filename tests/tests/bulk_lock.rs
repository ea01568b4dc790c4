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
        audit.contains("bulk lock of user \"hanako@example.com\""),
        "{audit}"
    );

    // The same lock again sends nothing twice: the Mac keeps the PIN it
    // was locked with. The human-readable answer ends with what happened.
    let again = sys.ctl(&["device", "lock", "--user", hanako]).await?;
    assert!(again.contains("0 locked, 3 skipped"), "{again}");
    assert!(again.contains("already locked"), "{again}");
    let mac_locks = sys
        .commands(&mac_id)
        .await?
        .into_iter()
        .filter(|c| c["kind"] == "lock")
        .count();
    assert_eq!(mac_locks, 1);
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
            .any(|l| l.contains("audit@example.com") && l.contains("group \"sales\"")),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_careless_or_hostile_admin_sends_changes_nothing_or_nothing_harmful() -> Result<()> {
    let sys = System::start().await?;
    let (phone, phone_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let (_lost, lost_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    sys.ctl(&["device", "lock", &lost_id, "--lost", "--phone", "110"])
        .await?;

    // A character no property list can carry would leave a command the
    // device can never be sent, so it is refused, in a bulk lock and in a
    // single one; a control character is dropped.
    for args in [
        vec![
            "device",
            "lock",
            &phone_id,
            &lost_id,
            "--message",
            "Call IT \u{FFFE}",
        ],
        vec!["device", "lock", &phone_id, "--message", "Call IT \u{FFFF}"],
    ] {
        let refused = sys.ctl(&args).await.expect_err("refused");
        assert!(refused.to_string().contains("U+FFFE"), "{refused}");
    }
    assert_eq!(sys.device(&phone_id).await?["state"], "active");
    let mut pushes = sys.apns.watch();
    sys.ctl(&[
        "device",
        "lock",
        &phone_id,
        &lost_id,
        "--message",
        "Call IT\x07 now",
    ])
    .await?;
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1);
    assert_eq!(
        fetched[0]
            .command
            .get("Message")
            .and_then(plist::Value::as_string),
        Some("Call IT now")
    );

    // A phone in lost mode named alone in a file stays in lost mode (a
    // plain lock of it is refused: unlock, which ends lost mode, first).
    let dir = tempfile::tempdir()?;
    let list = dir.path().join("incident.txt");
    std::fs::write(
        &list,
        format!("# devices named in the incident\n{lost_id}\n"),
    )?;
    let answer = sys
        .ctl_json(&["device", "lock", "--ids-from", &list.to_string_lossy()])
        .await?;
    assert_eq!(locked_ids(&answer), Vec::<String>::new(), "{answer}");
    let single = sys
        .ctl(&["device", "lock", &lost_id])
        .await
        .expect_err("a plain lock of a lost phone is refused");
    assert!(single.to_string().contains("lost mode"), "{single}");
    assert_eq!(sys.device(&lost_id).await?["state"], "lost");

    // More than 10,000 ids: refused, nothing changes.
    let many: Vec<String> = (0..10_001).map(|i| format!("{i:032x}")).collect();
    std::fs::write(&list, many.join("\n"))?;
    let refused = sys
        .ctl(&["device", "lock", "--ids-from", &list.to_string_lossy()])
        .await
        .expect_err("too many ids");
    assert!(refused.to_string().contains("at most 10000"), "{refused}");

    // An auditor naming ids and a group at once is refused as an auditor
    // (and that is audited), not merely as a malformed request; what it
    // named is escaped in the log.
    let auditor = sys
        .ctl_json(&["admin", "add", "audit@example.com", "--role", "auditor"])
        .await?["token"]
        .as_str()
        .context("a token")?
        .to_owned();
    let refused = sys
        .ctl_as(
            &auditor,
            &["device", "lock", "--user", "a\u{202E}moc.elpmaxe@b"],
        )
        .await
        .expect_err("an auditor may not lock");
    assert!(refused.to_string().contains("permission"), "{refused}");
    let audit = sys.ctl(&["audit"]).await?;
    assert!(!audit.contains('\u{202E}'), "{audit}");
    assert!(audit.contains("\\u{202e}"), "{audit}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_whose_stored_push_token_is_bad_costs_only_its_own_push() -> Result<()> {
    use sea_orm::ConnectionTrait;
    let sys = System::start().await?;
    let (bad, bad_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let (good, good_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    sys.database()
        .await?
        .execute_unprepared(&format!(
            "UPDATE apple_enrollments SET push_token = 'not hex' WHERE device_id = '{bad_id}'"
        ))
        .await?;
    let mut pushes = sys.apns.watch();
    let answer = sys.ctl_json(&["device", "lock", &bad_id, &good_id]).await?;
    let mut both = vec![bad_id.clone(), good_id.clone()];
    both.sort();
    assert_eq!(locked_ids(&answer), both, "{answer}");
    woken(&mut pushes, &good).await?;
    assert_eq!(good.check_for_commands().await?.len(), 1);
    // The other is locked all the same, and finds its lock when it next
    // checks in.
    assert_eq!(sys.device(&bad_id).await?["state"], "locked");
    let fetched = bad.check_for_commands().await?;
    assert_eq!(fetched[0].request_type, "DeviceLock");
    sys.stop().await
}
