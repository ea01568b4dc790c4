//! The enrollment page: a user who signed in with a second factor
//! downloads a signed enrollment profile for their own device, bound to
//! them; without a sign-in, with a password alone (which may have been
//! phished), or with a session whose factors were passed more than the
//! step-up window ago (a cookie stolen later), the page gives none.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::indexing_slicing)]

use anyhow::{Context, Result};
use chrono::Utc;
use latchkey_tests::System;
use latchkey_tests::apple::{
    EnrollmentProfile, SimulatedAppleDevice, device_with_serial, import_push_certificate,
};
use latchkey_tests::login::{self, RP_CALLBACK};
use latchkey_tests::web::{Browser, WebResponse};
use latchkeyd::core::totp::{TotpSecret, code_at};

async fn post_code(browser: &mut Browser, page: &WebResponse, code: &str) -> Result<WebResponse> {
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    browser
        .post(
            "/login/code",
            &[("req", &req), ("csrf", &csrf), ("code", code)],
        )
        .await
}

/// An app with `--mfa mfa`, Alice with a temporary password.
async fn app_and_alice(sys: &System, mfa: &str) -> Result<(String, String)> {
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Wiki",
            "--redirect-uri",
            RP_CALLBACK,
            "--mfa",
            mfa,
            "--device",
            "none",
        ])
        .await?;
    sys.ctl(&["user", "add", "alice@example.com", "--name", "Alice Suzuki"])
        .await?;
    let reset = sys
        .ctl_json(&["user", "reset-password", "alice@example.com"])
        .await?;
    Ok((
        app["client_id"].as_str().context("client id")?.to_owned(),
        reset["temporary_password"]
            .as_str()
            .context("temporary password")?
            .to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_a_second_factor_gets_a_signed_profile_for_their_device() -> Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let (client_id, temporary) = app_and_alice(&sys, "totp").await?;
    let addr = sys.running().https_addr;

    // Nobody signed in: no profile.
    let mut browser = Browser::new(addr, &sys.ca_pem)?;
    let anonymous = browser.get("/apple/enroll").await?;
    assert_eq!(anonymous.status, 403, "{}", anonymous.body);
    assert!(anonymous.body.contains("Sign in to Latchkey first"));

    // Signed in with the password and an authenticator code.
    let url = login::authorize_url(&client_id, RP_CALLBACK, "enroll");
    let page = login::sign_in(&mut browser, &url, "Wiki", "alice@example.com", &temporary).await?;
    let secret = TotpSecret::from_base32(&page.attr("data-secret").context("the key")?)
        .context("a base32 key")?;
    let after = post_code(&mut browser, &page, &code_at(&secret, Utc::now())).await?;
    assert_eq!(after.status, 303, "{}", after.body);

    let cookie = browser
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let (status, headers, signed) = latchkey_tests::apple::https_exchange(
        addr,
        &sys.ca_pem,
        "GET",
        "/apple/enroll",
        &[("Cookie", cookie)],
        b"",
    )
    .await?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&signed));
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/x-apple-aspen-config")
    );
    // CMS with the profile attached: the device reads the XML inside.
    let xml = latchkey_certs::cms::attached_content(&signed)?;
    let read = EnrollmentProfile::read(&xml)?;
    let mut phone = SimulatedAppleDevice::iphone(read, addr, &sys.ca_pem);
    phone.enroll().await?;
    let listed = device_with_serial(&sys, &phone.serial).await?;
    assert_eq!(listed["user"], "alice@example.com");

    // Ten minutes on, the same session (or a thief holding its cookie)
    // gets no profile until the user confirms again.
    let db = sys.database().await?;
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(
        "UPDATE sso_sessions SET auth_time = auth_time - 600000, \
         second_factor_at = second_factor_at - 600000",
    )
    .await?;
    let stale = browser.get("/apple/enroll").await?;
    assert_eq!(stale.status, 403, "{}", stale.body);
    assert!(stale.body.contains("recent confirmation"), "{}", stale.body);
    assert!(stale.body.contains(r#"href="/account""#), "{}", stale.body);
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_alone_gets_no_profile() -> Result<()> {
    let sys = System::start().await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let (client_id, temporary) = app_and_alice(&sys, "none").await?;
    let mut browser = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let url = login::authorize_url(&client_id, RP_CALLBACK, "phished");
    let landed =
        login::sign_in(&mut browser, &url, "Wiki", "alice@example.com", &temporary).await?;
    assert!(
        landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK)),
        "signed in to the app with the password alone: {}",
        landed.body
    );
    let refused = browser.get("/apple/enroll").await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("second factor"), "{}", refused.body);
    let audit = sys.ctl(&["audit"]).await?;
    assert!(
        !audit.contains("apple-enrollment-profile.create"),
        "{audit}"
    );
    sys.stop().await
}
