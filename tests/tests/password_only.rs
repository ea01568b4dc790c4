//! A phished password alone never changes how an account is protected.
//! The attacker signs in with Alice's password in their own browser and
//! stops at her authenticator code; from that half-signed-in session they
//! try every account change: add or replace an authenticator, remove it,
//! turn the second factor off, change the password (on the account page
//! and through the sign-in's "choose a new password" form). Each is
//! refused, the victim's authenticator and password still work, and when
//! Alice herself changes her password (after confirming with a current
//! code) the attacker's session ends.

// A test: a panic here is a failed test.
#![allow(clippy::expect_used, clippy::indexing_slicing, clippy::unwrap_used)]

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use latchkey_tests::System;
use latchkey_tests::login::{self, CHOSEN_PASSWORD, RP_CALLBACK, sign_in};
use latchkey_tests::web::{Browser, WebResponse};
use latchkeyd::core::totp::{TotpSecret, code_at};
use sea_orm::ConnectionTrait;

const NEW_PASSWORD: &str = "a much longer passphrase of mine";

struct Scene {
    sys: System,
    client_id: String,
    secret: TotpSecret,
}

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

/// Payroll requires an authenticator code; Alice onboarded with a
/// temporary password, chose her own and set up her authenticator.
async fn alice_with_an_authenticator() -> Result<(Scene, Browser)> {
    let sys = System::start().await?;
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Payroll",
            "--redirect-uri",
            RP_CALLBACK,
            "--mfa",
            "totp",
            "--device",
            "none",
        ])
        .await?;
    let client_id = app["client_id"].as_str().context("client id")?.to_owned();
    sys.ctl(&["user", "add", "alice@example.com", "--name", "Alice Suzuki"])
        .await?;
    let reset = sys
        .ctl_json(&["user", "reset-password", "alice@example.com"])
        .await?;
    let temporary = reset["temporary_password"]
        .as_str()
        .context("temporary password")?;
    let mut alice = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let url = login::authorize_url(&client_id, RP_CALLBACK, "alice");
    let page = sign_in(&mut alice, &url, "Payroll", "alice@example.com", temporary).await?;
    let key = page.attr("data-secret").context("the enrollment key")?;
    let secret = TotpSecret::from_base32(&key).context("base32")?;
    let after = post_code(&mut alice, &page, &code_at(&secret, Utc::now())).await?;
    let landed = alice.follow(after).await?;
    assert!(
        landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK)),
        "{}",
        landed.body
    );
    Ok((
        Scene {
            sys,
            client_id,
            secret,
        },
        alice,
    ))
}

