//! Apple device management as an attacker sees it: an employee with an
//! enrollment profile of their own, a copied identity certificate, a
//! device that lies in its reports, and anyone on the network who can
//! reach SCEP. Each test is an attack that must fail in Apple's terms (a
//! SCEP CertRep FAILURE, 400, 403 `com.apple.unrecognized.device`; never
//! 401, never 500), leave the victim as it was, and stay within the audit
//! log's flood bound.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use latchkey_certs::PrivateKeyPem;
use latchkey_certs::apns::self_signed_push_certificate;
use latchkey_certs::scep::{CertRepStatus, FailInfo};
use latchkey_tests::System;
use latchkey_tests::apple::{
    EnrollmentProfile, SimulatedAppleDevice, enrolled_device, https_exchange,
};
use latchkey_tests::apple_attacker::{
    ScepAttacker, csr_for_key, csr_with_oversized_rsa_key, mdm_signature, self_signed_identity,
};
use plist::{Dictionary, Value};
use sea_orm::{ConnectionTrait, Statement};

const TOPIC: &str = "com.apple.mgmt.External.7d1f3a52-0b8e-4c1a-9f2d-3e4b5c6d7e8f";
const OTHER_TOPIC: &str = "com.apple.mgmt.External.11111111-2222-3333-4444-555555555555";
const UNRECOGNIZED: &str = r#"{"code":"com.apple.unrecognized.device"}"#;

/// A system with a push certificate imported, ready to enroll.
async fn apple_system() -> Result<System> {
    let sys = System::start().await?;
    import_push_certificate(&sys, &sys.dir.path().join("push"), TOPIC, false).await?;
    Ok(sys)
}

async fn import_push_certificate(sys: &System, dir: &Path, topic: &str, force: bool) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let now = Utc::now();
    let (cert, key) =
        self_signed_push_certificate(topic, now - Duration::days(1), now + Duration::days(365))?;
    let (cert_path, key_path) = (dir.join("push.pem"), dir.join("push-key.pem"));
    std::fs::write(&cert_path, cert)?;
    std::fs::write(&key_path, key.expose())?;
    let mut args = vec![
        "apple",
        "push-cert",
        "import",
        "--cert",
        cert_path.to_str().context("a UTF-8 path")?,
        "--key",
        key_path.to_str().context("a UTF-8 path")?,
    ];
    if force {
        args.push("--force");
    }
    sys.ctl(&args).await?;
    Ok(())
}

async fn profile(sys: &System, user: Option<&str>) -> Result<EnrollmentProfile> {
    let text = match user {
        Some(user) => sys.ctl(&["apple", "profile", "--user", user]).await?,
        None => sys.ctl(&["apple", "profile"]).await?,
    };
    EnrollmentProfile::read(text.as_bytes())
}

/// An iPhone enrolled for `user` that has fetched its first queries.
async fn enrolled_phone(sys: &System, user: Option<&str>) -> Result<SimulatedAppleDevice> {
    let mut phone = SimulatedAppleDevice::iphone(
        profile(sys, user).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    phone.enroll().await?;
    phone.check_for_commands().await?;
    Ok(phone)
}

async fn device_id(sys: &System, serial: &str) -> Result<String> {
    let devices = sys.ctl_json(&["device", "list"]).await?;
    devices
        .as_array()
        .and_then(|all| all.iter().find(|d| d["serial"] == serial))
        .and_then(|d| d["id"].as_str())
        .map(str::to_owned)
        .with_context(|| format!("no device with serial {serial}: {devices}"))
}

fn message(kind: &str, udid: &str, topic: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("MessageType".into(), Value::String(kind.into()));
    d.insert("UDID".into(), Value::String(udid.into()));
    d.insert("Topic".into(), Value::String(topic.into()));
    d
}

fn token_update(udid: &str) -> Value {
    let mut d = message("TokenUpdate", udid, TOPIC);
    d.insert("Token".into(), Value::Data(vec![0xee; 32]));
    d.insert("PushMagic".into(), Value::String("ATTACKER-MAGIC".into()));
    Value::Dictionary(d)
}

fn report(udid: &str, status: &str, uuid: Option<&str>, result: Dictionary) -> Value {
    let mut d = Dictionary::new();
    d.insert("UDID".into(), Value::String(udid.into()));
    d.insert("Status".into(), Value::String(status.into()));
    if let Some(uuid) = uuid {
        d.insert("CommandUUID".into(), Value::String(uuid.into()));
    }
    if status == "Error" {
        let mut item = Dictionary::new();
        item.insert("ErrorCode".into(), Value::Integer(12_021.into()));
        item.insert(
            "ErrorDomain".into(),
            Value::String("MCMDMErrorDomain".into()),
        );
        d.insert(
            "ErrorChain".into(),
            Value::Array(vec![Value::Dictionary(item)]),
        );
    }
    for (k, v) in result {
        d.insert(k, v);
    }
    Value::Dictionary(d)
}

fn idle(udid: &str) -> Value {
    report(udid, "Idle", None, Dictionary::new())
}

/// A DeviceInformation answer claiming another serial number and name.
fn forged_device_information() -> Dictionary {
    let mut q = Dictionary::new();
    q.insert("SerialNumber".into(), Value::String("FORGED".into()));
    q.insert("DeviceName".into(), Value::String("forged".into()));
    q.insert("OSVersion".into(), Value::String("99.0".into()));
    let mut d = Dictionary::new();
    d.insert("QueryResponses".into(), Value::Dictionary(q));
    d
}

/// A SecurityInfo answer claiming no passcode.
fn forged_security_info() -> Dictionary {
    let mut s = Dictionary::new();
    s.insert("PasscodePresent".into(), Value::Boolean(false));
    s.insert("HardwareEncryptionCaps".into(), Value::Integer(0.into()));
    let mut d = Dictionary::new();
    d.insert("SecurityInfo".into(), Value::Dictionary(s));
    d
}

fn xml(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    value.to_writer_xml(&mut out)?;
    Ok(out)
}

fn assert_unrecognized(status: u16, body: &[u8], what: &str) {
    assert_eq!(status, 403, "{what}: {}", String::from_utf8_lossy(body));
    assert_eq!(String::from_utf8_lossy(body), UNRECOGNIZED, "{what}");
}

async fn count(sys: &System, sql: &str) -> Result<i64> {
    let db = sys.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get::<i64>("", "n")?)
}

