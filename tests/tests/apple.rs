//! Apple devices. The IT admin's side of the APNs push certificate: the
//! topic comes from the certificate; a certificate for another topic is
//! refused unless forced (it would orphan every enrolled device); expiry
//! shows in `latchctl apple status` and is warned about 30 days ahead; a
//! restart gives the stored certificate back to the APNs sender. Then a
//! simulated iPhone enrolls with the profile `latchctl apple profile`
//! writes (real SCEP, signed check-ins), is woken by a push and fetches
//! its commands with Apple's semantics; and what an attacker or a broken
//! device sends is refused in Apple's terms, never with 401.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use latchkey_certs::apns::self_signed_push_certificate;
use latchkey_tests::System;
use latchkey_tests::apple::{
    Answer, EnrollmentProfile, SimulatedAppleDevice, TEST_TOPIC as TOPIC, device_with_serial,
    enrolled_device, import_push_certificate, push_certificate_files, woken,
};

const OTHER_TOPIC: &str = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";

fn push_certificate(dir: &Path, name: &str, topic: &str, days: i64) -> (String, String) {
    push_certificate_files(dir, name, topic, days).expect("a push certificate")
}

fn path_text(path: PathBuf) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_certificate_is_imported_renewed_and_never_silently_replaced() -> anyhow::Result<()>
{
    let mut sys = System::start().await?;
    let dir = tempfile::tempdir()?;

    // Before any import, the status says what to do.
    let status = sys.ctl(&["apple", "status"]).await?;
    assert!(
        status.contains("no push certificate") && status.contains("push-cert import"),
        "{status}"
    );

    let (cert, key) = push_certificate(dir.path(), "first", TOPIC, 365);
    let imported = sys
        .ctl(&[
            "apple",
            "push-cert",
            "import",
            "--cert",
            &cert,
            "--key",
            &key,
        ])
        .await?;
    assert!(imported.contains(TOPIC), "{imported}");
    assert_eq!(sys.apns.installed_topics(), vec![TOPIC.to_owned()]);

    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(status["push_certificates"][0]["topic"], TOPIC);
    assert_eq!(status["push_certificates"][0]["current"], true);
    assert_eq!(
        status["push_certificates"][0]["imported_by"],
        "owner@localhost"
    );
    assert_eq!(status["warnings"], serde_json::json!([]));

    // A renewal keeps the topic and is accepted as it is.
    let (renewed, renewed_key) = push_certificate(dir.path(), "renewed", TOPIC, 365);
    sys.ctl(&[
        "apple",
        "push-cert",
        "import",
        "--cert",
        &renewed,
        "--key",
        &renewed_key,
    ])
    .await?;

    // Another topic would orphan the enrolled devices: refused, and nothing
    // changes, unless the admin insists.
    let (other, other_key) = push_certificate(dir.path(), "other", OTHER_TOPIC, 365);
    let refused = sys
        .ctl(&[
            "apple",
            "push-cert",
            "import",
            "--cert",
            &other,
            "--key",
            &other_key,
        ])
        .await
        .expect_err("another topic is refused");
    let refused = refused.to_string();
    assert!(
        refused.contains("orphaned") && refused.contains(TOPIC) && refused.contains("--force"),
        "{refused}"
    );
    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(
        status["push_certificates"].as_array().map(Vec::len),
        Some(1)
    );

    let forced = sys
        .ctl(&[
            "apple",
            "push-cert",
            "import",
            "--cert",
            &other,
            "--key",
            &other_key,
            "--force",
        ])
        .await?;
    assert!(
        forced.contains(OTHER_TOPIC) && forced.contains(&format!("replaces topic {TOPIC}")),
        "{forced}"
    );
    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(status["push_certificates"][0]["topic"], OTHER_TOPIC);
    assert_eq!(status["push_certificates"][1]["topic"], TOPIC);
    assert_eq!(status["push_certificates"][1]["current"], false);

    let audit = sys.ctl(&["audit"]).await?;
    assert_eq!(
        audit.matches("apple-push-certificate.import").count(),
        3,
        "{audit}"
    );

    // After a restart, both certificates are given to the APNs sender again
    // (devices enrolled under the old topic are still pushed through it).
    sys.restart().await?;
    let installed = sys.apns.installed_topics();
    assert!(
        installed.ends_with(&[OTHER_TOPIC.to_owned(), TOPIC.to_owned()]),
        "{installed:?}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_warned_about_thirty_days_ahead() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    let (cert, key) = push_certificate(dir.path(), "short", TOPIC, 20);
    sys.ctl(&[
        "apple",
        "push-cert",
        "import",
        "--cert",
        &cert,
        "--key",
        &key,
    ])
    .await?;
    let status = sys.ctl(&["apple", "status"]).await?;
    assert!(
        status.contains(&format!(
            "warning: the push certificate for {TOPIC} expires"
        )) && status.contains("same Apple Account"),
        "{status}"
    );
    let json = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(json["warnings"][0]["kind"], "expires-soon");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_files_are_refused_with_what_is_wrong_and_nothing_stored() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    let (cert, _) = push_certificate(dir.path(), "a", TOPIC, 365);
    let (_, other_key) = push_certificate(dir.path(), "b", TOPIC, 365);
    let (expired, expired_key) = {
        let now = Utc::now();
        let (c, k) = self_signed_push_certificate(
            TOPIC,
            now - Duration::days(400),
            now - Duration::days(1),
        )?;
        let (cp, kp) = (dir.path().join("old.pem"), dir.path().join("old-key.pem"));
        std::fs::write(&cp, c)?;
        std::fs::write(&kp, k.expose())?;
        (path_text(cp), path_text(kp))
    };
    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'A'; 1024 * 1024])?;
    let huge = path_text(huge);
    let binary = dir.path().join("cert.p12");
    std::fs::write(&binary, [0x30u8, 0x82, 0xff, 0xfe, 0x80])?;
    let binary = path_text(binary);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--cert", &cert, "--key", &other_key],
            "does not belong to this push certificate",
        ),
        (
            vec!["--cert", &other_key, "--key", &cert],
            "no PEM certificate",
        ),
        (vec!["--cert", &expired, "--key", &expired_key], "expired"),
        (vec!["--cert", &huge, "--key", &other_key], "larger than"),
        (vec!["--cert", &binary, "--key", &other_key], "pkcs12"),
        (
            vec!["--cert", "/nonexistent/push.pem", "--key", &other_key],
            "/nonexistent/push.pem",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["apple", "push-cert", "import"];
        full.extend(args.iter());
        let error = sys.ctl(&full).await.expect_err("refused").to_string();
        assert!(error.contains(expected), "{args:?}: {error}");
    }
    let status = sys.ctl_json(&["apple", "status"]).await?;
    assert_eq!(status["push_certificates"], serde_json::json!([]));
    assert!(sys.apns.installed_topics().is_empty());
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iphone_enrolls_by_profile_and_a_lock_reaches_it_through_a_push() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;

    // Without a push certificate there is nothing to enroll under.
    let refused = sys
        .ctl(&["apple", "profile"])
        .await
        .expect_err("no push certificate yet");
    assert!(
        refused.to_string().contains("push-cert import"),
        "{refused}"
    );
    import_push_certificate(&sys, dir.path()).await?;

    let profile = sys
        .ctl(&["apple", "profile", "--user", "taro@example.com"])
        .await?;
    let profile = EnrollmentProfile::read(profile.as_bytes())?;
    assert_eq!(profile.topic, TOPIC);
    assert!(profile.sign_message);
    let mut pushes = sys.apns.watch();
    let mut phone =
        SimulatedAppleDevice::iphone(profile.clone(), sys.running().https_addr, &sys.ca_pem);
    phone.enroll().await?;

    // Enrolled: listed for its user, and woken for its first queries.
    let listed = device_with_serial(&sys, &phone.serial).await?;
    assert_eq!(listed["user"], "taro@example.com");
    assert_eq!(listed["state"], "active");
    assert_eq!(listed["platform"], "ios");
    let id = listed["id"].as_str().expect("an id").to_owned();
    woken(&mut pushes, &phone).await?;
    let first = phone.check_for_commands().await?;
    let kinds: Vec<&str> = first.iter().map(|r| r.request_type.as_str()).collect();
    assert_eq!(kinds, ["DeviceInformation", "SecurityInfo"]);
    let shown = sys.device(&id).await?;
    assert_eq!(shown["os_version"], "18.1", "{shown}");
    assert_eq!(shown["model"], "iPhone", "{shown}");

    // The helpdesk locks it: the push wakes it, it fetches the lock and
    // acknowledges it.
    let locked = sys
        .ctl_json(&["device", "lock", &id, "--message", "Call IT: 03-1234-5678"])
        .await?;
    assert_eq!(locked["device"]["state"], "locked", "{locked}");
    woken(&mut pushes, &phone).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].request_type, "DeviceLock");
    assert_eq!(
        fetched[0]
            .command
            .get("Message")
            .and_then(plist::Value::as_string),
        Some("Call IT: 03-1234-5678")
    );
    let commands = sys.commands(&id).await?;
    let lock = commands
        .iter()
        .find(|c| c["kind"] == "lock")
        .expect("the lock is listed");
    assert_eq!(lock["status"], "acknowledged", "{lock}");
    assert_eq!(sys.device(&id).await?["state"], "locked");

    // Nothing more waits for it; another Idle gets an empty answer.
    assert!(phone.check_for_commands().await?.is_empty());
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiles_challenge_enrolls_one_device_and_a_replay_gets_a_scep_failure()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let profile = EnrollmentProfile::read(sys.ctl(&["apple", "profile"]).await?.as_bytes())?;
    let addr = sys.running().https_addr;
    let mut first = SimulatedAppleDevice::iphone(profile.clone(), addr, &sys.ca_pem);
    assert_eq!(first.scep_enroll().await?, Ok(()));
    let mut second = SimulatedAppleDevice::iphone(profile.clone(), addr, &sys.ca_pem);
    assert_eq!(second.scep_enroll().await?, Err("BadRequest".to_owned()));
    let mut wrong = profile.clone();
    wrong.scep_challenge = "not-a-challenge".into();
    let mut third = SimulatedAppleDevice::iphone(wrong, addr, &sys.ca_pem);
    assert_eq!(third.scep_enroll().await?, Err("BadRequest".to_owned()));
    let audit = sys.ctl(&["audit"]).await?;
    assert!(
        audit.contains("the challenge is unknown, used or expired"),
        "{audit}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_answered_not_now_waits_for_the_next_idle() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let profile = EnrollmentProfile::read(sys.ctl(&["apple", "profile"]).await?.as_bytes())?;
    let mut phone = SimulatedAppleDevice::iphone(profile, sys.running().https_addr, &sys.ca_pem);
    phone.enroll().await?;
    // The device is busy (say, in Setup Assistant): NotNow to the inventory.
    phone.answer("DeviceInformation", Answer::NotNow);
    let first = phone.check_for_commands().await?;
    let kinds: Vec<&str> = first.iter().map(|r| r.request_type.as_str()).collect();
    // The NotNow command is not offered again on the same connection.
    assert_eq!(kinds, ["DeviceInformation", "SecurityInfo"]);
    phone.answer("DeviceInformation", Answer::Acknowledged);
    let again = phone.check_for_commands().await?;
    let kinds: Vec<&str> = again.iter().map(|r| r.request_type.as_str()).collect();
    assert_eq!(kinds, ["DeviceInformation"]);
    assert_eq!(again[0].command_uuid, first[0].command_uuid);
    assert!(phone.check_for_commands().await?.is_empty());
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_ins_that_do_not_verify_or_fit_are_refused_and_never_with_401() -> anyhow::Result<()>
{
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let profile = EnrollmentProfile::read(sys.ctl(&["apple", "profile"]).await?.as_bytes())?;
    let addr = sys.running().https_addr;
    let mut phone = SimulatedAppleDevice::iphone(profile.clone(), addr, &sys.ca_pem);
    phone.enroll().await?;

    let checkin = profile.check_in_url.clone();
    let path = url::Url::parse(&checkin)?.path().to_owned();
    // No identity at all.
    let (status, _, _) =
        latchkey_tests::apple::https_exchange(addr, &sys.ca_pem, "PUT", &path, &[], b"<plist/>")
            .await?;
    assert_eq!(status, 400);
    // A signature over another body.
    let (status, _, body) = latchkey_tests::apple::https_exchange(
        addr,
        &sys.ca_pem,
        "PUT",
        &path,
        &[("Mdm-Signature", "MIIBAAAA".to_owned())],
        b"<plist/>",
    )
    .await?;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Malformed plists, XML and binary, from the enrolled device.
    for garbage in [
        &b"<?xml version=\"1.0\"?><plist><dict><key>"[..],
        b"bplist00\xff\xff",
    ] {
        let (status, body) = phone.put_raw(&checkin, garbage).await?;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    }
    // An unknown MessageType.
    let mut unknown = plist::Dictionary::new();
    unknown.insert(
        "MessageType".into(),
        plist::Value::String("Teleport".into()),
    );
    unknown.insert("UDID".into(), plist::Value::String(phone.udid.clone()));
    let (status, body) = phone
        .put_signed(&checkin, &plist::Value::Dictionary(unknown))
        .await?;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // Its certificate used for another UDID.
    let mut impostor = SimulatedAppleDevice::iphone(profile.clone(), addr, &sys.ca_pem);
    impostor.udid = "00008110-IMPOSTOR".into();
    let mut stolen = plist::Dictionary::new();
    stolen.insert(
        "MessageType".into(),
        plist::Value::String("Authenticate".into()),
    );
    stolen.insert("UDID".into(), plist::Value::String(impostor.udid.clone()));
    stolen.insert("Topic".into(), plist::Value::String(TOPIC.into()));
    let (status, body) = phone
        .put_signed(&checkin, &plist::Value::Dictionary(stolen))
        .await?;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    // An oversized body.
    let huge = vec![b' '; 5 * 1024 * 1024];
    let (status, _) = phone.put_raw(&checkin, &huge).await?;
    assert_eq!(status, 413);
    // The device itself is still fine.
    assert_eq!(phone.token_update().await?, 200);

    // Retired: the device hears that it is no longer managed, so it
    // unenrolls; still not 401.
    let id = device_with_serial(&sys, &phone.serial).await?["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    sys.ctl(&["device", "retire", &id]).await?;
    let (status, body) = phone
        .put_signed(&profile.server_url, &{
            let mut idle = plist::Dictionary::new();
            idle.insert("UDID".into(), plist::Value::String(phone.udid.clone()));
            idle.insert("Status".into(), plist::Value::String("Idle".into()));
            plist::Value::Dictionary(idle)
        })
        .await?;
    assert_eq!(status, 403);
    assert_eq!(
        String::from_utf8_lossy(&body),
        r#"{"code":"com.apple.unrecognized.device"}"#
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pki_operation_over_get_with_its_base64_unescaped_enrolls() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let addr = sys.running().https_addr;
    // Several devices, so that some message holds a `+` (a 2 KiB message
    // almost always does).
    for _ in 0..3 {
        let profile = EnrollmentProfile::read(sys.ctl(&["apple", "profile"]).await?.as_bytes())?;
        let mut phone = SimulatedAppleDevice::iphone(profile, addr, &sys.ca_pem);
        phone.scep_over_get = true;
        assert_eq!(phone.scep_enroll().await?, Ok(()));
    }
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_apns_calls_unregistered_is_not_pushed_again_until_a_token_update()
-> anyhow::Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let pushes_to = |sys: &System| {
        sys.apns
            .pushes()
            .iter()
            .filter(|p| p.target.token == phone.push_token)
            .count()
    };
    sys.apns.unregister(&phone.push_token);
    let before = pushes_to(&sys);
    sys.ctl(&["device", "restart", &id]).await?;
    assert_eq!(pushes_to(&sys), before + 1, "the restart is pushed once");
    let shown = sys.device(&id).await?;
    assert_eq!(shown["apple"]["push_token_invalid"], true, "{shown}");
    assert_eq!(
        shown["apple"]["last_push_result"], "unregistered (410)",
        "{shown}"
    );

    // The next command is queued, and not pushed to a token APNs gave up.
    sys.ctl(&["device", "profiles", &id]).await?;
    assert_eq!(
        pushes_to(&sys),
        before + 1,
        "no push to an unregistered token"
    );

    // A TokenUpdate brings the token back: the next command is pushed,
    // and the device finds every command waiting.
    sys.apns.reregister(&phone.push_token);
    assert_eq!(phone.token_update().await?, 200);
    assert_eq!(sys.device(&id).await?["apple"]["push_token_invalid"], false);
    let after_update = pushes_to(&sys);
    sys.ctl(&["device", "restart", &id]).await?;
    assert_eq!(
        pushes_to(&sys),
        after_update + 1,
        "pushed again after the TokenUpdate"
    );
    let fetched: Vec<String> = phone
        .check_for_commands()
        .await?
        .into_iter()
        .map(|r| r.request_type)
        .filter(|t| t == "RestartDevice" || t == "ProfileList")
        .collect();
    assert_eq!(fetched, ["RestartDevice", "ProfileList", "RestartDevice"]);
    sys.stop().await
}
