//! Automated Device Enrollment with the user's sign-in (`[apple]
//! dep_sign_in`): Setup Assistant's web view is sent through Latchkey's
//! own sign-in (password and second factor) before it gets the
//! enrollment profile, and the device enrolls as the user who signed in.
//! Written from the attacker's side: a sign-in link sent to someone else,
//! a replayed callback, the POST path that skips the web view, a device
//! Apple does not list, and the built-in client's code taken to `/token`.

// Helpers of a test file: a panic is the failed check.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use chrono::{Duration, Utc};
use latchkey_tests::System;
use latchkey_tests::apple::{
    EnrollmentProfile, SimulatedAppleDevice, device_with_serial, https_exchange,
    import_push_certificate, machine_info,
};
use latchkey_tests::fake_dep::{FakeDep, FakeDevice};
use latchkey_tests::login::{self, CHOSEN_PASSWORD, query_param, token_request};
use latchkey_tests::web::{Browser, WebResponse};
use latchkeyd::core::totp::{TotpSecret, code_at};

const ASPEN_CONFIG: &str = "application/x-apple-aspen-config";

/// A server whose ADE service is `fake`, with the sign-in required or not,
/// an imported push certificate and ADE token, a first sync done, and
/// Alice with a temporary password (returned).
async fn system(fake: &FakeDep, sign_in: bool) -> Result<(System, String)> {
    let url = fake.url().to_owned();
    let sys = System::start_configured(Arc::new(move |file: &mut latchkeyd::FileConfig| {
        file.apple.dep_base_url = Some(url.clone());
        file.apple.dep_sign_in = Some(sign_in);
    }))
    .await?;
    let dir = tempfile::tempdir()?;
    import_push_certificate(&sys, dir.path()).await?;
    let certificate = sys.ctl(&["apple", "dep", "keypair"]).await?;
    let path = dir.path().join("token.p7m");
    std::fs::write(&path, fake.token_p7m_for(&certificate)?)?;
    sys.ctl(&["apple", "dep", "import-token", path.to_str().unwrap()])
        .await?;
    sys.ctl(&["apple", "dep", "sync"]).await?;
    let temporary = login::add_user_with_temporary_password(
        &sys,
        "alice@example.com",
        &["--name", "Alice Suzuki"],
    )
    .await?;
    Ok((sys, temporary))
}

/// Setup Assistant's web view opening `configuration_web_url`: the first
/// request carries the device's MachineInfo in `x-apple-aspen-deviceinfo`.
async fn web_view_opens(sys: &System, serial: &str) -> Result<(Browser, WebResponse)> {
    let mut web_view = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let info = base64::engine::general_purpose::STANDARD.encode(machine_info(serial)?);
    web_view
        .extra_headers
        .push(("x-apple-aspen-deviceinfo".into(), info));
    let first = web_view.get("/apple/dep/enroll").await?;
    web_view.extra_headers.clear();
    Ok((web_view, first))
}

/// The user is on the sign-in form `page`: submits the password, a new
/// password when the temporary one is used, and the authenticator code
/// (enrolling the authenticator on her first sign-in, whose key is kept
/// in `totp`). Returns the redirect the last form answered with, not
/// followed.
async fn sign_in_on(
    browser: &mut Browser,
    page: &WebResponse,
    password: &str,
    totp: &mut Option<TotpSecret>,
    step: i64,
) -> Result<WebResponse> {
    let req = page.input("req").context("req")?;
    let csrf = page.input("csrf").context("csrf")?;
    let mut page =
        login::submit_password(browser, &req, &csrf, "alice@example.com", password).await?;
    if login::asks_new_password(&page) {
        let after = login::choose_password(browser, &req, &page).await?;
        page = browser.follow(after).await?;
    }
    if let Some(shown) = page.attr("data-secret") {
        *totp = Some(TotpSecret::from_base32(&shown).context("a base32 key")?);
    }
    ensure!(
        page.body.contains("name=\"code\""),
        "the second factor is asked for: {}",
        page.body
    );
    let secret = totp.as_ref().context("an authenticator")?;
    let code = code_at(secret, Utc::now() + Duration::seconds(30 * step));
    let csrf = page.input("csrf").context("csrf")?;
    let after = browser
        .post(
            "/login/code",
            &[("req", &req), ("csrf", &csrf), ("code", &code)],
        )
        .await?;
    ensure!(after.status == 303, "{}: {}", after.status, after.body);
    Ok(after)
}

