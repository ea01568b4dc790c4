//! Automated Device Enrollment as an admin uses it, against the fake of
//! Apple's service: the key pair's certificate goes to Apple Business
//! Manager, the token it hands back is imported, syncs list Apple's
//! devices as awaiting enrollment (and retire the released ones), and a
//! listed iPhone fetches its profile in Setup Assistant and enrolls as
//! that same device record.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use anyhow::{Context, Result};
use latchkey_tests::System;
use latchkey_tests::apple::{
    EnrollmentProfile, SimulatedAppleDevice, device_with_serial, https_exchange,
    import_push_certificate, machine_info,
};
use latchkey_tests::fake_dep::{FakeDep, FakeDevice};

async fn system_for(fake: &FakeDep) -> Result<System> {
    let url = fake.url().to_owned();
    System::start_configured(Arc::new(move |file: &mut latchkeyd::FileConfig| {
        file.apple.dep_base_url = Some(url.clone());
    }))
    .await
}

/// Setup Assistant's request for the enrollment profile: the status, the
/// content type and the body.
async fn fetch_dep_profile(sys: &System, serial: &str) -> Result<(u16, String, Vec<u8>)> {
    let (status, headers, body) = https_exchange(
        sys.running().https_addr,
        &sys.ca_pem,
        "POST",
        "/apple/dep/enroll",
        &[("content-type", "application/pkcs7-signature".into())],
        &machine_info(serial)?,
    )
    .await?;
    Ok((
        status,
        headers.get("content-type").cloned().unwrap_or_default(),
        body,
    ))
}

async fn token(sys: &System, name: &str) -> Result<serde_json::Value> {
    let tokens = sys.ctl_json(&["apple", "dep", "status"]).await?;
    tokens
        .as_array()
        .and_then(|all| all.iter().find(|t| t["name"] == name).cloned())
        .with_context(|| format!("no token {name}: {tokens}"))
}

async fn devices_with_serial(sys: &System, serial: &str) -> Result<usize> {
    let devices = sys.ctl_json(&["device", "list"]).await?;
    Ok(devices
        .as_array()
        .context("a list")?
        .iter()
        .filter(|d| d["serial"] == serial)
        .count())
}

