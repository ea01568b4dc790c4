//! A Latchkey policy on an Apple device: assigning or changing it queues
//! the policy as a configuration profile, the device is pushed and
//! installs it, and each new version replaces the one installed (one
//! profile identifier per deployment).

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

    // A new version of the policy is installed over the old one.
    std::fs::write(
        &file,
        "[compliance]\nscreen_lock = true\ndisk_encryption = true\n",
    )?;
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
    sys.stop().await
}
