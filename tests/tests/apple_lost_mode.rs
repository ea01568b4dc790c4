//! The helpdesk and a lost or departing Apple device: lost mode on a supervised iPhone
//! and back, a Mac's lock with the PIN the helpdesk reads to its user, and
//! lost mode refused where Apple has none; an erase, with a Mac's PIN;
//! where a lost device is; a restart and the installed profiles.

use latchkey_tests::System;
use latchkey_tests::apple::{SimulatedAppleDevice, enrolled_device, woken};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_iphone_goes_into_lost_mode_and_back() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(
        &sys,
        SimulatedAppleDevice::iphone,
        Some("hanako@example.com"),
    )
    .await?;
    let mut pushes = sys.apns.watch();

    let lost = sys
        .ctl_json(&[
            "device",
            "lock",
            &id,
            "--lost",
            "--message",
            "拾った方はご連絡ください",
            "--phone",
            "03-1234-5678",
            "--footnote",
            "Latchkey IT",
        ])
        .await?;
    assert_eq!(lost["device"]["state"], "lost", "{lost}");
    assert_eq!(lost["command"]["kind"], "lost-mode");
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].request_type, "EnableLostMode");
    let text = |key: &str| {
        fetched[0]
            .command
            .get(key)
            .and_then(plist::Value::as_string)
            .map(str::to_owned)
    };
    assert_eq!(text("Message").as_deref(), Some("拾った方はご連絡ください"));
    assert_eq!(text("PhoneNumber").as_deref(), Some("03-1234-5678"));
    assert_eq!(text("Footnote").as_deref(), Some("Latchkey IT"));

    let back = sys.ctl_json(&["device", "unlock", &id]).await?;
    assert_eq!(back["device"]["state"], "active", "{back}");
    assert_eq!(back["command"]["kind"], "end-lost-mode");
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].request_type, "DisableLostMode");
    let commands = sys.commands(&id).await?;
    for kind in ["lost-mode", "end-lost-mode"] {
        let c = commands.iter().find(|c| c["kind"] == kind).expect("listed");
        assert_eq!(c["status"], "acknowledged", "{c}");
    }
    let audit = sys.ctl(&["audit"]).await?;
    assert!(audit.contains("device.lost-mode"), "{audit}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_macs_lock_carries_a_pin_the_helpdesk_can_read() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (mac, id) = enrolled_device(&sys, SimulatedAppleDevice::mac, None).await?;
    let helpdesk = sys
        .ctl_json(&["admin", "add", "desk@example.com", "--role", "helpdesk"])
        .await?["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let auditor = sys
        .ctl_json(&["admin", "add", "audit@example.com", "--role", "auditor"])
        .await?["token"]
        .as_str()
        .expect("a token")
        .to_owned();

    // Lost mode is an iPhone and iPad feature.
    let refused = sys
        .ctl_as(
            &helpdesk,
            &["device", "lock", &id, "--lost", "--message", "x"],
        )
        .await
        .expect_err("no lost mode on a Mac");
    assert!(
        refused.to_string().contains("supervised iPhone or iPad"),
        "{refused}"
    );

    let locked = sys
        .ctl_as(&helpdesk, &["device", "lock", &id, "--message", "Call IT"])
        .await?;
    let pin = locked
        .lines()
        .find_map(|l| l.strip_prefix("PIN to unlock this Mac: "))
        .expect("the PIN is shown")
        .to_owned();
    assert_eq!(pin.len(), 6);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()));
    let fetched = mac.check_for_commands().await?;
    assert_eq!(fetched[0].request_type, "DeviceLock");
    assert_eq!(
        fetched[0]
            .command
            .get("PIN")
            .and_then(plist::Value::as_string),
        Some(pin.as_str())
    );
    // The PIN is not in the audit log, and an auditor does not see it.
    let audit = sys.ctl(&["audit"]).await?;
    assert!(!audit.contains(&pin), "{audit}");
    let listed = sys
        .ctl_as(&auditor, &["--json", "command", "list", &id])
        .await?;
    assert!(!listed.contains(&pin), "{listed}");
    // The helpdesk can read it again from `device show` when the user
    // calls; the auditor cannot.
    let shown = sys.ctl_as(&helpdesk, &["device", "show", &id]).await?;
    let pin_line = shown
        .lines()
        .find(|l| l.starts_with("unlock PIN"))
        .unwrap_or_else(|| panic!("no PIN line in {shown}"));
    assert!(pin_line.contains(&pin), "{shown}");
    let shown = sys.ctl_as(&auditor, &["device", "show", &id]).await?;
    assert!(!shown.contains(&pin), "{shown}");
    assert!(!shown.contains("unlock PIN"), "{shown}");
    // Who read the PIN is on record (without the PIN); the auditor, who
    // was not shown it, is not.
    let audit = sys.ctl_json(&["audit"]).await?;
    let reads: Vec<&str> = audit
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "device-pin.read")
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert_eq!(reads, ["admin:desk@example.com"], "{audit}");
    assert!(!audit.to_string().contains(&pin));
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_mode_waits_until_the_iphone_says_it_is_supervised() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    latchkey_tests::apple::import_push_certificate(&sys, dir.path()).await?;
    let profile = latchkey_tests::apple::EnrollmentProfile::read(
        sys.ctl(&["apple", "profile"]).await?.as_bytes(),
    )?;
    let mut phone = SimulatedAppleDevice::iphone(profile, sys.running().https_addr, &sys.ca_pem);
    phone.enroll().await?;
    // Enrolled, but its inventory has not come back yet.
    let id = latchkey_tests::apple::device_with_serial(&sys, &phone.serial).await?["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let refused = sys
        .ctl(&["device", "lock", &id, "--lost", "--phone", "110"])
        .await
        .expect_err("not known to be supervised");
    assert!(
        refused
            .to_string()
            .contains("not known to be supervised yet"),
        "{refused}"
    );
    phone.check_for_commands().await?;
    sys.ctl(&["device", "lock", &id, "--lost", "--phone", "110"])
        .await?;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_iphone_is_wiped_and_no_longer_recognized() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let mut pushes = sys.apns.watch();
    let wiping = sys.ctl_json(&["device", "wipe", &id, "--confirm"]).await?;
    assert_eq!(wiping["device"]["state"], "wipe-pending", "{wiping}");
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].request_type, "EraseDevice");
    // An iPhone's erase has no PIN.
    assert!(fetched[0].command.get("PIN").is_none());
    assert_eq!(sys.device(&id).await?["state"], "wiped");
    // Whatever is left of it hears that it is no longer managed.
    let (status, body) = phone
        .put_signed(&phone.profile.server_url, &{
            let mut idle = plist::Dictionary::new();
            idle.insert("UDID".into(), plist::Value::String(phone.udid.clone()));
            idle.insert("Status".into(), plist::Value::String("Idle".into()));
            plist::Value::Dictionary(idle)
        })
        .await?;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_erase_leaves_the_device_locked_and_the_helpdesk_can_wipe_again()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    phone.answer("EraseDevice", latchkey_tests::apple::Answer::Error);
    sys.ctl(&["device", "wipe", &id, "--confirm"]).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched[0].request_type, "EraseDevice");
    // Not wiped, and not stuck: locked (so still refused at sign-in), and
    // the wipe can be sent again.
    assert_eq!(sys.device(&id).await?["state"], "locked");
    let failed = sys
        .commands(&id)
        .await?
        .into_iter()
        .find(|c| c["kind"] == "wipe")
        .expect("the wipe");
    assert_eq!(failed["status"], "failed", "{failed}");
    phone.answer("EraseDevice", latchkey_tests::apple::Answer::Acknowledged);
    sys.ctl(&["device", "wipe", &id, "--confirm"]).await?;
    assert_eq!(phone.check_for_commands().await?.len(), 1);
    assert_eq!(sys.device(&id).await?["state"], "wiped");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_macs_erase_carries_a_pin() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (mac, id) = enrolled_device(&sys, SimulatedAppleDevice::mac, None).await?;
    let wiping = sys.ctl(&["device", "wipe", &id, "--confirm"]).await?;
    let pin = wiping
        .lines()
        .find_map(|l| l.strip_prefix("PIN the erased Mac asks for: "))
        .expect("the PIN is shown")
        .to_owned();
    let fetched = mac.check_for_commands().await?;
    assert_eq!(fetched[0].request_type, "EraseDevice");
    assert_eq!(
        fetched[0]
            .command
            .get("PIN")
            .and_then(plist::Value::as_string),
        Some(pin.as_str())
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_iphone_says_where_it_is() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let refused = sys
        .ctl(&["device", "locate", &id])
        .await
        .expect_err("not lost");
    assert!(
        refused.to_string().contains("not in lost mode"),
        "{refused}"
    );
    sys.ctl(&["device", "lock", &id, "--lost", "--phone", "110"])
        .await?;
    phone.check_for_commands().await?;
    let asked = sys.ctl_json(&["device", "locate", &id]).await?;
    assert_eq!(asked["command"]["kind"], "locate");
    assert_eq!(asked["device"]["state"], "lost");
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched[0].request_type, "DeviceLocation");
    let commands = sys.commands(&id).await?;
    let located = commands
        .iter()
        .find(|c| c["kind"] == "locate")
        .expect("listed");
    assert_eq!(located["status"], "acknowledged", "{located}");
    assert!(
        located["result"]
            .as_str()
            .is_some_and(|r| r.contains("35.68124") && r.contains("139.76712")),
        "{located}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apple_device_restarts_and_lists_its_profiles_and_an_agent_is_told_it_has_neither()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    sys.ctl(&["device", "restart", &id]).await?;
    sys.ctl(&["device", "profiles", &id]).await?;
    let fetched = phone.check_for_commands().await?;
    let kinds: Vec<&str> = fetched.iter().map(|r| r.request_type.as_str()).collect();
    assert_eq!(kinds, ["RestartDevice", "ProfileList"]);
    let commands = sys.commands(&id).await?;
    let listed = commands
        .iter()
        .find(|c| c["kind"] == "list-profiles")
        .expect("listed");
    assert_eq!(listed["result"], "1 profile(s)", "{listed}");
    assert_eq!(sys.device(&id).await?["state"], "active");

    // An auditor reads the answer but may not queue the command (it wakes
    // the device), nor a restart.
    let auditor = sys
        .ctl_json(&["admin", "add", "auditor@example.com", "--role", "auditor"])
        .await?;
    let auditor = auditor["token"].as_str().expect("a token").to_owned();
    for args in [["device", "profiles", &id], ["device", "restart", &id]] {
        let refused = sys
            .ctl_as(&auditor, &args)
            .await
            .expect_err("an auditor queued a command");
        assert!(
            refused.to_string().starts_with("permission denied"),
            "{refused}"
        );
    }
    sys.ctl_as(&auditor, &["command", "list", &id]).await?;
    assert_eq!(sys.commands(&id).await?.len(), commands.len());

    let token = sys.enrollment_token(&[]).await?;
    let agent = sys.enroll(&token).await?;
    let refused = sys
        .ctl(&["device", "restart", &agent.device_id])
        .await
        .expect_err("the agent has no restart");
    assert!(
        refused.to_string().contains("for Apple devices"),
        "{refused}"
    );
    sys.stop().await
}
