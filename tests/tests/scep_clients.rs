//! The SCEP endpoint (`/apple/scep`, RFC 8894) against the two SCEP
//! clients Debian ships, run as they are: micromdm's `scepclient` (package
//! `scep`) and certmonger (package `certmonger`). Each enrolls with the
//! one-time challenge of a profile from `latchctl apple profile`, writes a
//! certificate that chains to the Latchkey CA, and the device it names is
//! listed for the profile's user, awaiting enrollment. The same challenge
//! again, and a challenge never issued, are refused in SCEP: each client
//! reports a CertRep FAILURE with failInfo badRequest (not an HTTP error),
//! and nothing is listed for them.
//!
//! What each client is given, and why, is in `latchkey_tests::scep_clients`;
//! in short: `scepclient` the CA file and the RA's fingerprint, certmonger
//! the CA file for GetCACaps and GetCACert over HTTPS and, for the
//! enrollment, which its `scep-submit` cannot make over HTTPS to a private
//! CA, a plain-HTTP front on loopback.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::expect_used)]

use latchkey_tests::System;
use latchkey_tests::scep_clients::{
    Certmonger, PlainHttpFront, Scepclient, enrollment_profile, import_push_certificate,
    issued_by_latchkey_ca, ra_certificate, text,
};

const REFUSED_IN_AUDIT: &str = "the challenge is unknown, used or expired";

/// The devices `latchctl device list` shows.
async fn devices(sys: &System) -> anyhow::Result<Vec<serde_json::Value>> {
    let listed = sys.ctl_json(&["device", "list"]).await?;
    Ok(listed.as_array().cloned().unwrap_or_default())
}

