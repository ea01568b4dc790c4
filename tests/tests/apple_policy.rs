//! A Latchkey policy on an Apple device: assigning or changing it queues
//! the policy as a configuration profile, the device is pushed and
//! installs it, and each new version replaces the one installed (one
//! profile identifier per deployment). The facts compliance reads are
//! asked again as they age.

use anyhow::Context;
use latchkey_tests::System;
use latchkey_tests::apple::{SimulatedAppleDevice, enrolled_device, woken};

/// The payload types and the identifier of an InstallProfile's profile.
fn profile_contents(
    received: &latchkey_tests::apple::Received,
) -> anyhow::Result<(String, Vec<String>)> {
    let payload = received
        .command
        .get("Payload")
        .and_then(plist::Value::as_data)
        .context("InstallProfile carries a Payload")?;
    let profile = plist::Value::from_reader_xml(payload)?;
    let top = profile.as_dictionary().context("a dictionary")?;
    let identifier = top
        .get("PayloadIdentifier")
        .and_then(plist::Value::as_string)
        .context("an identifier")?
        .to_owned();
    let types = top
        .get("PayloadContent")
        .and_then(plist::Value::as_array)
        .context("payloads")?
        .iter()
        .filter_map(|p| p.as_dictionary()?.get("PayloadType")?.as_string())
        .map(str::to_owned)
        .collect();
    Ok((identifier, types))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reaches_an_iphone_as_a_profile_and_a_change_replaces_it() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("strict.toml");
    std::fs::write(&file, "[compliance]\nscreen_lock = true\n")?;
    let file = file.to_str().context("a UTF-8 path")?.to_owned();
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    let mut pushes = sys.apns.watch();
    sys.ctl(&["policy", "assign", "strict", "--device", &id])
        .await?;
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(fetched[0].request_type, "InstallProfile");
    let (first_identifier, types) = profile_contents(&fetched[0])?;
    assert_eq!(types, ["com.apple.mobiledevice.passwordpolicy"]);

    // A new version that renders to the same profile on an iPhone (Data
    // Protection needs the passcode screen_lock already requires) asks
    // nothing new of the device.
    std::fs::write(
        &file,
        "[compliance]\nscreen_lock = true\ndisk_encryption = true\n",
    )?;
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    assert!(
        phone.check_for_commands().await?.is_empty(),
        "the same profile is not installed again"
    );

    // A version that changes the profile (a passcode, no auto-lock) is
    // installed over the old one.
    std::fs::write(&file, "[compliance]\ndisk_encryption = true\n")?;
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    let (identifier, _) = profile_contents(&fetched[0])?;
    assert_eq!(identifier, first_identifier);
    let installs: Vec<_> = sys
        .commands(&id)
        .await?
        .into_iter()
        .filter(|c| c["kind"] == "install-profile")
        .collect();
    assert_eq!(installs.len(), 2);
    assert!(
        installs.iter().all(|c| c["status"] == "acknowledged"),
        "{installs:?}"
    );

    // The same policy set again asks nothing new of the device.
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    assert!(
        phone.check_for_commands().await?.is_empty(),
        "an unchanged profile is not installed again"
    );

    // A policy that needs no profile on an iPhone (iOS has no firewall to
    // turn on) takes the installed one away.
    std::fs::write(&file, "[compliance]\nfirewall = true\n")?;
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(fetched[0].request_type, "RemoveProfile");
    assert_eq!(
        fetched[0]
            .command
            .get("Identifier")
            .and_then(plist::Value::as_string),
        Some(first_identifier.as_str())
    );
    let removals: Vec<_> = sys
        .commands(&id)
        .await?
        .into_iter()
        .filter(|c| c["kind"] == "remove-profile")
        .collect();
    assert_eq!(removals.len(), 1, "{removals:?}");
    assert_eq!(removals[0]["status"], "acknowledged");

    // Nothing left to remove: another such change sends nothing.
    std::fs::write(
        &file,
        "[compliance]\nfirewall = true\nmax_posture_age = \"2h\"\n",
    )?;
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    assert!(phone.check_for_commands().await?.is_empty());

    // And a policy that needs one again installs it again.
    std::fs::write(&file, "[compliance]\nscreen_lock = true\n")?;
    sys.ctl(&["policy", "set", "strict", &file]).await?;
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(fetched[0].request_type, "InstallProfile");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_show_tells_what_apple_reports_and_what_the_policy_cannot_check_there()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    // Enrolled, its inventory and security answers in.
    let (_phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("desk.toml");
    std::fs::write(
        &file,
        "[compliance]\nscreen_lock = true\nfirewall = true\n[compliance.min_os_version]\nios = \"17.0\"\n",
    )?;
    let file = file.to_str().context("a UTF-8 path")?.to_owned();
    sys.ctl(&["policy", "set", "desk", &file]).await?;
    sys.ctl(&["policy", "assign", "desk", "--device", &id])
        .await?;

    let shown = sys.ctl(&["device", "show", &id]).await?;
    let line = |field: &str| -> String {
        shown
            .lines()
            .filter(|l| l.starts_with(field))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(line("supervised").contains("yes"), "{shown}");
    assert!(line("last check-in").contains("UTC"), "{shown}");
    assert!(line("push").contains("last"), "{shown}");
    let gaps = line("policy gap");
    // iOS has no firewall to report: that rule cannot pass on an iPhone.
    assert!(
        gaps.contains("firewall: not reported by this platform, so it cannot pass here"),
        "{shown}"
    );
    // The OS version is reported but no profile can require it.
    assert!(
        gaps.contains("os_version: not enforced, only checked through DeviceInformation OSVersion"),
        "{shown}"
    );
    // The screen lock is enforced by the profile: no gap.
    assert!(!gaps.contains("screen_lock"), "{shown}");
    // And the firewall rule is what keeps the iPhone noncompliant.
    let json = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(json["compliant"], false, "{json}");
    assert_eq!(json["apple"]["supervised"], true, "{json}");
    assert_eq!(
        json["policy_gaps"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apple_devices_facts_are_asked_again_once_they_age() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let apple = &sys.running().core.apple;
    let now = chrono::Utc::now();
    assert_eq!(
        apple.refresh_inventory(now).await?,
        0,
        "facts reported at enrollment are fresh"
    );

    // Five hours on (the interval is four), the phone is asked again, and
    // woken for it; asked once, however often the job runs meanwhile.
    let later = now + chrono::Duration::hours(5);
    let mut pushes = sys.apns.watch();
    assert_eq!(apple.refresh_inventory(later).await?, 1);
    woken(&mut pushes, &phone).await?;
    assert_eq!(apple.refresh_inventory(later).await?, 0);
    let fetched = phone.check_for_commands().await?;
    let kinds: Vec<&str> = fetched.iter().map(|r| r.request_type.as_str()).collect();
    assert_eq!(kinds, ["DeviceInformation", "SecurityInfo"]);
    let answered = sys
        .commands(&id)
        .await?
        .into_iter()
        .filter(|c| c["kind"] == "security-info" && c["status"] == "acknowledged")
        .count();
    assert_eq!(answered, 2, "the enrollment's question and this one");

    // A retired device is asked nothing.
    sys.ctl(&["device", "retire", &id]).await?;
    assert_eq!(
        apple
            .refresh_inventory(later + chrono::Duration::hours(5))
            .await?,
        0
    );
    sys.stop().await
}
