//! Renewing an Apple device's MDM identity certificate before it expires:
//! the renewal schedule (driven here with a clock a year on, where the
//! certificates issued today are about to expire) sends the device a
//! refreshed enrollment profile, the simulated device installs it (SCEP
//! again with the profile's one-time challenge) and speaks with its new
//! certificate from then on, and the old one is refused with 403. The
//! attacks: a device with a renewal challenge of its own, a stolen
//! challenge, a stolen renewed certificate.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use latchkey_tests::System;
use latchkey_tests::apple::{
    Answer, SimulatedAppleDevice, enrolled_device, enrollment_profile_in, woken,
};
use latchkeyd::core::apple::RenewalPass;

/// A year on less 25 days: an identity certificate issued now (valid 365
/// days) expires within the default 30-day window.
fn near_expiry() -> DateTime<Utc> {
    Utc::now() + Duration::days(340)
}

async fn renewal_pass(sys: &System, now: DateTime<Utc>) -> Result<RenewalPass> {
    Ok(sys
        .running()
        .core
        .apple
        .renew_expiring_identities(now)
        .await?)
}

fn started_for(pass: &RenewalPass, id: &str) -> bool {
    pass.started.iter().any(|d| d.as_str() == id)
}

fn install_profiles(device: &SimulatedAppleDevice) -> usize {
    device
        .received()
        .iter()
        .filter(|r| r.request_type == "InstallProfile" && enrollment_profile_in(r).is_some())
        .count()
}

/// An iPhone that is no device Latchkey enrolled: another UDID, with the
/// same profile in hand.
fn stranger(sys: &System, like: &SimulatedAppleDevice) -> SimulatedAppleDevice {
    SimulatedAppleDevice::iphone(like.profile.clone(), sys.running().https_addr, &sys.ca_pem)
}