/// Checks that the certificate a client wrote is the Latchkey CA's, for a
/// device listed as `common_name` for `user`, awaiting enrollment.
async fn listed_awaiting_enrollment(
    sys: &System,
    certificate_pem: &str,
    common_name: &str,
    user: &str,
) -> anyhow::Result<()> {
    let issued = issued_by_latchkey_ca(sys, certificate_pem)?;
    let device_id = issued
        .device_id
        .expect("the certificate names its device (SAN URI)");
    let all = devices(sys).await?;
    let device = all
        .iter()
        .find(|d| d["id"] == device_id.as_str())
        .unwrap_or_else(|| panic!("device {device_id} is not listed: {all:?}"));
    assert_eq!(device["state"], "awaiting-enrollment", "{device}");
    assert_eq!(device["platform"], "apple", "{device}");
    assert_eq!(device["hostname"], common_name, "{device}");
    assert_eq!(device["user"], user, "{device}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scepclient_enrolls_once_per_challenge() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let profile = enrollment_profile(&sys, "hana@example.com").await?;
    let scepclient = Scepclient::new(&sys, &profile.scep_url)?;

    let enrolled = scepclient
        .enroll(
            &dir.path().join("first"),
            &profile.scep_challenge,
            "scepclient-device",
        )
        .await?;
    assert!(
        enrolled.finished.status.success(),
        "{}\n{}",
        enrolled.command,
        enrolled.finished
    );
    let certificate = enrolled
        .certificate_pem
        .expect("scepclient wrote the certificate");
    listed_awaiting_enrollment(&sys, &certificate, "scepclient-device", "hana@example.com").await?;

    // A used challenge, then one never issued: a SCEP failure each time,
    // which scepclient reports as such, and no certificate.
    for (name, challenge) in [
        ("reused", profile.scep_challenge.as_str()),
        ("unknown", "not-a-challenge"),
    ] {
        let refused = scepclient
            .enroll(&dir.path().join(name), challenge, "scepclient-other")
            .await?;
        assert_eq!(
            refused.finished.code(),
            Some(1),
            "{name}: {}",
            refused.finished
        );
        assert!(
            refused
                .finished
                .stdout
                .contains("PKCSReq (19) request failed, failInfo: badRequest (2)"),
            "{name}: {}",
            refused.finished
        );
        assert!(refused.certificate_pem.is_none(), "{name}");
    }
    assert_eq!(devices(&sys).await?.len(), 1);
    let audit = sys.ctl(&["audit"]).await?;
    assert_eq!(audit.matches(REFUSED_IN_AUDIT).count(), 2, "{audit}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certmonger_enrolls_once_per_challenge() -> anyhow::Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let profile = enrollment_profile(&sys, "kenji@example.com").await?;
    let certmonger = Certmonger::start().await?;
    let ca_file = sys.ca_path();
    let ca_file = text(&ca_file)?;

    // GetCACaps and GetCACert over HTTPS, as scep-submit makes them for the
    // daemon: the capabilities, and the RA first (what requests are
    // encrypted to), then the CA chain.
    let caps = certmonger
        .scep_submit(&["-u", &profile.scep_url, "-R", ca_file, "-c"])
        .await?;
    assert!(caps.status.success(), "{caps}");
    for capability in ["POSTPKIOperation", "SHA-256", "AES", "SCEPStandard"] {
        assert!(caps.stdout.lines().any(|l| l == capability), "{caps}");
    }
    let certificates = certmonger
        .scep_submit(&["-u", &profile.scep_url, "-R", ca_file, "-C"])
        .await?;
    assert!(certificates.status.success(), "{certificates}");
    let listed = latchkey_certs::pem_certificates(&certificates.stdout)?;
    assert_eq!(listed.len(), 3, "{certificates}");
    assert_eq!(listed.first(), Some(&ra_certificate(&sys)?));

    // The enrollment, through the plain-HTTP front.
    let front = PlainHttpFront::start(&sys).await?;
    let added = certmonger
        .getcert(&["add-scep-ca", "-c", "Latchkey", "-u", &front.scep_url()])
        .await?;
    assert!(added.status.success(), "{added}");
    let request = |nickname: &'static str, challenge: &str| {
        let certificate = certmonger.path(&format!("{nickname}.pem"));
        let key = certmonger.path(&format!("{nickname}.key"));
        let challenge = challenge.to_owned();
        let certmonger = &certmonger;
        async move {
            let finished = certmonger
                .getcert(&[
                    "request",
                    "-c",
                    "Latchkey",
                    "-I",
                    nickname,
                    "-f",
                    text(&certificate)?,
                    "-k",
                    text(&key)?,
                    "-N",
                    &format!("CN={nickname}"),
                    "-L",
                    &challenge,
                    "-w",
                    "-v",
                ])
                .await?;
            let status = certmonger.getcert(&["list", "-i", nickname]).await?;
            anyhow::Ok((finished, status, std::fs::read_to_string(certificate).ok()))
        }
    };

    let (finished, status, certificate) =
        request("certmonger-device", &profile.scep_challenge).await?;
    assert!(
        finished.status.success() && status.stdout.contains("status: MONITORING"),
        "{finished}\n{status}\n{}\n{}",
        certmonger.log(),
        sys.ctl(&["audit"]).await?
    );
    let certificate = certificate.expect("certmonger wrote the certificate");
    listed_awaiting_enrollment(&sys, &certificate, "certmonger-device", "kenji@example.com")
        .await?;

    // A used challenge, then one never issued: certmonger records the
    // CA's rejection with the text it gives failInfo badRequest (an HTTP
    // error would leave it unreachable, exit status 3, and retrying).
    for (nickname, challenge) in [
        ("certmonger-reused", profile.scep_challenge.as_str()),
        ("certmonger-unknown", "not-a-challenge"),
    ] {
        let (finished, status, certificate) = request(nickname, challenge).await?;
        assert_eq!(finished.code(), Some(2), "{nickname}: {finished}");
        assert!(
            status.stdout.contains("status: CA_REJECTED")
                && status.stdout.contains(
                    "ca-error: Transaction either is not permitted or is not supported by server."
                ),
            "{nickname}: {status}"
        );
        assert!(certificate.is_none(), "{nickname}");
    }
    assert_eq!(devices(&sys).await?.len(), 1);
    let audit = sys.ctl(&["audit"]).await?;
    assert_eq!(audit.matches(REFUSED_IN_AUDIT).count(), 2, "{audit}");

    certmonger.stop().await?;
    drop(front);
    sys.stop().await
}