/// Follows a redirect chain until it reaches `/apple/dep/callback`, and
/// returns that redirect's target without requesting it.
async fn until_callback(browser: &mut Browser, mut response: WebResponse) -> Result<String> {
    for _ in 0..10 {
        let location = response
            .location()
            .with_context(|| format!("a redirect: {} {}", response.status, response.body))?
            .to_owned();
        if location.contains("/apple/dep/callback") {
            return Ok(location);
        }
        response = browser.get(&location).await?;
    }
    anyhow::bail!("no callback")
}

fn is_profile(response: &WebResponse) -> bool {
    response.status == 200 && response.header("content-type") == Some(ASPEN_CONFIG)
}

async fn audit_entries(sys: &System, action: &str) -> Result<Vec<serde_json::Value>> {
    let audit = sys.ctl_json(&["audit"]).await?;
    Ok(audit
        .as_array()
        .context("a list")?
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_iphone_enrolls_as_the_user_who_signed_in_in_setup_assistant() -> Result<()> {
    let fake = FakeDep::start().await?;
    fake.add_device(FakeDevice::iphone("DEPSIGNIN01"));
    fake.add_device(FakeDevice::iphone("DEPSIGNIN02"));
    let (sys, temporary) = system(&fake, true).await?;
    let listed = device_with_serial(&sys, "DEPSIGNIN01").await?;
    assert_eq!(listed["state"], "awaiting-enrollment");

    // The web view is sent to sign in, and nothing else.
    let (mut web_view, first) = web_view_opens(&sys, "DEPSIGNIN01").await?;
    assert_eq!(first.status, 303, "{}", first.body);
    assert!(!is_profile(&first));
    let authorize = first.location().context("to the sign-in")?.to_owned();
    assert!(authorize.contains("/authorize?"), "{authorize}");
    assert_eq!(
        query_param(&authorize, "prompt").as_deref(),
        Some("login"),
        "{authorize}"
    );
    let form = web_view.follow(first).await?;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("name=\"password\""), "{}", form.body);

    // A wrong password gets the sign-in page's refusal, and no profile.
    let req = form.input("req").context("req")?;
    let csrf = form.input("csrf").context("csrf")?;
    let refused = login::submit_password(
        &mut web_view,
        &req,
        &csrf,
        "alice@example.com",
        "not her password",
    )
    .await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("The email address or password is not correct."),
        "{}",
        refused.body
    );
    assert!(!is_profile(&refused));

    // Her password, her new password, her authenticator: the web view
    // lands on the callback and gets the signed profile.
    let mut totp = None;
    let after = sign_in_on(&mut web_view, &refused, &temporary, &mut totp, 0).await?;
    let callback = until_callback(&mut web_view, after).await?;
    let delivered = web_view.get(&callback).await?;
    assert!(
        is_profile(&delivered),
        "{} {:?}: {}",
        delivered.status,
        delivered.header("content-type"),
        delivered.body
    );
    let xml = latchkey_certs::cms::attached_content_unverified(&delivered.bytes)?;
    let profile = EnrollmentProfile::read(&xml)?;

    // The built-in client is no app an admin manages.
    let apps = sys.ctl(&["app", "list"]).await?;
    assert!(!apps.contains("Device enrollment"), "{apps}");

    // Her sign-in history names the sign-in for what it was.
    let account = web_view.get("/account").await?;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(
        account.body.contains("Device enrollment"),
        "{}",
        account.body
    );

    // The callback cannot be replayed, by the same web view or any other.
    let replayed = web_view.get(&callback).await?;
    assert!(!is_profile(&replayed), "{}", replayed.body);
    assert_eq!(replayed.status, 403, "{}", replayed.body);

    // The iPhone enrolls with the profile (SCEP, Authenticate,
    // TokenUpdate), as its own record, bound to Alice.
    let mut device = SimulatedAppleDevice::iphone(profile, sys.running().https_addr, &sys.ca_pem);
    device.serial = "DEPSIGNIN01".into();
    device.enroll().await?;
    device.check_for_commands().await?;
    let enrolled = device_with_serial(&sys, "DEPSIGNIN01").await?;
    assert_eq!(enrolled["id"], listed["id"], "{enrolled}");
    assert_eq!(enrolled["state"], "active", "{enrolled}");
    assert_eq!(enrolled["user"], "alice@example.com", "{enrolled}");
    let id = enrolled["id"].as_str().context("id")?;
    let shown = sys.ctl(&["device", "show", id]).await?;
    assert!(shown.contains("alice@example.com"), "{shown}");
    assert!(shown.contains("active"), "{shown}");

    // Someone holding her signed-in browser (a stolen session cookie)
    // starts the sign-in for another listed device and drops
    // `prompt=login`, or asks `prompt=none`: the session is not reused,
    // no code comes back without her password and second factor.
    let (_, other) = web_view_opens(&sys, "DEPSIGNIN02").await?;
    let authorize = other.location().context("to the sign-in")?.to_owned();
    let stripped = authorize
        .replace("&prompt=login", "")
        .replace("prompt=login&", "");
    assert_ne!(stripped, authorize);
    let mut reused = web_view.get(&stripped).await?;
    while let Some(location) = reused.location().map(str::to_owned) {
        assert!(!location.contains("/apple/dep/callback"), "{location}");
        reused = web_view.get(&location).await?;
    }
    assert_eq!(reused.status, 200, "{}", reused.body);
    assert!(reused.body.contains("name=\"password\""), "{}", reused.body);
    let silent = web_view.get(&format!("{stripped}&prompt=none")).await?;
    assert!(
        silent.location().is_none_or(|l| !l.contains("code=")),
        "{:?} {}",
        silent.location(),
        silent.body
    );

    // The audit log names the serial and the user.
    let started = audit_entries(&sys, "apple-dep-sign-in.start").await?;
    assert_eq!(started.len(), 2, "{started:?}");
    assert!(
        started
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("DEPSIGNIN01")),
        "{started:?}"
    );
    let finished = audit_entries(&sys, "apple-dep-sign-in.finish").await?;
    let ok: Vec<_> = finished.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 1, "{finished:?}");
    let detail = ok[0]["detail"].as_str().unwrap();
    assert!(detail.contains("DEPSIGNIN01"), "{detail}");
    assert!(detail.contains("alice@example.com"), "{detail}");
    assert!(
        finished.iter().any(|e| e["outcome"] == "denied"),
        "the replay is recorded: {finished:?}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_finished_elsewhere_replayed_or_skipped_enrolls_nothing() -> Result<()> {
    let fake = FakeDep::start().await?;
    fake.add_device(FakeDevice::iphone("DEPATTACK01"));
    fake.add_device(FakeDevice::iphone("DEPVICTIM01"));
    let (sys, temporary) = system(&fake, true).await?;
    let addr = sys.running().https_addr;

    // The POST of MachineInfo (no web view, no sign-in) is refused,
    // saying why.
    let (status, headers, body) = https_exchange(
        addr,
        &sys.ca_pem,
        "POST",
        "/apple/dep/enroll",
        &[("content-type", "application/pkcs7-signature".into())],
        &machine_info("DEPATTACK01")?,
    )
    .await?;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 403, "{body}");
    assert_ne!(
        headers.get("content-type").map(String::as_str),
        Some(ASPEN_CONFIG)
    );
    assert!(body.contains("sign in"), "{body}");

    // A device Apple does not list is not sent to sign in.
    let (web_view, first) = web_view_opens(&sys, "NOTLISTED01").await?;
    assert_eq!(first.status, 403, "{}", first.body);
    assert!(first.location().is_none());
    assert!(web_view.cookies.is_empty(), "{:?}", web_view.cookies);

    // The attacker's device starts a sign-in and sends its link to Alice,
    // who signs in in her own browser: she lands on the callback without
    // the web view's cookie, and gets no profile.
    let (mut attacker, first) = web_view_opens(&sys, "DEPATTACK01").await?;
    assert_eq!(first.status, 303, "{}", first.body);
    let link = first.location().context("the sign-in link")?.to_owned();
    let mut alice = Browser::new(addr, &sys.ca_pem)?;
    let opened = alice.get(&link).await?;
    let form = alice.follow(opened).await?;
    let mut totp = None;
    let after = sign_in_on(&mut alice, &form, &temporary, &mut totp, 0).await?;
    let callback = until_callback(&mut alice, after).await?;
    let landed = alice.get(&callback).await?;
    assert!(!is_profile(&landed), "{}", landed.body);
    assert_eq!(landed.status, 403, "{}", landed.body);
    assert!(
        landed.body.contains("data-failure=\"dep-sign-in\""),
        "{}",
        landed.body
    );

    // Alice's code is spent: the attacker's web view, which holds the
    // cookie, gets nothing for her callback either.
    let stolen = attacker.get(&callback).await?;
    assert!(!is_profile(&stolen), "{}", stolen.body);
    assert_eq!(
        device_with_serial(&sys, "DEPATTACK01").await?["state"],
        "awaiting-enrollment"
    );

    // Alice's own device: the built-in client's code is no client's at
    // `/token`, and the callback still gives her device its profile.
    let (mut web_view, first) = web_view_opens(&sys, "DEPVICTIM01").await?;
    let authorize = first.location().context("sign-in")?.to_owned();
    let client_id = query_param(&authorize, "client_id").context("client_id")?;
    let form = web_view.follow(first).await?;
    let after = sign_in_on(&mut web_view, &form, CHOSEN_PASSWORD, &mut totp, 1).await?;
    let callback = until_callback(&mut web_view, after).await?;
    let code = query_param(&callback, "code").context("a code")?;
    let redirect_uri = callback.split('?').next().unwrap_or_default().to_owned();
    let tokens = token_request(
        &sys,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &client_id),
        ],
    )
    .await?;
    assert_eq!(tokens.status, 401, "{}", tokens.body);
    assert!(tokens.body.contains("invalid_client"), "{}", tokens.body);
    let delivered = web_view.get(&callback).await?;
    assert!(is_profile(&delivered), "{}", delivered.body);

    // The refusals are audited with the serial and, where a code came
    // back, the user who signed in.
    let finished = audit_entries(&sys, "apple-dep-sign-in.finish").await?;
    let refused: Vec<_> = finished
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert!(
        refused.iter().any(|e| {
            let detail = e["detail"].as_str().unwrap();
            detail.contains("DEPATTACK01") && detail.contains("alice@example.com")
        }),
        "{finished:?}"
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_setting_setup_assistant_gets_the_profile_as_before() -> Result<()> {
    let fake = FakeDep::start().await?;
    fake.add_device(FakeDevice::iphone("DEPPLAIN001"));
    fake.add_device(FakeDevice::iphone("DEPPLAIN002"));
    let (sys, _) = system(&fake, false).await?;

    // The web view gets the profile at once; so does the POST.
    let (_, first) = web_view_opens(&sys, "DEPPLAIN001").await?;
    assert!(is_profile(&first), "{} {}", first.status, first.body);
    let (status, headers, _) = https_exchange(
        sys.running().https_addr,
        &sys.ca_pem,
        "POST",
        "/apple/dep/enroll",
        &[("content-type", "application/pkcs7-signature".into())],
        &machine_info("DEPPLAIN002")?,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some(ASPEN_CONFIG)
    );

    // No sign-in for devices exists: the callback has nothing to finish.
    let mut browser = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let callback = browser
        .get("/apple/dep/callback?code=0123&state=0123")
        .await?;
    assert!(!is_profile(&callback));
    assert_eq!(callback.status, 404, "{}", callback.body);
    assert!(
        audit_entries(&sys, "apple-dep-sign-in.start")
            .await?
            .is_empty()
    );
    sys.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_assigned_to_someone_else_does_not_enroll_as_whoever_signs_in() -> Result<()> {
    // The admin assigned this listed iPhone to Bob; Alice, who knows its
    // serial, starts its Setup Assistant sign-in and signs in as herself.
    let fake = FakeDep::start().await?;
    fake.add_device(FakeDevice::iphone("DEPBOB00001"));
    let (sys, temporary) = system(&fake, true).await?;
    login::add_user_with_temporary_password(&sys, "bob@example.com", &["--name", "Bob Sato"])
        .await?;
    let listed = device_with_serial(&sys, "DEPBOB00001").await?;
    let id = listed["id"].as_str().context("id")?.to_owned();
    sys.ctl(&["device", "assign", &id, "--user", "bob@example.com"])
        .await?;

    let (mut web_view, first) = web_view_opens(&sys, "DEPBOB00001").await?;
    let form = web_view.follow(first).await?;
    let mut totp = None;
    let after = sign_in_on(&mut web_view, &form, &temporary, &mut totp, 0).await?;
    let callback = until_callback(&mut web_view, after).await?;
    let refused = web_view.get(&callback).await?;
    assert!(!is_profile(&refused), "{}", refused.body);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("assigned this device to someone else"),
        "{}",
        refused.body
    );
    let device = device_with_serial(&sys, "DEPBOB00001").await?;
    assert_eq!(device["state"], "awaiting-enrollment", "{device}");
    assert_eq!(device["user"], "bob@example.com", "{device}");
    let finished = audit_entries(&sys, "apple-dep-sign-in.finish").await?;
    assert!(
        finished.iter().any(|e| e["outcome"] == "denied"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("assigned to bob@example.com"))),
        "{finished:?}"
    );
    sys.stop().await
}