/// The first enrollment profile `device` was sent in an InstallProfile
/// (`what` names it in the error).
fn first_enrollment_profile(device: &SimulatedAppleDevice, what: &str) -> Result<Vec<u8>> {
    device
        .received()
        .iter()
        .find_map(enrollment_profile_in)
        .context(what.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_near_expiry_renews_its_identity_and_the_old_certificate_is_refused() -> Result<()>
{
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    let expiry_before = shown["apple_identity"]["expires_at"]
        .as_str()
        .context("device show tells the identity's expiry")?
        .to_owned();
    assert!(shown["apple_identity"]["renewal"].is_null(), "{shown}");

    // A certificate a year from expiry is left alone.
    let pass = renewal_pass(&sys, Utc::now()).await?;
    assert!(pass.is_empty(), "{pass:?}");
    assert!(phone.check_for_commands().await?.is_empty());

    let mut pushes = sys.apns.watch();
    let pass = renewal_pass(&sys, near_expiry()).await?;
    assert!(started_for(&pass, &id), "{pass:?}");
    woken(&mut pushes, &phone).await?;
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert!(
        shown["apple_identity"]["renewal"]["started_at"].is_string(),
        "{shown}"
    );
    let text = sys.ctl(&["device", "show", &id]).await?;
    assert!(
        text.contains("renewal") && text.contains("pending since"),
        "{text}"
    );

    let old = phone.identity().context("an identity")?;
    let got = phone.check_for_commands().await?;
    assert_eq!(
        got.iter()
            .filter(|r| enrollment_profile_in(r).is_some())
            .count(),
        1,
        "{got:?}"
    );
    let new = phone.identity().context("an identity")?;
    assert_ne!(old.der, new.der, "the device installed a new identity");

    // It keeps checking in with the new certificate.
    let (status, _) = phone.idle().await?;
    assert_eq!(status, 200);
    assert_eq!(phone.token_update().await?, 200);
    assert!(phone.check_for_commands().await?.is_empty());

    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert!(shown["apple_identity"]["renewal"].is_null(), "{shown}");
    assert_eq!(
        shown["apple_identity"]["last_renewal"]["outcome"], "renewed",
        "{shown}"
    );
    let expiry_after = shown["apple_identity"]["expires_at"]
        .as_str()
        .context("an expiry")?;
    assert!(expiry_after >= expiry_before.as_str(), "{shown}");
    let commands = sys.commands(&id).await?;
    assert!(
        commands
            .iter()
            .any(|c| c["kind"] == "install-profile" && c["status"] == "acknowledged"),
        "{commands:?}"
    );

    // The old certificate no longer speaks for the device: 403, never 401.
    phone.use_identity(old);
    let (status, _) = phone.idle().await?;
    assert_eq!(status, 403);
    assert_eq!(phone.authenticate().await?, 403);
    phone.use_identity(new);
    assert_eq!(phone.idle().await?.0, 200);

    let audit = sys.ctl(&["audit"]).await?;
    assert!(audit.contains("apple-identity.renew"), "{audit}");
    assert!(audit.contains("apple-identity.rebind"), "{audit}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_renewal_per_device_and_one_that_fails_is_retried_on_a_later_pass() -> Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let (away, away_id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;

    let soon = near_expiry();
    let first = renewal_pass(&sys, soon).await?;
    assert!(
        started_for(&first, &id) && started_for(&first, &away_id),
        "{first:?}"
    );
    let second = renewal_pass(&sys, soon).await?;
    assert!(second.is_empty(), "nothing piles up: {second:?}");

    // The device answers the profile with an error: it keeps its identity.
    let old = phone.identity().context("an identity")?;
    phone.answer("InstallProfile", Answer::Error);
    phone.check_for_commands().await?;
    assert_eq!(install_profiles(&phone), 1);
    assert_eq!(phone.identity().context("an identity")?.der, old.der);
    assert_eq!(phone.idle().await?.0, 200);

    // The next pass closes it and starts another.
    let retry = renewal_pass(&sys, soon).await?;
    assert!(
        retry
            .closed
            .iter()
            .any(|(d, outcome)| d.as_str() == id && outcome.as_str() == "failed"),
        "{retry:?}"
    );
    assert!(started_for(&retry, &id), "{retry:?}");
    assert!(!started_for(&retry, &away_id), "{retry:?}");
    // The closed renewal's challenge no longer gets a certificate.
    let first_profile = first_enrollment_profile(&phone, "the first profile")?;
    let late = stranger(&sys, &phone)
        .install_enrollment_profile(&first_profile)
        .await?;
    assert!(late.is_err(), "{late:?}");
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(
        shown["apple_identity"]["last_renewal"]["outcome"], "failed",
        "{shown}"
    );
    phone.answer("InstallProfile", Answer::Acknowledged);
    phone.check_for_commands().await?;
    assert_eq!(install_profiles(&phone), 2);
    assert_ne!(phone.identity().context("an identity")?.der, old.der);
    assert_eq!(phone.idle().await?.0, 200);

    // A device that never came back: its renewal expires and starts again,
    // and the device then gets one profile, not two.
    let later = renewal_pass(&sys, soon + Duration::days(4)).await?;
    assert!(
        later
            .closed
            .iter()
            .any(|(d, outcome)| d.as_str() == away_id && outcome.as_str() == "expired"),
        "{later:?}"
    );
    assert!(started_for(&later, &away_id), "{later:?}");
    let away_old = away.identity().context("an identity")?;
    away.check_for_commands().await?;
    assert_eq!(install_profiles(&away), 1);
    assert_ne!(away.identity().context("an identity")?.der, away_old.der);
    assert_eq!(away.idle().await?.0, 200);
    let commands = sys.commands(&away_id).await?;
    assert!(
        commands
            .iter()
            .any(|c| c["kind"] == "install-profile" && c["status"] == "failed"),
        "the expired renewal's command is closed: {commands:?}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_challenge_does_not_let_another_device_check_in_as_the_first() -> Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let (mut attacker, _) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let pass = renewal_pass(&sys, near_expiry()).await?;
    assert_eq!(pass.started.len(), 2, "{pass:?}");

    // The attacker renews its own device with its own challenge, then
    // speaks as the phone: refused, and the phone is as it was.
    attacker.check_for_commands().await?;
    assert_eq!(install_profiles(&attacker), 1);
    let own_profile = first_enrollment_profile(&attacker, "the attacker's profile")?;
    let attacker_udid = std::mem::replace(&mut attacker.udid, phone.udid.clone());
    let (status, _) = attacker.idle().await?;
    assert_eq!(status, 400);
    assert_eq!(attacker.authenticate().await?, 400);
    assert_eq!(attacker.token_update().await?, 400);
    attacker.udid = attacker_udid;
    assert_eq!(phone.idle().await?.0, 200);

    // A renewal challenge is single use: the attacker's own, again, and
    // the phone's once the phone used it.
    let again = attacker.install_enrollment_profile(&own_profile).await?;
    assert!(again.is_err(), "{again:?}");
    phone.check_for_commands().await?;
    let phone_profile = first_enrollment_profile(&phone, "the phone's profile")?;
    let thief = stranger(&sys, &phone);
    let stolen = thief.install_enrollment_profile(&phone_profile).await?;
    assert!(stolen.is_err(), "{stolen:?}");

    // The phone's renewed certificate, copied to another device: refused
    // for that device's UDID, and the phone keeps working.
    let copy = stranger(&sys, &phone);
    copy.use_identity(phone.identity().context("an identity")?);
    assert_eq!(copy.idle().await?.0, 400);
    assert_eq!(copy.authenticate().await?, 400);
    assert_eq!(phone.idle().await?.0, 200);
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(shown["state"], "active", "{shown}");
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_a_stolen_unused_challenge_is_refused_for_another_udid() -> Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let soon = near_expiry();
    renewal_pass(&sys, soon).await?;

    // The phone puts the profile off; a thief who read it uses the
    // challenge first, from another UDID.
    phone.answer("InstallProfile", Answer::NotNow);
    phone.check_for_commands().await?;
    let profile = first_enrollment_profile(&phone, "the phone's profile")?;
    let thief = stranger(&sys, &phone);
    let got = thief.install_enrollment_profile(&profile).await?;
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(thief.idle().await?.0, 400);
    assert_eq!(thief.authenticate().await?, 400);
    assert_eq!(phone.idle().await?.0, 200, "the phone keeps its binding");
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(
        shown["apple_identity"]["renewal"]["certificate_issued"], true,
        "{shown}"
    );

    // The renewal never completes: it expires, the thief's certificate is
    // revoked, and the phone renews on the next try.
    let later = renewal_pass(&sys, soon + Duration::days(4)).await?;
    assert!(started_for(&later, &id), "{later:?}");
    assert_eq!(thief.idle().await?.0, 403);
    phone.answer("InstallProfile", Answer::Acknowledged);
    let old = phone.identity().context("an identity")?;
    phone.check_for_commands().await?;
    assert_ne!(phone.identity().context("an identity")?.der, old.der);
    assert_eq!(phone.idle().await?.0, 200);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_renews_an_identity_now() -> Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let auditor = sys
        .ctl_json(&["admin", "add", "audit@example.com", "--role", "auditor"])
        .await?["token"]
        .as_str()
        .context("a token")?
        .to_owned();
    let refused = sys
        .ctl_as(&auditor, &["apple", "renew-identity", &id])
        .await
        .expect_err("an auditor renews nothing");
    assert!(
        refused.to_string().contains("renew apple identities"),
        "{refused}"
    );
    assert!(phone.check_for_commands().await?.is_empty());
    let helpdesk = sys
        .ctl_json(&["admin", "add", "desk@example.com", "--role", "helpdesk"])
        .await?["token"]
        .as_str()
        .context("a token")?
        .to_owned();
    let out = sys
        .ctl_as(&helpdesk, &["apple", "renew-identity", &id])
        .await?;
    assert!(out.contains(&id), "{out}");
    // Forced again: the first is replaced, not added to.
    sys.ctl(&["apple", "renew-identity", &id]).await?;
    let old = phone.identity().context("an identity")?;
    phone.check_for_commands().await?;
    assert_eq!(install_profiles(&phone), 1);
    assert_ne!(phone.identity().context("an identity")?.der, old.der);
    assert_eq!(phone.idle().await?.0, 200);
    let audit = sys.ctl(&["audit"]).await?;
    assert!(
        audit
            .lines()
            .any(|l| l.contains("apple-identity.renew") && l.contains("desk@example.com")),
        "{audit}"
    );
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(
        shown["apple_identity"]["last_renewal"]["outcome"], "renewed",
        "{shown}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_identity_may_first_speak_in_an_authenticate() -> Result<()> {
    let sys = System::start().await?;
    let (phone, id) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    renewal_pass(&sys, near_expiry()).await?;
    phone.answer("InstallProfile", Answer::NotNow);
    phone.check_for_commands().await?;
    let profile = first_enrollment_profile(&phone, "the phone's profile")?;
    let old = phone.identity().context("an identity")?;
    let installed = phone.install_enrollment_profile(&profile).await?;
    assert!(installed.is_ok(), "{installed:?}");

    // The device announces itself again with the new identity: it is
    // bound to it and stays enrolled as it was, its queue kept.
    assert_eq!(phone.authenticate().await?, 200);
    assert_eq!(phone.token_update().await?, 200);
    let commands = sys.commands(&id).await?;
    let renewal_command = commands
        .iter()
        .find(|c| c["kind"] == "install-profile")
        .context("the renewal's command")?;
    assert_ne!(renewal_command["status"], "failed", "{commands:?}");
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(shown["state"], "active", "{shown}");
    assert_eq!(
        shown["apple_identity"]["last_renewal"]["outcome"], "renewed",
        "{shown}"
    );
    assert_eq!(phone.idle().await?.0, 200);
    let renewed = phone.identity().context("an identity")?;
    phone.use_identity(old);
    assert_eq!(phone.idle().await?.0, 403);
    phone.use_identity(renewed);
    assert_eq!(phone.idle().await?.0, 200);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_took_its_new_certificate_and_went_away_is_not_cut_off() -> Result<()> {
    let sys = System::start().await?;
    let (phone, _) = enrolled_device(&sys, SimulatedAppleDevice::iphone, None).await?;
    let soon = near_expiry();
    renewal_pass(&sys, soon).await?;

    // The phone fetches the refreshed profile and gets its new certificate
    // over SCEP, then goes out of coverage before it says anything more.
    phone.answer("InstallProfile", Answer::NotNow);
    phone.check_for_commands().await?;
    let profile = first_enrollment_profile(&phone, "the phone's profile")?;
    let installed = phone.install_enrollment_profile(&profile).await?;
    assert!(installed.is_ok(), "{installed:?}");

    // Days later the renewal is still open (the phone may hold only the
    // new certificate), and back in coverage it is bound to it.
    let later = renewal_pass(&sys, soon + Duration::days(4)).await?;
    assert!(later.closed.is_empty(), "{later:?}");
    assert_eq!(phone.idle().await?.0, 200);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_keeps_the_user_an_admin_assigned_meanwhile() -> Result<()> {
    let sys = System::start().await?;
    for (email, name) in [("alice@example.com", "Alice"), ("bob@example.com", "Bob")] {
        sys.ctl(&["user", "add", email, "--name", name]).await?;
    }
    let (phone, id) = enrolled_device(
        &sys,
        SimulatedAppleDevice::iphone,
        Some("alice@example.com"),
    )
    .await?;
    renewal_pass(&sys, near_expiry()).await?;
    // The phone passes from Alice to Bob while its renewal is open; the
    // renewed identity does not hand it back to Alice.
    sys.ctl(&["device", "assign", &id, "--user", "bob@example.com"])
        .await?;
    let old = phone.identity().context("an identity")?;
    phone.check_for_commands().await?;
    assert_ne!(phone.identity().context("an identity")?.der, old.der);
    assert_eq!(phone.idle().await?.0, 200);
    let shown = sys.ctl_json(&["device", "show", &id]).await?;
    assert_eq!(shown["user"], "bob@example.com", "{shown}");
    sys.stop().await
}