#[tokio::test]
async fn devices_listed_in_apple_business_manager_enroll_as_their_own_records() -> Result<()> {
    let fake = FakeDep::start().await?;
    fake.add_device(FakeDevice::iphone("DEPIPHONE01"));
    fake.add_device(FakeDevice::mac("DEPMAC00001"));
    let sys = system_for(&fake).await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;

    // The certificate to upload; asked again, the same one.
    let certificate = sys.ctl(&["apple", "dep", "keypair"]).await?;
    assert!(
        certificate.starts_with("-----BEGIN CERTIFICATE-----"),
        "{certificate}"
    );
    assert_eq!(sys.ctl(&["apple", "dep", "keypair"]).await?, certificate);

    let path = dir.path().join("token.p7m");
    std::fs::write(&path, fake.token_p7m_for(&certificate)?)?;
    let imported = sys
        .ctl(&["apple", "dep", "import-token", path.to_str().unwrap()])
        .await?;
    assert!(
        imported.contains("ADE token default imported"),
        "{imported}"
    );
    assert!(imported.contains("expires"), "{imported}");
    let status = token(&sys, "default").await?;
    assert_eq!(status["imported"], true);
    assert_eq!(status["server_uuid"], fake.server_uuid());

    // The first sync lists both devices, awaiting enrollment, and assigns
    // them the profile.
    let synced = sys.ctl_json(&["apple", "dep", "sync"]).await?;
    assert_eq!(synced["added"], 2, "{synced}");
    let iphone = device_with_serial(&sys, "DEPIPHONE01").await?;
    assert_eq!(iphone["state"], "awaiting-enrollment", "{iphone}");
    assert_eq!(iphone["model"], "iPhone 15");
    assert_eq!(iphone["hostname"], "IPHONE 15 BLACK 128GB");
    let profile_uuid = fake
        .assigned_profile("DEPIPHONE01")
        .context("the profile is assigned")?;
    let profile = fake.profile(&profile_uuid).context("the profile")?;
    let url = profile["url"].as_str().unwrap();
    assert!(url.ends_with("/apple/dep/enroll"), "{profile}");
    assert_eq!(profile["configuration_web_url"], url);
    assert_eq!(profile["is_supervised"], true);
    assert_eq!(profile["is_mdm_removable"], false);
    assert_eq!(profile["await_device_configured"], true);

    // A device added at Apple appears at the next sync.
    fake.add_device(FakeDevice::iphone("DEPIPHONE02"));
    let synced = sys.ctl_json(&["apple", "dep", "sync"]).await?;
    assert_eq!(synced["added"], 1, "{synced}");
    assert_eq!(
        device_with_serial(&sys, "DEPIPHONE02").await?["state"],
        "awaiting-enrollment"
    );

    // A device released at Apple is retired.
    assert!(fake.delete_device("DEPMAC00001"));
    let synced = sys.ctl_json(&["apple", "dep", "sync"]).await?;
    assert_eq!(synced["retired"], 1, "{synced}");
    assert_eq!(
        device_with_serial(&sys, "DEPMAC00001").await?["state"],
        "retired"
    );

    // An expired cursor: the next sync fetches everything again, and
    // lists no device twice.
    assert!(fake.expire_all_cursors() > 0);
    let synced = sys.ctl_json(&["apple", "dep", "sync"]).await?;
    assert_eq!(synced["refetched"], true, "{synced}");
    assert_eq!(synced["added"], 0, "{synced}");
    assert_eq!(devices_with_serial(&sys, "DEPIPHONE01").await?, 1);
    let status = token(&sys, "default").await?;
    assert_eq!(status["devices"], 2, "{status}");
    assert!(status["last_sync_at"].is_string(), "{status}");

    // Asked for its profile again and again, a listed device holds a few
    // live challenges, not one per request.
    let second = device_with_serial(&sys, "DEPIPHONE02").await?;
    for _ in 0..6 {
        assert_eq!(fetch_dep_profile(&sys, "DEPIPHONE02").await?.0, 200);
    }
    let db = sys.database().await?;
    use sea_orm::ConnectionTrait;
    let live = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT COUNT(*) AS n FROM apple_scep_challenges \
                 WHERE device_id = '{}' AND used_at IS NULL",
                second["id"].as_str().context("an id")?
            ),
        ))
        .await?
        .context("a count")?
        .try_get::<i64>("", "n")?;
    assert_eq!(live, 3);

    // Someone who knows the serial (MachineInfo proves nothing) fetches
    // two profiles for it before the iPhone is switched on, and gets an
    // identity with the first.
    let stolen = |body: Vec<u8>| -> Result<EnrollmentProfile> {
        EnrollmentProfile::read(&latchkey_certs::cms::attached_content_unverified(&body)?)
    };
    let mut thief = SimulatedAppleDevice::iphone(
        stolen(fetch_dep_profile(&sys, "DEPIPHONE01").await?.2)?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    let mut late_thief = SimulatedAppleDevice::iphone(
        stolen(fetch_dep_profile(&sys, "DEPIPHONE01").await?.2)?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    assert_eq!(thief.scep_enroll().await?, Ok(()));

    // Setup Assistant fetches the signed profile for the listed iPhone,
    // which enrolls as that same record.
    let (code, content_type, body) = fetch_dep_profile(&sys, "DEPIPHONE01").await?;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, "application/x-apple-aspen-config");
    let xml = latchkey_certs::cms::attached_content_unverified(&body)?;
    let profile = EnrollmentProfile::read(&xml)?;
    let mut device = SimulatedAppleDevice::iphone(profile, sys.running().https_addr, &sys.ca_pem);
    device.serial = "DEPIPHONE01".into();
    device.enroll().await?;
    device.check_for_commands().await?;
    let enrolled = device_with_serial(&sys, "DEPIPHONE01").await?;
    assert_eq!(enrolled["id"], iphone["id"], "{enrolled}");
    assert_eq!(enrolled["state"], "active", "{enrolled}");
    assert_eq!(devices_with_serial(&sys, "DEPIPHONE01").await?, 1);

    // The identity minted first was replaced by the iPhone's: even with
    // the iPhone's UDID it speaks for nothing. The second stolen
    // challenge, used now, mints nothing: the device is enrolled.
    thief.udid = device.udid.clone();
    assert_eq!(thief.authenticate().await?, 403);
    assert!(late_thief.scep_enroll().await?.is_err());
    assert!(device.check_for_commands().await?.is_empty());
    assert_eq!(
        device_with_serial(&sys, "DEPIPHONE01").await?["state"],
        "active"
    );

    // Enrolled, it gets no second profile; nor does a serial no token
    // lists, nor a released one.
    for serial in ["DEPIPHONE01", "NOTLISTED01", "DEPMAC00001"] {
        let (code, _, _) = fetch_dep_profile(&sys, serial).await?;
        assert_eq!(code, 403, "{serial}");
    }

    // Every admin change and each sync is in the audit log.
    let audit = sys.ctl(&["audit"]).await?;
    for action in [
        "apple-dep-keypair.create",
        "apple-dep-token.import",
        "apple-dep.sync",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
    sys.ctl(&["apple", "dep", "reset-cursor"]).await?;
    assert_eq!(token(&sys, "default").await?["has_cursor"], false);
    assert!(
        sys.ctl(&["audit"])
            .await?
            .contains("apple-dep-cursor.reset")
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_token_file_an_unknown_name_and_apple_failing_are_reported() -> Result<()> {
    let fake = FakeDep::start().await?;
    fake.add_device(FakeDevice::iphone("DEPBAD00001"));
    let mut sys = system_for(&fake).await?;
    let dir = tempfile::tempdir()?;

    // A token made for another key pair's certificate does not decrypt,
    // and nothing is stored.
    sys.ctl(&["apple", "dep", "keypair"]).await?;
    let other = sys
        .ctl(&["apple", "dep", "keypair", "--name", "other"])
        .await?;
    let path = dir.path().join("other.p7m");
    std::fs::write(&path, fake.token_p7m_for(&other)?)?;
    let refused = sys
        .ctl(&["apple", "dep", "import-token", path.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("does not decrypt with this key"),
        "{refused}"
    );
    assert_eq!(token(&sys, "default").await?["imported"], false);

    // A file that is no token at all.
    let garbage = dir.path().join("garbage.p7m");
    std::fs::write(&garbage, b"this is not a token")?;
    let refused = sys
        .ctl(&["apple", "dep", "import-token", garbage.to_str().unwrap()])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not an S/MIME message"), "{refused}");
    assert_eq!(token(&sys, "default").await?["imported"], false);

    // A name with no key pair.
    let refused = sys
        .ctl(&["apple", "dep", "sync", "--name", "nosuch"])
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("nosuch not found"), "{refused}");

    // The token for the other key pair imports under its name.
    sys.ctl(&[
        "apple",
        "dep",
        "import-token",
        path.to_str().unwrap(),
        "--name",
        "other",
    ])
    .await?;
    let synced = sys
        .ctl_json(&["apple", "dep", "sync", "--name", "other"])
        .await?;
    assert_eq!(synced["added"], 1, "{synced}");
    let before = token(&sys, "other").await?;

    // Apple failing or throttling: the sync says so and keeps the cursor.
    fake.add_device(FakeDevice::iphone("DEPBAD00002"));
    fake.respond_once("POST /devices/sync", 500, &[], "INTERNAL_ERROR");
    let failed = sys
        .ctl(&["apple", "dep", "sync", "--name", "other"])
        .await
        .unwrap_err()
        .to_string();
    assert!(failed.contains("Apple's service failed"), "{failed}");
    fake.respond_once("POST /devices/sync", 429, &[("Retry-After", "3600")], "");
    let throttled = sys
        .ctl(&["apple", "dep", "sync", "--name", "other"])
        .await
        .unwrap_err()
        .to_string();
    assert!(throttled.contains("throttling"), "{throttled}");
    // Apple asked for an hour: the next sync does not ask Apple again
    // before then, and says when it can.
    let asked = fake.requests("POST /devices/sync");
    let waiting = sys
        .ctl(&["apple", "dep", "sync", "--name", "other"])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        waiting.contains("Apple asked Latchkey to wait; the next sync can run after"),
        "{waiting}"
    );
    assert_eq!(fake.requests("POST /devices/sync"), asked);
    let after = token(&sys, "other").await?;
    assert_eq!(after["cursor_at"], before["cursor_at"]);
    assert!(
        after["last_sync_outcome"]
            .as_str()
            .unwrap()
            .contains("failed"),
        "{after}"
    );
    // Both failures are in the audit log as failed, with Apple's reason.
    let audit = sys.ctl_json(&["audit"]).await?;
    let failed_syncs: Vec<_> = audit
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["action"] == "apple-dep.sync" && e["outcome"] == "failed")
        .collect();
    assert_eq!(failed_syncs.len(), 2, "{audit}");
    assert!(
        failed_syncs
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("throttling")),
        "{failed_syncs:?}"
    );
    // The wait is kept in memory: a restarted server asks Apple again,
    // and the sync continues from the kept cursor.
    sys.restart().await?;
    let synced = sys
        .ctl_json(&["apple", "dep", "sync", "--name", "other"])
        .await?;
    assert_eq!(synced["added"], 1, "{synced}");
    assert_eq!(synced["refetched"], false, "{synced}");
    assert_eq!(
        device_with_serial(&sys, "DEPBAD00002").await?["state"],
        "awaiting-enrollment"
    );
    Ok(())
}