/// The attacker's browser, past the password, at the code step.
async fn attacker_with_the_password(scene: &Scene) -> Result<(Browser, WebResponse)> {
    let mut attacker = Browser::new(scene.sys.running().https_addr, &scene.sys.ca_pem)?;
    let url = login::authorize_url(&scene.client_id, RP_CALLBACK, "attacker");
    let page = sign_in(
        &mut attacker,
        &url,
        "Payroll",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    assert!(page.body.contains("Enter your code"), "{}", page.body);
    assert!(page.attr("data-secret").is_none(), "no enrollment offered");
    Ok((attacker, page))
}

async fn account_post(
    browser: &mut Browser,
    csrf: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<WebResponse> {
    let mut form = vec![("csrf", csrf)];
    form.extend_from_slice(fields);
    browser.post(path, &form).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_alone_changes_no_second_factor_and_not_the_password() -> Result<()> {
    let (scene, mut alice) = alice_with_an_authenticator().await?;
    let (mut attacker, code_page) = attacker_with_the_password(&scene).await?;

    // The account page shows the attacker nothing but "confirm it's you".
    let account = attacker.get("/account").await?;
    assert_eq!(account.status, 200);
    assert!(
        account.body.contains(r#"data-account="locked""#),
        "{}",
        account.body
    );
    assert!(!account.body.contains("history"), "{}", account.body);
    let csrf = account.input("csrf").context("csrf")?;

    // Each change is refused and asks for the step-up first.
    let tries: [(&str, Vec<(&str, &str)>); 6] = [
        ("/account/totp", vec![]),
        ("/account/totp/confirm", vec![("code", "123456")]),
        ("/account/totp/remove", vec![("code", "123456")]),
        ("/account/mfa", vec![("setting", "off")]),
        (
            "/account/password",
            vec![
                ("current", CHOSEN_PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        ),
        (
            "/account/verify",
            vec![("password", CHOSEN_PASSWORD), ("code", "000000")],
        ),
    ];
    for (path, fields) in &tries {
        let refused = account_post(&mut attacker, &csrf, path, fields).await?;
        assert!(
            refused.status == 403 || refused.status == 401 || refused.status == 400,
            "{path}: {} {}",
            refused.status,
            refused.body
        );
        assert!(
            refused.body.contains("Confirm it")
                || refused.body.contains("not correct")
                || refused.body.contains("has expired"),
            "{path}: {}",
            refused.body
        );
        assert!(refused.attr("data-secret").is_none(), "{path} showed a key");
    }

    // The sign-in's "choose a new password" form changes only a password
    // marked to be changed.
    let req = code_page.input("req").context("req")?;
    let csrf_login = code_page.input("csrf").context("csrf")?;
    let changed = attacker
        .post(
            "/login/password",
            &[
                ("req", &req),
                ("csrf", &csrf_login),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        )
        .await?;
    assert!(changed.body.contains("has expired"), "{}", changed.body);

    // Nothing changed: Alice's password still opens the code step (and
    // her authenticator's next code confirms it's her below).
    let url = login::authorize_url(&scene.client_id, RP_CALLBACK, "again");
    let mut fresh = Browser::new(scene.sys.running().https_addr, &scene.sys.ca_pem)?;
    let page = sign_in(
        &mut fresh,
        &url,
        "Payroll",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    assert!(page.body.contains("Enter your code"), "{}", page.body);

    // Ten minutes later Alice wants a new password: her sign-in is no
    // longer recent, so she confirms it's her (password and a current
    // code) and changes it; the attacker's session ends with it.
    let db = scene.sys.database().await?;
    let ten_minutes_ago = (Utc::now() - Duration::minutes(10)).timestamp_millis();
    db.execute_unprepared(&format!(
        "UPDATE sso_sessions SET auth_time = {ten_minutes_ago}, second_factor_at = {ten_minutes_ago} \
         WHERE auth_time IS NOT NULL"
    ))
    .await?;
    let account = alice.get("/account").await?;
    assert!(
        account.body.contains(r#"data-step-up="totp""#),
        "{}",
        account.body
    );
    let csrf = account.input("csrf").context("csrf")?;
    let verified = account_post(
        &mut alice,
        &csrf,
        "/account/verify",
        &[
            ("password", CHOSEN_PASSWORD),
            (
                "code",
                &code_at(&scene.secret, Utc::now() + Duration::seconds(30)),
            ),
        ],
    )
    .await?;
    assert_eq!(verified.status, 303, "{}", verified.body);
    let account = alice.follow(verified).await?;
    assert!(account.body.contains("Confirmed."), "{}", account.body);
    assert!(!account.body.contains(r#"id="step-up""#));
    let csrf = account.input("csrf").context("csrf")?;
    let changed = account_post(
        &mut alice,
        &csrf,
        "/account/password",
        &[
            ("current", CHOSEN_PASSWORD),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await?;
    assert_eq!(changed.status, 303, "{}", changed.body);
    let account = alice.follow(changed).await?;
    assert!(
        account.body.contains("Your password was changed."),
        "{}",
        account.body
    );
    let gone = attacker.get("/account").await?;
    assert_eq!(gone.status, 303, "the attacker's session ended");

    scene.sys.stop().await
}

/// Without a mail server and without an authenticator, the password is
/// the only factor a user has, and it alone still changes nothing: the
/// account page sends them to the admin for a temporary password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_second_factor_at_all_the_password_alone_still_changes_nothing() -> Result<()> {
    let sys = System::start().await?;
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Wiki",
            "--redirect-uri",
            RP_CALLBACK,
            "--device",
            "none",
        ])
        .await?;
    let client_id = app["client_id"].as_str().context("client id")?;
    sys.ctl(&["user", "add", "alice@example.com", "--name", "Alice Suzuki"])
        .await?;
    let reset = sys
        .ctl_json(&["user", "reset-password", "alice@example.com"])
        .await?;
    let temporary = reset["temporary_password"].as_str().context("temporary")?;
    let url = login::authorize_url(client_id, RP_CALLBACK, "alice");
    let mut alice = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let landed = sign_in(&mut alice, &url, "Wiki", "alice@example.com", temporary).await?;
    assert!(
        landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK))
    );

    // The attacker, with the password Alice chose.
    let mut attacker = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let landed = sign_in(
        &mut attacker,
        &url,
        "Wiki",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    assert!(
        landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK))
    );
    let account = attacker.get("/account").await?;
    assert!(
        account.body.contains(r#"data-step-up="admin""#),
        "{}",
        account.body
    );
    let csrf = account.input("csrf").context("csrf")?;
    for (path, fields) in [
        (
            "/account/password",
            vec![
                ("current", CHOSEN_PASSWORD),
                ("password", NEW_PASSWORD),
                ("confirm", NEW_PASSWORD),
            ],
        ),
        ("/account/totp", vec![]),
        ("/account/mfa", vec![("setting", "always")]),
    ] {
        let refused = account_post(&mut attacker, &csrf, path, &fields).await?;
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(refused.attr("data-secret").is_none(), "{path}");
    }
    // Alice's password still works.
    let mut again = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let landed = sign_in(
        &mut again,
        &url,
        "Wiki",
        "alice@example.com",
        CHOSEN_PASSWORD,
    )
    .await?;
    assert!(
        landed
            .location()
            .is_some_and(|l| l.starts_with(RP_CALLBACK))
    );
    sys.stop().await
}

/// A user who lost their authenticator: the helpdesk resets it. Their
/// sessions end, and with the temporary password they set up a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helpdesk_resets_a_lost_authenticator() -> Result<()> {
    let (scene, mut alice) = alice_with_an_authenticator().await?;
    let reset = scene
        .sys
        .ctl_json(&["user", "reset-mfa", "alice@example.com"])
        .await?;
    let temporary = reset["temporary_password"]
        .as_str()
        .context("temporary")?
        .to_owned();
    let gone = alice.get("/account").await?;
    assert_eq!(gone.status, 303, "her sessions ended");
    let audit = scene.sys.ctl(&["audit"]).await?;
    assert!(audit.contains("user.reset-mfa"), "{audit}");
    let url = login::authorize_url(&scene.client_id, RP_CALLBACK, "after-reset");
    let mut browser = Browser::new(scene.sys.running().https_addr, &scene.sys.ca_pem)?;
    let page = sign_in(
        &mut browser,
        &url,
        "Payroll",
        "alice@example.com",
        &temporary,
    )
    .await?;
    assert!(
        page.attr("data-secret").is_some(),
        "a new authenticator is set up: {}",
        page.body
    );
    scene.sys.stop().await
}

/// A new password that is not taken says why on the same form, and the
/// temporary password still has to be replaced: the fields differ, too
/// short, too long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_that_is_not_taken_says_why() -> Result<()> {
    let sys = System::start().await?;
    let app = sys
        .ctl_json(&[
            "app",
            "add",
            "Payroll",
            "--redirect-uri",
            RP_CALLBACK,
            "--device",
            "none",
        ])
        .await?;
    let client_id = app["client_id"].as_str().context("client id")?;
    sys.ctl(&["user", "add", "alice@example.com", "--name", "Alice Suzuki"])
        .await?;
    let reset = sys
        .ctl_json(&["user", "reset-password", "alice@example.com"])
        .await?;
    let temporary = reset["temporary_password"]
        .as_str()
        .context("temporary password")?;
    let mut alice = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let url = login::authorize_url(client_id, RP_CALLBACK, "alice");
    let (req, csrf) = login::open_sign_in(&mut alice, &url, "Payroll").await?;
    let mut page =
        login::submit_password(&mut alice, &req, &csrf, "alice@example.com", temporary).await?;
    assert!(login::asks_new_password(&page), "{}", page.body);

    let too_long = "x".repeat(257);
    let tries = [
        (
            NEW_PASSWORD,
            "a much longer passphrase of yours",
            "The two passwords differ.",
        ),
        ("short one", "short one", "at least 12 characters"),
        (
            too_long.as_str(),
            too_long.as_str(),
            "at most 256 characters",
        ),
    ];
    for (password, confirm, says) in tries {
        let csrf = page.input("csrf").context("csrf")?;
        let refused = alice
            .post(
                "/login/password",
                &[
                    ("req", &req),
                    ("csrf", &csrf),
                    ("password", password),
                    ("confirm", confirm),
                ],
            )
            .await?;
        assert_eq!(refused.status, 400, "{says}: {}", refused.body);
        assert!(refused.body.contains(says), "{says}: {}", refused.body);
        assert!(login::asks_new_password(&refused), "{}", refused.body);
        page = refused;
    }

    // The temporary password was not replaced by any of them.
    let mut again = Browser::new(sys.running().https_addr, &sys.ca_pem)?;
    let (req, csrf) = login::open_sign_in(&mut again, &url, "Payroll").await?;
    let page =
        login::submit_password(&mut again, &req, &csrf, "alice@example.com", temporary).await?;
    assert!(login::asks_new_password(&page), "{}", page.body);
    sys.stop().await
}