async fn text(sys: &System, sql: &str) -> Result<Option<String>> {
    let db = sys.database().await?;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get::<Option<String>>("", "v")?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_speaks_for_its_own_udid_only_and_cannot_take_over_another_device()
-> Result<()> {
    let sys = apple_system().await?;
    let alice = enrolled_phone(&sys, Some("alice@example.com")).await?;
    let bob = enrolled_phone(&sys, Some("bob@example.com")).await?;
    let bob_id = device_id(&sys, &bob.serial).await?;
    let checkin = alice.profile.check_in_url.clone();
    let connect = alice.profile.server_url.clone();

    // Alice's certificate naming Bob's UDID, on every message.
    let (status, body) = alice.put_signed(&checkin, &token_update(&bob.udid)).await?;
    assert_eq!(
        status,
        400,
        "TokenUpdate: {}",
        String::from_utf8_lossy(&body)
    );
    let authenticate = Value::Dictionary(message("Authenticate", &bob.udid, TOPIC));
    let (status, _) = alice.put_signed(&checkin, &authenticate).await?;
    assert_eq!(status, 400, "Authenticate");
    let check_out = Value::Dictionary(message("CheckOut", &bob.udid, TOPIC));
    let (status, _) = alice.put_signed(&checkin, &check_out).await?;
    assert_eq!(status, 400, "CheckOut");
    let (status, _) = alice.put_signed(&connect, &idle(&bob.udid)).await?;
    assert_eq!(status, 400, "Idle on the command channel");

    // Mallory gets a certificate with a profile of her own, then claims
    // Bob's UDID at her first Authenticate: Bob's record is not hers to
    // end, and Bob stays enrolled and reachable.
    let mut thief = SimulatedAppleDevice::iphone(
        profile(&sys, Some("mallory@example.com")).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    thief.udid = bob.udid.clone();
    assert_eq!(thief.scep_enroll().await?, Ok(()));
    assert_eq!(
        thief.authenticate().await?,
        400,
        "Authenticate as Bob's UDID"
    );
    assert_eq!(thief.token_update().await?, 400);
    assert_eq!(sys.device(&bob_id).await?["state"], "active");
    assert_eq!(bob.token_update().await?, 200);
    assert!(bob.check_for_commands().await?.is_empty());
    let bob_token = text(
        &sys,
        &format!("SELECT push_token AS v FROM apple_enrollments WHERE device_id = '{bob_id}'"),
    )
    .await?;
    assert_eq!(bob_token, Some(hex::encode(&bob.push_token)));

    // The same hardware enrolled again by its own user replaces its old
    // record, as before: the old certificate is then unrecognized.
    let alice_id = device_id(&sys, &alice.serial).await?;
    let mut again = SimulatedAppleDevice::iphone(
        profile(&sys, Some("alice@example.com")).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    again.udid = alice.udid.clone();
    again.serial = alice.serial.clone();
    again.enroll().await?;
    assert_eq!(sys.device(&alice_id).await?["state"], "retired");
    let (status, body) = alice.put_signed(&connect, &idle(&alice.udid)).await?;
    assert_unrecognized(status, &body, "the replaced record's certificate");
    assert_eq!(again.check_for_commands().await?.len(), 2);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticate_under_another_topic_is_refused_and_the_device_stays_reachable() -> Result<()>
{
    let sys = apple_system().await?;
    let alice = enrolled_phone(&sys, None).await?;
    let checkin = alice.profile.check_in_url.clone();
    // Alice's own device re-sending Authenticate under a topic this server
    // has no push certificate for, or under another of its topics, would
    // never be woken again: refused, and her enrollment keeps its topic
    // and push token.
    let alice_id = device_id(&sys, &alice.serial).await?;
    let enrollment = |column: &str| {
        format!("SELECT {column} AS v FROM apple_enrollments WHERE device_id = '{alice_id}'")
    };
    let unknown = "com.apple.mgmt.External.00000000-0000-0000-0000-000000000000";
    let moved = Value::Dictionary(message("Authenticate", &alice.udid, unknown));
    let (status, body) = alice.put_signed(&checkin, &moved).await?;
    assert_eq!(
        status,
        400,
        "an unknown topic: {}",
        String::from_utf8_lossy(&body)
    );
    // The admin moves new enrollments to another topic: Alice's device is
    // still reached through the one it enrolled under.
    import_push_certificate(&sys, &sys.dir.path().join("other"), OTHER_TOPIC, true).await?;
    let moved = Value::Dictionary(message("Authenticate", &alice.udid, OTHER_TOPIC));
    let (status, body) = alice.put_signed(&checkin, &moved).await?;
    assert_eq!(
        status,
        400,
        "another topic: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        text(&sys, &enrollment("topic")).await?.as_deref(),
        Some(TOPIC)
    );
    assert_eq!(
        text(&sys, &enrollment("push_token")).await?,
        Some(hex::encode(&alice.push_token))
    );
    let mut pushes = sys.apns.watch();
    sys.ctl(&["device", "lock", &alice_id]).await?;
    let wait = async {
        loop {
            let push = pushes.recv().await?;
            if alice.is_woken_by(&push) {
                return anyhow::Ok(());
            }
        }
    };
    tokio::time::timeout(latchkey_tests::DEADLINE, wait).await??;
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mdm_signatures_that_do_not_prove_an_enrolled_identity_are_refused() -> Result<()> {
    let sys = apple_system().await?;
    let phone = enrolled_phone(&sys, None).await?;
    let phone_id = device_id(&sys, &phone.serial).await?;
    let (phone_pem, phone_key) = phone.identity_pem().context("an identity")?;
    let (phone_pem, phone_key) = (phone_pem.as_str(), &phone_key);
    let connect = phone.profile.server_url.clone();
    let body = xml(&idle(&phone.udid))?;

    // An expired certificate from Latchkey's own CA for the phone's key.
    let dir = sys.data_dir();
    let authority = latchkey_certs::Authority::load(
        &std::fs::read_to_string(dir.join("ca.pem"))?,
        &std::fs::read_to_string(dir.join("issuing-ca.pem"))?,
        &PrivateKeyPem::new(std::fs::read_to_string(dir.join("issuing-ca-key.pem"))?),
    )?;
    let spki = openssl::x509::X509::from_der(&phone.identity_der().context("an identity")?)?
        .public_key()?
        .public_key_to_der()?;
    let expired = authority.issue_scep_device(
        &spki,
        &phone_id,
        &latchkey_certs::device_uri(&phone_id),
        Utc::now() - Duration::days(10),
        Duration::days(2),
    )?;
    let (self_signed_pem, self_signed_key) = self_signed_identity("intruder")?;
    let (foreign_pem, foreign_key) = latchkey_tests::foreign_identity()?;
    let valid = mdm_signature(phone_pem, phone_key, "", &body)?;
    let nested_indefinite = {
        let mut der = [0x30u8, 0x80].repeat(20_000);
        der.extend([0u8; 40_000]);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
    };
    let nested_definite = {
        let mut der = vec![0x05, 0x00];
        for _ in 0..10_000 {
            let len = der.len();
            let mut outer = vec![0x30, 0x82, (len >> 8) as u8, (len & 0xff) as u8];
            if len > 0xffff {
                break;
            }
            outer.extend(der);
            der = outer;
        }
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
    };
    let huge = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        vec![0x30u8; 100 * 1024],
    );
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "a self-signed certificate",
            vec![(
                "Mdm-Signature",
                mdm_signature(&self_signed_pem, &self_signed_key, "", &body)?,
            )],
        ),
        (
            "a certificate from another CA",
            vec![(
                "Mdm-Signature",
                mdm_signature(&foreign_pem, &foreign_key, "", &body)?,
            )],
        ),
        (
            "an expired certificate from Latchkey's CA for the phone's key",
            vec![(
                "Mdm-Signature",
                mdm_signature(&expired.pem, phone_key, "", &body)?,
            )],
        ),
        (
            "a valid signature over another body",
            vec![(
                "Mdm-Signature",
                mdm_signature(phone_pem, phone_key, "", &xml(&idle("ANOTHER-UDID"))?)?,
            )],
        ),
        (
            "an attacker's signature carrying the phone's certificate",
            vec![(
                "Mdm-Signature",
                mdm_signature(&self_signed_pem, &self_signed_key, phone_pem, &body)?,
            )],
        ),
        (
            "a header that is not base64",
            vec![("Mdm-Signature", "!!not base64!!".into())],
        ),
        ("an empty header", vec![("Mdm-Signature", String::new())]),
        (
            "a header that is not text",
            vec![("Mdm-Signature", "MII\u{e9}".into())],
        ),
        ("a 100 KiB signature", vec![("Mdm-Signature", huge)]),
        (
            "20000 nested indefinite lengths",
            vec![("Mdm-Signature", nested_indefinite)],
        ),
        (
            "deeply nested definite lengths",
            vec![("Mdm-Signature", nested_definite)],
        ),
        (
            "two signatures, the first valid",
            vec![
                ("Mdm-Signature", valid.clone()),
                (
                    "Mdm-Signature",
                    mdm_signature(&self_signed_pem, &self_signed_key, "", &body)?,
                ),
            ],
        ),
        (
            "two signatures, the second valid",
            vec![
                (
                    "Mdm-Signature",
                    mdm_signature(&self_signed_pem, &self_signed_key, "", &body)?,
                ),
                ("Mdm-Signature", valid.clone()),
            ],
        ),
    ];
    let audit_before = count(&sys, "SELECT COUNT(*) AS n FROM audit_log").await?;
    for (what, headers) in &cases {
        for url in [&connect, &phone.profile.check_in_url] {
            let (status, answer) = phone.put_with_headers(url, headers, &body).await?;
            assert_eq!(status, 400, "{what}: {}", String::from_utf8_lossy(&answer));
        }
    }
    // Nothing a stranger sends is written down one by one.
    assert_eq!(
        count(&sys, "SELECT COUNT(*) AS n FROM audit_log").await?,
        audit_before
    );

    // The phone's own signature still works, also with foreign
    // certificates beside it: the signer is who speaks.
    let (foreign_chain, _) = latchkey_tests::foreign_identity()?;
    for signature in [
        valid,
        mdm_signature(phone_pem, phone_key, &foreign_chain, &body)?,
    ] {
        let (status, answer) = phone
            .put_with_headers(&connect, &[("Mdm-Signature", signature)], &body)
            .await?;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_answer_for_another_devices_commands_or_report_what_it_was_not_asked()
-> Result<()> {
    let sys = apple_system().await?;
    let alice = enrolled_phone(&sys, None).await?;
    let alice_id = device_id(&sys, &alice.serial).await?;
    let alice_before = sys.device(&alice_id).await?;
    let alice_commands = sys.commands(&alice_id).await?;
    let alice_inventory = alice_commands
        .iter()
        .find(|c| c["kind"] == "inventory")
        .and_then(|c| c["id"].as_str())
        .context("Alice's inventory")?
        .to_owned();

    // Bob enrolls; his first queries wait for him.
    let mut bob = SimulatedAppleDevice::iphone(
        profile(&sys, None).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    bob.enroll().await?;
    let bob_id = device_id(&sys, &bob.serial).await?;
    let bob_commands = sys.commands(&bob_id).await?;
    let id_of = |kind: &str| {
        bob_commands
            .iter()
            .find(|c| c["kind"] == kind)
            .and_then(|c| c["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("Bob's {kind}"))
    };
    let (bob_inventory, bob_security) = (id_of("inventory")?, id_of("security-info")?);

    let connect = alice.profile.server_url.clone();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let attempts = [
        (
            "Acknowledged",
            bob_inventory.as_str(),
            forged_device_information(),
        ),
        (
            "Acknowledged",
            bob_security.as_str(),
            forged_security_info(),
        ),
        ("Error", bob_inventory.as_str(), Dictionary::new()),
        ("NotNow", bob_inventory.as_str(), Dictionary::new()),
        ("NotNow", bob_security.as_str(), Dictionary::new()),
        // Alice's own inventory, acknowledged a second time.
        (
            "Acknowledged",
            alice_inventory.as_str(),
            forged_device_information(),
        ),
        // A command nobody was sent.
        ("Acknowledged", random.as_str(), forged_security_info()),
        ("Acknowledged", random.as_str(), forged_device_information()),
    ];
    for (status, uuid, result) in attempts {
        let (code, body) = alice
            .put_signed(&connect, &report(&alice.udid, status, Some(uuid), result))
            .await?;
        assert_eq!(
            code,
            200,
            "{status} {uuid}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(
            body.is_empty(),
            "{status} {uuid}: nothing is waiting for Alice"
        );
    }
    // An unparseable CommandUUID, and Bob's UDID: the request is refused.
    let (code, _) = alice
        .put_signed(
            &connect,
            &report(
                &alice.udid,
                "Acknowledged",
                Some("../../etc"),
                forged_security_info(),
            ),
        )
        .await?;
    assert_eq!(code, 400);
    let (code, _) = alice
        .put_signed(
            &connect,
            &report(
                &bob.udid,
                "Acknowledged",
                Some(&bob_inventory),
                forged_device_information(),
            ),
        )
        .await?;
    assert_eq!(code, 400);

    // Bob's commands are as they were and reach him on his first connection.
    for c in sys.commands(&bob_id).await? {
        assert!(
            c["status"] == "pending" || c["status"] == "sent",
            "Bob's command changed: {c}"
        );
    }
    let not_now = count(
        &sys,
        &format!(
            "SELECT COUNT(*) AS n FROM commands WHERE device_id = '{bob_id}' \
             AND (not_now_at IS NOT NULL OR not_now_count > 0)"
        ),
    )
    .await?;
    assert_eq!(not_now, 0, "Bob's commands were marked NotNow");
    let fetched = bob.check_for_commands().await?;
    let kinds: Vec<&str> = fetched.iter().map(|r| r.request_type.as_str()).collect();
    assert_eq!(kinds, ["DeviceInformation", "SecurityInfo"]);

    // Alice's facts and posture are what her device reported when asked.
    let alice_after = sys.device(&alice_id).await?;
    for key in ["serial", "hostname", "os_version", "posture", "compliant"] {
        assert_eq!(alice_after[key], alice_before[key], "{key}");
    }
    assert_eq!(alice_after["serial"], alice.serial.as_str());

    // A result that does not answer the command it names changes nothing
    // either: Alice is locked, and acknowledges the lock with a
    // SecurityInfo saying she has no passcode.
    let lock = sys.ctl_json(&["device", "lock", &alice_id]).await?;
    let lock_id = lock["command"]["id"]
        .as_str()
        .context("a lock id")?
        .to_owned();
    let (code, body) = alice.put_signed(&connect, &idle(&alice.udid)).await?;
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains(&lock_id));
    let (code, _) = alice
        .put_signed(
            &connect,
            &report(
                &alice.udid,
                "Acknowledged",
                Some(&lock_id),
                forged_security_info(),
            ),
        )
        .await?;
    assert_eq!(code, 200);
    sys.wait_for_command(&alice_id, &lock_id, "acknowledged")
        .await?;
    let alice_locked = sys.device(&alice_id).await?;
    assert_eq!(alice_locked["posture"], alice_before["posture"]);

    // A device between Authenticate and TokenUpdate has been asked nothing.
    let mut early = SimulatedAppleDevice::iphone(
        profile(&sys, None).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    assert_eq!(early.scep_enroll().await?, Ok(()));
    assert_eq!(early.authenticate().await?, 200);
    let early_id = device_id(&sys, &early.serial).await?;
    let (code, body) = early
        .put_signed(
            &connect,
            &report(
                &early.udid,
                "Acknowledged",
                Some(&random),
                forged_security_info(),
            ),
        )
        .await?;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let shown = sys.device(&early_id).await?;
    assert!(shown["posture"]["reported_at"].is_null(), "{shown}");
    assert_eq!(shown["state"], "awaiting-enrollment");

    // An Idle flood writes no audit row and changes nothing.
    let audit_before = count(&sys, "SELECT COUNT(*) AS n FROM audit_log").await?;
    for _ in 0..40 {
        let (code, body) = alice.put_signed(&connect, &idle(&alice.udid)).await?;
        assert_eq!((code, body.is_empty()), (200, true));
    }
    assert_eq!(
        count(&sys, "SELECT COUNT(*) AS n FROM audit_log").await?,
        audit_before
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scep_issues_one_certificate_per_challenge_and_refuses_in_scep() -> Result<()> {
    let sys = apple_system().await?;
    let addr = sys.running().https_addr;
    let scep = ScepAttacker::connect(addr, &sys.ca_pem).await?;
    let listed = || async {
        let devices = sys.ctl_json(&["device", "list"]).await?;
        anyhow::Ok(devices.as_array().map_or(0, Vec::len))
    };

    // The same PKIOperation twice: one certificate.
    let challenge = profile(&sys, None).await?.scep_challenge;
    let message = scep.message(&challenge, None)?;
    assert!(matches!(
        scep.send(&message).await?,
        CertRepStatus::Success { .. }
    ));
    assert_eq!(
        scep.send(&message).await?,
        CertRepStatus::Failure(FailInfo::BadRequest)
    );
    assert_eq!(listed().await?, 1);

    // Two requests racing with one challenge: one certificate.
    let challenge = profile(&sys, None).await?.scep_challenge;
    let (first, second) = (
        scep.message(&challenge, None)?,
        scep.message(&challenge, None)?,
    );
    let (a, b) = tokio::join!(scep.send(&first), scep.send(&second));
    let outcomes = [a?, b?];
    let granted = outcomes
        .iter()
        .filter(|o| matches!(o, CertRepStatus::Success { .. }))
        .count();
    assert_eq!(granted, 1, "{outcomes:?}");
    assert!(outcomes.contains(&CertRepStatus::Failure(FailInfo::BadRequest)));
    assert_eq!(listed().await?, 2);

    // A challenge past its profile's expiry.
    let challenge = profile(&sys, None).await?.scep_challenge;
    let past = (Utc::now() - Duration::seconds(1)).timestamp_millis();
    sys.database()
        .await?
        .execute_unprepared(&format!(
            "UPDATE apple_scep_challenges SET expires_at = {past} WHERE used_at IS NULL"
        ))
        .await?;
    assert_eq!(
        scep.send(&scep.message(&challenge, None)?).await?,
        CertRepStatus::Failure(FailInfo::BadRequest)
    );

    // Keys the CA does not issue for: refused in SCEP, and the challenge
    // is not used up by a refusal.
    let challenge = profile(&sys, None).await?.scep_challenge;
    let p521 = {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP521R1)?;
        openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
    };
    let rsa1024 = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(1024)?)?;
    for (what, csr) in [
        ("P-521", csr_for_key(&p521, &challenge)?),
        ("RSA-1024", csr_for_key(&rsa1024, &challenge)?),
        ("RSA-16392", csr_with_oversized_rsa_key(16_392, &challenge)?),
        ("RSA-40000", csr_with_oversized_rsa_key(40_000, &challenge)?),
    ] {
        let status = scep.send(&scep.message(&challenge, Some(csr))?).await?;
        assert!(
            matches!(status, CertRepStatus::Failure(_)),
            "{what}: {status:?}"
        );
    }
    assert_eq!(listed().await?, 2);
    // An EC P-256 key is issued for (ACME-era devices use one).
    let p256 = {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)?;
        openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group)?)?
    };
    let message = scep.message(&challenge, Some(csr_for_key(&p256, &challenge)?))?;
    let (status, _) = scep.post(&message.der).await?;
    assert_eq!(status, 200);
    assert_eq!(listed().await?, 3);

    // Malformed transport: answered 4xx, never 500, and nothing listed.
    let get = |query: String| {
        let ca = sys.ca_pem.clone();
        async move { https_exchange(addr, &ca, "GET", &format!("/apple/scep?{query}"), &[], b"").await }
    };
    let (status, _, _) = get(format!(
        "operation=GetCACert&message={}",
        "A".repeat(60_000)
    ))
    .await?;
    assert_eq!(status, 200);
    match get(format!(
        "operation=GetCACert&message={}",
        "A".repeat(300_000)
    ))
    .await
    {
        Ok((status, _, _)) => assert!((400..500).contains(&status), "{status}"),
        // Closed without an answer: also not the server's failure.
        Err(e) => assert!(e.to_string().contains("no HTTP header"), "{e}"),
    }
    let (status, _, _) = get("operation=PKIOperation&message=%%%not-base64".into()).await?;
    assert_eq!(status, 400);
    let (status, _, _) = get("operation=PKIOperation&message=AAAA".into()).await?;
    assert_eq!(status, 400);
    let (status, _, _) = get("operation=PKIOperation".into()).await?;
    assert_eq!(status, 400);
    let (status, _, _) = get("operation=Teleport".into()).await?;
    assert_eq!(status, 400);
    let (status, _) = scep.post(b"").await?;
    assert_eq!(status, 400);
    let (status, _) = scep.post(&vec![0x30; 5 * 1024 * 1024]).await?;
    assert_eq!(status, 413);
    let mut nested = [0x30u8, 0x80].repeat(100_000);
    nested.extend(vec![0u8; 200_000]);
    let (status, _) = scep.post(&nested).await?;
    assert_eq!(status, 400);
    assert_eq!(listed().await?, 3);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_or_wiped_devices_certificate_works_nowhere_and_hears_unrecognized() -> Result<()>
{
    let sys = apple_system().await?;
    let retired = enrolled_phone(&sys, None).await?;
    let wiped = enrolled_phone(&sys, None).await?;
    let retired_id = device_id(&sys, &retired.serial).await?;
    let wiped_id = device_id(&sys, &wiped.serial).await?;

    sys.ctl(&["device", "retire", &retired_id]).await?;
    sys.ctl(&["device", "wipe", &wiped_id, "--confirm"]).await?;
    let erase = wiped.check_for_commands().await?;
    assert_eq!(erase.len(), 1);
    assert_eq!(erase[0].request_type, "EraseDevice");
    assert_eq!(sys.device(&wiped_id).await?["state"], "wiped");

    for phone in [&retired, &wiped] {
        let checkin = phone.profile.check_in_url.clone();
        for kind in ["Authenticate", "CheckOut", "GetBootstrapToken"] {
            let (status, body) = phone
                .put_signed(
                    &checkin,
                    &Value::Dictionary(message(kind, &phone.udid, TOPIC)),
                )
                .await?;
            assert_unrecognized(status, &body, kind);
        }
        let (status, body) = phone
            .put_signed(&checkin, &token_update(&phone.udid))
            .await?;
        assert_unrecognized(status, &body, "TokenUpdate");
        let (status, body) = phone
            .put_signed(&phone.profile.server_url, &idle(&phone.udid))
            .await?;
        assert_unrecognized(status, &body, "Idle");
    }
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scep_flood_is_recorded_within_the_bound_and_no_secret_reaches_the_audit_log()
-> Result<()> {
    let sys = apple_system().await?;
    let scep = ScepAttacker::connect(sys.running().https_addr, &sys.ca_pem).await?;
    // A stranger's garbage and wrong challenges, far more than a minute's
    // worth of audit rows.
    let wrong = scep.message("not-a-challenge", None)?;
    for i in 0..200 {
        let (status, _) = if i % 2 == 0 {
            scep.post(b"\x30\x03\x02\x01\x00").await?
        } else {
            scep.post(&wrong.der).await?
        };
        assert!(status == 200 || status == 400, "{status}");
    }
    let refused = count(
        &sys,
        "SELECT COUNT(*) AS n FROM audit_log WHERE detail LIKE 'SCEP request refused%'",
    )
    .await?;
    assert!(refused <= 120, "{refused} refusals recorded one by one");

    // A device enrolls and escrows its tokens; none of its secrets, nor
    // the challenge, is in any audit row.
    let mut phone = SimulatedAppleDevice::iphone(
        profile(&sys, None).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    let challenge = phone.profile.scep_challenge.clone();
    phone.enroll().await?;
    let mut escrow = message("SetBootstrapToken", &phone.udid, TOPIC);
    let bootstrap = vec![0xb0u8; 32];
    escrow.insert("BootstrapToken".into(), Value::Data(bootstrap.clone()));
    let (status, _) = phone
        .put_signed(&phone.profile.check_in_url, &Value::Dictionary(escrow))
        .await?;
    assert_eq!(status, 200);
    let (status, _) = phone
        .put_signed(
            &phone.profile.check_in_url,
            &Value::Dictionary(message("GetBootstrapToken", &phone.udid, TOPIC)),
        )
        .await?;
    assert_eq!(status, 200);
    phone.check_for_commands().await?;
    // The escrow and the release are on record, without the token.
    for said in [
        "SetBootstrapToken: the bootstrap token is escrowed",
        "GetBootstrapToken: the escrowed bootstrap token is given back",
    ] {
        let n = count(
            &sys,
            &format!("SELECT COUNT(*) AS n FROM audit_log WHERE detail = '{said}'"),
        )
        .await?;
        assert_eq!(n, 1, "{said}");
    }
    let secrets = [
        challenge,
        phone.push_magic.clone(),
        hex::encode(vec![7u8; 32]),
        hex::encode(&bootstrap),
    ];
    let db = sys.database().await?;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT target || ' ' || detail AS v FROM audit_log",
        ))
        .await?;
    assert!(rows.len() > 5);
    for row in rows {
        let line: String = row.try_get("", "v")?;
        for secret in &secrets {
            assert!(!line.contains(secret.as_str()), "{line}");
        }
    }
    for column in ["unlock_token_sealed", "bootstrap_token_sealed"] {
        let sealed = text(
            &sys,
            &format!(
                "SELECT {column} AS v FROM apple_enrollments WHERE udid = '{}'",
                phone.udid
            ),
        )
        .await?
        .context("sealed")?;
        for secret in &secrets {
            assert!(!sealed.contains(secret.as_str()), "{column}");
        }
    }
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scep_body_that_never_arrives_is_given_up() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sys = System::start_configured(std::sync::Arc::new(|file| {
        file.https.body_timeout = Some("300ms".into());
    }))
    .await?;
    let tls = latchkey_certs::tls::client_config(&sys.ca_pem, None)?;
    let tcp = tokio::net::TcpStream::connect(sys.running().https_addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    stream
        .write_all(
            b"POST /apple/scep?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n\
              Content-Length: 100000\r\n\r\n0\x82",
        )
        .await?;
    stream.flush().await?;
    let mut received = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        stream.read_to_end(&mut received),
    )
    .await;
    assert!(read.is_ok(), "the connection was still open");
    let received = String::from_utf8_lossy(&received);
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 4"),
        "{received}"
    );
    let (status, _) = sys.https_get("/apple/scep?operation=GetCACaps").await?;
    assert_eq!(status, 200);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_without_a_user_cannot_end_another_by_naming_its_udid() -> Result<()> {
    // A kiosk iPad enrolled with no user, and an identity of a second
    // profile without a user (a leaked admin profile) that claims the
    // kiosk's UDID at its first Authenticate.
    let sys = apple_system().await?;
    let kiosk = enrolled_phone(&sys, None).await?;
    let kiosk_id = device_id(&sys, &kiosk.serial).await?;
    let mut thief = SimulatedAppleDevice::iphone(
        profile(&sys, None).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    thief.udid = kiosk.udid.clone();
    assert_eq!(thief.scep_enroll().await?, Ok(()));
    assert_eq!(
        thief.authenticate().await?,
        400,
        "Authenticate as the kiosk's UDID"
    );
    assert_eq!(sys.device(&kiosk_id).await?["state"], "active");
    assert_eq!(kiosk.token_update().await?, 200);
    assert!(kiosk.check_for_commands().await?.is_empty());
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apple_identity_does_not_speak_on_the_agent_channels() -> Result<()> {
    // Alice copies her Mac's identity off the keychain and tries it where
    // an agent speaks: MQTT (posture at will) and the agent's gRPC API
    // (renewal, device-auth answers).
    let sys = apple_system().await?;
    let phone = enrolled_phone(&sys, Some("alice@example.com")).await?;
    let id = device_id(&sys, &phone.serial).await?;
    let (leaf, key) = phone.identity_pem().context("an identity")?;
    // With the issuing CA's certificate (public: SCEP's GetCACert gives
    // it) the chain passes TLS, so the refusal is the server's own.
    let issuing = std::fs::read_to_string(sys.data_dir().join("issuing-ca.pem"))?;
    let chain = format!("{}\n{issuing}", leaf.trim_end());
    let chain = chain.as_str();

    let (_client, mut eventloop) =
        latchkey_tests::mqtt_client_with(&sys, Some((chain, &key)), &id)?;
    let ended = latchkey_tests::until_disconnected(&mut eventloop).await?;
    assert!(!ended.is_empty());
    assert!(
        latchkey_tests::until_connected(&mut eventloop)
            .await
            .is_err(),
        "MQTT accepted an Apple identity"
    );

    let channel =
        latchkey_agent::enroll::channel(&sys.grpc_url, &sys.ca_pem, Some((chain, &key))).await?;
    let refused = latchkey_proto::v1::device_service_client::DeviceServiceClient::new(channel)
        .get_device_auth(latchkey_proto::v1::GetDeviceAuthRequest {
            txn_id: String::new(),
        })
        .await
        .expect_err("the agent API accepted an Apple identity");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("another channel"),
        "{}",
        refused.message()
    );

    // The phone itself is unharmed and still checks in.
    assert!(phone.check_for_commands().await?.is_empty());
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mac_that_checks_out_is_retired_and_its_identity_answers_nothing() -> Result<()> {
    // Alice removes the MDM profile from her Mac (having copied its
    // identity first): the Mac says CheckOut, and from then on it is no
    // managed device, whatever holds its identity.
    let sys = apple_system().await?;
    let mut mac = SimulatedAppleDevice::mac(
        profile(&sys, Some("alice@example.com")).await?,
        sys.running().https_addr,
        &sys.ca_pem,
    );
    mac.enroll().await?;
    mac.check_for_commands().await?;
    let id = device_id(&sys, &mac.serial).await?;
    assert_eq!(mac.check_out().await?, 200);
    assert_eq!(sys.device(&id).await?["state"], "retired");
    let (status, body) = mac
        .put_signed(&mac.profile.server_url, &idle(&mac.udid))
        .await?;
    assert_unrecognized(status, &body, "Idle after CheckOut");
    assert_eq!(
        count(
            &sys,
            &format!(
                "SELECT COUNT(*) AS n FROM device_certificates \
                 WHERE device_id = '{id}' AND revoked_at IS NULL"
            ),
        )
        .await?,
        0,
        "its identity is revoked"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_be_sent_is_closed_as_failed_and_does_not_block_the_next()
-> Result<()> {
    use sea_orm::ConnectionTrait;
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let lock = sys
        .ctl_json(&["device", "lock", &id, "--message", "Call IT"])
        .await?;
    let lock_id = lock["command"]["id"].as_str().context("an id")?.to_owned();
    // Text no property list carries, stored by some other way than the
    // admin API (which refuses it).
    sys.database()
        .await?
        .execute_unprepared(&format!(
            "UPDATE commands SET message = 'Call IT \u{FFFE}' WHERE id = '{lock_id}'"
        ))
        .await?;
    let refused = phone.check_for_commands().await;
    assert!(refused.is_err(), "{refused:?}");
    let failed = sys.wait_for_command(&id, &lock_id, "failed").await?;
    assert!(
        failed["result"]
            .as_str()
            .is_some_and(|r| r.contains("could not be sent")),
        "{failed}"
    );
    // The next command is not held back.
    sys.ctl(&["device", "restart", &id]).await?;
    let fetched = phone.check_for_commands().await?;
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].request_type, "RestartDevice");
    sys.stop().await
}
